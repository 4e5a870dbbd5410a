# On-device orientation filter: a fixed-point, decimated-gain Kalman/complementary filter.
#
# Runs unchanged under MicroPython (ESP32 node, wasm test bench) and CPython (host: the
# `device` filter of `trackside fusion run` imports this very file as `tsfw.fusion`).
# All arithmetic in the hot loop is integer; every intermediate stays below 2**30 so it is a
# MicroPython small int (no heap allocation: proven with micropython.heap_lock() in tests).
#
# Algorithm (float twin: host/trackside/fusion/reference.py, same steps line by line):
#   every sample   q <- q (x) [1, (g - b) dt/2]         gyro strapdown, first order, exact
#                                                       integral via error feedback (r0..r3)
#   every N-th     R = R(q); aE = R a (earth frame); lE <- LP(aE) with tau_lp  (linear
#   sample         acceleration averages out in the earth frame: position stays bounded)
#                  inclination error ~ (lE_y, -lE_x)/g, corrected with gain T/tau_acc
#                  mE = R (m) ; accepted only if |m|^2 and the vertical fraction mEz^2/|m|^2
#                  match the learned reference (magnetic disturbance rejection); then the
#                  heading error atan(mEx/mEy) is corrected with gain T/tau_mag about earth z;
#                  a rejected field that stays consistent for mag_new_time of rotation
#                  becomes the new reference (started next to a magnet, moved elsewhere)
#                  gyro bias b <- mean gyro of each complete still window of rest_time
#                  (gyro within rest_gyr of b, acc within rest_acc of the window start)
#                  q <- [1, hx, hy, hz] (x) q   (earth-frame correction, Q28 carries c0..c3)
#   N (decim, default 8) is capped so that first-order strapdown growth cannot push any
#   product past 2**30 before the renormalisation at the next block (rates >= ~70 Hz at
#   +-2000 dps; N = 7 at 200 Hz, 8 at >= 285 Hz).
#   The gains are the steady-state Kalman gains of per-axis random-walk models (scalar,
#   scheduled by tau), so there is no covariance matrix to propagate on the node.
#
# Fixed-point formats (Qn: value * 2**n):
#   q (w x y z)          Q14, |q| = 16384 (renormalised to first order every N samples)
#   r0..r3               gyro integration remainders, units of 1/D of a Q14 count
#   c0..c3               correction remainders, Q28; cax cay (Q(SA)), caz (Q15) likewise
#   R entries            Q14
#   gyro                 raw counts; D = 2 fs lsb_per_rad_s: dq(Q14) = sum(q(Q14) w(counts)) / D
#   bias bx..bz          Q8 counts, |b| <= _BMAX; applied as integers dithered per block
#                        (ebx..ebz carry the fraction, so the mean applied bias is exact)
#   sgx..sgz             sum over the still window of (gyro - rounded bias), counts
#   acc                  raw counts; lx ly (earth-frame horizontal low-pass) Q2 counts
#   mag                  counts << MS ("mag units", ~0.02 uT); mref2 units^2; fref Q14
#   hx hy hz             Q14 half-angle of the correction rotation
#   gains                Q14 (KLP, KAL, KR, KMAG, KT), KACC Q(SA)
#   rounding             every shift rounds ((x + 2**(s-1)) >> s) or carries its remainder
#
# Gyro-less chips (e.g. LSM303): gyr_lsb_dps=0 selects the accel+mag mode: every sample an
# integer TRIAD (up from acc, north from mag; integer Newton square roots from the last
# result), low-passed on the quaternion with time constant tau_acc (default 0.1 s).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from array import array
except ImportError:  # pragma: no cover
    array = None

_ONE = const(16384)        # 1.0 in Q14
_HALF = const(8192)
_MAXU = const(8191)        # largest accepted mag component, mag units (keeps squares < 2**28)
_LIM = const(1 << 30)
_BMAX = const(2048)        # largest gyro bias magnitude accepted, counts


def _isqrt(n, x):
    # floor(sqrt(n)) for 0 <= n < 2**30, Newton from guess x > 0 (a previous result makes it
    # 1-3 steps). One step from any x > 0 lands at or above the root, then it decreases.
    if n <= 0:
        return 0
    if x <= 0:
        x = 32768
    x = (x + n // x) >> 1
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def _rnd(x):
    # Round half away from zero without math (float at set-up only).
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


class FixedKalman:
    """Fixed-point orientation filter over int16 counts in one common sensor frame.

    rate_hz: sample rate; acc_lsb_g: accelerometer counts per g; gyr_lsb_dps: gyro counts per
    deg/s (0 = no gyro: accel+mag mode); mag_ut_lsb: magnetometer uT per count (0 = no mag).
    Output: self.w, self.x, self.y, self.z (Q14, sensor-to-earth, earth frame ENU).
    """

    def __init__(self, rate_hz, acc_lsb_g, gyr_lsb_dps, mag_ut_lsb, decim=0,
                 tau_acc=0.0, tau_lp=0.0, tau_mag=0.0, tau_ref=30.0, mag_norm_th=0.1,
                 mag_dip_th=0.1, rest_gyr_dps=2.0, rest_acc_ms2=0.5, rest_time=1.5,
                 mag_new_time=20.0, mag_new_gyr_dps=20.0):
        if not rate_hz > 0 or not acc_lsb_g > 0 or gyr_lsb_dps < 0 or mag_ut_lsb < 0:
            raise ValueError("rate and scales must be positive")
        gyro = gyr_lsb_dps > 0
        if decim <= 0:
            decim = 8 if gyro else 1
        if tau_acc <= 0:
            tau_acc = 3.0 if gyro else 0.1
        if tau_lp <= 0:
            tau_lp = 3.0 if gyro else 0.2
        if tau_mag <= 0:
            tau_mag = 9.0 if gyro else 0.2
        # gyro: dq(Q14) = q(Q14) * w(counts) / D,  D = 2 * rate * counts per rad/s
        self.D = _rnd(2.0 * rate_hz * gyr_lsb_dps * 57.29577951308232) if gyro else 1
        if gyro and not (1000 <= self.D < (1 << 24)):
            raise ValueError("rate_hz * gyr_lsb_dps out of the supported range")
        if gyro:
            # First-order strapdown lengthens q by sqrt(1 + h^2) per sample (h: half-angle).
            # With |w| <= sqrt(3) (32768 + _BMAX) the products |q| |w| + D must stay < 2**30
            # until the next renormalisation: that caps the block length N.
            wmax = 1.7320508 * (32768 + _BMAX)
            grow = (1.0 + (wmax / self.D) ** 2) ** 0.5
            room = (_LIM - 1 - self.D) / (16384 * 1.003 * wmax)  # 1.003: correction + rounding
            if room > 1.1:  # and the first-order renormalisation needs |q| <= 1.1
                room = 1.1
            if room < grow:
                raise ValueError("sample rate too low for this gyro range (first-order strapdown)")
            nmax = 1
            g = grow
            while nmax < decim and g <= room:
                nmax += 1
                g *= grow
            decim = nmax
        T = decim / rate_hz
        ka = T / tau_acc
        self.gyro = gyro
        self.N = decim
        self.KLP = _rnd(T / tau_lp * _ONE)
        self.KAL = _rnd(ka * _ONE)
        # hx(Q14) = ly(Q2 counts) * ka * 2048 / acc_lsb_g; shift SA keeps |ly| KACC < 2**30
        sa = 20
        while sa > 8 and ka * 2048.0 / acc_lsb_g * (1 << sa) * 240000 >= _LIM:
            sa -= 1
        self.SA = sa
        self.KACC = _rnd(ka * 2048.0 / acc_lsb_g * (1 << sa))
        self.KMAG = _rnd(T / tau_mag * _ONE)          # hz(Q14) = KMAG * d(Q14) >> 15
        self.KR = _rnd(T / tau_ref * _ONE)
        if gyro and (self.KLP > 2000 or self.KAL > 4000 or self.KMAG > 16384 or self.KACC < 1):
            raise ValueError("time constants too short for this rate and decimation")
        ms = 0
        if mag_ut_lsb > 0:
            while ms < 8 and mag_ut_lsb / (1 << (ms + 1)) >= 0.0141:
                ms += 1
        self.MS = ms
        self.use_mag = mag_ut_lsb > 0
        self.MN = _rnd(2.0 * mag_norm_th * _ONE)      # |m2 - ref| < MN * ref
        self.MF = _rnd(mag_dip_th * _ONE)              # |mEz^2 - fref m2| < MF m2
        self.RG = _rnd(rest_gyr_dps * gyr_lsb_dps) if gyro else 0
        self.RA = _rnd(rest_acc_ms2 / 9.80665 * acc_lsb_g)
        self.REST_N = max(1, _rnd(rest_time / T))
        self.WAIT_N = _rnd(2.0 * rate_hz)
        self.NEW_N = max(1, _rnd(mag_new_time / T))
        self.RN = _rnd(mag_new_gyr_dps * gyr_lsb_dps)
        self.KT = min(_ONE, _rnd(T / tau_acc * _ONE))  # accel+mag mode: TRIAD blend gain
        if self.RG * self.REST_N * 256 >= _LIM:
            raise ValueError("rest window too long for this rate")
        self.acc_lsb_g = _rnd(acc_lsb_g)
        self.reset()

    def reset(self):
        """Forget the orientation and all learned state; the next sample re-initialises."""
        self.w = _ONE
        self.x = self.y = self.z = 0
        self.r0 = self.r1 = self.r2 = self.r3 = 0
        self.c0 = self.c1 = self.c2 = self.c3 = 0
        self.bx = self.by = self.bz = 0           # gyro bias, Q8 counts
        self.ebx = self.eby = self.ebz = 0        # bias dither carries
        self.bix = self.biy = self.biz = 0        # integer bias applied this block
        self.lx = self.ly = 0                     # earth-frame horizontal acc, low-passed
        self.cax = self.cay = self.caz = 0        # correction carries (Q(SA) / Q15)
        self.pax = self.pay = self.paz = 0        # acc at the start of the still window
        self.rest = 0
        self.sgx = self.sgy = self.sgz = 0         # gyro - bias summed over the still window
        self.nwin = 0
        self.mref2 = 0
        self.fref = 0
        self.nref2 = self.nfref = self.nn = 0     # candidate new field reference, its count
        self.k = 0                                # sample counter within the block
        self.started = False
        self.wait = 0
        self.sa = self.sm = self.se = 0           # last square roots (Newton start guesses)
        self.tw = _ONE
        self.tx = self.ty = self.tz = self.tmv = 0
        self.nrej = 0                             # corrections with the magnetometer rejected

    # ---- integer TRIAD: start-up, and every step of the accel+mag (gyro-less) mode ----
    def _triad(self, ax, ay, az, mx, my, mz):
        # Orientation from one acc + mag sample into self.tw..tz (Q14); False if unusable.
        # Small ints only (allocation-free): acc >> 2 and mag units <= 8191 keep squares < 2**28.
        ax >>= 2
        ay >>= 2
        az >>= 2
        na = _isqrt(ax * ax + ay * ay + az * az, self.sa)
        if na < 64:  # free fall or no accelerometer
            return False
        self.sa = na
        ux = (ax << 14) // na
        uy = (ay << 14) // na
        uz = (az << 14) // na
        ms = self.MS
        mx <<= ms
        my <<= ms
        mz <<= ms
        if not (-_MAXU <= mx <= _MAXU and -_MAXU <= my <= _MAXU and -_MAXU <= mz <= _MAXU):
            return False
        nm = _isqrt(mx * mx + my * my + mz * mz, self.sm)
        if nm < 64:  # no magnetometer reading
            return False
        self.sm = nm
        mx = (mx << 14) // nm
        my = (my << 14) // nm
        mz = (mz << 14) // nm
        # east = m x up (Q14 * sin of the angle between them)
        ex = (my * uz - mz * uy) >> 14
        ey = (mz * ux - mx * uz) >> 14
        ez = (mx * uy - my * ux) >> 14
        ne = _isqrt(ex * ex + ey * ey + ez * ez, self.se)
        if ne < 512:  # field (anti)parallel to gravity: heading undefined
            return False
        self.se = ne
        ex = (ex << 14) // ne
        ey = (ey << 14) // ne
        ez = (ez << 14) // ne
        # north = up x east; rows of R (sensor -> earth): east, north, up
        nx = (uy * ez - uz * ey) >> 14
        ny = (uz * ex - ux * ez) >> 14
        nz = (ux * ey - uy * ex) >> 14
        # rotation matrix -> quaternion (Shepperd), w >= 0 when possible
        tr = ex + ny + uz
        if tr > 0:
            t = _isqrt((_ONE + tr) << 12, 0) << 2       # 4 w, Q14
            w = t >> 2
            x = ((uy - nz) << 14) // t
            y = ((ez - ux) << 14) // t
            z = ((nx - ey) << 14) // t
        elif ex > ny and ex > uz:
            t = _isqrt((_ONE + ex - ny - uz) << 12, 0) << 2
            w = ((uy - nz) << 14) // t
            x = t >> 2
            y = ((ey + nx) << 14) // t
            z = ((ez + ux) << 14) // t
        elif ny > uz:
            t = _isqrt((_ONE + ny - ex - uz) << 12, 0) << 2
            w = ((ez - ux) << 14) // t
            x = ((ey + nx) << 14) // t
            y = t >> 2
            z = ((nz + uy) << 14) // t
        else:
            t = _isqrt((_ONE + uz - ex - ny) << 12, 0) << 2
            w = ((nx - ey) << 14) // t
            x = ((ez + ux) << 14) // t
            y = ((nz + uy) << 14) // t
            z = t >> 2
        self.tw = w; self.tx = x; self.ty = y; self.tz = z
        self.tmv = (mx * ux + my * uy + mz * uz) >> 14   # vertical fraction of m, Q14
        return True

    def _start(self, ax, ay, az, mx, my, mz):
        # First usable sample: orientation by TRIAD (heading from the magnetometer), the
        # magnetic reference (|m|^2 and vertical fraction) learned from it. A filter with a
        # magnetometer waits up to WAIT_N samples for a usable reading (chips deliver zeros
        # at first), then starts with heading 0 (and keeps trying to learn the field).
        if self._triad(ax, ay, az, mx, my, mz):
            mu = self.sm
            self.mref2 = mu * mu
            self.fref = (self.tmv * self.tmv) >> 14
        else:
            self.wait += 1
            if self.use_mag and self.wait < self.WAIT_N:
                return False
            # heading 0: a stand-in field along sensor y (x if gravity is along y)
            f = 4096 >> self.MS
            if abs(ay) > abs(ax) and abs(ay) > abs(az):
                ok = self._triad(ax, ay, az, f, 0, 0)
            else:
                ok = self._triad(ax, ay, az, 0, f, 0)
            if not ok:
                return False
        self.w = self.tw; self.x = self.tx; self.y = self.ty; self.z = self.tz
        self.pax = ax; self.pay = ay; self.paz = az
        self.started = True
        return True

    def update(self, gx, gy, gz, ax, ay, az, mx, my, mz):
        """One sample of int16 counts (common sensor frame); returns nothing, see self.w..z."""
        b = self._one
        b[0] = gx; b[1] = gy; b[2] = gz; b[3] = ax; b[4] = ay; b[5] = az
        b[6] = mx; b[7] = my; b[8] = mz
        self.update_block(b, 1, None)

    _one = array("h", bytes(18)) if array else [0] * 9

    def update_block(self, buf, n, out):
        """Filter n samples from buf (9 ints each: gx gy gz ax ay az mx my mz).

        If out is not None, the Q14 quaternion after each sample goes to out[4i:4i+4]
        (w x y z). Allocation-free once started; all state kept in locals meanwhile.
        """
        i = 0
        if not self.started:
            while i < n and not self._start(buf[9 * i + 3], buf[9 * i + 4], buf[9 * i + 5],
                                            buf[9 * i + 6], buf[9 * i + 7], buf[9 * i + 8]):
                if out is not None:
                    out[4 * i] = _ONE
                    out[4 * i + 1] = out[4 * i + 2] = out[4 * i + 3] = 0
                i += 1
        w = self.w; x = self.x; y = self.y; z = self.z
        r0 = self.r0; r1 = self.r1; r2 = self.r2; r3 = self.r3
        bix = self.bix; biy = self.biy; biz = self.biz
        D = self.D; N = self.N; k = self.k
        j = 9 * i
        o = 4 * i
        if self.gyro:
            for i in range(i, n):
                # ---- every sample: gyro strapdown, exact integral by error feedback ----
                wx = buf[j] - bix
                wy = buf[j + 1] - biy
                wz = buf[j + 2] - biz
                t0 = r0 - x * wx - y * wy - z * wz
                t1 = r1 + w * wx + y * wz - z * wy
                t2 = r2 + w * wy - x * wz + z * wx
                t3 = r3 + w * wz + x * wy - y * wx
                w += t0 // D        # floor; the remainder carries to the next sample
                r0 = t0 % D
                x += t1 // D
                r1 = t1 % D
                y += t2 // D
                r2 = t2 % D
                z += t3 // D
                r3 = t3 % D
                k += 1
                if k >= N:
                    k = 0
                    self.w = w; self.x = x; self.y = y; self.z = z
                    self._correct(buf, j)
                    w = self.w; x = self.x; y = self.y; z = self.z
                    bix = self.bix; biy = self.biy; biz = self.biz
                if out is not None:
                    out[o] = w
                    out[o + 1] = x
                    out[o + 2] = y
                    out[o + 3] = z
                    o += 4
                j += 9
        else:
            for i in range(i, n):
                # accel+mag mode: a TRIAD step every N samples
                k += 1
                if k >= N:
                    k = 0
                    self._correct(buf, j)
                    w = self.w; x = self.x; y = self.y; z = self.z
                if out is not None:
                    out[o] = w
                    out[o + 1] = x
                    out[o + 2] = y
                    out[o + 3] = z
                    o += 4
                j += 9
        self.w = w; self.x = x; self.y = y; self.z = z
        self.r0 = r0; self.r1 = r1; self.r2 = r2; self.r3 = r3
        self.k = k

    def _correct(self, buf, j):
        # Accelerometer / magnetometer corrections and bias update, every N-th sample.
        w = self.w; x = self.x; y = self.y; z = self.z
        ax = buf[j + 3]; ay = buf[j + 4]; az = buf[j + 5]
        if not self.gyro:
            # accel+mag mode: low-pass towards this sample's TRIAD orientation
            if not self._triad(ax, ay, az, buf[j + 6], buf[j + 7], buf[j + 8]):
                return
            tw = self.tw; tx = self.tx; ty = self.ty; tz = self.tz
            if w * tw + x * tx + y * ty + z * tz < 0:  # same hemisphere (q and -q agree)
                tw = -tw; tx = -tx; ty = -ty; tz = -tz
            k = self.KT
            w += (k * (tw - w) + _HALF) >> 14
            x += (k * (tx - x) + _HALF) >> 14
            y += (k * (ty - y) + _HALF) >> 14
            z += (k * (tz - z) + _HALF) >> 14
            n2 = w * w + x * x + y * y + z * z
            if not (268369920 < n2 < 268500992):
                f = (805306368 - n2 + 16384) >> 15
                w = (w * f + _HALF) >> 14
                x = (x * f + _HALF) >> 14
                y = (y * f + _HALF) >> 14
                z = (z * f + _HALF) >> 14
            self.w = w; self.x = x; self.y = y; self.z = z
            return
        # first-order renormalisation of the strapdown growth, before R is formed (keeps
        # |R| <= 1 for R a < 2**30); skipped while the norm is within 2**-12 (rounding noise)
        n2 = w * w + x * x + y * y + z * z
        if not (268369920 < n2 < 268500992):
            f = (805306368 - n2 + 16384) >> 15  # (3 - |q|^2) / 2 in Q14
            w = (w * f + _HALF) >> 14
            x = (x * f + _HALF) >> 14
            y = (y * f + _HALF) >> 14
            z = (z * f + _HALF) >> 14
        # rotation matrix (sensor -> earth), Q14
        r00 = _ONE - ((y * y + z * z + 4096) >> 13)
        r01 = (x * y - w * z + 4096) >> 13
        r02 = (x * z + w * y + 4096) >> 13
        r10 = (x * y + w * z + 4096) >> 13
        r11 = _ONE - ((x * x + z * z + 4096) >> 13)
        r12 = (y * z - w * x + 4096) >> 13
        r20 = (x * z - w * y + 4096) >> 13
        r21 = (y * z + w * x + 4096) >> 13
        r22 = _ONE - ((x * x + y * y + 4096) >> 13)
        # -- rest detection -> gyro bias (Q8 counts): mean gyro over each complete still
        #    window of REST_N blocks (gyro within RG of the bias, acc within RA of the window's
        #    first sample); a window cut short by motion is discarded, so the slow start of a
        #    movement never leaks into the bias. First window replaces, later ones average. --
        if self.gyro:
            bx = self.bx; by = self.by; bz = self.bz
            RG = self.RG; RA = self.RA
            ox = buf[j] - ((bx + 128) >> 8)
            oy = buf[j + 1] - ((by + 128) >> 8)
            oz = buf[j + 2] - ((bz + 128) >> 8)
            if (-RG < ox < RG and -RG < oy < RG and -RG < oz < RG
                    and -RA < ax - self.pax < RA and -RA < ay - self.pay < RA
                    and -RA < az - self.paz < RA):
                self.sgx += ox; self.sgy += oy; self.sgz += oz
                self.rest += 1
                if self.rest >= self.REST_N:
                    # window mean of (gyro - rounded bias), Q8; |sum| < RG REST_N keeps it small
                    rn = self.REST_N
                    sh = 0 if self.nwin == 0 else 1
                    t = ((self.sgx << 8) // rn) + (((bx + 128) >> 8) << 8)
                    bx += (t - bx + sh) >> sh
                    t = ((self.sgy << 8) // rn) + (((by + 128) >> 8) << 8)
                    by += (t - by + sh) >> sh
                    t = ((self.sgz << 8) // rn) + (((bz + 128) >> 8) << 8)
                    bz += (t - bz + sh) >> sh
                    bx = min(max(bx, -_BMAX << 8), _BMAX << 8)
                    by = min(max(by, -_BMAX << 8), _BMAX << 8)
                    bz = min(max(bz, -_BMAX << 8), _BMAX << 8)
                    self.bx = bx; self.by = by; self.bz = bz
                    self.nwin += 1
                    self.rest = 0
                    self.sgx = self.sgy = self.sgz = 0
            else:
                self.rest = 0
                self.sgx = self.sgy = self.sgz = 0
                self.pax = ax; self.pay = ay; self.paz = az
            # integer bias for the next block, dithered so that its mean is exact
            e = self.ebx + bx
            self.bix = (e + 128) >> 8
            self.ebx = e - (self.bix << 8)
            e = self.eby + by
            self.biy = (e + 128) >> 8
            self.eby = e - (self.biy << 8)
            e = self.ebz + bz
            self.biz = (e + 128) >> 8
            self.ebz = e - (self.biz << 8)
        else:
            self.pax = ax; self.pay = ay; self.paz = az
        # -- accelerometer: earth-frame low-pass (Q2 counts), inclination correction --
        klp = self.KLP
        lx = self.lx; ly = self.ly
        lx += (klp * (((r00 * ax + r01 * ay + r02 * az + 2048) >> 12) - lx) + _HALF) >> 14
        ly += (klp * (((r10 * ax + r11 * ay + r12 * az + 2048) >> 12) - ly) + _HALF) >> 14
        sa = self.SA
        ka = self.KACC
        t = self.cax + ly * ka
        hx = (t + (1 << (sa - 1))) >> sa
        self.cax = t - (hx << sa)
        t = self.cay - lx * ka
        hy = (t + (1 << (sa - 1))) >> sa
        self.cay = t - (hy << sa)
        kal = self.KAL
        lx -= (lx * kal + _HALF) >> 14
        ly -= (ly * kal + _HALF) >> 14
        self.lx = lx; self.ly = ly
        # -- magnetometer: disturbance gating, heading correction about earth z --
        hz = 0
        if self.use_mag:
            ms = self.MS
            mx = buf[j + 6] << ms; my = buf[j + 7] << ms; mz = buf[j + 8] << ms
            if -_MAXU <= mx <= _MAXU and -_MAXU <= my <= _MAXU and -_MAXU <= mz <= _MAXU:
                m2 = mx * mx + my * my + mz * mz
                m2s = m2 >> 14
                mez = (r20 * mx + r21 * my + r22 * mz + _HALF) >> 14
                z2 = mez * mez
                mref2 = self.mref2
                dm = m2 - mref2
                lim = self.MF * m2s
                df = z2 - self.fref * m2s
                if (m2s > 0 and -(mref2 >> 14) * self.MN < dm < (mref2 >> 14) * self.MN
                        and -lim < df < lim):
                    mex = (r00 * mx + r01 * my + r02 * mz + _HALF) >> 14
                    mey = (r10 * mx + r11 * my + r12 * mz + _HALF) >> 14
                    if mey > 0:
                        d = (mex << 14) // mey
                        if d > _ONE:
                            d = _ONE
                        elif d < -_ONE:
                            d = -_ONE
                    else:
                        d = _ONE if mex >= 0 else -_ONE
                    t = self.caz + self.KMAG * d
                    hz = (t + _HALF + _HALF) >> 15
                    self.caz = t - (hz << 15)
                    kr = self.KR
                    self.mref2 = mref2 + ((kr * dm + _HALF) >> 14)
                    self.fref += (kr * (z2 // m2s - self.fref) + _HALF) >> 14
                    self.nn = 0
                elif m2s > 0:
                    # rejected. A field that stays consistent (same gates against a candidate
                    # reference) for NEW_N blocks of rotation is the new normal (the filter
                    # started in a disturbed field, or the environment changed for good);
                    # a sensor-fixed magnet fails this: its |m| changes as the sensor turns
                    self.nrej += 1
                    n2 = self.nref2
                    dm = m2 - n2
                    df = z2 - self.nfref * m2s
                    if -(n2 >> 14) * self.MN < dm < (n2 >> 14) * self.MN and -lim < df < lim:
                        rn = self.RN
                        if not (-rn < ox < rn and -rn < oy < rn and -rn < oz < rn):
                            self.nn += 1
                        kr = self.KR
                        self.nref2 = n2 + ((kr * dm + _HALF) >> 14)
                        self.nfref += (kr * (z2 // m2s - self.nfref) + _HALF) >> 14
                        if self.nn >= self.NEW_N:
                            self.mref2 = self.nref2
                            self.fref = self.nfref
                            self.nn = 0
                    else:
                        self.nref2 = m2
                        self.nfref = z2 // m2s
                        self.nn = 0
                else:
                    self.nrej += 1
            else:
                self.nrej += 1
        # -- apply the earth-frame correction q <- [1, hx, hy, hz] (x) q, Q28 carries --
        t0 = self.c0 - hx * x - hy * y - hz * z
        t1 = self.c1 + hx * w + hy * z - hz * y
        t2 = self.c2 + hy * w + hz * x - hx * z
        t3 = self.c3 + hz * w + hx * y - hy * x
        e0 = (t0 + _HALF) >> 14
        e1 = (t1 + _HALF) >> 14
        e2 = (t2 + _HALF) >> 14
        e3 = (t3 + _HALF) >> 14
        self.c0 = t0 - (e0 << 14)
        self.c1 = t1 - (e1 << 14)
        self.c2 = t2 - (e2 << 14)
        self.c3 = t3 - (e3 << 14)
        w += e0; x += e1; y += e2; z += e3
        self.w = w; self.x = x; self.y = y; self.z = z
