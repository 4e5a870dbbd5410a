"""Register-level model of the ST LSM303DLHC: accelerometer at 0x19 + magnetometer at 0x1E.

The accelerometer die is the LSM303AGR's (same registers, FIFO and data format) except that it
has no WHO_AM_I (0x0F reads 0). The magnetometer (datasheet DocID018771 rev 2) is different:
identification registers IRA/IRB/IRC_REG_M (0x0A..0x0C) = "H43"; CRA_REG_M data rate (DO,
0.75..220 Hz), CRB_REG_M gain (GN 1..7, X/Y and Z sensitivities differ, e.g. GN=1: 1100 and
980 LSB/gauss), MR_REG_M mode (continuous / single / sleep after reset); 12-bit outputs,
big-endian, in the order X, Z, Y (OUT_X_H_M 0x03 .. OUT_Y_L_M 0x08), -4096 on overflow;
SR_REG_M DRDY; the address auto-increments. Stream channels 6..8: the field in X/Y-gain units
of GN=1 (11 LSB/uT), in the chip's axes; the model applies the configured gains.
"""

from chips.base import Cursor, Sampler, Stream, now
from chips.lsm303agr import LSM303AGRAccel

_DO_MHZ = (750, 1500, 3000, 7500, 15000, 30000, 75000, 220000)
# LSB/gauss (X/Y, Z) per gain setting GN = 1..7
_GAIN_XY = (0, 1100, 855, 670, 450, 400, 330, 230)
_GAIN_Z = (0, 980, 760, 600, 400, 355, 295, 205)


class LSM303DLHC:
    """The package: two I2C devices sharing one stream (``devices()``)."""

    def __init__(self, stream=None, odr_error_ppm=0, mag_error_ppm=0):
        if isinstance(stream, str):
            stream = Stream(stream)
        self.stream = stream
        self.accel = LSM303AGRAccel(stream, odr_error_ppm, whoami=0x00)
        self.mag = LSM303DLHCMag(stream, mag_error_ppm)

    def devices(self):
        return [(0x19, self.accel), (0x1E, self.mag)]


def _sat12(v):
    return v if -2048 <= v <= 2047 else -4096  # the chip's overflow code


class LSM303DLHCMag(Sampler):
    def __init__(self, stream=None, odr_error_ppm=0):
        self._cursor = Cursor(stream) if stream is not None else None
        self.regs = bytearray(64)
        self._init_sampler(odr_error_ppm)
        self._cap_samples = 1
        self.samples = 0
        self.sx, self.sy, self.sz = 0, 220, -500  # field in GN=1 X/Y units without a stream
        self._reset()

    def _reset(self):
        r = self.regs
        for i in range(64):
            r[i] = 0
        r[0x00] = 0x10   # 15 Hz
        r[0x01] = 0x20   # GN=1
        r[0x02] = 0x03   # sleep
        r[0x0A] = 0x48
        r[0x0B] = 0x34
        r[0x0C] = 0x33
        self.x = self.y = self.z = 0
        self.drdy = 0
        self._update_rate()

    def acks(self):
        return True

    def _update_rate(self):
        md = self.regs[0x02] & 3
        odr = _DO_MHZ[(self.regs[0x00] >> 2) & 7] if md == 0 else 0
        if odr and self._cursor is not None:
            self._cursor.set_rate(odr)
        self._set_period(odr, now())
        if md == 1:  # single conversion, then sleep
            self._sample()
            self.regs[0x02] = 0x03

    def _skipped(self, n):
        if self._cursor is not None:
            self._cursor.skip(n)
        self.samples += n

    def _sample(self):
        self.samples += 1
        c = self._cursor
        if c is not None:
            d = c.stream.data
            b = c.next()
            self.sx = d[b + 6]
            self.sy = d[b + 7]
            self.sz = d[b + 8]
        gn = self.regs[0x01] >> 5
        if gn == 0:
            gn = 1
        gxy = _GAIN_XY[gn]
        self.x = _sat12(self.sx * gxy // 1100)
        self.y = _sat12(self.sy * gxy // 1100)
        self.z = _sat12(self.sz * _GAIN_Z[gn] // 1100)
        self.drdy = 1

    def read_into(self, reg, buf):
        reg &= 0x7F
        for i in range(len(buf)):
            buf[i] = self._rd((reg + i) & 0x3F)

    def _rd(self, reg):
        if 0x03 <= reg <= 0x08:
            k = reg - 0x03   # X_H X_L Z_H Z_L Y_H Y_L
            v = self.x if k < 2 else (self.z if k < 4 else self.y)
            if reg == 0x08:
                self.drdy = 0
            return ((v >> 8) & 0xFF) if (k & 1) == 0 else (v & 0xFF)
        if reg == 0x09:
            return self.drdy
        return self.regs[reg]

    def write(self, reg, buf):
        reg &= 0x7F
        for i in range(len(buf)):
            self._wr((reg + i) & 0x3F, buf[i])

    def _wr(self, reg, v):
        if reg > 0x02:
            return  # outputs, status and identification are read-only
        self.regs[reg] = v
        if reg != 0x01:
            self._update_rate()
