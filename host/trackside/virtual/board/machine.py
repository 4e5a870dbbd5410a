"""Simulated ``machine`` module for a Trackside board (MicroPython-compatible, also CPython).

Follows MicroPython's ESP32 ``machine`` API for what the firmware uses: ``I2C``/``SoftI2C``
(routed to chip models on the simulated buses of ``board``), ``Pin``, ``ADC`` (value from
``board.set_adc``), ``Timer`` (soft timers run by ``board.clock``), ``freq``, ``unique_id``,
``reset``/``soft_reset``/``deepsleep`` (raise ``board.Reset``), ``lightsleep``/``idle``
(advance virtual time) and ``disable_irq``/``enable_irq``. On import, ``/board.json`` (if present)
configures the simulated board and the firmware clock (``board.autoload``). I2C errors surface as on the device:
``OSError(ENODEV)`` when nobody ACKs the address, ``OSError(ETIMEDOUT)`` on injected timeouts.
"""

import board

_I2C_IDS = (0, 1)
board.autoload()  # a virtual node: /board.json describes the chips (see board.load)


def _check_addr(addr):
    if not 0 <= addr <= 0x7F:
        raise ValueError("I2C address out of range")


class I2C:
    """Hardware I2C peripheral ``id`` (0 or 1) on the simulated board."""

    def __init__(self, id=0, *, scl=None, sda=None, freq=400000, timeout=50000):
        if id not in _I2C_IDS:
            raise ValueError("I2C(%s) doesn't exist" % (id,))
        self._init(id, scl, sda, freq, timeout)

    def _init(self, id, scl, sda, freq, timeout):
        if freq <= 0 or freq > 5000000:
            raise ValueError("bad I2C freq")
        self._bus = board.bus(id)
        self._id = id
        self.freq = freq
        self.scl = scl
        self.sda = sda
        self.timeout = timeout
        self._ptr = {}  # address -> register pointer set by a plain write (readfrom after writeto)

    def init(self, *, scl=None, sda=None, freq=400000, timeout=50000):
        self._init(self._id, scl, sda, freq, timeout)

    def deinit(self):
        pass

    def scan(self):
        """Addresses that ACK, as a list."""
        return self._bus.scan()

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        """Read ``len(buf)`` bytes from register ``memaddr`` of device ``addr`` into ``buf``."""
        self._bus.device(addr).read_into(memaddr, buf)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self._bus.device(addr).read_into(memaddr, buf)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._bus.device(addr).write(memaddr, buf)

    def writeto(self, addr, buf, stop=True):
        """First byte = register pointer, the rest are written from there; returns ACK count."""
        _check_addr(addr)
        dev = self._bus.device(addr)
        if len(buf):
            self._ptr[addr] = buf[0]
            if len(buf) > 1:
                dev.write(buf[0], memoryview(buf)[1:])
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        data = bytearray()
        for b in vector:
            data.extend(b)
        return self.writeto(addr, data, stop)

    def readfrom_into(self, addr, buf, stop=True):
        _check_addr(addr)
        self._bus.device(addr).read_into(self._ptr.get(addr, 0), buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self.readfrom_into(addr, buf, stop)
        return bytes(buf)


class SoftI2C(I2C):
    """Bit-banged I2C on any pins: same simulated bus as hardware I2C 0 unless ``bus`` is given."""

    def __init__(self, scl=None, sda=None, *, freq=400000, timeout=50000, bus=0):
        self._init(bus, scl, sda, freq, timeout)


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2
    DRIVE_0 = 0
    DRIVE_1 = 1
    DRIVE_2 = 2
    DRIVE_3 = 3

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None):
        if not isinstance(id, int) or not 0 <= id <= 48:
            raise ValueError("invalid pin")
        self.id = id
        self._mode = mode
        self._pull = pull
        self._value = 1 if pull == Pin.PULL_UP else 0
        self._irq = None
        board.pins[id] = self
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None):
        if mode != -1:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return self._value
        v = 1 if v else 0
        if v != self._value:
            self._value = v
            log = board.pin_log
            if len(log) >= board.PIN_LOG_MAX:
                del log[0]
            log.append((board.clock.ticks_ms(), self.id, v))

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3):
        self._irq = handler
        return None

    def __repr__(self):
        return "Pin(%d)" % self.id


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_9BIT = 0
    WIDTH_10BIT = 1
    WIDTH_11BIT = 2
    WIDTH_12BIT = 3
    _FULL_UV = (950000, 1250000, 1750000, 3100000)  # ESP32 input range per attenuation

    def __init__(self, pin, *, atten=0):
        self._pin = pin.id if isinstance(pin, Pin) else int(pin)
        self._atten = atten

    def atten(self, a):
        if not 0 <= a <= 3:
            raise ValueError("invalid attenuation")
        self._atten = a

    def width(self, w):
        pass

    def read_uv(self):
        uv = board.adc_uv.get(self._pin, 0)
        full = ADC._FULL_UV[self._atten]
        return full if uv > full else (uv if uv > 0 else 0)

    def read_u16(self):
        return self.read_uv() * 65535 // ADC._FULL_UV[self._atten]

    def read(self):
        return self.read_u16() >> 4


class Timer:
    """Soft timer (callbacks run from ``board.clock`` when virtual time passes the deadline)."""

    ONE_SHOT = 0
    PERIODIC = 1

    def __init__(self, id=-1, **kw):
        self.id = id
        self._cb = None
        self._period = 0
        self._mode = Timer.PERIODIC
        self._deadline = 0
        if kw:
            self.init(**kw)

    def init(self, *, mode=PERIODIC, period=-1, freq=-1, callback=None, hard=False):
        if hard:
            raise ValueError("hard timers are not supported on ESP32 (MicroPython 1.27)")
        if freq > 0:
            period_us = 1000000 // freq
        elif period > 0:
            period_us = period * 1000
        else:
            raise ValueError("give period (ms) or freq (Hz)")
        self._period = period_us
        self._mode = mode
        self._cb = callback
        self._deadline = board.ticks_add(board.clock.ticks_us(), period_us)
        if self not in board.clock.timers:
            board.clock.timers.append(self)

    def deinit(self):
        if self in board.clock.timers:
            board.clock.timers.remove(self)

    def _due(self):
        if self._mode == Timer.PERIODIC:
            self._deadline = board.ticks_add(self._deadline, self._period)
        else:
            self.deinit()
        if self._cb is not None:
            self._cb(self)


def freq(hz=None):
    if hz is None:
        return board.cpu_freq[0]
    if hz not in (20000000, 40000000, 80000000, 160000000, 240000000):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    board.cpu_freq[0] = hz


def unique_id():
    return board.unique_id


def reset():
    board.resets[0] += 1
    raise board.Reset("machine.reset()")


def soft_reset():
    board.resets[0] += 1
    raise board.Reset("machine.soft_reset()")


def deepsleep(ms=0):
    board.resets[0] += 1
    raise board.Reset("machine.deepsleep()")


def lightsleep(ms=0):
    board.clock.sleep_us(ms * 1000)


def idle():
    pass


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5


def reset_cause():
    return PWRON_RESET if board.resets[0] == 0 else SOFT_RESET


class WDT:
    """Watchdog: ``feed()`` must come within ``timeout`` ms of virtual time, else board.Reset."""

    def __init__(self, id=0, timeout=5000):
        self._timeout = timeout * 1000
        self._t = Timer(-1)
        self._t.init(mode=Timer.ONE_SHOT, period=timeout, callback=self._bite)

    def _bite(self, t):
        board.resets[0] += 1
        raise board.Reset("watchdog")

    def feed(self):
        self._t._deadline = board.ticks_add(board.clock.ticks_us(), self._timeout)
