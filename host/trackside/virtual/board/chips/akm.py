"""AKM magnetometers inside the 9-axis InvenSense parts: AK8963 (MPU-9250/9255) and AK09916
(ICM-20948). Both sit on the IMU's auxiliary I2C bus at 0x0C: reachable from the host only in
bypass mode, otherwise through the IMU's I2C master (``master_read``).

Modelled: WHO_AM_I (WIA), mode register with power-down / single / continuous ODRs / fuse ROM,
ST1 DRDY and DOR, data little-endian (HXL first), ST2 with HOFL and (AK8963) BITM; reading ST2
ends a read cycle (clears DRDY/DOR), as the datasheets require. AK8963 has the sensitivity
adjustment fuse ROM (ASAX..Z at 0x10..0x12, readable in fuse-ROM mode only) and a 14/16-bit
output (BIT). Values come from stream channels 6..8, raw counts at 0.15 uT/LSB (16-bit), in
the AK's own axes and already divided by the ASA factor (the driver applies it back).
"""

from chips.base import Cursor, Sampler, now, sat16

# continuous-mode code -> ODR (mHz)
_AK8963_ODR = {0x02: 8000, 0x06: 100000}
_AK09916_ODR = {0x02: 10000, 0x04: 20000, 0x06: 50000, 0x08: 100000}


class _AKM(Sampler):
    def __init__(self, owner, stream, odr_error_ppm, field):
        self.owner = owner
        self._cursor = Cursor(stream) if stream is not None else None
        self._field = field  # constant raw field without a stream
        self._init_sampler(odr_error_ppm)
        self._cap_samples = 1
        self.hx = self.hy = self.hz = 0
        self.drdy = 0
        self.dor = 0
        self.hofl = 0
        self.mode = 0
        self.reads = 0   # completed read cycles (ST2 reads)
        self._img = bytearray(8)  # registers from the first data register (HXL) on, cached

    def _refresh(self):
        """Re-render the cached data-window image (after a measurement or a mode change)."""
        img = self._img
        r = self._data_reg
        for i in range(8):
            img[i] = self._peek(r + i)

    def _rd(self, reg):
        v = self._peek(reg)
        if reg == self._st2_reg:  # reading ST2 ends the read cycle
            self.drdy = 0
            self.dor = 0
            self.reads += 1
        return v

    def acks(self):
        return self.owner is None or self.owner.aux_bypass()

    def _skipped(self, n):
        if self._cursor is not None:
            self._cursor.skip(n)
        if self.drdy:
            self.dor = 1

    def _measure(self):
        if self._cursor is not None:
            d = self._cursor.stream.data
            b = self._cursor.next()
            x = d[b + 6]
            y = d[b + 7]
            z = d[b + 8]
        else:
            x, y, z = self._field
        lim = self._limit
        self.hofl = 1 if (x > lim or x < -lim or y > lim or y < -lim or z > lim or z < -lim) else 0
        self.hx = sat16(x) if x <= lim and x >= -lim else (lim if x > 0 else -lim)
        self.hy = sat16(y) if y <= lim and y >= -lim else (lim if y > 0 else -lim)
        self.hz = sat16(z) if z <= lim and z >= -lim else (lim if z > 0 else -lim)
        if self.drdy:
            self.dor = 1
        self.drdy = 1
        self._refresh()

    def _sample(self):
        self._measure()

    def _set_mode(self, mode, odr_table):
        self.mode = mode
        odr = odr_table.get(mode, 0)
        if self._cursor is not None and odr:
            self._cursor.set_rate(odr)
        self._set_period(odr, now())
        if mode == 0x01:  # single measurement: data ready "immediately" (7.2 ms on the chip)
            self._measure()
            self.mode = 0
        self._refresh()

    def read_into(self, reg, buf):
        for i in range(len(buf)):
            buf[i] = self._rd(reg + i)

    def write(self, reg, buf):
        for i in range(len(buf)):
            self._wr(reg + i, buf[i])

    def master_read(self, t, reg, out, off, n):
        """The IMU's I2C master reads ``n`` registers at virtual time ``t`` into ``out[off:]``."""
        self.sync(t)
        if reg == self._data_reg and n <= 8:  # the usual window: from the cached image
            img = self._img
            for i in range(n):
                out[off + i] = img[i]
            if self._st2_reg - reg < n:
                self._rd(self._st2_reg)
            return
        for i in range(n):
            out[off + i] = self._rd(reg + i)

    def master_write(self, t, reg, v):
        self.sync(t)
        self._wr(reg, v)


class AK8963(_AKM):
    """AK8963: WIA 0x48 at 0x00; ASA fuse ROM; 14- or 16-bit output."""

    def __init__(self, owner=None, stream=None, asa=(176, 177, 165), odr_error_ppm=0,
                 field=(100, 200, -300)):
        _AKM.__init__(self, owner, stream, odr_error_ppm, field)
        for a in asa:
            if not 0 <= a <= 255:
                raise ValueError("ASA values are bytes")
        self.asa = tuple(asa)
        self.bit16 = 0
        self._limit = 32760
        self._data_reg = 0x03
        self._st2_reg = 0x09
        self._refresh()

    def _peek(self, reg):
        if reg == 0x00:
            return 0x48
        if reg == 0x01:
            return 0x9A  # INFO
        if reg == 0x02:
            return self.drdy | (self.dor << 1)
        if 0x03 <= reg <= 0x08:
            v = self._axis(reg - 3)
            if not self.bit16:
                v >>= 2  # 14-bit output: 0.6 uT/LSB
            return ((v >> 8) & 0xFF) if (reg & 1) == 0 else (v & 0xFF)  # HXL at 0x03
        if reg == 0x09:
            return (self.hofl << 3) | (self.bit16 << 4)
        if reg == 0x0A:
            return self.mode | (self.bit16 << 4)
        if 0x10 <= reg <= 0x12:
            return self.asa[reg - 0x10] if self.mode == 0x0F else 0
        return 0

    def _axis(self, k):
        if k < 2:
            return self.hx
        if k < 4:
            return self.hy
        return self.hz

    def _wr(self, reg, v):
        if reg == 0x0A:
            self.bit16 = (v >> 4) & 1
            self._set_mode(v & 0x0F, _AK8963_ODR)
        elif reg == 0x0B and v & 1:  # soft reset
            self.bit16 = 0
            self.drdy = self.dor = 0
            self._set_mode(0, _AK8963_ODR)
        self._refresh()


class AK09916(_AKM):
    """AK09916: WIA1 0x48, WIA2 0x09; 16-bit output at 0.15 uT/LSB, no ASA."""

    def __init__(self, owner=None, stream=None, odr_error_ppm=0, field=(100, -200, 300)):
        _AKM.__init__(self, owner, stream, odr_error_ppm, field)
        self._limit = 32752
        self._data_reg = 0x11
        self._st2_reg = 0x18
        self._refresh()

    def _peek(self, reg):
        if reg == 0x00:
            return 0x48
        if reg == 0x01:
            return 0x09
        if reg == 0x10:
            return self.drdy | (self.dor << 1)
        if 0x11 <= reg <= 0x16:
            k = reg - 0x11
            v = self.hx if k < 2 else (self.hy if k < 4 else self.hz)
            return ((v >> 8) & 0xFF) if (k & 1) else (v & 0xFF)  # HXL at 0x11
        if reg == 0x17:
            return 0  # TMPS (dummy)
        if reg == 0x18:
            return self.hofl << 3
        if reg == 0x31:
            return self.mode
        return 0

    def _wr(self, reg, v):
        if reg == 0x31:
            self._set_mode(v & 0x1F, _AK09916_ODR)
        elif reg == 0x32 and v & 1:
            self.drdy = self.dor = 0
            self._set_mode(0, _AK09916_ODR)
        self._refresh()
