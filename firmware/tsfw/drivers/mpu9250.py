"""InvenSense MPU-9250 / MPU-9255 (accel + gyro + AK8963 magnetometer) and MPU-6500 (no mag).

The magnetometer is read by the MPU's own I2C master: slave 0 copies 8 bytes of the AK8963
(HXL..HZH, ST2, CNTL1) into EXT_SENS_DATA at every sample, and the FIFO stores them with the
accel and gyro data, so one burst read returns whole 20-byte packets (accel BE, gyro BE, mag LE)
and a GC pause or radio burst loses nothing while the FIFO has room (24 packets: a full 25th
counts as an overflow). The AK8963 runs at 100 Hz, so at higher sample rates consecutive
packets repeat its last reading.
The sensitivity adjustment (ASA fuse ROM) is applied in integer math and the AK8963 axes are
mapped into the MPU's frame (x_mpu = y_ak, y_mpu = x_ak, z_mpu = -z_ak)::

    from machine import I2C, Pin
    from tsfw.drivers.mpu9250 import MPU9250
    imu = MPU9250(I2C(0, scl=Pin(22), sda=Pin(21), freq=400000), rate_hz=200)
    buf = array('h', bytes(2 * 9 * 32))
    n = imu.fifo_read(buf, 32)    # ax ay az gx gy gz mx my mz per sample, oldest first
"""

from tsfw import clock
from tsfw.drivers.base import ImuDriver, check_choice

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_SMPLRT_DIV = const(0x19)
_CONFIG = const(0x1A)
_GYRO_CONFIG = const(0x1B)
_ACCEL_CONFIG = const(0x1C)
_ACCEL_CONFIG2 = const(0x1D)
_FIFO_EN = const(0x23)
_I2C_MST_CTRL = const(0x24)
_I2C_SLV0_ADDR = const(0x25)
_I2C_SLV0_REG = const(0x26)
_I2C_SLV0_CTRL = const(0x27)
_INT_PIN_CFG = const(0x37)
_INT_STATUS = const(0x3A)
_I2C_MST_DELAY_CTRL = const(0x67)
_USER_CTRL = const(0x6A)
_PWR_MGMT_1 = const(0x6B)
_PWR_MGMT_2 = const(0x6C)
_FIFO_COUNTH = const(0x72)
_FIFO_R_W = const(0x74)
WHO_AM_I = const(0x75)

_AK_ADDR = const(0x0C)
_AK_WIA = const(0x00)
_AK_HXL = const(0x03)
_AK_CNTL1 = const(0x0A)
_AK_CNTL2 = const(0x0B)
_AK_ASAX = const(0x10)

_FIFO_OFLOW = const(0x10)
_USER_FIFO_EN = const(0x40)
_USER_MST_EN = const(0x20)
_USER_FIFO_RST = const(0x04)

IDS = {0x71: "MPU-9250", 0x73: "MPU-9255", 0x70: "MPU-6500"}
ADDRESSES = (0x68, 0x69)
ACC_RANGES = (2, 4, 8, 16)
GYRO_RANGES = (250, 500, 1000, 2000)


class MPU9250(ImuDriver):
    """MPU-9250 family on ``i2c`` at ``address``; see the module docstring."""

    PKT = 20
    FIFO_SAMPLES = 25  # 512-byte FIFO / 20-byte packets

    def __init__(self, i2c, address=0x68, rate_hz=200, acc_range_g=8, gyro_range_dps=2000,
                 retries=2, mag=True):
        check_choice("address", address, ADDRESSES)
        ImuDriver.__init__(self, i2c, address, retries)
        try:
            who = self._read_u8(WHO_AM_I)
        except OSError as e:
            raise OSError("no answer from 0x%02x (%s)" % (address, e))
        if who not in IDS:
            raise OSError("no MPU-9250/6500 at 0x%02x (WHO_AM_I 0x%02x)" % (address, who))
        self.chip = IDS[who]
        self._asa = (256, 256, 256)
        self._write(_PWR_MGMT_1, 0x80)  # reset
        clock.sleep_us(100000)
        self._write(_PWR_MGMT_1, 0x01)  # wake, PLL clock
        self._write(_PWR_MGMT_2, 0x00)
        if self._read_u8(WHO_AM_I) != who:
            raise OSError("MPU at 0x%02x did not come back after reset" % address)
        self.has_mag = mag and who != 0x70 and self._init_mag()
        if not self.has_mag:
            self._alloc(12, 42)  # accel + gyro packets only
        self.configure(rate_hz, acc_range_g, gyro_range_dps)

    def _init_mag(self):
        """AK8963 through bypass: fuse ROM (ASA), 16-bit 100 Hz; then slave 0 of the master."""
        self._write(_USER_CTRL, 0x00)
        self._write(_INT_PIN_CFG, 0x02)  # bypass: the AK8963 appears at 0x0C
        try:
            self._read_at(_AK_ADDR, _AK_WIA, self._r1)
            if self._r1[0] != 0x48:
                return False
            self._write(_AK_CNTL2, 0x01, _AK_ADDR)  # soft reset
            clock.sleep_us(1000)
            self._write(_AK_CNTL1, 0x0F, _AK_ADDR)  # fuse ROM access
            clock.sleep_us(1000)
            asa = self._r8
            self._read_at(_AK_ADDR, _AK_ASAX, memoryview(asa)[:3])
            # H_adj = H * ((ASA - 128) / 256 + 1) = H * (ASA + 128) / 256
            self._asa = (asa[0] + 128, asa[1] + 128, asa[2] + 128)
            self._write(_AK_CNTL1, 0x00, _AK_ADDR)
            clock.sleep_us(1000)
            self._write(_AK_CNTL1, 0x16, _AK_ADDR)  # 16-bit, continuous mode 2 (100 Hz)
        except OSError:
            self.mag_errors += 1
            return False
        finally:
            self._write(_INT_PIN_CFG, 0x00)
        self._write(_I2C_MST_CTRL, 0x0D)            # 400 kHz master
        self._write(_I2C_SLV0_ADDR, 0x80 | _AK_ADDR)  # read
        self._write(_I2C_SLV0_REG, _AK_HXL)
        self._write(_I2C_SLV0_CTRL, 0x88)           # enable, 8 bytes: HXL..HZH, ST2, CNTL1
        self._write(_I2C_MST_DELAY_CTRL, 0x01)
        return True

    def configure(self, rate_hz=200, acc_range_g=8, gyro_range_dps=2000):
        """Sample rate 1000 / (1 + div) Hz (10..1000; the nearest is used), ranges; FIFO reset."""
        if not 10 <= rate_hz <= 1000:
            raise ValueError("rate_hz must be 10..1000, not %r" % (rate_hz,))
        rate_hz = int(rate_hz)  # register arithmetic below is integer
        check_choice("acc_range_g", acc_range_g, ACC_RANGES)
        check_choice("gyro_range_dps", gyro_range_dps, GYRO_RANGES)
        div = (1000 + rate_hz // 2) // rate_hz - 1
        # DLPF bandwidth below half the sample rate: 184, 92, 41, 20, 10 Hz
        dlpf = 1 if rate_hz > 368 else 2 if rate_hz > 184 else 3 if rate_hz > 82 else 4 if rate_hz > 40 else 5
        afs = ACC_RANGES.index(acc_range_g)
        gfs = GYRO_RANGES.index(gyro_range_dps)
        mst = _USER_MST_EN if self.has_mag else 0
        self._write(_USER_CTRL, mst)                 # FIFO off while reconfiguring
        self._write(_FIFO_EN, 0x00)
        self._write(_CONFIG, 0x40 | dlpf)            # FIFO_MODE=1: keep whole packets when full
        self._write(_SMPLRT_DIV, div)
        self._write(_GYRO_CONFIG, gfs << 3)          # FCHOICE_B = 00: DLPF on
        self._write(_ACCEL_CONFIG, afs << 3)
        self._write(_ACCEL_CONFIG2, dlpf)
        self._write(_FIFO_EN, 0x79 if self.has_mag else 0x78)  # GX GY GZ ACCEL (+SLV0)
        self._write(_USER_CTRL, _USER_FIFO_EN | mst | _USER_FIFO_RST)
        self._read_u8(_INT_STATUS)                   # clear a stale overflow flag
        self.rate_hz = (1000 + (1 + div) // 2) // (1 + div)
        self.acc_lsb_per_g = (16384 >> afs, 1)
        self.gyro_lsb_per_dps = (131, 1 << gfs)
        self.mag_ut_per_lsb = (3, 20)                # 0.15 uT in 16-bit mode
        self.acc_range_g = acc_range_g
        self.gyro_range_dps = gyro_range_dps
        self._set_period(256000 * (1 + div))

    def reset_fifo(self):
        """Empty the FIFO (samples in it are lost) and restart the time base."""
        self._write(_USER_CTRL, _USER_FIFO_EN | (_USER_MST_EN if self.has_mag else 0) | _USER_FIFO_RST)
        self.resync()

    def fifo_read(self, out, max_n, ts=None):
        """Drain up to ``max_n`` samples into ``out`` (array('h'), 9 per sample); return the count.

        ``ts`` (optional array('i')) receives each sample's timestamp (ticks_us). On a FIFO
        overflow the FIFO is reset, ``overflows`` counts it and 0 is returned. I2C errors are
        retried ``retries`` times, then OSError propagates (the counters stay updated).
        Allocation-free.
        """
        ovf = self._read_u8(_INT_STATUS) & _FIFO_OFLOW
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
            ax = self._asa[0]
            ay = self._asa[1]
            az = self._asa[2]
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
                if buf[2 * i + 18] & 0x08:   # ST2.HOFL: magnetic overflow, keep the last value
                    self.mag_errors += 1
                else:
                    my = (le[i + 6] * ax) >> 8
                    mx = (le[i + 7] * ay) >> 8
                    mz = -((le[i + 8] * az) >> 8)
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
