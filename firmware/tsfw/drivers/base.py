"""Common part of the IMU drivers: I2C access with retries, FIFO buffers, sample timestamps.

A driver's hot path (``fifo_read``) allocates nothing: the scratch buffer, its memoryviews for
every burst length and the int16 decoders (``uctypes`` views: one subscript per value) are made
once here. Timestamps come from the sensor's own sample clock (ODR), not from when the firmware
got round to reading: consecutive samples are one sample period apart, and the period is
corrected by the measured drift of the sensor's oscillator against ``ticks_us``.
"""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    import uctypes
except ImportError:  # CPython: a slow stand-in with the same indexing
    uctypes = None

_MASK = const((1 << 30) - 1)
_HALF = const(1 << 29)
_DRIFT_MIN_US = const(2000000)      # measure drift over at least 2 s of samples
_DRIFT_WINDOW_US = const(1 << 26)   # restart the drift window after ~67 s (small ints)
PPM_LIMIT = const(40000)            # oscillator error we believe (+-4 %); beyond: resync


def _mul_q(m, q):
    """(m * q) >> 8 for a count m and a 1/256 us period q, without leaving small ints."""
    return m * (q >> 8) + ((m * (q & 255)) >> 8)


class _I16:
    """int16 array view of a byte buffer (CPython fallback for uctypes)."""

    def __init__(self, buf, big):
        self._b = buf
        self._big = big

    def __getitem__(self, i):
        b = self._b
        if self._big:
            v = (b[2 * i] << 8) | b[2 * i + 1]
        else:
            v = b[2 * i] | (b[2 * i + 1] << 8)
        return v - 65536 if v & 0x8000 else v


def int16_view(buf, big_endian):
    """Indexable int16 view of ``buf`` (bytearray, even length) in the given byte order."""
    if uctypes is None:
        return _I16(buf, big_endian)
    layout = {"a": (uctypes.ARRAY | 0, uctypes.INT16 | (len(buf) // 2))}
    order = uctypes.BIG_ENDIAN if big_endian else uctypes.LITTLE_ENDIAN
    return uctypes.struct(uctypes.addressof(buf), layout, order).a


class ImuDriver:
    """Base of the chip drivers. Public attributes (read them, do not write them):

    ``chip`` (str), ``address``, ``has_gyro``, ``has_mag``, ``rate_hz`` (nominal ODR, int),
    ``period_us`` (nominal), ``acc_lsb_per_g``, ``gyro_lsb_per_dps`` (None without gyro),
    ``mag_ut_per_lsb`` as ``(num, den)`` integer ratios; counters ``samples``, ``overflows``,
    ``i2c_errors``, ``resyncs``, ``mag_errors``; ``drift_ppm`` (sensor clock vs ticks_us,
    positive = sensor fast) and ``last_ts`` (timestamp of the newest sample delivered).
    """

    chip = "?"
    has_gyro = True
    PKT = 12          # bytes per FIFO sample
    FIFO_SAMPLES = 1  # whole samples the chip's FIFO holds

    def __init__(self, i2c, address, retries=2):
        if retries < 0:
            raise ValueError("retries must be >= 0, not %r" % (retries,))
        self._i2c = i2c
        self.address = address
        self.retries = retries
        self.has_mag = False
        self.samples = 0
        self.overflows = 0
        self.i2c_errors = 0
        self.resyncs = 0
        self.mag_errors = 0
        self.drift_ppm = 0
        self.last_ts = 0
        self.rate_hz = 0
        self.period_us = 0
        self.acc_lsb_per_g = (1, 1)
        self.gyro_lsb_per_dps = None
        self.mag_ut_per_lsb = (3, 20)
        self._w1 = bytearray(1)
        self._r1 = bytearray(1)
        self._r2 = bytearray(2)
        self._r8 = bytearray(8)
        self._alloc(self.PKT, self.FIFO_SAMPLES)
        self._mx = self._my = self._mz = 0
        self._per_nom = 256000  # nominal sample period, 1/256 us
        self._per = 256000      # drift-corrected period
        self._synced = False
        self._t = 0             # time of the last delivered sample (us, wrapped) ...
        self._tf = 0            # ... and its 1/256 us fraction
        self._anchor = 0
        self._windows = 0
        self._exp = 0           # nominal us from the anchor to the last delivered sample
        self._expf = 0

    def _alloc(self, pkt, n):
        """Scratch buffer for ``n`` FIFO packets of ``pkt`` bytes, its views and decoders."""
        self._pkt = pkt
        self._cap = n
        self._buf = bytearray(n * pkt)
        mv = memoryview(self._buf)
        # one view per burst length: slicing in the hot path would allocate
        self._views = [mv[:k * pkt] for k in range(n + 1)]
        self._be = int16_view(self._buf, True)
        self._le = int16_view(self._buf, False)

    # -- I2C with retries --------------------------------------------------------------------
    def _read(self, reg, buf):
        n = self.retries
        while True:
            try:
                self._i2c.readfrom_mem_into(self.address, reg, buf)
                return
            except OSError:
                self.i2c_errors += 1
                if n <= 0:
                    raise
                n -= 1

    def _read_u8(self, reg):
        self._read(reg, self._r1)
        return self._r1[0]

    def _write(self, reg, value, address=-1):
        self._w1[0] = value
        a = self.address if address < 0 else address
        n = self.retries
        while True:
            try:
                self._i2c.writeto_mem(a, reg, self._w1)
                return
            except OSError:
                self.i2c_errors += 1
                if n <= 0:
                    raise
                n -= 1

    def _read_at(self, address, reg, buf):
        n = self.retries
        while True:
            try:
                self._i2c.readfrom_mem_into(address, reg, buf)
                return
            except OSError:
                self.i2c_errors += 1
                if n <= 0:
                    raise
                n -= 1

    # -- timestamps ----------------------------------------------------------------------------
    def _set_period(self, per_q):
        """Nominal sample period in 1/256 us (from the configured ODR); restarts the time base."""
        if per_q > 25600000:  # below 10 Hz the drift arithmetic would leave small ints
            raise ValueError("sample rate below 10 Hz is not supported")
        self._per_nom = per_q
        self._per = per_q - (per_q // 1000) * self.drift_ppm // 1000
        self.period_us = (per_q + 128) >> 8
        self._synced = False

    def resync(self):
        """Forget the time base (after a FIFO reset or lost samples); drift estimate kept."""
        self._synced = False

    def _stamp(self, m, k, now, ts):
        """Timestamps for ``k`` delivered samples out of ``m`` in the FIFO at time ``now``.

        The newest sample in the FIFO was produced within one period before ``now``; the
        others are whole periods earlier. Between reads the time base runs on the sensor's
        clock; a phase error beyond -1..+2 periods means samples were lost or the estimate is
        wrong: resync. Small errors are corrected slowly (1/16 per read, spread over the batch),
        so timestamps stay evenly spaced.
        """
        per = self._per
        adj = 0
        if not self._synced:
            # newest at now - per/2; the sample before the first delivered one at (m) periods back
            back = _mul_q(m, per) + (per >> 9)
            self._t = (now - back) & _MASK
            self._tf = 0
            self._anchor = self._t
            self._exp = 0
            self._expf = 0
            self._synced = True
        else:
            e = ((now - self._t + _HALF) & _MASK) - _HALF  # us from last delivered to now
            e_q = e - _mul_q(m, per)  # newest sample's age, expected 0..per
            per_us = per >> 8
            if e_q < -per_us - 200 or e_q > 2 * per_us + 2000:
                self.resyncs += 1
                self._synced = False
                self._stamp(m, k, now, ts)
                return
            # phase correction toward the middle of the expected window, spread over the batch
            # (a step in the spacing of k samples instead of a jump before the first)
            corr = (e_q - (per_us >> 1)) >> 4
            adj = (corr << 8) // k
            self._estimate_drift(m, now)
        t = self._t
        f = self._tf
        pn = self._per_nom
        step = per + adj
        for i in range(k):
            f += step
            t = (t + (f >> 8)) & _MASK
            f &= 255
            if ts is not None:
                ts[i] = t
        self._t = t
        self._tf = f
        # nominal time advanced by k samples (for the drift estimate)
        ef = self._expf + k * (pn & 255)
        self._exp += k * (pn >> 8) + (ef >> 8)
        self._expf = ef & 255
        self.last_ts = t

    def _estimate_drift(self, m, now):
        # elapsed since the anchor vs the nominal time for the samples produced since then
        el = ((now - self._anchor + _HALF) & _MASK) - _HALF
        exp = self._exp + _mul_q(m, self._per_nom) + (self._per_nom >> 9)
        if exp < (_DRIFT_MIN_US if self._windows == 0 else _DRIFT_MIN_US * 8):
            return  # too short to beat the +-1 period uncertainty of its end points
        d = el - exp
        if d > 1000000 or d < -1000000:
            ppm = d * 100 // (exp // 10000)
        else:
            ppm = d * 1000 // (exp // 1000)
        if ppm > PPM_LIMIT or ppm < -PPM_LIMIT:
            return
        # real period = nominal * elapsed / expected; a fast sensor (drift_ppm > 0) has ppm < 0
        self.drift_ppm = -ppm
        pq = self._per_nom
        self._per = pq + (pq // 1000) * ppm // 1000
        if exp > _DRIFT_WINDOW_US:  # restart the window at the last delivered sample
            self._anchor = self._t
            self._exp = 0
            self._expf = 0
            self._windows += 1

    # -- decoding helpers ----------------------------------------------------------------------
    def _fill_mag(self, out, j0, k):
        """Copy the latest magnetometer reading into samples j0.. (k of them)."""
        mx = self._mx
        my = self._my
        mz = self._mz
        j = j0 + 6
        for _ in range(k):
            out[j] = mx
            out[j + 1] = my
            out[j + 2] = mz
            j += 9

    def info(self):
        """One-line description for hello/status messages (allocates: not for the hot path)."""
        return "%s@0x%02x %dHz gyro=%d mag=%d" % (self.chip, self.address, self.rate_hz,
                                                  1 if self.has_gyro else 0,
                                                  1 if self.has_mag else 0)

    def stats(self):
        """Counters as a dict (allocates)."""
        return {"samples": self.samples, "overflows": self.overflows,
                "i2c_errors": self.i2c_errors, "resyncs": self.resyncs,
                "mag_errors": self.mag_errors, "drift_ppm": self.drift_ppm}


def check_choice(name, value, choices):
    """``ValueError`` naming the bad value unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError("%s must be one of %s, not %r" % (name, choices, value))
