"""ST LSM303AGR: accelerometer (0x19, 32-sample FIFO) + magnetometer (0x1E), no gyro.

The accelerometer runs in high-resolution mode (12-bit, left-justified in 16 bits) with its
FIFO in stream mode: one burst from OUT_X_L_A with the auto-increment bit (0x80) drains many
6-byte samples (the address rolls back from 0x2D to 0x28). FIFO_SRC_REG_A.OVRN_FIFO (32
unread samples: the next sample overwrites the oldest) counts as an overflow and restarts the
time base; the samples still in the FIFO are read. The magnetometer runs at its own 100 Hz ODR
and is read directly (STATUS_REG_M + 6 bytes in one burst) once per ``fifo_read``: every sample
of a batch carries the latest field. Accel and mag share the package's axes. Gyro slots are 0::

    imu = LSM303AGR(i2c, rate_hz=100)
    n = imu.fifo_read(buf, 32)
"""

from tsfw import clock
from tsfw.drivers.base import ImuDriver, check_choice

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

ACC_ADDR = const(0x19)
MAG_ADDR = const(0x1E)
WHO_AM_I_A = const(0x0F)
_CTRL_REG1_A = const(0x20)
_CTRL_REG4_A = const(0x23)
_CTRL_REG5_A = const(0x24)
_OUT_X_L_A = const(0x28)
_FIFO_CTRL_REG_A = const(0x2E)
_FIFO_SRC_REG_A = const(0x2F)
_AUTO_INC = const(0x80)
WHO_AM_I_M = const(0x4F)
_CFG_REG_A_M = const(0x60)
_CFG_REG_C_M = const(0x62)
_STATUS_REG_M = const(0x67)

ACC_ID = const(0x33)
MAG_ID = const(0x40)
RATES = (10, 25, 50, 100, 200, 400, 1344)
_ODR_CODES = (2, 3, 4, 5, 6, 7, 9)
ACC_RANGES = (2, 4, 8, 16)
# LSB per g of the left-justified 16-bit value in HR mode: 1, 2, 4, 12 mg/digit at 12 bits
_ACC_SCALES = ((16000, 1), (8000, 1), (4000, 1), (4000, 3))


class LSM303AGR(ImuDriver):
    """LSM303AGR accelerometer + magnetometer; see the module docstring."""

    chip = "LSM303AGR"
    has_gyro = False
    PKT = 6
    FIFO_SAMPLES = 32

    def __init__(self, i2c, address=ACC_ADDR, rate_hz=100, acc_range_g=8, gyro_range_dps=None,
                 retries=2, mag=True):
        check_choice("address", address, (ACC_ADDR,))
        ImuDriver.__init__(self, i2c, address, retries)
        try:
            who = self._read_u8(WHO_AM_I_A)
        except OSError as e:
            raise OSError("no answer from 0x%02x (%s)" % (address, e))
        if who != ACC_ID:
            raise OSError("no LSM303AGR accelerometer at 0x%02x (WHO_AM_I 0x%02x)" % (address, who))
        self._write(_CTRL_REG5_A, 0x80)   # reboot memory content
        clock.sleep_us(5000)
        self.has_mag = mag and self._init_mag()
        self.configure(rate_hz, acc_range_g, gyro_range_dps)

    def _init_mag(self):
        try:
            self._read_at(MAG_ADDR, WHO_AM_I_M, self._r1)
            if self._r1[0] != MAG_ID:
                return False
            self._write(_CFG_REG_A_M, 0x20, MAG_ADDR)  # soft reset
            clock.sleep_us(5000)
            self._write(_CFG_REG_A_M, 0x8C, MAG_ADDR)  # temp. compensation, 100 Hz, continuous
            self._write(_CFG_REG_C_M, 0x10, MAG_ADDR)  # block data update
        except OSError:
            self.mag_errors += 1
            return False
        return True

    def configure(self, rate_hz=100, acc_range_g=8, gyro_range_dps=None):
        """ODR: the lowest of 10, 25, 50, 100, 200, 400, 1344 Hz that is >= rate_hz.

        ``gyro_range_dps`` is accepted for the common API and ignored (no gyro).
        """
        if not 10 <= rate_hz <= 1344:
            raise ValueError("rate_hz must be 10..1344, not %r" % (rate_hz,))
        rate_hz = int(rate_hz)  # register arithmetic below is integer
        check_choice("acc_range_g", acc_range_g, ACC_RANGES)
        i = 0
        while RATES[i] < rate_hz:
            i += 1
        fs = ACC_RANGES.index(acc_range_g)
        self._write(_FIFO_CTRL_REG_A, 0x00)            # bypass: empties the FIFO
        self._write(_CTRL_REG1_A, (_ODR_CODES[i] << 4) | 0x07)  # ODR, normal/HR, XYZ on
        self._write(_CTRL_REG4_A, 0x80 | (fs << 4) | 0x08)      # BDU, FS, HR
        self._write(_CTRL_REG5_A, 0x40)                # FIFO enable
        self._write(_FIFO_CTRL_REG_A, 0x80)            # stream mode
        self.rate_hz = RATES[i]
        self.acc_lsb_per_g = _ACC_SCALES[fs]
        self.gyro_lsb_per_dps = None
        self.mag_ut_per_lsb = (3, 20)                  # 1.5 mGauss
        self.acc_range_g = acc_range_g
        self.gyro_range_dps = None
        self._set_period(256000000 // RATES[i])

    def reset_fifo(self):
        """Empty the FIFO (bypass, then stream again) and restart the time base."""
        self._write(_FIFO_CTRL_REG_A, 0x00)
        self._write(_FIFO_CTRL_REG_A, 0x80)
        self.resync()

    def fifo_read(self, out, max_n, ts=None):
        """Drain up to ``max_n`` samples into ``out`` (9 int16 each, gyro 0); return the count.

        On OVRN_FIFO ``overflows`` is counted and the time base restarts, but the 32 samples
        are still returned. See ``MPU9250.fifo_read`` for ``ts`` and errors. Allocation-free.
        """
        src = self._read_u8(_FIFO_SRC_REG_A)
        now = clock.ticks_us()
        if src & 0x40:
            m = 32
            self.overflows += 1
            self.resync()
        else:
            m = src & 0x1F
        if self.has_mag:
            self._read_mag()
        if m == 0 or max_n <= 0:
            return 0
        k = m if m < max_n else max_n
        self._read(_OUT_X_L_A | _AUTO_INC, self._views[k])
        self._stamp(m, k, now, ts)
        le = self._le
        mx = self._mx
        my = self._my
        mz = self._mz
        j = 0
        i = 0
        for _ in range(k):
            out[j] = le[i]
            out[j + 1] = le[i + 1]
            out[j + 2] = le[i + 2]
            out[j + 3] = 0
            out[j + 4] = 0
            out[j + 5] = 0
            out[j + 6] = mx
            out[j + 7] = my
            out[j + 8] = mz
            i += 3
            j += 9
        self.samples += k
        return k

    def _read_mag(self):
        b = self._r8
        try:
            # status + OUTX_L..OUTZ_H; SUB(7) set for a multi-byte read, as ST's drivers do
            self._read_at(MAG_ADDR, _STATUS_REG_M | _AUTO_INC, b)
        except OSError:
            self.mag_errors += 1  # keep the last field; the accel data still count
            return
        if b[0] & 0x08:
            x = b[1] | (b[2] << 8)
            y = b[3] | (b[4] << 8)
            z = b[5] | (b[6] << 8)
            self._mx = x - ((x & 0x8000) << 1)
            self._my = y - ((y & 0x8000) << 1)
            self._mz = z - ((z & 0x8000) << 1)
