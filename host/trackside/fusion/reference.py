"""Float reference of the on-device filter (``firmware/tsfw/fusion.py``), step for step.

The same algorithm in float64 and physical units, without quantisation of the input or of
the state: the gap between this and the fixed-point filter is the cost of running on a node
(measured by ``tools/bench/bench_fusion_accuracy.py``). Keep the two in step: every block
below names the corresponding block of ``FixedKalman``.
"""

from __future__ import annotations

import math

import numpy as np

from trackside.fusion.metrics import Recording

G = 9.80665


class FloatKalman:
    """Float twin of ``tsfw.fusion.FixedKalman`` (inputs rad/s, m/s^2, uT).

    ``gyro=False`` selects the accel+mag mode of gyro-less chips (as ``gyr_lsb_dps=0`` does
    for the fixed filter). ``mag_max_ut``: components beyond it are rejected (the fixed filter's
    mag-unit clamp, 8191 units = 153 uT for 0.15 uT/LSB chips).
    """

    def __init__(self, rate_hz: float, gyro: bool = True, use_mag: bool = True, decim: int = 0,
                 tau_acc: float = 0.0, tau_lp: float = 0.0, tau_mag: float = 0.0, tau_ref: float = 30.0,
                 mag_norm_th: float = 0.1, mag_dip_th: float = 0.1, rest_gyr_dps: float = 2.0,
                 rest_acc_ms2: float = 0.5, rest_time: float = 1.5,
                 mag_max_ut: float = 153.6, mag_new_time: float = 20.0, mag_new_gyr_dps: float = 20.0):
        if not rate_hz > 0:
            raise ValueError("rate must be positive")
        if decim <= 0:
            decim = 8 if gyro else 1
        tau_acc = tau_acc if tau_acc > 0 else (3.0 if gyro else 0.1)
        tau_lp = tau_lp if tau_lp > 0 else (3.0 if gyro else 0.2)
        tau_mag = tau_mag if tau_mag > 0 else (9.0 if gyro else 0.2)
        T = decim / rate_hz
        self.dt = 1.0 / rate_hz
        self.gyro = gyro
        self.use_mag = use_mag
        self.N = decim
        self.klp = T / tau_lp
        self.ka = T / tau_acc
        self.km = T / tau_mag
        self.kr = T / tau_ref
        self.mn = 2.0 * mag_norm_th
        self.mf = mag_dip_th
        self.rg = math.radians(rest_gyr_dps)
        self.ra = rest_acc_ms2
        self.rest_n = round(rest_time / T)
        self.mag_max = mag_max_ut
        self.kt = T / tau_acc
        self.wait_n = round(2.0 * rate_hz)
        self.new_n = max(1, round(mag_new_time / T))
        self.rn = math.radians(mag_new_gyr_dps)
        self.reset()

    def reset(self) -> None:
        self.q = [1.0, 0.0, 0.0, 0.0]
        self.b = [0.0, 0.0, 0.0]
        self.l = [0.0, 0.0]
        self.pa = [0.0, 0.0, 0.0]
        self.rest = 0
        self.sg = [0.0, 0.0, 0.0]
        self.nwin = 0
        self.mref2 = 0.0
        self.fref = 0.0
        self.k = 0
        self.started = False
        self.wait = 0
        self.nref2 = self.nfref = 0.0
        self.nn = 0
        self.nrej = 0

    def _triad(self, a, m):
        """Orientation (w x y z) from one acc + mag sample, or None (as FixedKalman._triad)."""
        ax, ay, az = a
        na = math.sqrt(ax * ax + ay * ay + az * az)
        if na < 64 * 4 / 4096 * G:  # the fixed filter's free-fall limit (MPU-9250 scale)
            return None
        ux, uy, uz = ax / na, ay / na, az / na
        mx, my, mz = m
        mm = self.mag_max
        if not (abs(mx) <= mm and abs(my) <= mm and abs(mz) <= mm):
            return None
        nm = math.sqrt(mx * mx + my * my + mz * mz)
        if nm < 1.2:  # 64 mag units of the fixed filter
            return None
        self._nm = nm
        mx, my, mz = mx / nm, my / nm, mz / nm
        ex, ey, ez = my * uz - mz * uy, mz * ux - mx * uz, mx * uy - my * ux
        ne = math.sqrt(ex * ex + ey * ey + ez * ez)
        if ne < 512 / 16384:
            return None
        ex, ey, ez = ex / ne, ey / ne, ez / ne
        nx, ny, nz = uy * ez - uz * ey, uz * ex - ux * ez, ux * ey - uy * ex
        tr = ex + ny + uz
        if tr > 0:
            t = 2 * math.sqrt(1 + tr)
            q = (t / 4, (uy - nz) / t, (ez - ux) / t, (nx - ey) / t)
        elif ex > ny and ex > uz:
            t = 2 * math.sqrt(1 + ex - ny - uz)
            q = ((uy - nz) / t, t / 4, (ey + nx) / t, (ez + ux) / t)
        elif ny > uz:
            t = 2 * math.sqrt(1 + ny - ex - uz)
            q = ((ez - ux) / t, (ey + nx) / t, t / 4, (nz + uy) / t)
        else:
            t = 2 * math.sqrt(1 + uz - ex - ny)
            q = ((nx - ey) / t, (ez + ux) / t, (nz + uy) / t, t / 4)
        self._mv = mx * ux + my * uy + mz * uz
        return q

    def _start(self, a, m) -> bool:
        """TRIAD start-up with the magnetic reference (as FixedKalman._start)."""
        q = self._triad(a, m)
        if q is not None:
            self.mref2 = self._nm * self._nm
            self.fref = self._mv * self._mv
        else:
            self.wait += 1
            if self.use_mag and self.wait < self.wait_n:
                return False
            ax, ay, az = a
            f = (1.0, 0.0, 0.0) if abs(ay) > abs(ax) and abs(ay) > abs(az) else (0.0, 1.0, 0.0)
            q = self._triad(a, (f[0] * 30, f[1] * 30, f[2] * 30))
            if q is None:
                return False
        self.q = list(q)
        self.pa = list(a)
        self.started = True
        return True

    def run(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray) -> np.ndarray:
        """Filter the whole recording; Nx4 quaternions (w x y z) after each sample."""
        n = len(acc)
        out = np.empty((n, 4))
        gyr = np.asarray(gyr, dtype=float).tolist()
        acc = np.asarray(acc, dtype=float).tolist()
        mag = np.asarray(mag, dtype=float).tolist()
        i = 0
        while i < n and not self.started:
            if self._start(acc[i], mag[i]):
                break
            out[i] = (1.0, 0.0, 0.0, 0.0)
            i += 1
        if not self.started:
            return out
        w, x, y, z = self.q
        bx, by, bz = self.b
        h = 0.5 * self.dt
        N = self.N
        k = self.k
        for i in range(i, n):
            # ---- every sample: gyro strapdown (first order) ----
            if self.gyro:
                wx = (gyr[i][0] - bx) * h
                wy = (gyr[i][1] - by) * h
                wz = (gyr[i][2] - bz) * h
                w, x, y, z = (w - x * wx - y * wy - z * wz, x + w * wx + y * wz - z * wy,
                              y + w * wy - x * wz + z * wx, z + w * wz + x * wy - y * wx)
            k += 1
            if k >= N:
                k = 0
                self.q = [w, x, y, z]
                self.b = [bx, by, bz]
                self._correct(gyr[i], acc[i], mag[i])
                w, x, y, z = self.q
                bx, by, bz = self.b
            out[i] = (w, x, y, z)
        self.k = k
        return out

    def _correct(self, g, a, m) -> None:
        w, x, y, z = self.q
        ax, ay, az = a
        if not self.gyro:
            # accel+mag mode: low-pass towards this sample's TRIAD orientation
            t = self._triad(a, m)
            if t is None:
                return
            tw, tx, ty, tz = t
            if w * tw + x * tx + y * ty + z * tz < 0:
                tw, tx, ty, tz = -tw, -tx, -ty, -tz
            k = self.kt
            w, x, y, z = w + k * (tw - w), x + k * (tx - x), y + k * (ty - y), z + k * (tz - z)
            n2 = w * w + x * x + y * y + z * z
            if abs(n2 - 1.0) >= 2.0 ** -12:
                f = (3.0 - n2) * 0.5
                w, x, y, z = w * f, x * f, y * f, z * f
            self.q = [w, x, y, z]
            return
        # first-order renormalisation of the strapdown growth, before R is formed
        n2 = w * w + x * x + y * y + z * z
        if abs(n2 - 1.0) >= 2.0 ** -12:
            f = (3.0 - n2) * 0.5
            w, x, y, z = w * f, x * f, y * f, z * f
        r00 = 1 - 2 * (y * y + z * z)
        r01 = 2 * (x * y - w * z)
        r02 = 2 * (x * z + w * y)
        r10 = 2 * (x * y + w * z)
        r11 = 1 - 2 * (x * x + z * z)
        r12 = 2 * (y * z - w * x)
        r20 = 2 * (x * z - w * y)
        r21 = 2 * (y * z + w * x)
        r22 = 1 - 2 * (x * x + y * y)
        # -- rest detection -> gyro bias: the mean gyro over each complete still window of
        #    rest_time (gyro within rest_gyr of the bias, acc within rest_acc of the window's
        #    first sample); a window cut short by motion is discarded, so the slow start of a
        #    movement never leaks into the bias. First window replaces, later ones average. --
        if self.gyro:
            bx, by, bz = self.b
            rg, ra = self.rg, self.ra
            ox, oy, oz = g[0] - bx, g[1] - by, g[2] - bz
            pax, pay, paz = self.pa
            if (abs(ox) < rg and abs(oy) < rg and abs(oz) < rg and abs(ax - pax) < ra
                    and abs(ay - pay) < ra and abs(az - paz) < ra):
                sg = self.sg
                sg[0] += ox
                sg[1] += oy
                sg[2] += oz
                self.rest += 1
                if self.rest >= self.rest_n:
                    kw = 1.0 if self.nwin == 0 else 0.5
                    self.b = [bx + kw * sg[0] / self.rest_n, by + kw * sg[1] / self.rest_n,
                              bz + kw * sg[2] / self.rest_n]
                    self.nwin += 1
                    self.rest = 0
                    self.sg = [0.0, 0.0, 0.0]
            else:
                self.rest = 0
                self.sg = [0.0, 0.0, 0.0]
                self.pa = [ax, ay, az]
        else:
            self.pa = [ax, ay, az]
        # -- accelerometer: earth-frame low-pass, inclination correction --
        lx, ly = self.l
        klp = self.klp
        lx += klp * ((r00 * ax + r01 * ay + r02 * az) - lx)
        ly += klp * ((r10 * ax + r11 * ay + r12 * az) - ly)
        hx = self.ka * ly / (2 * G)
        hy = -self.ka * lx / (2 * G)
        lx -= lx * self.ka
        ly -= ly * self.ka
        self.l = [lx, ly]
        # -- magnetometer: disturbance gating, heading correction about earth z --
        hz = 0.0
        if self.use_mag:
            mx, my, mz = m
            mm = self.mag_max
            if abs(mx) <= mm and abs(my) <= mm and abs(mz) <= mm:
                m2 = mx * mx + my * my + mz * mz
                mez = r20 * mx + r21 * my + r22 * mz
                z2 = mez * mez
                dm = m2 - self.mref2
                if m2 > 0 and abs(dm) < self.mn * self.mref2 and abs(z2 - self.fref * m2) < self.mf * m2:
                    mex = r00 * mx + r01 * my + r02 * mz
                    mey = r10 * mx + r11 * my + r12 * mz
                    if mey > 0:
                        d = min(1.0, max(-1.0, mex / mey))
                    else:
                        d = 1.0 if mex >= 0 else -1.0
                    hz = 0.5 * self.km * d
                    self.mref2 += self.kr * dm
                    self.fref += self.kr * (z2 / m2 - self.fref)
                    self.nn = 0
                elif m2 > 0:
                    # rejected; a field consistent for new_n blocks of rotation becomes the
                    # reference (as FixedKalman)
                    self.nrej += 1
                    dm = m2 - self.nref2
                    if abs(dm) < self.mn * self.nref2 and abs(z2 - self.nfref * m2) < self.mf * m2:
                        if max(abs(g[0] - self.b[0]), abs(g[1] - self.b[1]), abs(g[2] - self.b[2])) >= self.rn:
                            self.nn += 1
                        self.nref2 += self.kr * dm
                        self.nfref += self.kr * (z2 / m2 - self.nfref)
                        if self.nn >= self.new_n:
                            self.mref2 = self.nref2
                            self.fref = self.nfref
                            self.nn = 0
                    else:
                        self.nref2 = m2
                        self.nfref = z2 / m2
                        self.nn = 0
                else:
                    self.nrej += 1
            else:
                self.nrej += 1
        # -- apply the earth-frame correction q <- [1, hx, hy, hz] (x) q --
        w, x, y, z = (w - hx * x - hy * y - hz * z, x + hx * w + hy * z - hz * y,
                      y + hy * w + hz * x - hx * z, z + hz * w + hx * y - hy * x)
        self.q = [w, x, y, z]


def run_reference(rec: Recording, chip: str = "mpu9250", **params) -> np.ndarray:
    """Registry filter ``reference``: the float twin over the unquantised recording.

    ``chip`` only selects the mode (gyro-less chips run the accel+mag mode on zero gyro).
    Returns Nx4 unit quaternions (w x y z, sensor-to-earth, ENU).
    """
    from trackside.fusion.quantize import get_chip

    c = get_chip(chip)
    if not params.get("decim"):
        # the block length the fixed filter uses for this chip and rate (capped by its
        # strapdown overflow bound), so both correct on the same samples
        from trackside.fusion.device import make_filter

        params["decim"] = make_filter(rec.fs, c).N
    f = FloatKalman(rec.fs, gyro=c.gyr_lsb_dps > 0, mag_max_ut=8191 * c.mag_ut_lsb / (1 << _mag_shift(c.mag_ut_lsb)),
                    **params)
    q = f.run(rec.gyr, rec.acc, rec.mag)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _mag_shift(ut_lsb: float) -> int:
    # FixedKalman's MS: mag units of about 0.02 uT (same loop as the firmware).
    ms = 0
    while ms < 8 and ut_lsb / (1 << (ms + 1)) >= 0.0141:
        ms += 1
    return ms
