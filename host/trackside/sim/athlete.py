"""Kinematic simulated athlete with known truth, and ideal IMU signals for virtual sensors.

Frames: earth ENU (x east, y north, z up), quaternions (w, x, y, z) mapping segment (or sensor)
vectors to earth. Segment frames follow :mod:`trackside.kinematics.skeleton`: x forward, y left,
z up in the standing pose, so every segment quaternion equals the heading rotation while the
athlete stands.

Usage::

    from trackside.sim.athlete import SimulatedAthlete, ImuNoise
    ath = SimulatedAthlete(speed_mps=3.3, step_freq_hz=2.8, contact_s=0.22, heading_deg=30)
    mo = ath.simulate(duration_s=20.0, fs=200.0)
    mo.time_s, mo.segment_quats["left_thigh"], mo.segment_pos["left_foot"]   # truth
    mo.truth.steps[0]     # {'side': 'left', 'touchdown_s': ..., 'toeoff_s': ..., ...}
    imu = mo.imu("left_foot", mount=(0.7071, 0, 0, 0.7071), offset_m=(0.05, 0, 0.03),
                 noise=ImuNoise(gyr_std=0.005, gyr_bias=0.01, seed=1))
    imu["gyr"], imu["acc"], imu["mag"], imu["fs"], imu["quat"]   # rad/s, m/s^2, uT, Hz, truth

Timeline: ``stand_s`` seconds standing still (the calibration pose), then a ``blend_s`` smooth
start (the speed ramps from 0 with a minimum-jerk weight, posture blends into the running
pattern, each foot makes real steps from its standing position, the first ones shorter), then
steady running. Truth steps are listed from the end of the blend on.

The gait model: flat-foot stance (the foot is exactly still from touchdown to toe-off, so a
foot IMU's zero-velocity intervals are the true contacts), minimum-jerk swing with a lift and a
plantar-flexion bump, pelvis moving at constant speed with a vertical oscillation, legs solved
by two-link inverse kinematics (knees forward; while running the hip-ankle distance is softly
limited below full reach so the knee never locks straight; where a swing foot is beyond that,
the leg points at it and the shank end misses the ankle: in early and late swing, by up to
~11 cm jogging and ~25 cm sprinting, because a minimum-jerk swing leaves the foot behind /
ahead of the hip longer than a real foot; segment orientations, the foot trajectory and every
sensor signal stay exact and self-consistent), counter-rotating trunk and arm swing. Because
the foot never rolls, the knee flexes more than in real running; the truth is exact and
self-consistent, which is what it is for. Each footprint lies under the hip at mid-stance
(the same assumption :mod:`trackside.kinematics.gait` uses to split a stride into steps, so
its step lengths are checked against this model, not independently of it). Optional per-step
timing jitter and left/right contact-time asymmetry.

IMU synthesis: ``simulate`` builds the motion at an integer multiple of ``fs`` (>= 1 kHz),
differentiates there (central differences) and decimates, so kinks such as the foot's jerk at
touchdown do not ring into neighbouring samples. :class:`Motion` itself (e.g. from a BVH clip)
differentiates with rotation and cubic splines.

Truth (``Motion.truth``, :class:`GaitTruth`), per step (contralateral touchdown to touchdown):
side, touchdown_s, toeoff_s, contact_s, flight_s (previous toe-off to this touchdown),
step_time_s, step_freq_hz (1/step_time), step_length_m (footprint distance along the heading
from the previous, opposite footprint), footprint (x, y).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, RotationSpline

from trackside.kinematics.quat import from_rot, qconj, qmul, rotate, to_rot
from trackside.kinematics.skeleton import Skeleton

__all__ = ["GRAVITY", "ImuNoise", "MagField", "GaitTruth", "Motion", "SimulatedAthlete", "min_jerk", "bump"]

GRAVITY = 9.81


def min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk 0 -> 1 profile on s in [0, 1] (zero velocity and acceleration at both ends)."""
    s = np.clip(s, 0.0, 1.0)
    return s * s * s * (10.0 - 15.0 * s + 6.0 * s * s)


def bump(s: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 bump on [0, 1], flat to second order at both ends (64 s^3 (1-s)^3)."""
    s = np.clip(s, 0.0, 1.0)
    return 64.0 * s**3 * (1.0 - s) ** 3


@dataclass
class ImuNoise:
    """Sensor imperfections; all default to zero (ideal sensor). Seeded for reproducibility.

    gyr_std rad/s white noise, gyr_bias rad/s std of a constant per-axis bias, acc_std m/s^2,
    acc_bias m/s^2, mag_std uT.
    """

    gyr_std: float = 0.0
    gyr_bias: float = 0.0
    acc_std: float = 0.0
    acc_bias: float = 0.0
    mag_std: float = 0.0
    seed: int | None = None


@dataclass
class MagField:
    """Earth magnetic field (uT, inclination in degrees, positive down) plus an optional local
    disturbance: a constant earth-frame vector added between ``disturb_from_s`` and ``disturb_to_s``."""

    strength_ut: float = 49.0
    inclination_deg: float = 67.0
    disturbance_ut: tuple[float, float, float] = (0.0, 0.0, 0.0)
    disturb_from_s: float = 0.0
    disturb_to_s: float = 0.0

    def earth_vector(self) -> np.ndarray:
        inc = np.radians(self.inclination_deg)
        return self.strength_ut * np.array([0.0, np.cos(inc), -np.sin(inc)])


@dataclass
class GaitTruth:
    """Known gait of a simulated run (see module docstring)."""

    steps: list[dict] = field(default_factory=list)
    heading_rad: float = 0.0
    steady_from_s: float = 0.0

    def for_side(self, side: str) -> list[dict]:
        return [s for s in self.steps if s["side"] == side]


class Motion:
    """Sampled segment motion (truth) with ideal IMU synthesis.

    Attributes: ``time_s`` (N,), ``fs``, ``segment_quats`` {name: (N, 4)}, ``segment_pos``
    {name: (N, 3) segment origin, earth frame, m}, ``skeleton``, ``truth`` (or None),
    ``stand_s`` (length of the initial standing pose), ``heading_rad``.
    """

    def __init__(self, time_s: np.ndarray, segment_quats: dict, segment_pos: dict, skeleton: Skeleton,
                 truth: GaitTruth | None = None, stand_s: float = 0.0, heading_rad: float = 0.0,
                 derivatives: str = "spline") -> None:
        if derivatives not in ("spline", "central"):
            raise ValueError("derivatives must be 'spline' or 'central'")
        self.derivatives = derivatives
        self.time_s = np.asarray(time_s, dtype=float)
        self.fs = float(1.0 / np.median(np.diff(self.time_s)))
        self.segment_quats = segment_quats
        self.segment_pos = segment_pos
        self.skeleton = skeleton
        self.truth = truth
        self.stand_s = float(stand_s)
        self.heading_rad = float(heading_rad)
        self._rate_cache: dict[str, np.ndarray] = {}
        self._hires: Motion | None = None
        self._step = 1

    def with_hires(self, hires: "Motion", step: int) -> "Motion":
        """Synthesize IMU signals on ``hires`` (sampled ``step`` times faster) and decimate.

        Differentiating splines through kinks (e.g. a foot's jerk at touchdown) rings for a
        sample or two; doing it at a higher rate keeps that ringing within a millisecond.
        """
        self._hires = hires
        self._step = int(step)
        return self

    def __len__(self) -> int:
        return len(self.time_s)

    def angular_rate(self, segment: str) -> np.ndarray:
        """Segment angular velocity in the segment frame (rad/s), from a rotation spline."""
        if segment not in self._rate_cache:
            q = self.segment_quats[segment]
            if self.derivatives == "central":
                self._rate_cache[segment] = _central_rate(q, self.time_s)
            else:
                spl = RotationSpline(self.time_s, to_rot(q))
                self._rate_cache[segment] = spl(self.time_s, 1)
        return self._rate_cache[segment]

    def imu(self, segment: str, mount=(1.0, 0.0, 0.0, 0.0), offset_m=(0.0, 0.0, 0.0),
            noise: ImuNoise | None = None, mag: MagField | None = None) -> dict:
        """Ideal (optionally noisy) IMU on ``segment``.

        ``mount``: sensor-to-segment quaternion (w, x, y, z); ``offset_m``: sensor position in the
        segment frame. Returns ``gyr`` rad/s, ``acc`` m/s^2 (specific force, includes gravity:
        +9.81 on the up axis at rest), ``mag`` uT (sensor frame), ``quat`` truth sensor-to-earth,
        ``fs``, ``time_s``.
        """
        if segment not in self.segment_quats:
            raise KeyError(f"no segment {segment!r} in this motion")
        if self._hires is not None:
            hi = self._hires.imu(segment, mount, offset_m, None, mag)
            k = self._step
            res = {key: (val[::k] if isinstance(val, np.ndarray) else val) for key, val in hi.items()}
            res["fs"] = self.fs
            res["time_s"] = self.time_s.copy()
            return _add_noise(res, noise, len(self.time_s))
        mount = np.asarray(mount, dtype=float)
        mount = mount / np.linalg.norm(mount)
        q_seg = self.segment_quats[segment]
        q_s = qmul(q_seg, mount)
        pos = self.segment_pos[segment] + rotate(q_seg, np.asarray(offset_m, dtype=float))
        if self.derivatives == "central":
            acc_e = np.gradient(np.gradient(pos, self.time_s, axis=0, edge_order=2), self.time_s, axis=0,
                                edge_order=2)
        else:
            acc_e = CubicSpline(self.time_s, pos, axis=0)(self.time_s, 2)
        acc_e[:, 2] += GRAVITY
        r_s = to_rot(q_s)
        gyr = to_rot(mount).inv().apply(self.angular_rate(segment))
        acc = r_s.inv().apply(acc_e)
        mf = mag or MagField()
        m_e = np.broadcast_to(mf.earth_vector(), acc.shape).copy()
        if any(mf.disturbance_ut):
            sel = (self.time_s >= mf.disturb_from_s) & (self.time_s < mf.disturb_to_s)
            m_e[sel] += np.asarray(mf.disturbance_ut)
        magv = r_s.inv().apply(m_e)
        res = {"gyr": gyr, "acc": acc, "mag": magv, "quat": q_s, "fs": self.fs, "time_s": self.time_s.copy()}
        return _add_noise(res, noise, len(self.time_s))


def _central_rate(q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Body-frame angular rate by central differences of orientation (one-sided at the ends)."""
    w = np.empty((len(q), 3))
    w[1:-1] = to_rot(qmul(qconj(q[:-2]), q[2:])).as_rotvec() / (t[2:] - t[:-2])[:, None]
    w[0] = to_rot(qmul(qconj(q[0]), q[1])).as_rotvec() / (t[1] - t[0])
    w[-1] = to_rot(qmul(qconj(q[-2]), q[-1])).as_rotvec() / (t[-1] - t[-2])
    return w


def _add_noise(res: dict, noise: ImuNoise | None, n: int) -> dict:
    if noise is None:
        return res
    rng = np.random.default_rng(noise.seed)
    for key, bias, std in (("gyr", noise.gyr_bias, noise.gyr_std), ("acc", noise.acc_bias, noise.acc_std),
                           ("mag", 0.0, noise.mag_std)):
        if bias or std:
            res[key] = res[key] + rng.normal(0, bias, 3) + rng.normal(0, std, (n, 3))
    return res


def _rot_y(a: np.ndarray) -> Rotation:
    return Rotation.from_rotvec(np.outer(a, [0.0, 1.0, 0.0]))


def _rot_z(a: np.ndarray) -> Rotation:
    return Rotation.from_rotvec(np.outer(a, [0.0, 0.0, 1.0]))


def _rot_x(a: np.ndarray) -> Rotation:
    return Rotation.from_rotvec(np.outer(a, [1.0, 0.0, 0.0]))


def _frame_from_zy(z: np.ndarray, y_hint: np.ndarray) -> Rotation:
    """Rotation whose z column is ``z`` and whose y column is ``y_hint`` made orthogonal."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    y = y_hint - np.sum(y_hint * z, axis=1, keepdims=True) * z
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    x = np.cross(y, z)
    return Rotation.from_matrix(np.stack([x, y, z], axis=2))


class SimulatedAthlete:
    """Parameters of a simulated run; :meth:`simulate` samples it (see module docstring).

    Defaults are a jog (3.3 m/s, 2.8 steps/s, 0.22 s contact). ``sprint()`` gives a sprint preset.
    ``jitter`` is the std of each step time as a fraction of the mean; ``asymmetry`` makes the
    left contact ``(1 + asymmetry/2)`` and the right ``(1 - asymmetry/2)`` times ``contact_s``.
    """

    def __init__(self, height_m: float = 1.80, speed_mps: float = 3.3, step_freq_hz: float = 2.8,
                 contact_s: float = 0.22, heading_deg: float = 0.0, start_xy=(0.0, 0.0),
                 stand_s: float = 2.0, blend_s: float = 1.0, jitter: float = 0.0, asymmetry: float = 0.0,
                 pelvis_bob_m: float = 0.04, foot_lift_m: float = 0.25, seed: int = 0,
                 skeleton: Skeleton | None = None) -> None:
        if speed_mps <= 0 or step_freq_hz <= 0:
            raise ValueError("speed_mps and step_freq_hz must be positive")
        if not (0.05 <= contact_s < 0.95 / step_freq_hz):
            raise ValueError(f"contact_s must be in [0.05, step time) s, got {contact_s!r}")
        if not (0 <= asymmetry < 0.5) or not (0 <= jitter < 0.1):
            raise ValueError("asymmetry must be in [0, 0.5) and jitter in [0, 0.1)")
        self.skeleton = skeleton or Skeleton.from_height(height_m)
        self.speed = float(speed_mps)
        self.step_freq = float(step_freq_hz)
        self.contact = float(contact_s)
        self.heading = np.radians(heading_deg)
        self.start_xy = np.asarray(start_xy, dtype=float)
        self.stand_s = float(stand_s)
        self.blend_s = float(blend_s)
        self.jitter = float(jitter)
        self.asymmetry = float(asymmetry)
        self.bob = float(pelvis_bob_m)
        self.lift = float(foot_lift_m)
        self.seed = seed

    @classmethod
    def sprint(cls, **kw) -> "SimulatedAthlete":
        """Sprint preset: 8.5 m/s, 4.4 steps/s, 0.11 s contact."""
        base = dict(speed_mps=8.5, step_freq_hz=4.4, contact_s=0.11, pelvis_bob_m=0.03, foot_lift_m=0.35)
        base.update(kw)
        return cls(**base)

    def _progress(self, t: np.ndarray) -> np.ndarray:
        """Distance along the heading: speed ramps 0 -> v with the minimum-jerk blend weight
        (closed-form integral of it), then steady."""
        v, t0, b = self.speed, self.stand_s, self.blend_s
        if b <= 0:
            return v * np.maximum(t - t0, 0.0)
        s = (np.asarray(t, float) - t0) / b
        sc = np.clip(s, 0.0, 1.0)
        ramp = 2.5 * sc**4 - 3.0 * sc**5 + sc**6
        return v * b * np.where(s > 1.0, s - 0.5, ramp)

    # --- the step plan -------------------------------------------------------------------
    def _steps(self, t_end: float) -> list[dict]:
        rng = np.random.default_rng(self.seed)
        T = 1.0 / self.step_freq
        t = self.stand_s - 3 * T
        steps = []
        i = 0
        while t < t_end + 3 * T:
            side = "left" if i % 2 == 0 else "right"
            tc = self.contact * (1 + (self.asymmetry / 2 if side == "left" else -self.asymmetry / 2))
            steps.append({"side": side, "touchdown_s": t, "contact_s": tc, "toeoff_s": t + tc})
            dt = T * (1 + self.jitter * rng.standard_normal()) if self.jitter else T
            t += dt
            i += 1
        return steps

    def simulate(self, duration_s: float = 20.0, fs: float = 200.0, imu_rate_min_hz: float = 1000.0) -> Motion:
        """Sample the run at ``fs`` Hz for ``duration_s`` seconds (including the standing start).

        IMU signals are synthesized at an integer multiple of ``fs`` of at least
        ``imu_rate_min_hz`` and decimated (instantaneous samples, as a sensor's sampling).
        """
        if fs <= 0 or duration_s <= 0:
            raise ValueError("fs and duration_s must be positive")
        k = int(np.ceil(imu_rate_min_hz / fs)) if imu_rate_min_hz > fs else 1
        if k == 1:
            return self._simulate(duration_s, fs)
        hi = self._simulate(duration_s, fs * k)
        hi.derivatives = "central"  # at >= 1 kHz central differences are accurate and fast
        lo = Motion(hi.time_s[::k], {a: b[::k] for a, b in hi.segment_quats.items()},
                    {a: b[::k] for a, b in hi.segment_pos.items()}, hi.skeleton, truth=hi.truth,
                    stand_s=hi.stand_s, heading_rad=hi.heading_rad)
        return lo.with_hires(hi, k)

    def _simulate(self, duration_s: float, fs: float) -> Motion:
        if fs <= 0 or duration_s <= 0:
            raise ValueError("fs and duration_s must be positive")
        if duration_s < self.stand_s + self.blend_s:
            raise ValueError("duration_s must cover stand_s + blend_s")
        sk = self.skeleton
        L = sk.lengths_m
        n = int(round(duration_s * fs))
        t = np.arange(n) / fs
        steps = self._steps(duration_s)
        v = self.speed
        t0 = self.stand_s
        # pelvis progression along the heading; footprints under the hip at mid-stance
        mids = np.array([s["touchdown_s"] + s["contact_s"] / 2 for s in steps])
        for s, m in zip(steps, mids):
            s["footprint_along"] = float(self._progress(np.array([m]))[0])
        # step phase: integer at each mid-stance, linear between
        phase = np.interp(t, mids, np.arange(len(mids)))
        # pelvis height: lowest at mid-stance; mean chosen so the stance leg always reaches
        leg = L["thigh"] + L["shank"]
        ha = L["ankle_height"]
        c_max = sk.pelvis_height_m - self.bob
        for s in steps:
            d = v * s["contact_s"] / 2
            T_loc = 1.0 / self.step_freq
            z_lim = ha + np.sqrt((0.995 * leg) ** 2 - d * d)
            c_max = min(c_max, z_lim + self.bob * np.cos(np.pi * s["contact_s"] / T_loc))
        z_run = c_max - self.bob * np.cos(2 * np.pi * phase)

        # blend weight standing -> running
        w = min_jerk((t - t0) / self.blend_s) if self.blend_s > 0 else (t >= t0).astype(float)
        along = self._progress(t)  # the pelvis speeds up smoothly: v times the blend weight
        ch, sh = np.cos(self.heading), np.sin(self.heading)
        fwd = np.array([ch, sh, 0.0])
        left = np.array([-sh, ch, 0.0])
        origin = np.array([self.start_xy[0], self.start_xy[1], 0.0])
        heading_rot = Rotation.from_rotvec([0, 0, self.heading])

        # feet: stance fixed at the footprint, min-jerk swing between footprints of the same side
        hw = L["hip_width"] / 2
        feet = {}
        for side in ("left", "right"):
            mine = [s for s in steps if s["side"] == side]
            # the foot stands at the standing position (along 0) until its first toe-off after
            # the standing phase; the first swing goes from there to the pattern's next footprint
            k0 = next(i for i, s_ in enumerate(mine) if s_["toeoff_s"] >= t0)
            mine = mine[k0:]
            mine[0] = dict(mine[0], footprint_along=0.0)
            run_along = np.zeros(n)
            run_z = np.full(n, ha)
            pitch = np.zeros(n)
            for a, b in zip(mine[:-1], mine[1:]):
                st = (t >= a["touchdown_s"]) & (t < a["toeoff_s"])
                run_along[st] = a["footprint_along"]
                sw = (t >= a["toeoff_s"]) & (t < b["touchdown_s"])
                s_ = (t[sw] - a["toeoff_s"]) / (b["touchdown_s"] - a["toeoff_s"])
                run_along[sw] = a["footprint_along"] + (b["footprint_along"] - a["footprint_along"]) * min_jerk(s_)
                # heel kick: the lift peaks early in the swing (s = 1/3), flat to 2nd order at both ends
                run_z[sw] = ha + self.lift * _early_bump(s_)
                pitch[sw] = np.radians(35.0) * _early_bump(s_)
            last = mine[-1]
            run_along[t >= last["touchdown_s"]] = last["footprint_along"]
            feet[side] = (run_along, run_z, pitch)
        # where an early-swing foot is still out of reach, the leg is straight and points at it
        # (the truth orientations stay exact; only the foot-to-shank closure opens by a few cm)
        z_pel = (1 - w) * sk.pelvis_height_m + w * z_run
        pel_pos = origin + along[:, None] * fwd + z_pel[:, None] * np.array([0, 0, 1.0])

        # pelvis orientation (relative to heading): yaw with the stride, roll, forward lean
        stride_ang = np.pi * phase  # 0 at left mid-stance, pi at right mid-stance
        pel_rel = _rot_z(w * np.radians(5.0) * np.sin(stride_ang)) * _rot_x(
            w * np.radians(3.0) * np.cos(2 * np.pi * phase)) * _rot_y(w * np.radians(4.0))
        pel_r = heading_rot * pel_rel

        quats: dict[str, np.ndarray] = {}
        pos: dict[str, np.ndarray] = {}
        quats["pelvis"] = from_rot(pel_r)
        pos["pelvis"] = pel_pos

        # trunk, head, arms: relative rotations scaled by the blend weight
        thor_rel = _rot_z(-w * np.radians(12.0) * np.sin(stride_ang)) * _rot_y(w * np.radians(6.0))
        thor_r = pel_r * thor_rel
        quats["thorax"] = from_rot(thor_r)
        pos["thorax"] = pel_pos + pel_r.apply(sk.segment("thorax").offset_m)
        head_r = thor_r * _rot_z(w * np.radians(7.0) * np.sin(stride_ang)) * _rot_y(-w * np.radians(10.0))
        quats["head"] = from_rot(head_r)
        pos["head"] = pos["thorax"] + thor_r.apply(sk.segment("head").offset_m)
        for side, sgn in (("left", 1.0), ("right", -1.0)):
            sh_flex = w * sgn * np.radians(35.0) * np.sin(stride_ang)
            ua_r = thor_r * _rot_y(-sh_flex) * _rot_x(sgn * w * np.radians(8.0))
            fa_r = ua_r * _rot_y(-w * np.radians(85.0 + sgn * 15.0 * np.sin(stride_ang)))
            ha_r = fa_r * _rot_x(-sgn * w * np.radians(10.0))
            pos[f"{side}_upper_arm"] = pos["thorax"] + thor_r.apply(sk.segment(f"{side}_upper_arm").offset_m)
            pos[f"{side}_forearm"] = pos[f"{side}_upper_arm"] + ua_r.apply(sk.segment(f"{side}_forearm").offset_m)
            pos[f"{side}_hand"] = pos[f"{side}_forearm"] + fa_r.apply(sk.segment(f"{side}_hand").offset_m)
            quats[f"{side}_upper_arm"] = from_rot(ua_r)
            quats[f"{side}_forearm"] = from_rot(fa_r)
            quats[f"{side}_hand"] = from_rot(ha_r)

        for side, sgn in (("left", 1.0), ("right", -1.0)):
            run_along, run_z, pitch = feet[side]
            ankle = origin + run_along[:, None] * fwd + sgn * hw * left + run_z[:, None] * np.array([0, 0, 1.0])
            foot_r = heading_rot * _rot_y(pitch)
            hip = pel_pos + pel_r.apply(np.array(sk.segment(f"{side}_thigh").offset_m))
            thigh_r, shank_r, knee = _leg_ik(hip, ankle, fwd, left, L["thigh"], L["shank"], w)
            quats[f"{side}_thigh"] = from_rot(thigh_r)
            quats[f"{side}_shank"] = from_rot(shank_r)
            quats[f"{side}_foot"] = from_rot(foot_r)
            pos[f"{side}_thigh"] = hip
            pos[f"{side}_shank"] = knee
            pos[f"{side}_foot"] = ankle

        truth = self._truth(steps, fwd, left, origin, t0 + self.blend_s, duration_s)
        ordered_q = {name: quats[name] for name in sk.names()}
        ordered_p = {name: pos[name] for name in sk.names()}
        return Motion(t, ordered_q, ordered_p, sk, truth=truth, stand_s=self.stand_s, heading_rad=self.heading)

    def _truth(self, steps, fwd, left, origin, steady_from, t_end) -> GaitTruth:
        hw = self.skeleton.lengths_m["hip_width"] / 2
        out = []
        for prev, s in zip(steps[:-1], steps[1:]):
            if s["touchdown_s"] < steady_from or prev["touchdown_s"] < steady_from or s["toeoff_s"] > t_end:
                continue
            sgn = 1.0 if s["side"] == "left" else -1.0
            fp = origin + s["footprint_along"] * fwd + sgn * hw * left
            step_time = s["touchdown_s"] - prev["touchdown_s"]
            out.append({
                "side": s["side"],
                "touchdown_s": s["touchdown_s"],
                "toeoff_s": s["toeoff_s"],
                "contact_s": s["contact_s"],
                "flight_s": s["touchdown_s"] - prev["toeoff_s"],
                "step_time_s": step_time,
                "step_freq_hz": 1.0 / step_time,
                "step_length_m": s["footprint_along"] - prev["footprint_along"],
                "footprint": (float(fp[0]), float(fp[1])),
            })
        return GaitTruth(out, heading_rad=float(self.heading), steady_from_s=float(steady_from))


def _early_bump(s: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 on [0, 1] peaking at s = 1/3, flat to second order at both ends."""
    s = np.clip(s, 0.0, 1.0)
    return s**3 * (1.0 - s) ** 6 / ((1 / 3) ** 3 * (2 / 3) ** 6)


def _soft_reach(x: np.ndarray, x0: float = 0.95, k: float = 0.993) -> np.ndarray:
    """Identity below x0, then a smooth (C1) approach to k < 1: the knee never locks straight,
    which would give the knee an infinite angular rate (arccos at full extension)."""
    y = np.array(x, dtype=float)
    hi = y > x0
    y[hi] = k - (k - x0) * np.exp(-(y[hi] - x0) / (k - x0))
    return y


def _leg_ik(hip, ankle, fwd, left, l1, l2, w=None):
    """Two-link leg: thigh and shank rotations and knee position, knee bending forward.

    While running (blend weight ``w`` = 1) the hip-ankle distance is softly limited below full
    reach; standing (``w`` = 0) the leg is straight. Where the foot is further away than that,
    the leg points at it without reaching it.
    """
    D = ankle - hip
    d = np.linalg.norm(D, axis=1)
    L = l1 + l2
    d_c = np.minimum(d, L)
    if w is not None:
        d_c = (1 - w) * d_c + w * L * _soft_reach(d / L)
    u = D / d[:, None]
    nvec = fwd[None, :] - np.sum(fwd * u, axis=1, keepdims=True) * u
    nvec /= np.linalg.norm(nvec, axis=1, keepdims=True)
    cos_a = np.clip((l1 * l1 + d_c * d_c - l2 * l2) / (2 * l1 * d_c), -1.0, 1.0)
    a = np.arccos(cos_a)
    knee = hip + l1 * (np.cos(a)[:, None] * u + np.sin(a)[:, None] * nvec)
    y_hint = np.broadcast_to(left, hip.shape)
    thigh_r = _frame_from_zy(hip - knee, y_hint)
    # shank: from the knee to the solved ankle point (the real ankle when within reach)
    ankle_solved = hip + d_c[:, None] * u
    shank_r = _frame_from_zy(knee - ankle_solved, y_hint)
    return thigh_r, shank_r, knee
