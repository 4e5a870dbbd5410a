"""Register-level model of the TDK InvenSense ICM-20948 (+ AK09916 at 0x0C on its aux bus).

Modelled (datasheet DS-000189 rev 1.3): four register banks selected by REG_BANK_SEL (0x7F,
bits 5:4, present in every bank); bank 0 WHO_AM_I 0x00 = 0xEA, USER_CTRL (FIFO_EN, I2C_MST_EN),
PWR_MGMT_1 (DEVICE_RESET, SLEEP - set at power-on, reset value 0x41), PWR_MGMT_2 (all axes off =
no samples), INT_PIN_CFG BYPASS_EN, INT_STATUS_1 RAW_DATA_0_RDY, INT_STATUS_2 FIFO_OVERFLOW
(bits 4:0, cleared on read), big-endian data registers, EXT_SLV_SENS_DATA_00.., FIFO_EN_1
(SLV_0), FIFO_EN_2 (ACCEL, GYRO_Z/Y/X, TEMP), FIFO_RST, FIFO_MODE (1 = snapshot: stop when
full; 0 = stream: overwrite oldest), FIFO_COUNTH/L (512-byte FIFO), FIFO_R_W (burst pops);
bank 2 GYRO_SMPLRT_DIV, GYRO_CONFIG_1 (FS_SEL, FCHOICE), ACCEL_SMPLRT_DIV_1/2, ACCEL_CONFIG;
bank 3 I2C_SLV0_ADDR/REG/CTRL/DO (SLV0 read or write once per sample).

Simplification: samples (and FIFO packets) come at the gyro ODR = 1125 Hz / (1 + div) with
GYRO_FCHOICE=1 (9 kHz otherwise), or at the accel ODR when the gyro is off; the driver sets both
dividers equal. Per packet the FIFO holds ACCEL, GYRO, TEMP?, then SLV0 bytes, in register order.
Not modelled: DLPF filtering, DMP, slaves 1-4, low-power duty cycling, self-test.
Stream channels as for the MPU-9250 (accel 1/16384 g, gyro 1/131 dps, 6..8 AK09916 raw).
"""

from chips.akm import AK09916
from chips.base import Cursor, Fifo, Sampler, Stream, now

_FIFO_SIZE = 512
_TEMP_25C = 1335


def _put16(buf, j, v):
    """Big-endian int16 at buf[j]; returns the next index."""
    buf[j] = (v >> 8) & 0xFF
    buf[j + 1] = v & 0xFF
    return j + 2


class ICM20948(Sampler):
    """ICM-20948 on the simulated bus (``devices()`` gives it and its AK09916)."""

    def __init__(self, stream=None, address=0x68, odr_error_ppm=0, mag_error_ppm=0):
        if address not in (0x68, 0x69):
            raise ValueError("ICM-20948 address must be 0x68 or 0x69, not 0x%02x" % address)
        if isinstance(stream, str):
            stream = Stream(stream)
        self.stream = stream
        self.address = address
        self._cursor = Cursor(stream) if stream is not None else None
        self.banks = [bytearray(128) for _ in range(4)]
        self.ext = bytearray(24)
        self._pk = bytearray(64)  # one FIFO packet being assembled
        self.fifo = Fifo(_FIFO_SIZE)
        self._init_sampler(odr_error_ppm)
        self._cap_samples = _FIFO_SIZE // 2  # smallest packet: one 16-bit value
        self.ak = AK09916(self, stream, mag_error_ppm)
        self.samples = 0
        self.fifo_dropped = 0
        self._reset()

    def devices(self):
        return [(self.address, self), (0x0C, self.ak)]

    def _reset(self):
        for b in self.banks:
            for i in range(128):
                b[i] = 0
        b0 = self.banks[0]
        b0[0x00] = 0xEA
        b0[0x06] = 0x41   # asleep after reset
        self.banks[2][0x01] = 0x01  # GYRO_FCHOICE
        self.banks[2][0x14] = 0x01  # ACCEL_FCHOICE
        self.bank = 0
        self.fifo.clear()
        self.int_status2 = 0
        self.int_status1 = 0
        self.ax = self.ay = 0
        self.az = 16384
        self.gx = self.gy = self.gz = 0
        self._afs = 0
        self._gfs = 0
        self._update_rate()

    def acks(self):
        return True

    def aux_bypass(self):
        b0 = self.banks[0]
        return bool(b0[0x0F] & 0x02) and not (b0[0x03] & 0x20)

    def _update_rate(self):
        b0 = self.banks[0]
        b2 = self.banks[2]
        if b0[0x06] & 0x40:
            self._set_period_q(0, now())
            return
        gyro_on = (b0[0x07] & 0x07) != 0x07
        accel_on = (b0[0x07] & 0x38) != 0x38
        if gyro_on:
            per_q = 256000000 * (1 + b2[0x00]) // 1125 if b2[0x01] & 1 else 256000000 // 9000
        elif accel_on:
            div = ((b2[0x10] & 0x0F) << 8) | b2[0x11]
            per_q = 256000000 * (1 + div) // 1125 if b2[0x14] & 1 else 256000000 // 4500
        else:
            per_q = 0
        if per_q and self._cursor is not None:
            self._cursor.set_rate(256000000000 // per_q)
        self._set_period_q(per_q, now())

    # -- sampling ---------------------------------------------------------------------------
    def _skipped(self, n):
        if self._cursor is not None:
            self._cursor.skip(n)
        self.samples += n
        if self.banks[0][0x03] & 0x40 and (self.banks[0][0x67] or self.banks[0][0x66]):
            self.int_status2 |= 0x01
            self.fifo_dropped += n

    def _sample(self):
        self.samples += 1
        self._load_accel_gyro()
        self.int_status1 = 1
        b0 = self.banks[0]
        b3 = self.banks[3]
        n_ext = 0
        ctrl = b3[0x05]
        if b0[0x03] & 0x20 and ctrl & 0x80:
            n_ext = ctrl & 0x0F
            addr = b3[0x03]
            if (addr & 0x7F) == 0x0C:
                if addr & 0x80:
                    self.ak.master_read(self._t, b3[0x04], self.ext, 0, n_ext)
                else:
                    self.ak.master_write(self._t, b3[0x04], b3[0x06])
                    n_ext = 0
            else:
                b0[0x17] |= 0x01  # I2C_SLV0_NACK
        if not b0[0x03] & 0x40:
            return
        fe2 = b0[0x67]
        fe1 = b0[0x66]
        if not (fe2 or fe1 & 1):
            return
        pkt = 0
        if fe2 & 0x10:
            pkt += 6
        if fe2 & 0x02:
            pkt += 2
        if fe2 & 0x04:
            pkt += 2
        if fe2 & 0x08:
            pkt += 2
        if fe2 & 0x01:
            pkt += 2
        if fe1 & 0x01:
            pkt += n_ext
        f = self.fifo
        if f.n + pkt > f.cap:
            self.int_status2 |= 0x01
            if b0[0x69] & 0x01:  # snapshot mode: drop new data when full
                self.fifo_dropped += 1
                return
            f.drop(f.n + pkt - f.cap)
        pk = self._pk
        j = 0
        if fe2 & 0x10:
            j = _put16(pk, j, self.ax)
            j = _put16(pk, j, self.ay)
            j = _put16(pk, j, self.az)
        if fe2 & 0x02:
            j = _put16(pk, j, self.gx)
        if fe2 & 0x04:
            j = _put16(pk, j, self.gy)
        if fe2 & 0x08:
            j = _put16(pk, j, self.gz)
        if fe2 & 0x01:
            j = _put16(pk, j, _TEMP_25C)
        if fe1 & 0x01:
            e = self.ext
            for i in range(n_ext):
                pk[j + i] = e[i]
        f.push_from(pk, pkt)


    # -- bus access ----------------------------------------------------------------------------
    def read_into(self, reg, buf):
        n = len(buf)
        if reg == 0x72 and self.bank == 0:
            self.fifo.pop_into(buf, n)
            return
        for i in range(n):
            buf[i] = self._rd((reg + i) & 0x7F)

    def _rd(self, reg):
        if reg == 0x7F:
            return self.bank << 4
        if self.bank != 0:
            return self.banks[self.bank][reg]
        if reg == 0x1A:
            v = self.int_status1
            self.int_status1 = 0
            return v
        if reg == 0x1B:
            v = self.int_status2
            self.int_status2 = 0
            return v
        if 0x2D <= reg <= 0x3A:
            k = reg - 0x2D
            v = self._data16(k >> 1)
            return (v >> 8) & 0xFF if (k & 1) == 0 else v & 0xFF
        if 0x3B <= reg <= 0x52:
            return self.ext[reg - 0x3B]
        if reg == 0x70:
            return (self.fifo.n >> 8) & 0x1F
        if reg == 0x71:
            return self.fifo.n & 0xFF
        if reg == 0x72:
            return self.fifo.pop()
        return self.banks[0][reg]

    def _data16(self, i):
        if i == 0:
            return self.ax
        if i == 1:
            return self.ay
        if i == 2:
            return self.az
        if i == 3:
            return self.gx
        if i == 4:
            return self.gy
        if i == 5:
            return self.gz
        return _TEMP_25C

    def write(self, reg, buf):
        for i in range(len(buf)):
            self._wr((reg + i) & 0x7F, buf[i])

    def _wr(self, reg, v):
        if reg == 0x7F:
            self.bank = (v >> 4) & 3
            return
        bank = self.bank
        r = self.banks[bank]
        if bank == 0:
            if reg == 0x06:
                if v & 0x80:
                    self._reset()
                    return
                r[reg] = v
                self._update_rate()
            elif reg == 0x07:
                r[reg] = v
                self._update_rate()
            elif reg == 0x68:
                if v & 0x1F:
                    self.fifo.clear()
                r[reg] = v
            elif reg == 0x72:
                self.fifo.push(v)
            elif reg in (0x00, 0x19, 0x1A, 0x1B, 0x70, 0x71) or 0x2D <= reg <= 0x52:
                pass  # read-only
            else:
                r[reg] = v
        elif bank == 2:
            r[reg] = v
            if reg == 0x01:
                self._gfs = (v >> 1) & 3
            elif reg == 0x14:
                self._afs = (v >> 1) & 3
            if reg in (0x00, 0x01, 0x10, 0x11, 0x14):
                self._update_rate()
        else:
            r[reg] = v
