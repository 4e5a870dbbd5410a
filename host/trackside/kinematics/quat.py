"""Quaternion helpers on arrays (w, x, y, z), built on :mod:`scipy.spatial.transform`.

Convention everywhere in :mod:`trackside.kinematics`: a quaternion ``q`` of a frame A maps
vectors from A to the earth frame (ENU), scalar first. scipy stores scalar last, so these
helpers are the only place the order is switched.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["to_rot", "from_rot", "qmul", "qconj", "qnormalize", "rotate", "yaw_quat"]


def _as_array(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    if q.shape[-1] != 4:
        raise ValueError(f"quaternions must have 4 components (w, x, y, z), got shape {q.shape}")
    return q


def to_rot(q: np.ndarray) -> Rotation:
    """scipy Rotation from quaternion(s) (w, x, y, z); normalises, rejects NaN."""
    q = _as_array(q)
    return Rotation.from_quat(q[..., [1, 2, 3, 0]])


def from_rot(r: Rotation) -> np.ndarray:
    """Quaternion(s) (w, x, y, z) with w >= 0 from a scipy Rotation."""
    q = r.as_quat()[..., [3, 0, 1, 2]]
    return q * np.where(q[..., :1] < 0, -1.0, 1.0)


def qnormalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternions (NaN rows stay NaN)."""
    q = _as_array(q)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def qconj(q: np.ndarray) -> np.ndarray:
    """Conjugate (inverse of a unit quaternion)."""
    q = _as_array(q)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def qmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b, broadcasting over leading axes; NaN propagates."""
    a = _as_array(a)
    b = _as_array(b)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vector(s) ``v`` by quaternion(s) ``q`` (frame -> earth)."""
    q = _as_array(q)
    v = np.asarray(v, dtype=float)
    w = q[..., :1]
    u = q[..., 1:]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def yaw_quat(yaw_rad: np.ndarray | float) -> np.ndarray:
    """Rotation about the earth's vertical (z, up) by ``yaw_rad``."""
    y = np.asarray(yaw_rad, dtype=float)
    return np.stack([np.cos(y / 2), 0 * y, 0 * y, np.sin(y / 2)], axis=-1)
