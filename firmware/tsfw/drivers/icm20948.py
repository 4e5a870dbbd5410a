"""TDK InvenSense ICM-20948 (accel + gyro + AK09916 magnetometer), banked register map.

Registers live in four banks selected by REG_BANK_SEL (0x7F); the driver stays in bank 0
except while configuring. Gyro and accel run at 1125 / (1 + div) Hz with equal dividers. The
AK09916 is read by the chip's I2C master (slave 0: 8 bytes HXL..HZH, TMPS, ST2 at every sample)
into the FIFO, so a burst returns whole 20-byte packets (accel BE, gyro BE, mag LE) and the
512-byte FIFO holds 25 of them. AK09916 axes are mapped into the accel/gyro frame
(x = x_ak, y = -y_ak, z = -z_ak, datasheet figure 12)::

    imu = ICM20948(i2c, rate_hz=225)
    n = imu.fifo_read(buf, 32)
"""

from tsfw import clock
from tsfw.drivers.base import ImuDriver, check_choice

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_REG_BANK_SEL = const(0x7F)
# bank 0
WHO_AM_I = const(0x00)
_USER_CTRL = const(0x03)
_PWR_MGMT_1 = const(0x06)
_PWR_MGMT_2 = const(0x07)
_INT_PIN_CFG = const(0x0F)
_INT_STATUS_2 = const(0x1B)
_FIFO_EN_1 = const(0x66)
_FIFO_EN_2 = const(0x67)
_FIFO_RST = const(0x68)
_FIFO_MODE = const(0x69)
_FIFO_COUNTH = const(0x70)
_FIFO_R_W = const(0x72)
# bank 2
_GYRO_SMPLRT_DIV = const(0x00)
_GYRO_CONFIG_1 = const(0x01)
_ODR_ALIGN_EN = const(0x09)
_ACCEL_SMPLRT_DIV_1 = const(0x10)
_ACCEL_SMPLRT_DIV_2 = const(0x11)
_ACCEL_CONFIG = const(0x14)
# bank 3
_I2C_MST_CTRL = const(0x01)
_I2C_SLV0_ADDR = const(0x03)
_I2C_SLV0_REG = const(0x04)
_I2C_SLV0_CTRL = const(0x05)

_AK_ADDR = const(0x0C)
_AK_WIA2 = const(0x01)
_AK_HXL = const(0x11)
_AK_CNTL2 = const(0x31)
_AK_CNTL3 = const(0x32)

_USER_FIFO_EN = const(0x40)
_USER_MST_EN = const(0x20)

CHIP_ID = const(0xEA)
ADDRESSES = (0x68, 0x69)
ACC_RANGES = (2, 4, 8, 16)
GYRO_RANGES = (250, 500, 1000, 2000)


class ICM20948(ImuDriver):
    """ICM-20948 on ``i2c`` at ``address``; see the module docstring."""

    chip = "ICM-20948"
    PKT = 20
    FIFO_SAMPLES = 25

    def __init__(self, i2c, address=0x68, rate_hz=225, acc_range_g=8, gyro_range_dps=2000,
                 retries=2, mag=True):
        check_choice("address", address, ADDRESSES)
        ImuDriver.__init__(self, i2c, address, retries)
        try:
            self._write(_REG_BANK_SEL, 0)
            who = self._read_u8(WHO_AM_I)
        except OSError as e:
            raise OSError("no answer from 0x%02x (%s)" % (address, e))
        if who != CHIP_ID:
            raise OSError("no ICM-20948 at 0x%02x (WHO_AM_I 0x%02x)" % (address, who))
        self._write(_PWR_MGMT_1, 0x80)  # device reset (bank 0 again afterwards)
        clock.sleep_us(100000)
        self._write(_REG_BANK_SEL, 0)
        self._write(_PWR_MGMT_1, 0x01)  # out of sleep, best clock
        clock.sleep_us(1000)
        self._write(_PWR_MGMT_2, 0x00)  # all axes on
        self.has_mag = mag and self._init_mag()
        if not self.has_mag:
            self._alloc(12, 42)
        self.configure(rate_hz, acc_range_g, gyro_range_dps)

    def _bank(self, b):
        self._write(_REG_BANK_SEL, b << 4)

    def _init_mag(self):
        self._write(_USER_CTRL, 0x00)
        self._write(_INT_PIN_CFG, 0x02)  # bypass: AK09916 at 0x0C
        try:
            self._read_at(_AK_ADDR, _AK_WIA2, self._r1)
            if self._r1[0] != 0x09:
                return False
            self._write(_AK_CNTL3, 0x01, _AK_ADDR)  # soft reset
            clock.sleep_us(1000)
            self._write(_AK_CNTL2, 0x08, _AK_ADDR)  # continuous mode 4: 100 Hz
        except OSError:
            self.mag_errors += 1
            return False
        finally:
            self._write(_INT_PIN_CFG, 0x00)
        self._bank(3)
        self._write(_I2C_MST_CTRL, 0x07)           # 345.6 kHz master
        self._write(_I2C_SLV0_ADDR, 0x80 | _AK_ADDR)
        self._write(_I2C_SLV0_REG, _AK_HXL)
        self._write(_I2C_SLV0_CTRL, 0x88)          # enable, 8 bytes
        self._bank(0)
        return True

    def configure(self, rate_hz=225, acc_range_g=8, gyro_range_dps=2000):
        """ODR 1125 / (1 + div) Hz (10..1125, nearest), ranges; empties the FIFO."""
        if not 10 <= rate_hz <= 1125:
            raise ValueError("rate_hz must be 10..1125, not %r" % (rate_hz,))
        rate_hz = int(rate_hz)  # register arithmetic below is integer
        check_choice("acc_range_g", acc_range_g, ACC_RANGES)
        check_choice("gyro_range_dps", gyro_range_dps, GYRO_RANGES)
        div = (1125 + rate_hz // 2) // rate_hz - 1
        if div > 255:
            div = 255
        # DLPF config 1..5 keeps the bandwidth under half the rate (197, 152, 120, 51, 24 Hz)
        dlpf = 1 if rate_hz > 400 else 2 if rate_hz > 300 else 3 if rate_hz > 240 else 4 if rate_hz > 100 else 5
        afs = ACC_RANGES.index(acc_range_g)
        gfs = GYRO_RANGES.index(gyro_range_dps)
        mst = _USER_MST_EN if self.has_mag else 0
        self._write(_USER_CTRL, mst)
        self._write(_FIFO_EN_2, 0x00)
        self._bank(2)
        self._write(_GYRO_SMPLRT_DIV, div)
        self._write(_GYRO_CONFIG_1, (dlpf << 3) | (gfs << 1) | 1)
        self._write(_ACCEL_SMPLRT_DIV_1, 0)
        self._write(_ACCEL_SMPLRT_DIV_2, div)
        self._write(_ACCEL_CONFIG, (dlpf << 3) | (afs << 1) | 1)
        self._write(_ODR_ALIGN_EN, 0x01)
        self._bank(0)
        self._write(_FIFO_MODE, 0x1F)              # snapshot: whole packets kept when full
        self._write(_FIFO_EN_1, 0x01 if self.has_mag else 0x00)
        self._write(_FIFO_EN_2, 0x1E)              # accel + gyro x, y, z
        self._write(_FIFO_RST, 0x1F)
        self._write(_FIFO_RST, 0x00)
        self._write(_USER_CTRL, _USER_FIFO_EN | mst)
        self._read_u8(_INT_STATUS_2)               # clear a stale overflow flag
        self.rate_hz = (1125 + (1 + div) // 2) // (1 + div)
        self.acc_lsb_per_g = (16384 >> afs, 1)
        self.gyro_lsb_per_dps = (131, 1 << gfs)
        self.mag_ut_per_lsb = (3, 20)
        self.acc_range_g = acc_range_g
        self.gyro_range_dps = gyro_range_dps
        self._set_period(256000000 * (1 + div) // 1125)

    def reset_fifo(self):
        """Empty the FIFO (samples in it are lost) and restart the time base."""
        self._write(_FIFO_RST, 0x1F)
        self._write(_FIFO_RST, 0x00)
        self.resync()

    def fifo_read(self, out, max_n, ts=None):
        """Drain up to ``max_n`` samples into ``out`` (9 int16 each); see ``MPU9250.fifo_read``."""
        ovf = self._read_u8(_INT_STATUS_2) & 0x1F
        self._read(_FIFO_COUNTH, self._r2)
        now = clock.ticks_us()
        pkt = self._pkt
        cnt = ((self._r2[0] & 0x1F) << 8) | self._r2[1]
        # full = no room for another packet: in stop-when-full mode newer samples were dropped
        # (whether or not the chip raised its flag), so the old ones cannot be dated: reset
        if ovf or cnt > 512 - pkt:
            self.overflows += 1
            self.reset_fifo()
            return 0
        if max_n <= 0:
            return 0
        m = cnt // pkt
        if m == 0:
            return 0
        k = m if m < max_n else max_n
        if k > self._cap:
            k = self._cap
        self._read(_FIFO_R_W, self._views[k])
        self._stamp(m, k, now, ts)
        be = self._be
        le = self._le
        buf = self._buf
        j = 0
        i = 0
        if pkt == 20:
            mx = self._mx
            my = self._my
            mz = self._mz
            for _ in range(k):
                out[j] = be[i]
                out[j + 1] = be[i + 1]
                out[j + 2] = be[i + 2]
                out[j + 3] = be[i + 3]
                out[j + 4] = be[i + 4]
                out[j + 5] = be[i + 5]
                if buf[2 * i + 19] & 0x08:   # ST2.HOFL: keep the last good value
                    self.mag_errors += 1
                else:
                    mx = le[i + 6]
                    my = -le[i + 7]
                    mz = -le[i + 8]
                out[j + 6] = mx
                out[j + 7] = my
                out[j + 8] = mz
                i += 10
                j += 9
            self._mx = mx
            self._my = my
            self._mz = mz
        else:
            for _ in range(k):
                out[j] = be[i]
                out[j + 1] = be[i + 1]
                out[j + 2] = be[i + 2]
                out[j + 3] = be[i + 3]
                out[j + 4] = be[i + 4]
                out[j + 5] = be[i + 5]
                out[j + 6] = 0
                out[j + 7] = 0
                out[j + 8] = 0
                i += 6
                j += 9
        self.samples += k
        return k
