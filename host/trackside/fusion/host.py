"""Host-side online orientation filter: a float error-state (multiplicative) EKF, 9D.

Same file contract as the device filter: gyr rad/s, acc m/s^2, mag uT (Nx3, sensor frame), fs Hz
in; quat Nx4 (w, x, y, z), sensor-to-earth, earth frame ENU out. Registered as filter ``host``.

State: orientation q (nominal) and a 10-dim error state

    dx = [dtheta (3, earth frame, left-multiplicative: q = exp(dtheta) * q_hat),
          gyro bias b_g (3, rad/s), magnetometer hard-iron offset b_m (3, uT, sensor frame),
          heading of the local magnetic field psi_f (1, rad; 0 where the recording starts)]

Why these choices:

* Gyro bias is the main source of heading drift between magnetometer corrections; it is
  observed by the accelerometer (tilt axes) and magnetometer (vertical axis) and, strongly,
  by a zero-rate update while the sensor is detected at rest.
* The accelerometer enters as gravity direction from an earth-frame low-pass of the specific
  force (time constant acc_tau_s, as VQF does): linear acceleration averages out because velocity
  stays bounded. The low-pass state is re-rotated by every correction so no innovation is
  applied twice.
* The magnetometer corrects heading only (the tilt columns of its Jacobian are zeroed). Its real
  errors are slow (calibration residuals, a field whose direction changes by a few degrees across
  a room), so its noise is set high and the field's heading psi_f is a slow random walk.
* A magnet attached to the sensor is a sensor-frame offset. The field is tested (horizontal and
  vertical strength against a learnt reference) under the calibrated offset and under the
  current estimate: mode 0 calibrated; mode 2 disturbed - the magnetometer then updates only b_m
  (a Schmidt "consider" update: orientation, gyro bias and psi_f gains zeroed) after a jump in
  its covariance, so the new offset is learnt without the disturbance leaking into the
  orientation; mode 1 - the learnt offset fits, has converged, and the sensor has turned while it
  was learnt (so it is fixed to the sensor, not to the room), and the magnetometer is used again.
  A field fitting the calibrated offset for mag_restore_s restores it (magnet removed). A magnet
  nearby in the room is ridden out on the gyro.

Usage::

    from trackside.fusion.metrics import load_recording
    from trackside.fusion.host import run_host
    quat = run_host(load_recording("trial.npz"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np

from trackside.fusion.metrics import Recording

G = 9.81  # m/s^2, only for the |a| - g linear-acceleration test
NS = 10  # error-state size: attitude 3, gyro bias 3, hard-iron 3, local field heading 1


@dataclass(frozen=True)
class HostFilterParams:
    """Parameters of the error-state EKF (units in the names). Defaults fit consumer/industrial
    MEMS IMUs at 50-1000 Hz; they were chosen on physical grounds and checked on BROAD."""

    gyr_noise_rad_s: float = 0.003
    """Gyro angle-random-walk density (rad/s/sqrt(Hz)), inflated on purpose above the datasheet
    value to cover scale-factor and misalignment errors."""
    gyr_bias_walk_rad_s2: float = 2e-5
    """Gyro bias random walk (rad/s per sqrt(s))."""
    gyr_bias_init_rad_s: float = 0.02
    """Initial gyro bias standard deviation (rad/s)."""
    acc_tau_s: float = 3.0
    """Time constant of the earth-frame low-pass applied to the accelerometer (s), as in VQF:
    linear acceleration averages out (velocity stays bounded), gravity stays."""
    acc_noise: float = 0.05
    """Noise of the low-passed gravity direction (rad) when its norm equals g."""
    acc_motion_gain: float = 3.0
    """Extra direction noise per relative deviation of |a| from g (rad per unit of (|a|-g)/g)."""
    mag_noise_ut: float = 12.0
    """Magnetometer noise (uT, per axis), far above the white noise (~0.7 uT) because the real
    errors are slow: calibration residuals and a field that changes by a few degrees across a
    room. Sets the heading correction time constant to tens of seconds; the gyro bridges it."""
    mag_bias_init_ut: float = 0.1
    """Initial hard-iron residual standard deviation (uT): the magnetometer is assumed
    calibrated; a free offset would trade off against heading whenever the sensor does not
    rotate. It is learnt when a disturbance appears (see mag_bias_dist_walk_ut_s)."""
    mag_bias_walk_ut_s: float = 0.01
    """Hard-iron random walk while the field looks undisturbed (uT per sqrt(s))."""
    mag_bias_jump_ut: float = 50.0
    """Standard deviation of the offset jump assumed when a disturbance begins (uT): a magnet
    attached at 1 cm gives tens of uT."""
    mag_bias_dist_walk_ut_s: float = 1.0
    """Hard-iron random walk while the field is disturbed (uT per sqrt(s)): lets b_m follow a
    magnet that moves on the sensor."""
    mag_dist_ut: float = 5.0
    """Disturbance threshold on the distance of (horizontal, vertical) field from the reference (uT)."""
    mag_bias_conv_ut: float = 1.5
    """A learnt offset is trusted (magnetometer back in use) once its standard deviation is
    below this (uT)."""
    mag_restore_s: float = 1.0
    """After a disturbance, the calibrated offset is restored once the field has matched it
    this long (s)."""
    mag_dist_tau_s: float = 0.1
    """Low-pass time constant of the disturbance test statistic (s)."""
    mag_ref_tau_s: float = 10.0
    """Time constant with which the reference field (horizontal and vertical strength) is learnt."""
    rest_gyr_rad_s: float = 0.03
    """Rest detection: gyro deviation from its low-passed value below this (rad/s)..."""
    rest_acc_m_s2: float = 0.3
    """... and accelerometer deviation below this (m/s^2) ..."""
    rest_time_s: float = 1.0
    """... for at least this long."""
    rest_noise_rad_s: float = 0.005
    """Zero-rate update noise (rad/s): gyro white noise plus residual motion at rest."""
    mag_heading_walk_rad_s: float = 0.002
    """Random walk of the local field's heading (rad per sqrt(s), ~7 deg over 10 min): indoors
    the field direction changes by a few degrees from place to place, so magnetometer heading
    information does not accumulate without bound; north is the field where the recording
    starts. 0 disables the state."""
    init_heading_sd_rad: float = 0.5
    """Initial heading standard deviation (rad)."""
    init_tilt_sd_rad: float = 0.05
    """Initial tilt standard deviation (rad)."""
    update_rate_hz: float = 100.0
    """Rate of covariance prediction and measurement updates (the orientation is integrated at
    every sample)."""

    def validate(self) -> None:
        for name, value in self.__dict__.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


_EZ = np.array([0.0, 0.0, 1.0])
# Low-passed earth-frame acceleration direction e_z + [e_z]x dtheta: tilt columns only.
_H_ACC = np.zeros((3, NS))
_H_ACC[0, 1] = -1.0
_H_ACC[1, 0] = 1.0


def _inv3(S: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite 3x3 matrix (adjugate; faster than LAPACK here)."""
    a, b, c, _, e, f, _, _, i = S.ravel().tolist()
    A = e * i - f * f
    B = c * f - b * i
    C = b * f - c * e
    det = a * A + b * B + c * C
    if det <= 0.0:
        return np.linalg.pinv(S)
    E = a * i - c * c
    F = b * c - a * f
    I_ = a * e - b * b
    return np.array([[A, B, C], [B, E, F], [C, F, I_]]) / det


def _qmul(a: tuple, b: tuple) -> tuple:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw)


def _qexp(vx: float, vy: float, vz: float) -> tuple:
    """Unit quaternion of the rotation vector v (rad)."""
    ang = math.sqrt(vx * vx + vy * vy + vz * vz)
    if ang < 1e-12:
        return (1.0, 0.5 * vx, 0.5 * vy, 0.5 * vz)
    s = math.sin(0.5 * ang) / ang
    return (math.cos(0.5 * ang), vx * s, vy * s, vz * s)


def _qnorm(q: tuple) -> tuple:
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if q[0] < 0:
        n = -n
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


def _qmat(q: tuple) -> np.ndarray:
    """Rotation matrix (sensor -> earth) of a unit quaternion."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def initial_orientation(acc: np.ndarray, mag: np.ndarray) -> tuple:
    """Sensor-to-earth quaternion (ENU) from one accelerometer and one magnetometer vector (TRIAD).

    Earth z (up) is the measured specific force, earth y (north) the horizontal part of the field.
    Raises ValueError if either vector is zero or they are parallel.
    """
    up = np.asarray(acc, dtype=float)
    m = np.asarray(mag, dtype=float)
    if np.linalg.norm(up) < 1e-6:
        raise ValueError("accelerometer vector is zero: cannot initialise the tilt")
    up = up / np.linalg.norm(up)
    east = np.cross(m, up)
    if np.linalg.norm(east) < 1e-6:
        # No usable field direction: pick any heading (the filter will correct it if it can).
        east = np.cross([0.0, 1.0, 0.0] if abs(up[0]) > 0.9 else [1.0, 0.0, 0.0], up)
    east /= np.linalg.norm(east)
    north = np.cross(up, east)
    rot = np.vstack([east, north, up])  # rows: earth axes in sensor frame -> earth<-sensor matrix
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(rot).as_quat()
    return _qnorm((float(w), float(x), float(y), float(z)))


@dataclass
class FilterTrace:
    """What the forward pass stores for the RTS smoother, one row per filter (update) step j.

    Step j covers samples ``step_index[j] .. step_index[j+1]-1``; its posterior is taken at sample
    ``step_index[j]``. ``phi_m[j]`` is the block -sum(R dt) of the transition from step j-1 to j.
    """

    step_index: np.ndarray  # M ints
    quat_prior: np.ndarray  # M x 4 orientation before the step's measurement updates
    bias_prior: np.ndarray  # M x 7 [b_g, b_m, psi_f] before the updates
    quat: np.ndarray        # M x 4 posterior orientation at the step's sample
    bias: np.ndarray        # M x 7 posterior [b_g, b_m, psi_f]
    p_post: np.ndarray      # M x NS x NS posterior covariance
    p_prior: np.ndarray     # M x NS x NS prior covariance (prediction from step j-1)
    phi_m: np.ndarray       # M x 3 x 3 attitude/gyro-bias block of the transition j-1 -> j
    disturbed: np.ndarray   # M bool: magnetometer flagged as disturbed
    reset: np.ndarray       # M bool: the calibrated offset was restored at this step (no
                            # smoothing of b_m across it)


class HostEKF:
    """Online error-state EKF; one object per sensor stream.

    The orientation is integrated at every sample; covariance prediction and measurement updates
    run every ``decimation`` samples (about ``update_rate_hz``), which costs nothing in accuracy
    (the accelerometer/magnetometer errors are dominated by slow, correlated effects) and makes
    a pure-Python loop fast enough. ``step(gyr, acc, mag)`` processes one sample (gyro integrated
    over the following interval, as VQF does) and returns the orientation; ``run`` a recording.
    """

    def __init__(self, fs: float, params: Optional[HostFilterParams] = None) -> None:
        if not (isinstance(fs, (int, float)) and math.isfinite(fs) and 0 < fs <= 100000):
            raise ValueError(f"sampling rate fs must be a positive number of Hz, got {fs!r}")
        self.params = params or HostFilterParams()
        self.params.validate()
        self.fs = float(fs)
        self.dt = 1.0 / self.fs
        self.decimation = max(1, int(round(self.fs / max(self.params.update_rate_hz, 1e-9))))
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next sample initialises the orientation."""
        p = self.params
        self.q: Optional[tuple] = None
        self.bg = np.zeros(3)
        self.bm = np.zeros(3)
        self.psi = 0.0  # heading of the local field relative to the field at the start (rad)
        self.P = np.diag([p.init_tilt_sd_rad ** 2] * 2 + [p.init_heading_sd_rad ** 2]
                         + [p.gyr_bias_init_rad_s ** 2] * 3 + [p.mag_bias_init_ut ** 2] * 3
                         + [0.0])
        self.ref_h = 0.0  # learnt reference field: horizontal strength (uT) ...
        self.ref_v = 0.0  # ... and vertical component (uT, negative in the north)
        self.dist_stat = 0.0   # low-passed field test with the calibrated offset b_m0
        self.dist_stat1 = 0.0  # ... with the current estimate b_m
        self.disturbed = False
        self.mode = 0          # see _classify_field
        self.bm0 = np.zeros(3)
        self.P_bm0 = np.eye(3) * p.mag_bias_init_ut ** 2
        self.turned = 0.0      # rotation angle (rad) since the disturbance began
        self.calm_time = 0.0   # time (s) the calibrated field has fitted again
        self._was_reset = False
        self.gyr_lp = np.zeros(3)
        self.acc_lp = np.zeros(3)
        self.rest_time = 0.0
        self.count = 0
        # Accumulated over the samples since the last covariance step:
        self._rsum = [0.0] * 9
        self._aesum = [0.0] * 3
        self._nsum = 0
        self.acc_earth_lp = np.zeros(3)
        self._bg = (0.0, 0.0, 0.0)
        self._H_rest = np.zeros((3, NS))
        self._H_rest[:, 3:6] = np.eye(3)
        self._H_mag = np.zeros((3, NS))
        self._H_mag[:, 6:9] = np.eye(3)
        self._diag = np.arange(NS)

    # -- internals ---------------------------------------------------------------------------
    def _initialise(self, acc: np.ndarray, mag: np.ndarray) -> None:
        self.q = initial_orientation(acc, mag)
        me = _qmat(self.q) @ mag
        self.ref_h = float(math.hypot(me[0], me[1]))
        self.ref_v = float(me[2])
        self.gyr_lp[:] = 0.0
        self.acc_lp[:] = acc
        self.acc_earth_lp[:] = _qmat(self.q) @ acc

    def _integrate(self, gx: float, gy: float, gz: float, ax: float, ay: float, az: float) -> None:
        """Orientation integration over one sample; accumulate sum(R dt) and |w|^2 for the
        covariance step (Phi block -sum R dt, since the error is in the earth frame)."""
        bx, by, bz = self._bg
        wx, wy, wz = gx - bx, gy - by, gz - bz
        dt = self.dt
        self.q = _qnorm(_qmul(self.q, _qexp(wx * dt, wy * dt, wz * dt)))
        if self.mode == 2:
            self.turned += math.sqrt(wx * wx + wy * wy + wz * wz) * dt
        w, x, y, z = self.q
        r = self._rsum
        r[0] += 1 - 2 * (y * y + z * z); r[1] += 2 * (x * y - w * z); r[2] += 2 * (x * z + w * y)
        r[3] += 2 * (x * y + w * z); r[4] += 1 - 2 * (x * x + z * z); r[5] += 2 * (y * z - w * x)
        r[6] += 2 * (x * z - w * y); r[7] += 2 * (y * z + w * x); r[8] += 1 - 2 * (x * x + y * y)
        # Earth-frame specific force, summed for the low-pass (linear acceleration averages out).
        e = self._aesum
        e[0] += (1 - 2 * (y * y + z * z)) * ax + 2 * (x * y - w * z) * ay + 2 * (x * z + w * y) * az
        e[1] += 2 * (x * y + w * z) * ax + (1 - 2 * (x * x + z * z)) * ay + 2 * (y * z - w * x) * az
        e[2] += 2 * (x * z - w * y) * ax + 2 * (y * z + w * x) * ay + (1 - 2 * (x * x + y * y)) * az
        self._nsum += 1

    def _predict_cov(self) -> np.ndarray:
        """Covariance prediction over the accumulated samples; returns the Phi block used."""
        p, dt = self.params, self.dt
        n = self._nsum
        m = np.array(self._rsum).reshape(3, 3) * (-dt)
        P = self.P
        P[0:3, :] += m @ P[3:6, :]
        P[:, 0:3] += P[:, 3:6] @ m.T
        T = max(n, 1) * dt
        qa = p.gyr_noise_rad_s ** 2 * T
        qb = p.gyr_bias_walk_rad_s2 ** 2 * T
        walk = p.mag_bias_dist_walk_ut_s if self.disturbed else p.mag_bias_walk_ut_s
        qm = walk * walk * T
        # psi_f is only observed through an undisturbed field: no walk while disturbed, so that
        # after a long disturbance the magnetometer corrects the heading, not psi_f.
        qf = 0.0 if self.mode == 2 else p.mag_heading_walk_rad_s ** 2 * T
        P[self._diag, self._diag] += (qa, qa, qa, qb, qb, qb, qm, qm, qm, qf)
        self._rsum = [0.0] * 9
        return m

    def _update(self, resid: np.ndarray, H: np.ndarray, r_var: float, consider: bool = False) -> None:
        P = self.P
        PHt = P @ H.T
        S = H @ PHt
        S[0, 0] += r_var
        S[1, 1] += r_var
        S[2, 2] += r_var
        K = PHt @ _inv3(S)
        if consider:
            # Schmidt update: only the magnetometer bias takes the innovation (orientation and gyro
            # bias are "considered"); Joseph-form covariance, valid for any gain.
            K[0:6, :] = 0.0
            K[9, :] = 0.0
            IKH = np.eye(NS) - K @ H
            P = IKH @ P @ IKH.T + r_var * (K @ K.T)
        else:
            P = P - K @ PHt.T
        self.P = 0.5 * (P + P.T)
        dx = K @ resid
        self.q = _qnorm(_qmul(_qexp(dx[0], dx[1], dx[2]), self.q))
        # The low-passed earth-frame acceleration was accumulated with the old orientation:
        # re-express it in the corrected frame so the same innovation is not applied twice.
        lp = self.acc_earth_lp
        tx, ty, tz = float(dx[0]), float(dx[1]), float(dx[2])
        lx, ly, lz = float(lp[0]), float(lp[1]), float(lp[2])
        lp[0] = lx + ty * lz - tz * ly
        lp[1] = ly + tz * lx - tx * lz
        lp[2] = lz + tx * ly - ty * lx
        self.bg += dx[3:6]
        self.bm += dx[6:9]
        self.psi += float(dx[9])

    def _correct(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray) -> None:
        """Measurement updates at one sample: rest (zero rate), accelerometer, magnetometer."""
        p = self.params
        dt = self.dt * self.decimation
        # Rest detection on deviations from 0.5 s low-passed gyro and acc.
        a = 1.0 - math.exp(-dt / 0.5)
        self.gyr_lp += a * (gyr - self.gyr_lp)
        self.acc_lp += a * (acc - self.acc_lp)
        dg = gyr - self.gyr_lp
        da = acc - self.acc_lp
        if float(dg @ dg) < p.rest_gyr_rad_s ** 2 and float(da @ da) < p.rest_acc_m_s2 ** 2:
            self.rest_time += dt
        else:
            self.rest_time = 0.0
        if self.rest_time >= p.rest_time_s:
            self._update(gyr - self.bg, self._H_rest, p.rest_noise_rad_s ** 2)

        if self._nsum:
            c = 1.0 - math.exp(-dt / p.acc_tau_s)
            e = self._aesum
            n = self._nsum
            lp = self.acc_earth_lp
            lp[0] += c * (e[0] / n - lp[0])
            lp[1] += c * (e[1] / n - lp[1])
            lp[2] += c * (e[2] / n - lp[2])
            self._aesum = [0.0] * 3
            self._nsum = 0
        lp = self.acc_earth_lp
        an = math.sqrt(float(lp @ lp))
        if an > 1e-6:
            dev = (an - G) / G
            r_var = p.acc_noise ** 2 + (p.acc_motion_gain * dev) ** 2
            self._update(lp / an - _EZ, _H_ACC, r_var)
        rt = _qmat(self.q).T

        mc = mag - self.bm
        # Predicted field R^T Rz(psi) m_ref; Jacobians: heading column of R^T [m]x (m = Rz m_ref),
        # -that for psi (turning the field is turning the sensor back), identity for b_m.
        cp, sp = math.cos(self.psi), math.sin(self.psi)
        mref = np.array([-sp * self.ref_h, cp * self.ref_h, self.ref_v])
        H = self._H_mag
        H[:, 2] = rt @ np.array([mref[1], -mref[0], 0.0])
        H[:, 9] = -H[:, 2]
        self._update(mc - rt @ mref, H, p.mag_noise_ut ** 2, consider=self.disturbed)
        if self.mode == 0:
            self.bm0[:] = self.bm
            b = 1.0 - math.exp(-dt / p.mag_ref_tau_s)
            me = _qmat(self.q) @ (mag - self.bm)
            self.ref_h += b * (math.hypot(me[0], me[1]) - self.ref_h)
            self.ref_v += b * (me[2] - self.ref_v)
        self._bg = (float(self.bg[0]), float(self.bg[1]), float(self.bg[2]))

    def _open_offset(self) -> None:
        """A disturbance began: the offset may have jumped by up to mag_bias_jump_ut."""
        j = self.params.mag_bias_jump_ut ** 2
        self.P[6, 6] += j
        self.P[7, 7] += j
        self.P[8, 8] += j

    def _field_stat(self, r: np.ndarray, mag: np.ndarray, bias: np.ndarray) -> float:
        """Distance (uT) of the field's (horizontal, vertical) components from the reference."""
        me = r @ (mag - bias)
        return math.hypot(math.hypot(me[0], me[1]) - self.ref_h, me[2] - self.ref_v)

    def _classify_field(self, r: np.ndarray, mag: np.ndarray, dt: float) -> None:
        """Magnetometer mode: 0 = field as calibrated (offset b_m0), 1 = a new sensor-fixed offset
        has been learnt (magnet attached), 2 = disturbed (gyro only; b_m learns).

        Mode 1 needs the learnt offset to fit, to have converged, and the sensor to have turned
        by more than a radian while learning: only then is the offset known to be fixed to the
        sensor rather than a field fixed in the room (a magnet nearby). The calibrated offset is
        tested first, so removing an attached magnet restores it at once.
        """
        p = self.params
        thr = p.mag_dist_ut
        c = 1.0 - math.exp(-dt / p.mag_dist_tau_s)
        self.dist_stat += c * (self._field_stat(r, mag, self.bm0) - self.dist_stat)
        if self.mode == 0:
            if self.dist_stat > thr:
                self.mode = 2
                self.turned = 0.0
                self.dist_stat1 = self.dist_stat
                self.P_bm0 = self.P[6:9, 6:9].copy()
                self.calm_time = 0.0
                self.disturbed = True
                self._open_offset()
            return
        self.dist_stat1 += c * (self._field_stat(r, mag, self.bm) - self.dist_stat1)
        # Calibrated field again (magnet gone) for a while, and fitting at least as well as a
        # learnt offset: restore b_m0. The hold time keeps a magnet that happens to give the
        # reference field in one orientation from being taken for gone.
        if self.dist_stat < 0.6 * thr and (self.mode == 2 or self.dist_stat <= self.dist_stat1):
            self.calm_time += dt
        else:
            self.calm_time = 0.0
        if self.calm_time >= p.mag_restore_s:
            self.mode = 0
            self.bm[:] = self.bm0
            P = self.P
            P[6:9, :] = 0.0
            P[:, 6:9] = 0.0
            P[6:9, 6:9] = self.P_bm0
            self.disturbed = False
            self._was_reset = True
            return
        if self.mode == 2:
            converged = max(self.P[6, 6], self.P[7, 7], self.P[8, 8]) < p.mag_bias_conv_ut ** 2
            if converged and self.turned > 1.0 and self.dist_stat1 < 0.6 * thr:
                self.mode = 1
        elif self.dist_stat1 > thr:
            self.mode = 2
            self.turned = 0.0
            self._open_offset()
        self.disturbed = self.mode == 2

    # -- public ------------------------------------------------------------------------------
    def step(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray) -> tuple:
        """Process one sample (gyro integrated over the interval ending at it, as VQF does);
        returns the orientation (w, x, y, z) at this sample."""
        if self.q is None:
            self._initialise(np.asarray(acc, float), np.asarray(mag, float))
        else:
            self._integrate(float(gyr[0]), float(gyr[1]), float(gyr[2]),
                            float(acc[0]), float(acc[1]), float(acc[2]))
        if self.count % self.decimation == 0:
            self._predict_cov()
            self._classify_field(_qmat(self.q), np.asarray(mag, float), self.dt * self.decimation)
            self._correct(np.asarray(gyr, float), np.asarray(acc, float), np.asarray(mag, float))
        self.count += 1
        return self.q

    def run(self, gyr: np.ndarray, acc: np.ndarray, mag: np.ndarray, *,
            store: bool = False) -> tuple[np.ndarray, Optional[FilterTrace]]:
        """Filter a whole recording (Nx3 arrays); returns (quat Nx4, trace if ``store``)."""
        gyr, acc, mag = _check_arrays(gyr, acc, mag)
        n = gyr.shape[0]
        out = np.empty((n, 4))
        d = self.decimation
        if self.q is not None and self.count % d != 0:
            raise ValueError("run() must start on a filter step boundary (after reset())")
        steps = np.arange(0, n, d)
        tr = None
        if store:
            m = len(steps)
            tr = FilterTrace(steps, np.empty((m, 4)), np.empty((m, 7)),
                             np.empty((m, 4)), np.empty((m, 7)), np.empty((m, NS, NS)),
                             np.empty((m, NS, NS)), np.zeros((m, 3, 3)), np.zeros(m, bool),
                             np.zeros(m, bool))
        glist = gyr.tolist()
        alist = acc.tolist()
        for k in range(n):
            if self.q is None:
                self._initialise(acc[k], mag[k])
            else:
                g = glist[k]
                a = alist[k]
                self._integrate(g[0], g[1], g[2], a[0], a[1], a[2])
            if k % d == 0:
                j = k // d
                phi = self._predict_cov()
                # Field classification first: a disturbance's offset jump (covariance inflation)
                # then belongs to this step's prior, as process noise, for the smoother.
                self._classify_field(_qmat(self.q), mag[k], self.dt * d)
                if tr is not None:
                    tr.reset[j] = self._was_reset
                self._was_reset = False
                if tr is not None:
                    tr.p_prior[j] = self.P
                    tr.phi_m[j] = phi
                    tr.quat_prior[j] = self.q
                    tr.bias_prior[j, :3] = self.bg
                    tr.bias_prior[j, 3:6] = self.bm
                    tr.bias_prior[j, 6] = self.psi
                self._correct(gyr[k], acc[k], mag[k])
                if tr is not None:
                    tr.quat[j] = self.q
                    tr.bias[j, :3] = self.bg
                    tr.bias[j, 3:6] = self.bm
                    tr.bias[j, 6] = self.psi
                    tr.p_post[j] = self.P
                    tr.disturbed[j] = self.disturbed
            out[k] = self.q
            self.count += 1
        return out, tr


def _check_arrays(gyr: Any, acc: Any, mag: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrs = []
    for name, a in (("gyr", gyr), ("acc", acc), ("mag", mag)):
        a = np.asarray(a, dtype=float)
        if a.ndim != 2 or a.shape[1] != 3:
            raise ValueError(f"{name} must be Nx3, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or infinite values")
        arrs.append(a)
    n = arrs[0].shape[0]
    if n == 0 or any(a.shape[0] != n for a in arrs):
        raise ValueError("gyr, acc and mag must have the same non-zero number of rows")
    return arrs[0], arrs[1], arrs[2]


def _params(options: dict) -> HostFilterParams:
    """HostFilterParams from keyword options (unknown options, e.g. the CLI's chip=, ignored)."""
    params = options.get("params")
    if params is None:
        params = HostFilterParams()
    elif not isinstance(params, HostFilterParams):
        raise ValueError("params must be a HostFilterParams")
    fields = {k: v for k, v in options.items() if k in HostFilterParams.__dataclass_fields__}
    return replace(params, **fields) if fields else params


def run_host(rec: Recording, **options: Any) -> np.ndarray:
    """Online host EKF over a recording: quat Nx4 (w, x, y, z), sensor-to-earth, ENU.

    Keyword options: ``params=HostFilterParams(...)`` or individual parameter fields; other
    options (such as the CLI's ``chip``) are ignored.
    """
    quat, _ = HostEKF(rec.fs, _params(options)).run(rec.gyr, rec.acc, rec.mag)
    return quat


try:  # register with the filter registry when it exists (owned by the fusion CLI)
    from trackside.fusion.registry import register_filter
except ImportError:  # pragma: no cover - registry not present
    pass
else:
    register_filter("host", run_host, "host float error-state EKF, 9D (gyro bias, hard-iron offset, "
                    "local field heading; magnetic disturbance modes)")
