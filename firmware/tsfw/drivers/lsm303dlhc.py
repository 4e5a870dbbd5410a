"""ST LSM303DLHC: accelerometer (0x19, 32-sample FIFO) + magnetometer (0x1E), no gyro.

The accelerometer is the LSM303AGR's (same registers, FIFO, data format: see ``lsm303agr``)
but has no WHO_AM_I: the package is recognised by the magnetometer's identification registers
IRA/IRB/IRC_REG_M = "H43", and the accelerometer by its CTRL_REG1_A reset value after a reboot.
The magnetometer runs at 75 Hz, gain +-1.3 gauss (X/Y 1100, Z 980 LSB/gauss); its 12-bit
big-endian outputs come in the order X, Z, Y. Z is rescaled to the X/Y sensitivity in integer
math, so all three axes share ``mag_ut_per_lsb`` = (1, 11). An overflowing axis (-4096) keeps
the last good field (``mag_errors``). Accel and mag share the package's axes::

    imu = LSM303DLHC(i2c, rate_hz=100)
    n = imu.fifo_read(buf, 32)
"""

from tsfw import clock
from tsfw.drivers.base import ImuDriver, check_choice
from tsfw.drivers.lsm303agr import LSM303AGR

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

ACC_ADDR = const(0x19)
MAG_ADDR = const(0x1E)
_CTRL_REG1_A = const(0x20)
_CTRL_REG5_A = const(0x24)
_CRA_REG_M = const(0x00)
_CRB_REG_M = const(0x01)
_MR_REG_M = const(0x02)
_OUT_X_H_M = const(0x03)
_IRA_REG_M = const(0x0A)
MAG_ID = b"H43"


class LSM303DLHC(LSM303AGR):
    """LSM303DLHC accelerometer + magnetometer; same API as ``LSM303AGR``."""

    chip = "LSM303DLHC"

    def __init__(self, i2c, address=ACC_ADDR, rate_hz=100, acc_range_g=8, gyro_range_dps=None,
                 retries=2, mag=True):
        check_choice("address", address, (ACC_ADDR,))
        ImuDriver.__init__(self, i2c, address, retries)
        ident = self._r8
        try:
            self._read_at(MAG_ADDR, _IRA_REG_M, memoryview(ident)[:3])
        except OSError as e:
            raise OSError("no LSM303DLHC magnetometer at 0x%02x (%s)" % (MAG_ADDR, e))
        if bytes(ident[:3]) != MAG_ID:
            raise OSError("no LSM303DLHC at 0x%02x (IRA..IRC %r)" % (MAG_ADDR, bytes(ident[:3])))
        try:
            self._write(_CTRL_REG5_A, 0x80)   # reboot memory content
            clock.sleep_us(5000)
            ctrl1 = self._read_u8(_CTRL_REG1_A)
        except OSError as e:
            raise OSError("no answer from 0x%02x (%s)" % (address, e))
        if ctrl1 != 0x07:
            raise OSError("no LSM303DLHC accelerometer at 0x%02x (CTRL_REG1_A 0x%02x)" % (address, ctrl1))
        self.has_mag = mag and self._init_mag()
        self.configure(rate_hz, acc_range_g, gyro_range_dps)
        self.mag_ut_per_lsb = (1, 11)  # 1100 LSB/gauss = 11 LSB/uT on every axis after rescaling

    def configure(self, rate_hz=100, acc_range_g=8, gyro_range_dps=None):
        """As ``LSM303AGR.configure`` (the magnetometer keeps its own 75 Hz)."""
        LSM303AGR.configure(self, rate_hz, acc_range_g, gyro_range_dps)
        self.mag_ut_per_lsb = (1, 11)

    def _init_mag(self):
        try:
            self._write(_CRA_REG_M, 0x18, MAG_ADDR)   # 75 Hz, temperature sensor off
            self._write(_CRB_REG_M, 0x20, MAG_ADDR)   # GN=1: +-1.3 gauss
            self._write(_MR_REG_M, 0x00, MAG_ADDR)    # continuous conversion
        except OSError:
            self.mag_errors += 1
            return False
        return True

    def _read_mag(self):
        b = self._r8
        try:
            self._read_at(MAG_ADDR, _OUT_X_H_M, b)  # X_H X_L Z_H Z_L Y_H Y_L (+2, unused)
        except OSError:
            self.mag_errors += 1
            return
        x = (b[0] << 8) | b[1]
        z = (b[2] << 8) | b[3]
        y = (b[4] << 8) | b[5]
        x -= (x & 0x8000) << 1
        y -= (y & 0x8000) << 1
        z -= (z & 0x8000) << 1
        if x == -4096 or y == -4096 or z == -4096:  # overflow code
            self.mag_errors += 1
            return
        self._mx = x
        self._my = y
        self._mz = z * 1100 // 980  # Z to the X/Y sensitivity
