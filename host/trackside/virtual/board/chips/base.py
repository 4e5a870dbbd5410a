"""Building blocks of the register-level chip models: sample streams, ODR timing, FIFOs.

A *stream* (file ``*.tsms``, written by ``trackside.virtual.motion``) holds one row per sample
time of raw sensor values already in the chip's own axes and finest units (int32, see
``motion.py``). A chip consumes rows at its configured ODR through a ``Cursor`` (rows are
resampled by index when the ODR differs from the stream rate; the stream loops at its end).
Without a stream a chip reports a constant pose (``default_row``).

File layout (little-endian): ``b"TSMS"``, u16 version (1), u16 channels, u32 rate in mHz,
u32 rows, then rows x channels int32.
"""

import struct
from array import array

import board

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_MASK = const((1 << 30) - 1)
_HALF = const(1 << 29)
MAGIC = b"TSMS"
HEADER = "<4sHHII"
HEADER_LEN = const(16)


def zeros(typecode, n):
    """A zero-filled array of ``n`` items (MicroPython and CPython)."""
    try:
        return array(typecode, bytes(n * struct.calcsize(typecode)))
    except TypeError:  # CPython refuses bytes for non-byte typecodes
        return array(typecode, [0]) * n


class Stream:
    """Rows of int32 sensor values at ``rate_mhz`` (milli-Hz); from a file or an array."""

    def __init__(self, path=None, data=None, channels=9, rate_mhz=1000000):
        if path is not None:
            with open(path, "rb") as f:
                hdr = f.read(HEADER_LEN)
                if len(hdr) != HEADER_LEN:
                    raise ValueError("stream file too short: " + path)
                magic, ver, channels, rate_mhz, rows = struct.unpack(HEADER, hdr)
                if magic != MAGIC or ver != 1:
                    raise ValueError("not a TSMS v1 stream: " + path)
                data = zeros("i", rows * channels)
                if f.readinto(data) != rows * channels * 4:
                    raise ValueError("stream file truncated: " + path)
        if data is None or channels <= 0 or len(data) < channels or rate_mhz <= 0:
            raise ValueError("empty stream")
        self.data = data
        self.channels = channels
        self.rate_mhz = rate_mhz
        self.rows = len(data) // channels


class Cursor:
    """Walks a stream at a chip's ODR: ``next()`` returns the base index of the next row."""

    def __init__(self, stream):
        self.stream = stream
        self.row = 0
        self._acc = 0
        self._step = 65536
        self._nch = stream.channels
        self._rows = stream.rows

    def set_rate(self, odr_mhz):
        """Rows advanced per chip sample = stream rate / ODR (16-bit fixed point)."""
        s = self.stream.rate_mhz * 65536 // odr_mhz  # not hot: may use a big int here
        self._step = s if s < (1 << 29) else (1 << 29)

    def next(self):
        b = self.row * self._nch
        a = self._acc + self._step
        r = self.row + (a >> 16)
        self._acc = a & 0xFFFF
        while r >= self._rows:
            r -= self._rows
        self.row = r
        return b

    def skip(self, n):
        for _ in range(n):
            self.next()


class Sampler:
    """ODR timing: ``sync(now)`` calls ``_sample()`` once per sample period elapsed.

    The period is kept in 1/256 us and includes the chip's oscillator error (``odr_error_ppm``),
    so a chip runs slightly fast or slow against ``ticks_us``, as real ones do. ``_t`` is the
    virtual time of the sample being produced (for chips that read a slave at that moment).
    """

    def _init_sampler(self, odr_error_ppm=0):
        self._ppm = odr_error_ppm
        self._on = False
        self._per = 256000
        self._per_us = 1000
        self._t = 0
        self._tf = 0
        self._cap_samples = 64

    def _set_period(self, odr_mhz, now):
        """Run at ``odr_mhz`` (0 = stop); the next sample comes one period after ``now``."""
        if odr_mhz <= 0:
            self._on = False
            return
        self._set_period_q(256000000000 // odr_mhz, now)

    def _set_period_q(self, per_q, now):
        """Run with a nominal period of ``per_q``/256 us (0 = stop); keeps the phase if unchanged."""
        if per_q <= 0:
            self._on = False
            return
        # configuration time: big ints allowed. A fast oscillator (ppm > 0): shorter period.
        per = per_q * (1000000 - self._ppm) // 1000000
        if self._on and per == self._per:
            return
        self._per = per
        self._per_us = per >> 8
        self._on = True
        self._t = (now + self._per_us) & _MASK
        self._tf = per & 255

    def sync(self, now):
        if not self._on:
            return
        d = ((now - self._t + _HALF) & _MASK) - _HALF
        if d < 0:
            return
        # a long gap: only the last few samples can still be in the FIFO; skip the rest
        keep = (self._cap_samples + 2) * self._per_us
        if d > keep:
            n = (d - keep) // self._per_us
            self._t = (self._t + n * self._per_us) & _MASK
            self._skipped(n)
            d = ((now - self._t + _HALF) & _MASK) - _HALF
        while d >= 0:
            self._sample()
            f = self._tf + self._per
            self._t = (self._t + (f >> 8)) & _MASK
            self._tf = f & 255
            d = ((now - self._t + _HALF) & _MASK) - _HALF

    def _load_accel_gyro(self):
        """Next stream row into the accel/gyro output registers (ax..gz), at the set full scales
        (``_afs``/``_gfs``: right shifts from the stream's finest range)."""
        c = self._cursor
        if c is not None:
            d = c.stream.data
            b = c.next()
            af = self._afs
            gf = self._gfs
            self.ax = sat16(d[b] >> af)
            self.ay = sat16(d[b + 1] >> af)
            self.az = sat16(d[b + 2] >> af)
            self.gx = sat16(d[b + 3] >> gf)
            self.gy = sat16(d[b + 4] >> gf)
            self.gz = sat16(d[b + 5] >> gf)

    def _skipped(self, n):
        """``n`` samples passed unseen (their FIFO would have overflowed)."""

    def _sample(self):
        raise NotImplementedError


class Fifo:
    """Byte ring of ``cap`` bytes with the chips' push/pop semantics (allocation-free)."""

    def __init__(self, cap):
        self.buf = bytearray(cap)
        self.cap = cap
        self.head = 0
        self.n = 0

    def clear(self):
        self.head = 0
        self.n = 0

    def push(self, v):
        """Append one byte; False (nothing written) when full."""
        if self.n >= self.cap:
            return False
        i = self.head + self.n
        if i >= self.cap:
            i -= self.cap
        self.buf[i] = v
        self.n += 1
        return True

    def push_from(self, src, n):
        """Append ``src[0:n]`` (the caller checked there is room)."""
        b = self.buf
        cap = self.cap
        i = self.head + self.n
        if i >= cap:
            i -= cap
        for j in range(n):
            b[i] = src[j]
            i += 1
            if i == cap:
                i = 0
        self.n += n

    def pop(self):
        """Oldest byte, or 0xFF when empty (what the chips return)."""
        if self.n == 0:
            return 0xFF
        v = self.buf[self.head]
        self.head += 1
        if self.head == self.cap:
            self.head = 0
        self.n -= 1
        return v

    def drop(self, k):
        """Discard the ``k`` oldest bytes."""
        if k > self.n:
            k = self.n
        self.head = (self.head + k) % self.cap
        self.n -= k

    def pop_into(self, buf, n):
        """Pop ``n`` bytes into ``buf[0:n]`` (0xFF past the end)."""
        b = self.buf
        h = self.head
        cap = self.cap
        avail = self.n
        i = 0
        while i < n:
            if avail:
                buf[i] = b[h]
                h += 1
                if h == cap:
                    h = 0
                avail -= 1
            else:
                buf[i] = 0xFF
            i += 1
        self.head = h
        self.n = avail


def sat16(v):
    """Clamp to int16 (a saturated ADC reads full scale)."""
    if v > 32767:
        return 32767
    if v < -32768:
        return -32768
    return v


def now():
    return board.clock.ticks_us()
