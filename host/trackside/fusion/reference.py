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
                 mag_max_ut: float = 153.6):
        if not rate_hz > 0:
            raise ValueError("rate must be positive")
        if decim <= 0:
            decim = 8 if gyro else 1
        tau_acc = tau_acc if tau_acc > 0 else (3.0 if gyro else 0.2)
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
        self.reset()

    def reset(self) -> None:
        self.q = [1.0, 0.0, 0.0, 0.0]
        self.b = [0.0, 0.0, 0.0]
        self.l = [0.0, 0.0, G]
        self.pa = [0.0, 0.0, 0.0]
        self.rest = 0
        self.sg = [0.0, 0.0, 0.0]
        self.nwin = 0
        self.mref2 = 0.0
        self.fref = 0.0
        self.k = 0
        self.started = False
        self.nrej = 0

    def _start(self, a, m) -> bool:
        """TRIAD: up from the accelerometer, north from the magnetometer (as FixedKalman._start)."""
        a = np.asarray(a, dtype=float)
        m = np.asarray(m, dtype=float)
        na = np.linalg.norm(a)
        if na == 0:
            return False
        up = a / na
        ok_mag = self.use_mag and bool(np.all(np.abs(m) <= self.mag_max))
        east = np.cross(m, up) if ok_mag else np.zeros(3)
        if np.linalg.norm(east) < 1e-3 * max(np.linalg.norm(m), 1e-12) or not ok_mag:
            ok_mag = False
            east = np.array([-up[1], up[0], 0.0]) if abs(up[2]) < 12000 / 16384 else np.array([0.0, -up[2], up[1]])
        east /= np.linalg.norm(east)
        north = np.cross(up, east)
        R = np.vstack([east, north, up])
        from scipy.spatial.transform import Rotation

        x, y, z, w = Rotation.from_matrix(R).as_quat()
        if w < 0:
            w, x, y, z = -w, -x, -y, -z
        self.q = [w, x, y, z]
        if ok_mag:
            m2 = float(m @ m)
            mv = float(m @ up)
            self.mref2 = m2
            self.fref = mv * mv / m2
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
        lx, ly, lz = self.l
        klp = self.klp
        lx += klp * ((r00 * ax + r01 * ay + r02 * az) - lx)
        ly += klp * ((r10 * ax + r11 * ay + r12 * az) - ly)
        lz += klp * ((r20 * ax + r21 * ay + r22 * az) - lz)
        hx = self.ka * ly / (2 * G)
        hy = -self.ka * lx / (2 * G)
        lx -= lx * self.ka
        ly -= ly * self.ka
        self.l = [lx, ly, lz]
        # -- magnetometer: disturbance gating, heading correction about earth z --
        hz = 0.0
        if self.use_mag:
            mx, my, mz = m
            mm = self.mag_max
            if abs(mx) <= mm and abs(my) <= mm and abs(mz) <= mm:
                m2 = mx * mx + my * my + mz * mz
                dm = m2 - self.mref2
                if abs(dm) < self.mn * self.mref2:
                    mex = r00 * mx + r01 * my + r02 * mz
                    mey = r10 * mx + r11 * my + r12 * mz
                    mez = r20 * mx + r21 * my + r22 * mz
                    z2 = mez * mez
                    if abs(z2 - self.fref * m2) < self.mf * m2 and m2 > 0:
                        if mey > 0:
                            d = min(1.0, max(-1.0, mex / mey))
                        else:
                            d = 1.0 if mex >= 0 else -1.0
                        hz = 0.5 * self.km * d
                        self.mref2 += self.kr * dm
                        self.fref += self.kr * (z2 / m2 - self.fref)
                    else:
                        self.nrej += 1
                else:
                    self.nrej += 1
            else:
                self.nrej += 1
        # -- apply the earth-frame correction q <- [1, hx, hy, hz] (x) q; renormalise --
        w, x, y, z = (w - hx * x - hy * y - hz * z, x + hx * w + hy * z - hz * y,
                      y + hy * w + hz * x - hx * z, z + hz * w + hx * y - hy * x)
        n2 = w * w + x * x + y * y + z * z
        if abs(n2 - 1.0) >= 2.0 ** -12:
            f = (3.0 - n2) * 0.5
            w, x, y, z = w * f, x * f, y * f, z * f
        self.q = [w, x, y, z]


def run_reference(rec: Recording, chip: str = "mpu9250", **params) -> np.ndarray:
    """Registry filter ``reference``: the float twin over the unquantised recording.

    ``chip`` only selects the mode (gyro-less chips run the accel+mag mode on zero gyro).
    Returns Nx4 unit quaternions (w x y z, sensor-to-earth, ENU).
    """
    from trackside.fusion.quantize import get_chip

    c = get_chip(chip)
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
