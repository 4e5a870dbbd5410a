"""Joint chaining: parent-to-child rotations, clinical angles, BVH Euler channels.

Segment frames are those of :mod:`trackside.kinematics.skeleton` (x forward, y left, z up in the
standing pose), so every relative rotation is the identity when standing and all angles are
zero there. Clinical angles use a joint coordinate system in the spirit of Grood & Suntay /
ISB: the relative rotation is split as flexion about the medio-lateral axis (y), then
ab/adduction about the anterior axis (x), then rotation about the long axis (z), i.e. the
intrinsic Euler sequence Y-X-Z. Signs: flexion, abduction and internal rotation positive on
both sides (knee: flexion positive; ankle: dorsiflexion positive, inversion positive).
Time series are continuous: unwrapped (no 360-degree jumps) and kept on one Euler branch (no
180-degree flips when a middle angle passes 90 degrees, see :func:`continuous_euler`).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from scipy.spatial.transform import Rotation

from trackside.kinematics.quat import qconj, qmul, to_rot
from trackside.kinematics.skeleton import Skeleton

__all__ = [
    "ANGLE_COLUMNS", "REQUIRED_COLUMNS", "relative_quats", "clinical_angles", "unwrap_deg",
    "bvh_rotations", "bvh_euler", "BODY_TO_BVH", "continuous_euler",
]

#: body axes (x fwd, y left, z up) -> BVH axes (X left, Y up, Z fwd)
BODY_TO_BVH = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])

REQUIRED_COLUMNS = ("hip_flexion", "hip_abduction", "hip_rotation", "knee_flexion", "ankle_dorsiflexion")
_EXTRA_COLUMNS = ("knee_abduction", "knee_rotation", "ankle_inversion", "ankle_rotation",
                  "shoulder_flexion", "shoulder_abduction", "elbow_flexion")
#: angles.csv columns after time_s: the required ones per side, then the extras per side.
ANGLE_COLUMNS = tuple(f"{s}_{c}" for s in ("left", "right") for c in REQUIRED_COLUMNS) + tuple(
    f"{s}_{c}" for s in ("left", "right") for c in _EXTRA_COLUMNS)

# joint -> (parent segment, child segment) and how each Y/X/Z Euler angle maps to a named angle:
# (name, axis index in Y-X-Z, sign for left, sign for right)
_JOINT_DEFS = {
    "hip": ("pelvis", "thigh", [("hip_flexion", 0, -1, -1), ("hip_abduction", 1, 1, -1), ("hip_rotation", 2, -1, 1)]),
    "knee": ("thigh", "shank", [("knee_flexion", 0, 1, 1), ("knee_abduction", 1, 1, -1), ("knee_rotation", 2, -1, 1)]),
    "ankle": ("shank", "foot", [("ankle_dorsiflexion", 0, -1, -1), ("ankle_inversion", 1, -1, 1),
                                ("ankle_rotation", 2, -1, 1)]),
    "shoulder": ("thorax", "upper_arm", [("shoulder_flexion", 0, -1, -1), ("shoulder_abduction", 1, 1, -1)]),
    "elbow": ("upper_arm", "forearm", [("elbow_flexion", 0, -1, -1)]),
}


def relative_quats(segment_quats: Mapping[str, np.ndarray], skeleton: Skeleton) -> dict[str, np.ndarray]:
    """Per non-root segment, the rotation of the segment relative to its parent (w, x, y, z).

    The root (pelvis) gets its segment-to-earth rotation. Segments missing from
    ``segment_quats`` get the identity (held rigid to their parent).
    """
    n = len(next(iter(segment_quats.values())))
    ident = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    out = {}
    for seg in skeleton.segments:
        q = segment_quats.get(seg.name)
        if seg.parent is None:
            out[seg.name] = ident.copy() if q is None else np.asarray(q, float)
            continue
        qp = segment_quats.get(seg.parent)
        if q is None or qp is None:
            out[seg.name] = ident.copy()
        else:
            out[seg.name] = qmul(qconj(qp), q)
    return out


def unwrap_deg(a: np.ndarray) -> np.ndarray:
    """Unwrap angles (degrees) along axis 0, skipping NaN samples."""
    a = np.array(a, dtype=float)
    if a.ndim == 1:
        ok = np.isfinite(a)
        if ok.any():
            a[ok] = np.degrees(np.unwrap(np.radians(a[ok])))
        return a
    for k in range(a.shape[1]):
        a[:, k] = unwrap_deg(a[:, k])
    return a


def continuous_euler(r: Rotation, seq: str) -> np.ndarray:
    """Euler angles (degrees) of a rotation time series, continuous over time.

    A Tait-Bryan triple (a, b, c) and (a + 180, 180 - b, c + 180) are the same rotation; scipy
    always returns |b| <= 90, so a joint moving through b = 90 (e.g. a knee flexing past 90
    degrees about the middle axis) would jump by 180 in a and c. Per sample we keep the branch
    closer to the previous one (the choice does not depend on the branch already chosen, so it
    is a cumulative parity), then unwrap all three angles.
    """
    e = r.as_euler(seq, degrees=True).reshape(-1, 3)
    if len(e) > 1:
        alt = np.column_stack([e[:, 0] + 180.0, 180.0 - e[:, 1], e[:, 2] + 180.0])

        def dist(x, y):
            return np.abs((x - y + 180.0) % 360.0 - 180.0).sum(axis=1)

        toggle = dist(e[1:], alt[:-1]) < dist(e[1:], e[:-1])
        parity = np.concatenate([[False], np.cumsum(toggle) % 2 == 1])
        e = np.where(parity[:, None], alt, e)
    return unwrap_deg(e)


def _euler_nan(q: np.ndarray, seq: str) -> np.ndarray:
    out = np.full((len(q), 3), np.nan)
    ok = np.all(np.isfinite(q), axis=1)
    if ok.any():
        out[ok] = continuous_euler(to_rot(q[ok]), seq)
    return out


def clinical_angles(segment_quats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Named joint angles in degrees (keys of ``ANGLE_COLUMNS``), unwrapped over time.

    ``segment_quats``: segment-to-earth quaternions (N x 4) keyed by segment name. An angle whose
    segments are missing is NaN throughout; NaN samples in the input stay NaN.
    """
    n = len(next(iter(segment_quats.values())))
    out: dict[str, np.ndarray] = {}
    for side, si in (("left", 2), ("right", 3)):
        for joint, (parent, child, defs) in _JOINT_DEFS.items():
            p = parent if parent in ("pelvis", "thorax") else f"{side}_{parent}"
            c = f"{side}_{child}"
            if p in segment_quats and c in segment_quats:
                rel = qmul(qconj(np.asarray(segment_quats[p], float)), np.asarray(segment_quats[c], float))
                eul = _euler_nan(rel, "YXZ")
            else:
                eul = np.full((n, 3), np.nan)
            for name, axis, s_left, s_right in defs:
                sign = s_left if side == "left" else s_right
                out[f"{side}_{name}"] = sign * eul[:, axis]
    return {k: out[k] for k in ANGLE_COLUMNS}


def bvh_rotations(segment_quats: Mapping[str, np.ndarray], skeleton: Skeleton) -> dict[str, np.ndarray]:
    """Per segment, its BVH local rotation (root: world) as rotation matrices in BVH axes (N x 3 x 3)."""
    rel = relative_quats(segment_quats, skeleton)
    P = BODY_TO_BVH
    out = {}
    for name, q in rel.items():
        q = np.where(np.all(np.isfinite(q), axis=1, keepdims=True), q, [1.0, 0.0, 0.0, 0.0])
        m = to_rot(q).as_matrix()
        out[name] = P @ m @ P.T
    return out


def bvh_euler(segment_quats: Mapping[str, np.ndarray], skeleton: Skeleton, order: str = "ZXY") -> np.ndarray:
    """BVH rotation channels in degrees, N x (3 * segments), segments in skeleton order.

    ``order`` is the channel order (e.g. "ZXY" = Zrotation Xrotation Yrotation), which BVH
    composes as R = R_Z R_X R_Y (intrinsic). Columns are unwrapped over time.
    """
    order = order.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"channel order must be a permutation of XYZ, got {order!r}")
    rel = relative_quats(segment_quats, skeleton)
    cols = []
    for seg in skeleton.segments:
        q = rel[seg.name]
        q = np.where(np.all(np.isfinite(q), axis=1, keepdims=True), q, [1.0, 0.0, 0.0, 0.0])
        # the same rotation in BVH axes (X = body y, Y = body z, Z = body x): permute the vector part
        r = Rotation.from_quat(q[:, [2, 3, 1, 0]])
        cols.append(continuous_euler(r, order))
    return np.concatenate(cols, axis=1)
