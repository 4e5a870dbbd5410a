"""Register-level model of the ST LSM303AGR: accelerometer at 0x19 + magnetometer at 0x1E, no gyro.

Accelerometer (datasheet DocID027765 rev 7): WHO_AM_I_A 0x0F = 0x33; CTRL_REG1_A ODR (1..400 Hz,
1344 Hz HR/normal, 1620/5376 Hz low-power) with LPen; CTRL_REG4_A BLE, FS (+-2/4/8/16 g), HR;
CTRL_REG5_A BOOT, FIFO_EN; output left-justified (HR 12-bit, normal 10-bit, LP 8-bit),
little-endian unless BLE; STATUS_REG_A ZYXDA/ZYXOR; a 32-sample FIFO: FIFO_CTRL_REG_A FM
(bypass / FIFO: stop when full / stream: oldest overwritten / stream-to-FIFO treated as stream),
FIFO_SRC_REG_A (WTM, OVRN_FIFO = 32 unread samples, EMPTY, FSS = unread count, 31 when full).
Multi-byte reads auto-increment only when bit 7 of the sub-address is set; with the FIFO on,
a burst from OUT_X_L_A rolls back from 0x2D to 0x28, so one read drains many samples (each
sample leaves the FIFO when OUT_Z_H_A is read).
Magnetometer: WHO_AM_I_M 0x4F = 0x40; CFG_REG_A_M ODR 10/20/50/100 Hz and mode (continuous /
single / idle, idle after reset); CFG_REG_C_M BLE; STATUS_REG_M Zyxda/Zyxor (cleared by reading
OUTZ_H_REG_M); output 0.15 uT/LSB little-endian; the address always auto-increments.
Stream channels: 0..2 accel at 1/16000 g (16-bit left-justified at +-2 g: 16 LSB per mg),
3..5 ignored (no gyro), 6..8 magnetometer raw counts; both in the chip's own axes.
Not modelled: temperature sensor, interrupts, high-pass filter, self-test, hard-iron offsets.
"""

from chips.base import Cursor, Fifo, Sampler, Stream, now, sat16

_ACC_ODR_MHZ = (0, 1000, 10000, 25000, 50000, 100000, 200000, 400000, 1620000, 1344000)
_MAG_ODR_MHZ = (10000, 20000, 50000, 100000)


class LSM303AGR:
    """The package: two I2C devices sharing one stream (``devices()``)."""

    def __init__(self, stream=None, odr_error_ppm=0, mag_error_ppm=0):
        if isinstance(stream, str):
            stream = Stream(stream)
        self.stream = stream
        self.accel = LSM303AGRAccel(stream, odr_error_ppm)
        self.mag = LSM303AGRMag(stream, mag_error_ppm)

    def devices(self):
        return [(0x19, self.accel), (0x1E, self.mag)]


class LSM303AGRAccel(Sampler):
    """The accelerometer die (also the LSM303DLHC's, which lacks WHO_AM_I: ``whoami=0``)."""

    def __init__(self, stream=None, odr_error_ppm=0, whoami=0x33):
        self._whoami = whoami
        self._cursor = Cursor(stream) if stream is not None else None
        self.regs = bytearray(64)
        self.fifo = Fifo(32 * 6)
        self._init_sampler(odr_error_ppm)
        self._cap_samples = 32
        self.samples = 0
        self.fifo_dropped = 0
        self._reset()

    def _reset(self):
        r = self.regs
        for i in range(64):
            r[i] = 0
        r[0x0F] = self._whoami
        r[0x20] = 0x07
        self.fifo.clear()
        self.x = self.y = 0
        self.z = 16000
        self.ovr = 0
        self.drdy = 0
        self._update_rate()

    def acks(self):
        return True

    def _update_rate(self):
        r = self.regs
        code = r[0x20] >> 4
        odr = 0
        if 0 < code < 10:
            odr = _ACC_ODR_MHZ[code]
            if code == 9 and r[0x20] & 0x08:
                odr = 5376000
        if odr and self._cursor is not None:
            self._cursor.set_rate(odr)
        self._set_period(odr, now())

    def _fifo_mode(self):
        if not self.regs[0x24] & 0x40:
            return 0
        return self.regs[0x2E] >> 6

    def _skipped(self, n):
        if self._cursor is not None:
            self._cursor.skip(n)
        self.samples += n
        if self._fifo_mode():
            self.fifo_dropped += n

    def _sample(self):
        self.samples += 1
        c = self._cursor
        if c is not None:
            d = c.stream.data
            b = c.next()
            self.x = self._conv(d[b])
            self.y = self._conv(d[b + 1])
            self.z = self._conv(d[b + 2])
        if self.drdy:
            self.ovr = 1
        self.drdy = 1
        mode = self._fifo_mode()
        if mode == 0:
            return
        f = self.fifo
        if f.n >= f.cap:
            if mode == 1:  # FIFO mode: stops collecting when full
                self.fifo_dropped += 1
                return
            f.drop(6)      # stream modes: the oldest sample is discarded
            self.fifo_dropped += 1
        v = self.x
        f.push(v & 0xFF)
        f.push((v >> 8) & 0xFF)
        v = self.y
        f.push(v & 0xFF)
        f.push((v >> 8) & 0xFF)
        v = self.z
        f.push(v & 0xFF)
        f.push((v >> 8) & 0xFF)

    def _conv(self, s):
        fs = (self.regs[0x23] >> 4) & 3
        v = s // 12 if fs == 3 else s >> fs
        v = sat16(v)
        if self.regs[0x20] & 0x08:
            return v & ~0xFF    # low-power: 8-bit
        if self.regs[0x23] & 0x08:
            return v & ~0x0F    # high resolution: 12-bit
        return v & ~0x3F        # normal: 10-bit

    def read_into(self, reg, buf):
        inc = reg & 0x80
        reg &= 0x7F
        fifo_on = self._fifo_mode() != 0
        for i in range(len(buf)):
            buf[i] = self._rd(reg, fifo_on)
            if inc:
                reg += 1
                if fifo_on and reg == 0x2E:
                    reg = 0x28

    def _rd(self, reg, fifo_on):
        if 0x28 <= reg <= 0x2D:
            k = reg - 0x28
            if fifo_on:
                f = self.fifo
                if f.n < 6:
                    return 0
                if self.regs[0x23] & 0x40:  # BLE: high byte at the lower address
                    k ^= 1
                i = f.head + k
                if i >= f.cap:
                    i -= f.cap
                v = f.buf[i]
                if reg == 0x2D:
                    f.drop(6)  # reading OUT_Z_H_A completes the sample
                return v
            v = self.x if k < 2 else (self.y if k < 4 else self.z)
            if reg == 0x2D:
                self.drdy = 0
                self.ovr = 0
            if self.regs[0x23] & 0x40:
                k ^= 1
            return (v & 0xFF) if (k & 1) == 0 else ((v >> 8) & 0xFF)
        if reg == 0x27:
            return (0xF0 if self.ovr else 0) | (0x0F if self.drdy else 0)
        if reg == 0x2F:
            n = self.fifo.n // 6
            v = 31 if n >= 32 else n
            if n >= 32:
                v |= 0x40
            if n == 0:
                v |= 0x20
            fth = self.regs[0x2E] & 0x1F
            if n >= fth and fth:
                v |= 0x80
            return v
        return self.regs[reg]

    def write(self, reg, buf):
        inc = reg & 0x80
        reg &= 0x7F
        for i in range(len(buf)):
            self._wr(reg, buf[i])
            if inc:
                reg += 1

    def _wr(self, reg, v):
        if reg == 0x24 and v & 0x80:  # BOOT
            self._reset()
            return
        if reg in (0x0F, 0x27, 0x2F) or 0x28 <= reg <= 0x2D or reg >= 0x40:
            return
        old_mode = self._fifo_mode()
        self.regs[reg] = v
        if reg == 0x20:
            self._update_rate()
        elif reg in (0x24, 0x2E):
            if self._fifo_mode() == 0 or old_mode == 0:
                self.fifo.clear()  # bypass mode empties the FIFO (how it is reset)


class LSM303AGRMag(Sampler):
    def __init__(self, stream=None, odr_error_ppm=0):
        self._cursor = Cursor(stream) if stream is not None else None
        self.regs = bytearray(128)
        self._init_sampler(odr_error_ppm)
        self._cap_samples = 1
        self.samples = 0
        self._reset()

    def _reset(self):
        r = self.regs
        for i in range(128):
            r[i] = 0
        r[0x4F] = 0x40
        r[0x60] = 0x03
        self.x, self.y, self.z = 200, -100, -300
        self.drdy = 0
        self.ovr = 0
        self._update_rate()

    def acks(self):
        return True

    def _update_rate(self):
        a = self.regs[0x60]
        md = a & 3
        odr = _MAG_ODR_MHZ[(a >> 2) & 3] if md == 0 else 0
        if odr and self._cursor is not None:
            self._cursor.set_rate(odr)
        self._set_period(odr, now())
        if md == 1:   # single measurement, then idle
            self._sample()
            self.regs[0x60] = (a & ~3) | 3

    def _skipped(self, n):
        if self._cursor is not None:
            self._cursor.skip(n)
        self.samples += n
        if self.drdy:
            self.ovr = 1

    def _sample(self):
        self.samples += 1
        c = self._cursor
        if c is not None:
            d = c.stream.data
            b = c.next()
            self.x = sat16(d[b + 6])
            self.y = sat16(d[b + 7])
            self.z = sat16(d[b + 8])
        if self.drdy:
            self.ovr = 1
        self.drdy = 1

    def read_into(self, reg, buf):
        reg &= 0x7F
        for i in range(len(buf)):
            buf[i] = self._rd((reg + i) & 0x7F)

    def _rd(self, reg):
        if 0x68 <= reg <= 0x6D:
            k = reg - 0x68
            v = self.x if k < 2 else (self.y if k < 4 else self.z)
            if reg == 0x6D:
                self.drdy = 0
                self.ovr = 0
            if self.regs[0x62] & 0x08:
                k ^= 1
            return (v & 0xFF) if (k & 1) == 0 else ((v >> 8) & 0xFF)
        if reg == 0x67:
            return (0xF0 if self.ovr else 0) | (0x0F if self.drdy else 0)
        return self.regs[reg]

    def write(self, reg, buf):
        reg &= 0x7F
        for i in range(len(buf)):
            self._wr((reg + i) & 0x7F, buf[i])

    def _wr(self, reg, v):
        if reg == 0x60 and v & 0x20:  # SOFT_RST
            self._reset()
            return
        if reg in (0x4F, 0x67) or 0x68 <= reg <= 0x6D:
            return
        self.regs[reg] = v
        if reg == 0x60:
            self._update_rate()
