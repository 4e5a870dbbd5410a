"""Motion source driven by a BVH clip (e.g. the CMU running clips), same outputs as the athlete.

Usage::

    from trackside.sim.bvh_motion import BvhMotion
    mo = BvhMotion("/work/shared/data/mocap/09_02.bvh").simulate(duration_s=12.0, fs=200.0)
    mo.segment_quats["left_shank"]; mo.imu("left_shank", mount=q_mount)   # as trackside.sim.athlete

What it does:

- parses the clip (:mod:`trackside.bvh.parser`), skips the first motion row (the database's
  reference pose), converts CMU units to metres (1 unit = 1/0.45 inch = 0.05644 m);
- loops the clip for as long as needed: the last ``blend_frames`` frames are cross-faded (slerp for
  joint rotations, linear for the root, the root advanced by the clip's mean displacement) into
  the first ones, so the loop has no jump at the junction;
- maps BVH joints to the Trackside segments (Hips -> pelvis, Spine1 -> thorax, Head, LeftArm ->
  left_upper_arm, LeftForeArm, LeftHand, LeftUpLeg -> left_thigh, LeftLeg -> left_shank,
  LeftFoot -> left_foot, and right; other skeletons' names through ``JOINT_ALIASES``, e.g.
  Mixamo's ``mixamorig:LeftUpLeg``; ``unit_m`` gives the file's length unit) with a constant
  per-segment rotation (from the rest-pose bone directions) that makes each
  segment frame x forward / y left / z up (along the bone) in an upright standing pose;
  the clip is low-pass filtered (zero phase; positions 10 Hz, orientations 15 Hz) because
  mocap noise explodes in second derivatives;
  the BVH world (Y up, runner travelling along its mean displacement) is turned into ENU with
  the athlete heading ``heading_deg``;
- prepends ``stand_s`` seconds of that standing pose (every segment = heading frame) and a
  ``blend_s`` minimum-jerk blend into the run;
- resamples to ``fs`` with rotation and cubic splines; IMU signals come from
  :meth:`trackside.sim.athlete.Motion.imu` (spline derivatives).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.signal import butter, filtfilt
from scipy.spatial.transform import Rotation, RotationSpline

from trackside.bvh.parser import BvhClip, read_bvh
from trackside.kinematics.quat import from_rot
from trackside.kinematics.skeleton import Skeleton
from trackside.sim.athlete import Motion, min_jerk

__all__ = ["CMU_UNIT_M", "SEGMENT_JOINTS", "JOINT_ALIASES", "BvhMotion"]

CMU_UNIT_M = 0.0254 / 0.45

#: segment -> (BVH joint giving rotation and position, joint or "end" the bone points to, bone is "up")
#: (the names of the CMU BVH conversion; other skeletons are matched through ``JOINT_ALIASES``)
SEGMENT_JOINTS: dict[str, tuple[str, str, bool]] = {
    "pelvis": ("Hips", "", True),
    "thorax": ("Spine1", "Neck1", True),
    "head": ("Head", "end", True),
    "left_upper_arm": ("LeftArm", "LeftForeArm", False),
    "left_forearm": ("LeftForeArm", "LeftHand", False),
    "left_hand": ("LeftHand", "LeftHandIndex1", False),
    "right_upper_arm": ("RightArm", "RightForeArm", False),
    "right_forearm": ("RightForeArm", "RightHand", False),
    "right_hand": ("RightHand", "RightHandIndex1", False),
    "left_thigh": ("LeftUpLeg", "LeftLeg", False),
    "left_shank": ("LeftLeg", "LeftFoot", False),
    "left_foot": ("LeftFoot", "LeftToeBase", False),
    "right_thigh": ("RightUpLeg", "RightLeg", False),
    "right_shank": ("RightLeg", "RightFoot", False),
    "right_foot": ("RightFoot", "RightToeBase", False),
}

#: alternative joint names per segment (first match wins; a "prefix:" such as mixamorig: is ignored)
JOINT_ALIASES: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips", "Pelvis", "Root"),
    "thorax": ("Spine1", "Spine2", "Chest", "UpperChest", "Spine"),
    "head": ("Head",),
}
for _side, _S in (("left", "Left"), ("right", "Right")):
    JOINT_ALIASES.update({
        f"{_side}_upper_arm": (f"{_S}Arm", f"{_S}UpperArm"),
        f"{_side}_forearm": (f"{_S}ForeArm", f"{_S}LowerArm"),
        f"{_side}_hand": (f"{_S}Hand",),
        f"{_side}_thigh": (f"{_S}UpLeg", f"{_S}UpperLeg", f"{_S}Thigh"),
        f"{_side}_shank": (f"{_S}Leg", f"{_S}LowerLeg", f"{_S}Shin"),
        f"{_side}_foot": (f"{_S}Foot",),
    })

# segment axes (x fwd, y left, z up) expressed in BVH axes (X left, Y up, Z forward)
_C0 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


def _resolve_joints(clip: BvhClip) -> dict[str, int | None]:
    """Segment -> joint index, matching ``JOINT_ALIASES`` (case-insensitive, prefix-free)."""
    names = {}
    for i, j in enumerate(clip.joints):
        names.setdefault(j.name.split(":")[-1].lower(), i)
    out: dict[str, int | None] = {}
    for seg in SEGMENT_JOINTS:
        out[seg] = next((names[a.lower()] for a in JOINT_ALIASES[seg] if a.lower() in names), None)
    return out


def _align(a: np.ndarray, b: np.ndarray) -> Rotation:
    """Smallest rotation taking unit vector a onto unit vector b."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    ax = np.cross(a, b)
    s = np.linalg.norm(ax)
    c = float(np.dot(a, b))
    if s < 1e-12:
        if c > 0:
            return Rotation.identity()
        perp = np.cross(a, [1.0, 0, 0]) if abs(a[0]) < 0.9 else np.cross(a, [0, 1.0, 0])
        return Rotation.from_rotvec(np.pi * perp / np.linalg.norm(perp))
    return Rotation.from_rotvec(ax / s * np.arctan2(s, c))


class BvhMotion:
    """A looped, blended BVH clip as a :class:`~trackside.sim.athlete.Motion` source."""

    def __init__(self, path: str | Path, unit_m: float = CMU_UNIT_M, skip_first: bool = True,
                 blend_frames: int = 12, heading_deg: float = 0.0, start_xy=(0.0, 0.0),
                 stand_s: float = 2.0, blend_s: float = 1.0, pos_cutoff_hz: float = 10.0,
                 rot_cutoff_hz: float = 15.0) -> None:
        path = Path(path)
        self.pos_cutoff = float(pos_cutoff_hz)
        self.rot_cutoff = float(rot_cutoff_hz)
        if not path.exists():
            raise FileNotFoundError(f"BVH clip not found: {path}")
        clip = read_bvh(path)
        if skip_first:
            clip = BvhClip(clip.joints, clip.frame_time, clip.motion[1:])
        self.joint_of = _resolve_joints(clip)
        missing = [seg for seg, j in self.joint_of.items() if j is None]
        if missing:
            raise ValueError(f"{path.name}: no BVH joint found for the segments: {', '.join(missing)}")
        if len(clip.motion) < 3 * blend_frames:
            raise ValueError(f"{path.name}: too short to loop ({len(clip.motion)} frames)")
        self.clip = clip
        self.unit = float(unit_m)
        self.B = int(blend_frames)
        self.heading = np.radians(heading_deg)
        self.start_xy = np.asarray(start_xy, dtype=float)
        self.stand_s = float(stand_s)
        self.blend_s = float(blend_s)
        self._rest_pos = clip.forward_kinematics(
            [Rotation.identity(1) for _ in clip.joints], np.zeros((1, 3)))[1][0]
        self.skeleton = self._skeleton()

    # ---------------------------------------------------------------------------------------
    def _bone(self, seg: str) -> np.ndarray:
        """Rest-pose bone direction: to the first descendant (depth first) away from the joint,
        else the End Site."""
        c = self.clip
        if seg == "pelvis":
            return np.array([0.0, 1.0, 0.0])
        i = self.joint_of[seg]
        stack = list(reversed(c.joints[i].children))
        while stack:
            k = stack.pop()
            d = self._rest_pos[k] - self._rest_pos[i]
            if np.linalg.norm(d) > 1e-6:
                return d
            stack.extend(reversed(c.joints[k].children))
        end = c.joints[i].end_site
        return end if end is not None and np.linalg.norm(end) > 1e-9 else np.array([0.0, 1.0, 0.0])

    def _skeleton(self) -> Skeleton:
        u = self.unit
        bl = {s: float(np.linalg.norm(self._bone(s))) * u for s in SEGMENT_JOINTS}
        leg = (bl["left_thigh"] + bl["right_thigh"] + bl["left_shank"] + bl["right_shank"]) / 2
        height = leg / (0.530 - 0.039)
        c = self.clip
        hw = float(np.linalg.norm(self._rest_pos[self.joint_of["left_thigh"]]
                                  - self._rest_pos[self.joint_of["right_thigh"]])) * u
        lengths = {
            "thigh": (bl["left_thigh"] + bl["right_thigh"]) / 2,
            "shank": (bl["left_shank"] + bl["right_shank"]) / 2,
            "upper_arm": (bl["left_upper_arm"] + bl["right_upper_arm"]) / 2,
            "forearm": (bl["left_forearm"] + bl["right_forearm"]) / 2,
            "hip_width": hw,
        }
        return Skeleton.from_height(height, lengths=lengths)

    def _segment_offset(self, seg: str) -> Rotation:
        """Constant rotation from the segment frame to the joint's local BVH frame."""
        up = SEGMENT_JOINTS[seg][2]
        c0 = Rotation.from_matrix(_C0)
        if seg == "pelvis":
            return c0
        b = self._bone(seg)
        if seg.endswith("foot"):
            # only the heading of the foot bone: a flat foot stays flat
            b = np.array([b[0], 0.0, b[2]])
            return _align(np.array([0.0, 0.0, 1.0]), b) * c0
        target_dir = b if up else -b
        return _align(np.array([0.0, 1.0, 0.0]), target_dir) * c0

    def _looped(self, n_out: int):
        """Local rotations (per joint, n_out frames) and root positions of the looped clip."""
        c = self.clip
        n = len(c.motion)
        B = self.B
        m = n - B
        local = c.local_rotations()
        root = c.root_position()
        disp = np.mean(root[m:m + B] - root[:B], axis=0)
        disp[1] = 0.0
        w = (np.arange(B) + 0.5) / B
        per_rot = []
        for r in local:
            q = r.as_quat().copy()
            head, tail = r[:B], r[m:m + B]
            delta = (tail.inv() * head).as_rotvec()
            blended = tail * Rotation.from_rotvec(delta * w[:, None])
            q[:B] = blended.as_quat()
            per_rot.append(q[:m])
        per_root = root[:m].copy()
        per_root[:B] = (1 - w)[:, None] * (root[m:m + B] - disp) + w[:, None] * root[:B]
        idx = np.arange(n_out) % m
        lap = np.arange(n_out) // m
        rots = [Rotation.from_quat(q[idx]) for q in per_rot]
        rootp = per_root[idx] + lap[:, None] * disp[None, :]
        return rots, rootp, disp

    def simulate(self, duration_s: float = 10.0, fs: float = 200.0) -> Motion:
        """Standing pose, blend, then the looped clip; sampled at ``fs`` for ``duration_s`` s."""
        if fs <= 0 or duration_s <= self.stand_s + self.blend_s:
            raise ValueError("fs must be positive and duration_s longer than stand_s + blend_s")
        c = self.clip
        ft = c.frame_time
        run_s = duration_s - self.stand_s + 0.5
        n_run = int(np.ceil(run_s / ft)) + 4
        rots, rootp, disp = self._looped(n_run)
        glob, jpos = c.forward_kinematics(rots, rootp)
        # mocap marker noise explodes when differentiated twice: zero-phase low-pass the clip
        # (positions at pos_cutoff_hz, orientations at rot_cutoff_hz) before it drives sensors
        fs_clip = 1.0 / ft
        jpos = _lowpass(jpos, self.pos_cutoff, fs_clip) * self.unit
        glob = [_lowpass_rot(g, self.rot_cutoff, fs_clip) for g in glob]
        # BVH world -> ENU: mean displacement direction -> heading, BVH Y -> up
        d = disp / np.linalg.norm(disp)
        fwd_b = np.array([d[0], 0.0, d[2]])
        left_b = np.cross(np.array([0.0, 1.0, 0.0]), fwd_b)
        ch, sh = np.cos(self.heading), np.sin(self.heading)
        fwd_e, left_e, up_e = np.array([ch, sh, 0.0]), np.array([-sh, ch, 0.0]), np.array([0.0, 0.0, 1.0])
        # M maps BVH world vectors to ENU
        M = np.outer(fwd_e, fwd_b) + np.outer(left_e, left_b) + np.outer(up_e, [0.0, 1.0, 0.0])
        Mr = Rotation.from_matrix(M)
        t_run = self.stand_s + np.arange(n_run) * ft
        start = np.array([self.start_xy[0], self.start_xy[1], 0.0])
        ground = jpos[:, :, 1].min()  # lowest joint in the clip ~ ankle/toe height above ground
        seg_q_run: dict[str, Rotation] = {}
        seg_p_run: dict[str, np.ndarray] = {}
        l_up, r_up = self.joint_of["left_thigh"], self.joint_of["right_thigh"]
        for seg in SEGMENT_JOINTS:
            j = self.joint_of[seg]
            seg_q_run[seg] = Mr * glob[j] * self._segment_offset(seg)
            p = (jpos[:, l_up] + jpos[:, r_up]) / 2 if seg == "pelvis" else jpos[:, j]
            seg_p_run[seg] = p
        # ENU positions, the run starting at start_xy; ground at z = 0 (toe height taken as ~2 cm)
        root_h0 = seg_p_run["pelvis"][0].copy()
        for seg in seg_p_run:
            p = seg_p_run[seg] - root_h0 * np.array([1.0, 0.0, 1.0])
            p[:, 1] -= ground - 0.02
            seg_p_run[seg] = start + p @ M.T
        p0 = seg_p_run["pelvis"][0]

        # resample the run onto the output grid; standing + blend at segment level
        n = int(round(duration_s * fs))
        t = np.arange(n) / fs
        tr = np.clip(t, t_run[0], t_run[-1])
        w = min_jerk((t - self.stand_s) / self.blend_s) if self.blend_s > 0 else (t >= self.stand_s) * 1.0
        sk = self.skeleton
        heading_rot = Rotation.from_rotvec([0.0, 0.0, self.heading])
        stand_rel = sk.standing_positions()
        pel_stand = np.array([p0[0], p0[1], sk.pelvis_height_m])
        quats, pos = {}, {}
        for seg in sk.names():
            r_run = RotationSpline(t_run, seg_q_run[seg])(tr)
            p_run = CubicSpline(t_run, seg_p_run[seg], axis=0)(tr)
            stand_p = pel_stand + heading_rot.apply(stand_rel[seg] - stand_rel["pelvis"])
            delta = (heading_rot.inv() * r_run).as_rotvec()
            r = heading_rot * Rotation.from_rotvec(delta * w[:, None])
            quats[seg] = from_rot(r)
            pos[seg] = (1 - w)[:, None] * stand_p[None, :] + w[:, None] * p_run
        return Motion(t, quats, pos, sk, truth=None, stand_s=self.stand_s, heading_rad=self.heading)


def _lowpass(x: np.ndarray, cutoff_hz: float, fs: float) -> np.ndarray:
    if cutoff_hz <= 0 or cutoff_hz >= fs / 2:
        return x
    b, a = butter(4, cutoff_hz / (fs / 2))
    return filtfilt(b, a, x, axis=0)


def _lowpass_rot(r: Rotation, cutoff_hz: float, fs: float) -> Rotation:
    q = r.as_quat()
    # sign continuity before filtering components
    flip = np.cumprod(np.where(np.sum(q[1:] * q[:-1], axis=1) < 0, -1.0, 1.0))
    q[1:] *= flip[:, None]
    return Rotation.from_quat(_lowpass(q, cutoff_hz, fs))


