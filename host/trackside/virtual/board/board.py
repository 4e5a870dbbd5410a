"""Simulated board: virtual clock, I2C buses carrying chip models, pin/ADC state, fault injection.

MicroPython-compatible (copied to ``/lib`` of a simulated board under the WebAssembly port with
``machine.py``, ``espnow.py``, ``network.py`` and the ``chips`` package) and importable from
CPython (put this directory on ``sys.path``). Simulation-only API, used by tests and virtual
nodes; the firmware itself only sees ``machine``::

    import board
    from chips.mpu9250 import MPU9250
    board.install(MPU9250(stream="/data/mpu.tsms"))      # on I2C bus 0, address 0x68 (+AK8963 0x0C)
    from tsfw import clock
    clock.use(board.clock)                               # firmware time = virtual time
    import machine
    i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21))
    board.clock.advance(20000)                           # 20 ms pass: the chip FIFO fills
    board.bus(0).fail(3)                                 # the next 3 transactions time out

Chip models are lazy: at every bus transaction a chip first catches up with ``clock.ticks_us()``
(produces the samples its ODR implies since the last transaction), so virtual time can jump.
The clock wraps like MicroPython's ``ticks_us`` (2**30); every hot-path value stays a small int,
so the models allocate nothing per transaction (the firmware's heap_lock tests cover them too).
"""

import time

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    import hostio  # wasm runner: microsecond wall clock for real-time virtual nodes
except ImportError:
    hostio = None

TICKS_PERIOD = const(1 << 30)
TICKS_MASK = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)
_MAX_STEP = const(1 << 28)  # largest single clock step (larger advances are split)

_CPYTHON = not hasattr(time, "ticks_us")

ENODEV = const(19)      # address NACK, as MicroPython's machine.I2C reports it
ETIMEDOUT = const(116)  # bus timeout / clock stretching gone wrong
EIO = const(5)

# Preallocated errors: raising them allocates nothing, so injected faults work under heap_lock.
_ERRORS = {ENODEV: OSError(ENODEV), ETIMEDOUT: OSError(ETIMEDOUT), EIO: OSError(EIO)}


def _raise(errno):
    if _CPYTHON:  # fresh instances on CPython (tracebacks would pile up on a shared one)
        raise OSError(errno, "simulated I2C error")
    raise _ERRORS[errno]


def ticks_diff(a, b):
    """Signed a - b of two wrapped tick values (as ``time.ticks_diff``)."""
    return ((a - b + _TICKS_HALF) & TICKS_MASK) - _TICKS_HALF


def ticks_add(a, d):
    """Tick value ``d`` after ``a`` (wrapped)."""
    return (a + d) & TICKS_MASK


class Reset(SystemExit):
    """Raised by ``machine.reset()``/``soft_reset()``/``deepsleep()`` on the simulated board."""


class Clock:
    """Virtual time with MicroPython's tick semantics (``ticks_us``/``ticks_ms`` wrap at 2**30).

    Interface-compatible with ``tsfw.clock.ManualClock`` (``ticks_us``, ``ticks_ms``,
    ``sleep_us``, ``advance``): pass it to ``tsfw.clock.use``. ``realtime=True`` follows the wall
    clock instead (virtual nodes paced in real time): then sleeping waits for real.
    Soft ``machine.Timer`` callbacks run when time passes their deadline.
    """

    def __init__(self, start_us=0, realtime=False):
        self.timers = []
        self.reset(start_us, realtime)

    def reset(self, start_us=0, realtime=False):
        """Back to ``start_us``; forget timers."""
        self.realtime = realtime
        self._us = start_us & TICKS_MASK
        self._ms = (start_us // 1000) & TICKS_MASK
        self._frac = start_us % 1000
        self._el_s = 0   # elapsed time = _el_s seconds + _el_us (kept apart: small ints)
        self._el_us = 0
        del self.timers[:]
        if realtime:
            self._rt0 = self._wall_us()

    def _wall_us(self):
        if hostio is not None:
            return hostio.now_us() & TICKS_MASK
        if _CPYTHON:
            return int(time.monotonic() * 1000000) & TICKS_MASK
        return time.ticks_us()

    def _sync_real(self):
        now = self._wall_us()
        d = ticks_diff(now, self._rt0)
        if d > 0:
            self._rt0 = now
            self._step(d)

    def ticks_us(self):
        if self.realtime:
            self._sync_real()
        return self._us

    def ticks_ms(self):
        if self.realtime:
            self._sync_real()
        return self._ms

    def ticks_diff(self, a, b):
        return ticks_diff(a, b)

    def ticks_add(self, a, d):
        return ticks_add(a, d)

    def elapsed_us(self):
        """Virtual microseconds since the last reset (unwrapped; may be a big int)."""
        return self._el_s * 1000000 + self._el_us

    def _step(self, us):
        self._us = (self._us + us) & TICKS_MASK
        f = self._frac + us
        self._ms = (self._ms + f // 1000) & TICKS_MASK
        self._frac = f % 1000
        e = self._el_us + us
        self._el_s += e // 1000000
        self._el_us = e % 1000000

    def advance(self, us):
        """Let ``us`` (>= 0) microseconds of virtual time pass, firing due soft timers."""
        if us < 0:
            raise ValueError("cannot advance the clock by a negative time")
        if self.realtime:
            raise ValueError("a real-time clock cannot be advanced")
        while us > 0:
            step = us if us < _MAX_STEP else _MAX_STEP
            if self.timers:
                due = self._next_timer()
                if 0 <= due < step:
                    step = due
            self._step(step)
            us -= step
            if self.timers:
                self._fire()

    def sleep_us(self, us):
        """Advance virtual time (or, in real time, wait)."""
        if us <= 0:
            return
        if self.realtime:
            end = ticks_add(self.ticks_us(), us)
            while ticks_diff(end, self.ticks_us()) > 0:
                if self.timers:
                    self._fire()
            return
        self.advance(us)

    def sleep_ms(self, ms):
        self.sleep_us(ms * 1000)

    def _next_timer(self):
        best = -1
        for t in self.timers:
            d = ticks_diff(t._deadline, self._us)
            if d < 0:
                d = 0
            if best < 0 or d < best:
                best = d
        return best

    def _fire(self):
        for t in self.timers:
            if ticks_diff(self._us, t._deadline) >= 0:
                t._due()


clock = Clock()
_buses = {}
pins = {}          # pin id -> machine.Pin (last created), for tests to inspect levels
pin_log = []       # (ticks_ms, pin id, value) of output changes, bounded
PIN_LOG_MAX = 512
adc_uv = {}        # pin id -> microvolts presented to the ADC
unique_id = b"\x24\x0a\xc4\x00\x00\x01"
cpu_freq = [240000000]
resets = [0]


class Bus:
    """One simulated I2C bus: address -> device model, with fault injection and counters."""

    def __init__(self, id):
        self.id = id
        self.devices = {}
        self.reset()

    def reset(self):
        """No devices, no faults, counters zero (I2C objects made earlier stay valid)."""
        self.devices.clear()
        self.transactions = 0
        self.injected = 0      # faults raised by injection
        self._fail_n = 0
        self._fail_addr = -1
        self._fail_errno = ETIMEDOUT
        self._every = 0
        self._every_k = 0

    def attach(self, address, device):
        """Put a device model at ``address`` (replaces any device there)."""
        if not 0x08 <= address <= 0x77:
            raise ValueError("I2C address out of range: 0x%02x" % address)
        self.devices[address] = device

    def detach(self, address):
        """Unplug the device at ``address`` (it NACKs from now on)."""
        self.devices.pop(address, None)

    def fail(self, n=1, address=None, errno=ETIMEDOUT):
        """The next ``n`` transactions (to ``address``, or any) raise ``OSError(errno)``."""
        if errno not in _ERRORS:
            raise ValueError("unsupported errno %d" % errno)
        self._fail_n = n
        self._fail_addr = -1 if address is None else address
        self._fail_errno = errno

    def fail_every(self, k, errno=ETIMEDOUT):
        """Every ``k``-th transaction fails (0 = off): a flaky bus."""
        if k < 0:
            raise ValueError("k must be >= 0")
        self._every = k
        self._every_k = 0
        self._fail_errno = errno

    def scan(self):
        return sorted(a for a, d in self.devices.items() if d.acks())

    def device(self, addr):
        """The device model answering at ``addr``, caught up with the clock; raises OSError."""
        self.transactions += 1
        if self._fail_n > 0 and (self._fail_addr < 0 or self._fail_addr == addr):
            self._fail_n -= 1
            self.injected += 1
            _raise(self._fail_errno)
        if self._every:
            self._every_k += 1
            if self._every_k >= self._every:
                self._every_k = 0
                self.injected += 1
                _raise(self._fail_errno)
        d = self.devices.get(addr)
        if d is None or not d.acks():
            _raise(ENODEV)
        d.sync(clock.ticks_us())
        return d


def bus(id=0):
    """The simulated I2C bus ``id`` (created on first use)."""
    b = _buses.get(id)
    if b is None:
        b = Bus(id)
        _buses[id] = b
    return b


def install(*chips, bus_id=0):
    """Attach chip models (each may occupy several addresses, e.g. MPU-9250 + AK8963)."""
    b = bus(bus_id)
    for chip in chips:
        for address, dev in chip.devices():
            b.attach(address, dev)
    return chips[0] if len(chips) == 1 else chips


def reset(start_us=0, realtime=False):
    """A fresh board: clock at ``start_us``, no chips, no pins, no faults."""
    clock.reset(start_us, realtime)
    for b in _buses.values():
        b.reset()
    pins.clear()
    del pin_log[:]
    adc_uv.clear()


def set_adc(pin, uv):
    """Present ``uv`` microvolts on ADC pin ``pin``."""
    adc_uv[pin] = int(uv)


def load(path):
    """Configure the board from a JSON file (e.g. written into the wasm FS by a host test)::

        {"realtime": false, "start_us": 0, "unique_id": "240ac4000001",
         "adc_uv": {"35": 1950000},
         "i2c": {"0": [{"chip": "mpu9250", "address": 104, "stream": "/data/mpu.tsms",
                        "odr_error_ppm": 300}]}}

    Chip names: mpu9250, mpu6500, mpu9255, icm20948, lsm303agr, lsm303dlhc (keyword arguments pass
    through). Returns the list of chip models.
    """
    import json
    with open(path) as f:
        cfg = json.load(f)
    reset(cfg.get("start_us", 0), cfg.get("realtime", False))
    if "unique_id" in cfg:
        global unique_id
        h = cfg["unique_id"]
        unique_id = bytes(int(h[i:i + 2], 16) for i in range(0, len(h), 2))
    for k, v in cfg.get("adc_uv", {}).items():
        set_adc(int(k), v)
    made = []
    for bid, chips in cfg.get("i2c", {}).items():
        for spec in chips:
            spec = dict(spec)
            made.append(install(make_chip(spec.pop("chip"), **spec), bus_id=int(bid)))
    return made


_autoloaded = [False]


def autoload(path="/board.json"):
    """Load ``path`` once if it exists (``import machine`` calls this), and point the firmware's
    clock (``tsfw.clock``) at the board clock, so unmodified firmware runs on a virtual node.
    Returns True when a configuration was loaded."""
    if _autoloaded[0]:
        return False
    _autoloaded[0] = True
    try:
        open(path).close()
    except OSError:
        return False
    load(path)
    try:
        from tsfw import clock as fw_clock
        fw_clock.use(clock)
    except ImportError:
        pass
    return True


def make_chip(name, **kw):
    """A chip model by name (see ``load``)."""
    name = name.lower()
    if name in ("mpu9250", "mpu6500", "mpu9255"):
        from chips.mpu9250 import MPU9250
        if name == "mpu6500":
            kw.setdefault("whoami", 0x70)
        elif name == "mpu9255":
            kw.setdefault("whoami", 0x73)
        return MPU9250(**kw)
    if name == "icm20948":
        from chips.icm20948 import ICM20948
        return ICM20948(**kw)
    if name == "lsm303agr":
        from chips.lsm303agr import LSM303AGR
        return LSM303AGR(**kw)
    if name == "lsm303dlhc":
        from chips.lsm303dlhc import LSM303DLHC
        return LSM303DLHC(**kw)
    raise ValueError("unknown chip model: " + name)
