"""Register-level model of the InvenSense MPU-9250 / MPU-9255 / MPU-6500 (+ AK8963 at 0x0C).

Modelled (register map rev 1.6): WHO_AM_I 0x75 (0x71 MPU-9250, 0x73 MPU-9255, 0x70 MPU-6500 -
no magnetometer), PWR_MGMT_1 H_RESET/SLEEP, PWR_MGMT_2 (all axes off = no samples), sample rate
= internal rate / (1 + SMPLRT_DIV) with the internal rate 1 kHz when DLPF_CFG is 1..6 and
FCHOICE_B = 0 (8 kHz for DLPF_CFG 0/7, 32 kHz with FCHOICE_B set - divider ignored), ACCEL/GYRO
full-scale selects, big-endian data registers, USER_CTRL FIFO_EN/FIFO_RST/I2C_MST_EN,
FIFO_EN selects (TEMP, GX, GY, GZ, ACCEL, SLV0) written in register order per sample into a
512-byte FIFO, FIFO_COUNTH/L, FIFO_R_W (burst reads pop), CONFIG.FIFO_MODE (1: when full new
packets are dropped, 0: oldest bytes overwritten), INT_STATUS FIFO_OFLOW (bit 4) and
RAW_DATA_RDY (bit 0) cleared on read, INT_PIN_CFG BYPASS_EN (the AK8963 answers on the main
bus only with bypass on and the I2C master off), I2C master SLV0 (read LENG bytes of the slave
into EXT_SENS_DATA_00.. at every sample, or write SLV0_DO).

Not modelled: digital low-pass filtering (samples are the stream values), self-test, DMP,
slaves 1-4, interrupts pins, FSYNC, wake-on-motion.
Stream channels: 0..2 accel at 1/16384 g (+-2 g units), 3..5 gyro at 1/131 dps (+-250 dps
units), 6..8 AK8963 raw counts; the chip shifts by the configured full-scale and saturates.
"""

from chips.akm import AK8963
from chips.base import Cursor, Fifo, Sampler, Stream, now

_FIFO_SIZE = 512
_TEMP_25C = 1335  # (25 - 21) * 333.87


def _put16(buf, j, v):
    """Big-endian int16 at buf[j]; returns the next index."""
    buf[j] = (v >> 8) & 0xFF
    buf[j + 1] = v & 0xFF
    return j + 2


class MPU9250(Sampler):
    """MPU-9250 family chip on the simulated bus (``devices()`` gives it and its AK8963)."""

    def __init__(self, stream=None, address=0x68, whoami=0x71, odr_error_ppm=0,
                 asa=(176, 177, 165), mag_error_ppm=0):
        if address not in (0x68, 0x69):
            raise ValueError("MPU-9250 address must be 0x68 or 0x69, not 0x%02x" % address)
        if whoami not in (0x70, 0x71, 0x73):
            raise ValueError("unsupported WHO_AM_I 0x%02x" % whoami)
        if isinstance(stream, str):
            stream = Stream(stream)
        self.stream = stream
        self.address = address
        self.whoami = whoami
        self._cursor = Cursor(stream) if stream is not None else None
        self.regs = bytearray(128)
        self.ext = bytearray(24)
        self._pk = bytearray(64)  # one FIFO packet being assembled
        self.fifo = Fifo(_FIFO_SIZE)
        self._init_sampler(odr_error_ppm)
        self._cap_samples = _FIFO_SIZE // 2  # smallest packet: one 16-bit value
        self.ak = AK8963(self, stream, asa, mag_error_ppm) if whoami != 0x70 else None
        self.samples = 0      # samples produced
        self.fifo_dropped = 0  # packets lost to a full FIFO
        self._reset()

    def devices(self):
        d = [(self.address, self)]
        if self.ak is not None:
            d.append((0x0C, self.ak))
        return d

    def _reset(self):
        r = self.regs
        for i in range(128):
            r[i] = 0
        r[0x6B] = 0x01
        r[0x75] = self.whoami
        self.fifo.clear()
        self.int_status = 0
        self.ax = self.ay = 0
        self.az = 16384
        self.gx = self.gy = self.gz = 0
        self._afs = 0
        self._gfs = 0
        self._update_rate()

    def acks(self):
        return True

    def aux_bypass(self):
        return bool(self.regs[0x37] & 0x02) and not (self.regs[0x6A] & 0x20)

    def _update_rate(self):
        r = self.regs
        if r[0x6B] & 0x40 or (r[0x6C] & 0x3F) == 0x3F:
            self._set_period_q(0, now())
            return
        dlpf = r[0x1A] & 7
        if r[0x1B] & 3:
            per_q = 256000000 // 32000
        elif dlpf == 0 or dlpf == 7:
            per_q = 256000000 // 8000
        else:
            per_q = 256000 * (1 + r[0x19])
        if self._cursor is not None:
            self._cursor.set_rate(256000000000 // per_q)
        self._set_period_q(per_q, now())

    # -- sampling ---------------------------------------------------------------------------
    def _skipped(self, n):
        if self._cursor is not None:
            self._cursor.skip(n)
        self.samples += n
        if self.regs[0x6A] & 0x40 and self.regs[0x23]:
            self.int_status |= 0x10
            self.fifo_dropped += n

    def _sample(self):
        self.samples += 1
        self._load_accel_gyro()
        self.int_status |= 0x01
        r = self.regs
        n_ext = 0
        ctrl = r[0x27]
        if r[0x6A] & 0x20 and ctrl & 0x80:  # I2C master runs SLV0 once per sample
            n_ext = ctrl & 0x0F
            addr = r[0x25]
            ak = self.ak
            if ak is not None and (addr & 0x7F) == 0x0C:
                if addr & 0x80:
                    ak.master_read(self._t, r[0x26], self.ext, 0, n_ext)
                else:
                    ak.master_write(self._t, r[0x26], r[0x63])
                    n_ext = 0
            else:
                r[0x36] |= 0x01  # I2C_SLV0_NACK
        if not r[0x6A] & 0x40:
            return
        fe = r[0x23]
        if not fe:
            return
        pkt = 0
        if fe & 0x08:
            pkt += 6
        if fe & 0x80:
            pkt += 2
        if fe & 0x40:
            pkt += 2
        if fe & 0x20:
            pkt += 2
        if fe & 0x10:
            pkt += 2
        if fe & 0x01:
            pkt += n_ext
        f = self.fifo
        if f.n + pkt > f.cap:
            self.int_status |= 0x10
            if r[0x1A] & 0x40:  # FIFO_MODE=1: no more writes when full
                self.fifo_dropped += 1
                return
            f.drop(f.n + pkt - f.cap)  # overwrite the oldest bytes (packets lose alignment)
        # the packet in register order, big-endian, then into the FIFO in one go
        pk = self._pk
        j = 0
        if fe & 0x08:
            j = _put16(pk, j, self.ax)
            j = _put16(pk, j, self.ay)
            j = _put16(pk, j, self.az)
        if fe & 0x80:
            j = _put16(pk, j, _TEMP_25C)
        if fe & 0x40:
            j = _put16(pk, j, self.gx)
        if fe & 0x20:
            j = _put16(pk, j, self.gy)
        if fe & 0x10:
            j = _put16(pk, j, self.gz)
        if fe & 0x01:
            e = self.ext
            for i in range(n_ext):
                pk[j + i] = e[i]
        f.push_from(pk, pkt)


    # -- bus access ----------------------------------------------------------------------------
    def read_into(self, reg, buf):
        n = len(buf)
        if reg == 0x74:  # FIFO_R_W: a burst keeps popping the FIFO
            self.fifo.pop_into(buf, n)
            return
        for i in range(n):
            buf[i] = self._rd((reg + i) & 0x7F)

    def _rd(self, reg):
        if reg == 0x3A:
            v = self.int_status
            self.int_status = 0
            return v
        if 0x3B <= reg <= 0x48:
            k = reg - 0x3B
            v = self._data16(k >> 1)
            return (v >> 8) & 0xFF if (k & 1) == 0 else v & 0xFF
        if 0x49 <= reg <= 0x60:
            return self.ext[reg - 0x49]
        if reg == 0x72:
            return (self.fifo.n >> 8) & 0x1F
        if reg == 0x73:
            return self.fifo.n & 0xFF
        if reg == 0x74:
            return self.fifo.pop()
        return self.regs[reg]

    def _data16(self, i):
        if i == 0:
            return self.ax
        if i == 1:
            return self.ay
        if i == 2:
            return self.az
        if i == 3:
            return _TEMP_25C
        if i == 4:
            return self.gx
        if i == 5:
            return self.gy
        return self.gz

    def write(self, reg, buf):
        for i in range(len(buf)):
            self._wr((reg + i) & 0x7F, buf[i])

    def _wr(self, reg, v):
        r = self.regs
        if reg == 0x6B:
            if v & 0x80:
                self._reset()
                return
            r[reg] = v
            self._update_rate()
        elif reg == 0x6A:
            if v & 0x04:
                self.fifo.clear()
            r[reg] = v & 0xF8  # reset bits self-clear
        elif reg in (0x19, 0x1A, 0x1B, 0x6C):
            r[reg] = v
            if reg == 0x1B:
                self._gfs = (v >> 3) & 3
            self._update_rate()
        elif reg == 0x1C:
            r[reg] = v
            self._afs = (v >> 3) & 3
        elif reg == 0x74:
            self.fifo.push(v)
        elif reg in (0x3A, 0x72, 0x73, 0x75) or 0x3B <= reg <= 0x60:
            pass  # read-only
        else:
            r[reg] = v
