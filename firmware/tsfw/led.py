"""Status LED: identify blink and error codes, driven from the main loop without blocking.

A pattern is a tuple of on/off durations in ms, repeated until it ends or is replaced::

    led = Led(2)
    led.identify()              # fast blink for 5 s (the host's "identify" command)
    led.error(3)                # 3 blinks, pause, repeated: error code 3
    while True:
        led.update(clock.ticks_ms())   # allocation-free

Error codes (blink count): 2 = sensor missing, 3 = sensor I2C errors, 4 = link down,
5 = config fell back to defaults (shown once at boot). A steady slow heartbeat means all is well.
"""

from tsfw import clock

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

ERR_SENSOR_MISSING = const(2)
ERR_SENSOR_IO = const(3)
ERR_LINK = const(4)
ERR_CONFIG = const(5)

HEARTBEAT = (50, 1950)
IDENTIFY = (100, 100)
IDENTIFY_MS = const(5000)


def error_pattern(code):
    """``code`` short blinks then a 1.2 s pause."""
    p = []
    for _ in range(code):
        p.append(200)
        p.append(250)
    p[-1] = 1200
    return tuple(p)


class Led:
    """One LED on a GPIO pin (``pin < 0`` or no ``machine`` module: a silent stand-in)."""

    def __init__(self, pin=2, active_high=True):
        self._pin = None
        if pin is not None and pin >= 0:
            try:
                import machine
                self._pin = machine.Pin(pin, machine.Pin.OUT)
            except Exception:  # no LED is never fatal
                self._pin = None
        self._on_level = 1 if active_high else 0
        self.state = False
        self._pattern = HEARTBEAT
        self._base = HEARTBEAT
        self._idx = 0
        self._until_ms = 0      # end of a temporary pattern, 0 = none
        self._next_ms = clock.ticks_ms()
        self._set(False)

    def _set(self, on):
        self.state = on
        if self._pin is not None:
            self._pin.value(self._on_level if on else 1 - self._on_level)

    def show(self, pattern, duration_ms=0):
        """Play ``pattern``; for ``duration_ms`` (then back to the base pattern) or for good."""
        now = clock.ticks_ms()
        self._pattern = pattern
        self._idx = 0
        self._next_ms = now
        if duration_ms > 0:
            self._until_ms = clock.ticks_add(now, duration_ms) or 1
        else:
            self._until_ms = 0
            self._base = pattern

    def identify(self, duration_ms=IDENTIFY_MS):
        """Fast blink so a person can find this node among many."""
        self.show(IDENTIFY, duration_ms)

    def error(self, code):
        """Blink an error code (count of blinks) until ``ok()`` is called."""
        self.show(error_pattern(code))

    def ok(self):
        """Back to the heartbeat."""
        self.show(HEARTBEAT)

    def update(self, now_ms):
        """Advance the pattern; call often (allocation-free)."""
        if self._until_ms and clock.ticks_diff(now_ms, self._until_ms) >= 0:
            self._until_ms = 0
            self._pattern = self._base
            self._idx = 0
            self._next_ms = now_ms
        if clock.ticks_diff(now_ms, self._next_ms) < 0:
            return
        pat = self._pattern
        i = self._idx
        self._set(i % 2 == 0)
        self._next_ms = clock.ticks_add(now_ms, pat[i])
        i += 1
        self._idx = 0 if i >= len(pat) else i
