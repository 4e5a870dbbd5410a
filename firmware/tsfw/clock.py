"""Injectable microsecond clock for the firmware.

Every firmware module reads time through this module, so a simulated board (or a test) can
drive time instead of the wall clock::

    from tsfw import clock
    sim = clock.ManualClock()
    clock.use(sim)          # from now on clock.ticks_us() == sim.ticks_us()
    sim.advance(5000)       # 5 ms pass

Values follow MicroPython's ``time.ticks_*`` rules: they wrap, compare them with
``clock.ticks_diff(a, b)`` only. All functions here are allocation-free (called per sample).
"""

import time

try:
    from micropython import const
except ImportError:  # CPython (host tests)
    def const(x):
        return x

# MicroPython's ticks period: 2**30, so every tick value is a small int (no heap allocation).
TICKS_PERIOD = const(1 << 30)
_TICKS_MASK = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)

if hasattr(time, "ticks_us"):
    _sys_us = time.ticks_us
    _sys_ms = time.ticks_ms
else:  # CPython: emulate the wrapping microsecond counter
    def _sys_us():
        return int(time.monotonic() * 1000000) & _TICKS_MASK

    def _sys_ms():
        return int(time.monotonic() * 1000) & _TICKS_MASK

# The active source: a bound method stored once, so a call allocates nothing.
_src_us = _sys_us
_src_ms = _sys_ms
_source = None


def ticks_us():
    """Microseconds from the active source (wrapping at 2**30)."""
    return _src_us()


def ticks_ms():
    """Milliseconds from the active source (wrapping at 2**30)."""
    return _src_ms()


def ticks_diff(a, b):
    """Signed difference a - b of two tick values, correct across the wrap."""
    return ((a - b + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF


def ticks_add(a, delta):
    """Tick value ``delta`` after ``a`` (wrapping)."""
    return (a + delta) & _TICKS_MASK


def sleep_us(us):
    """Wait ``us`` microseconds: advances a manual clock, or sleeps on the real one."""
    if _source is not None and hasattr(_source, "sleep_us"):
        _source.sleep_us(us)
    elif us > 0:
        if hasattr(time, "sleep_us"):
            if us >= 1000:
                time.sleep_ms(us // 1000)  # yields to the RTOS (radio, USB tasks) on a device
            else:
                time.sleep_us(us)
        else:
            time.sleep(us / 1000000)


def use(source):
    """Route all reads through ``source`` (with ``ticks_us()``, ``ticks_ms()``); None = system clock."""
    global _src_us, _src_ms, _source
    if source is None:
        _src_us, _src_ms, _source = _sys_us, _sys_ms, None
        return
    _source = source
    _src_us = source.ticks_us
    _src_ms = source.ticks_ms


def source():
    """The injected source, or None when the system clock is in use."""
    return _source


class ManualClock:
    """A clock that moves only when told to (tests, simulated boards)."""

    def __init__(self, start_us=0):
        self.now = start_us & _TICKS_MASK
        # milliseconds kept apart: both counters wrap at 2**30 like the real ones
        self.ms = (start_us // 1000) & _TICKS_MASK
        self._frac = start_us % 1000

    def ticks_us(self):
        return self.now

    def ticks_ms(self):
        return self.ms

    def advance(self, us):
        """Move time forward by ``us`` (>= 0) microseconds."""
        self.now = (self.now + us) & _TICKS_MASK
        f = self._frac + us
        self.ms = (self.ms + f // 1000) & _TICKS_MASK
        self._frac = f % 1000

    def sleep_us(self, us):
        if us > 0:
            self.advance(us)
