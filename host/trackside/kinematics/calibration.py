"""Sensor-to-segment calibration, heading reference, re-calibration events, missing nodes.

Model: a node's sensor quaternion ``q_s`` (sensor-to-earth, ENU) and its segment's
``q_seg = q_s * conj(m)``, with ``m`` the constant sensor-to-segment (mounting) rotation.
In the standing pose every segment frame equals the athlete's heading frame ``yaw(psi)``, so
``m = conj(yaw(psi)) * q_s(standing)``. Gravity fixes two of m's three angles; the heading
``psi`` fixes the third and is shared by all nodes:

- :func:`heading_from_legs` (the default): during a few steps forward, thighs and shanks swing
  about the medio-lateral axis, the principal horizontal axis of their earth-frame rotation;
  the heading is perpendicular to it, the sign from :func:`heading_from_thighs`: the thigh's
  long axis (known from the standing pose alone) points on average forward-down, because hips
  flex far more than they extend.
- :func:`heading_from_track`: the direction of a foot's (or pelvis') displacement, e.g. from
  :func:`trackside.kinematics.gait.foot_track`.
- or a known heading (radians, ENU: 0 = east, counter-clockwise).

Long sessions: :class:`CalibrationTimeline` holds calibration events; each sample uses the
latest event at or before it (the first event also covers earlier samples).

Missing data: NaN sensor samples are held (last valid) and marked invalid; a node that never
reports leaves its segment rigid to its parent (joint angles NaN, i.e. marked).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from trackside.kinematics.quat import from_rot, qconj, qmul, rotate, to_rot, yaw_quat
from trackside.kinematics.skeleton import Skeleton

__all__ = [
    "Calibration", "CalibrationTimeline", "mean_quat", "standing_mounts", "heading_from_thighs", "heading_from_legs",
    "heading_from_track", "hold_missing", "segments_from_sensors",
]


def mean_quat(q: np.ndarray) -> np.ndarray:
    """Average orientation of quaternion samples (NaN rows ignored); raises if none valid."""
    q = np.asarray(q, dtype=float).reshape(-1, 4)
    ok = np.all(np.isfinite(q), axis=1)
    if not ok.any():
        raise ValueError("no valid orientation samples in the window")
    return from_rot(to_rot(q[ok]).mean())


def _window(time_s: np.ndarray, win: tuple[float, float]) -> np.ndarray:
    sel = (time_s >= win[0]) & (time_s < win[1])
    if not sel.any():
        raise ValueError(f"calibration window {win} contains no samples")
    return sel


def standing_mounts(standing: Mapping[str, np.ndarray], heading_rad: float) -> dict[str, np.ndarray]:
    """Mounting quaternions (sensor-to-segment) from standing-pose sensor orientations.

    ``standing``: segment -> sensor quaternion(s) during the standing pose (one or many rows).
    Segments with no valid sample are left out.
    """
    out = {}
    h = yaw_quat(heading_rad)
    for seg, q in standing.items():
        try:
            qs = mean_quat(q)
        except ValueError:
            continue
        out[seg] = qmul(qconj(h), qs)
    return out


def heading_from_thighs(sensor_quats: Mapping[str, np.ndarray], standing_quat: Mapping[str, np.ndarray],
                        sel: np.ndarray | None = None) -> float:
    """Walking direction (rad, ENU) from thigh sensors during steps forward (see module doc).

    ``sensor_quats``: segment -> sensor quaternions (N x 4) over the steps; ``standing_quat``:
    segment -> mean standing sensor quaternion. Uses ``left_thigh``/``right_thigh`` (either).
    """
    acc = np.zeros(2)
    used = 0
    for seg in ("left_thigh", "right_thigh"):
        if seg not in sensor_quats or seg not in standing_quat:
            continue
        q = np.asarray(sensor_quats[seg], float)
        if sel is not None:
            q = q[sel]
        q = q[np.all(np.isfinite(q), axis=1)]
        if len(q) == 0:
            continue
        # the segment's up axis in sensor coordinates: earth-up seen by the standing sensor
        up_s = to_rot(standing_quat[seg]).inv().apply([0.0, 0.0, 1.0])
        down_e = -rotate(q, up_s)  # hip -> knee direction in earth
        acc += down_e[:, :2].mean(axis=0)
        used += 1
    if not used or np.linalg.norm(acc) < 1e-3:
        raise ValueError("no thigh node data in the steps window to take the heading from: give the heading "
                         "(e.g. heading_from_track(foot_track(...).footprints)) or assign thigh nodes")
    return float(np.arctan2(acc[1], acc[0]))


def heading_from_legs(sensor_quats: Mapping[str, np.ndarray], standing_quat: Mapping[str, np.ndarray],
                      sel: np.ndarray | None = None) -> float:
    """Walking/running direction (rad, ENU) from the legs' swing axis, sign from the thighs.

    Thighs and shanks rotate mostly about the medio-lateral axis while stepping: the dominant
    horizontal direction of their earth-frame angular velocity (principal axis, from the
    orientation series alone) is that axis and the heading is perpendicular to it. That is
    robust to short windows and to one leg's ab/adduction; its 180-degree ambiguity is settled
    by :func:`heading_from_thighs` (knee ahead of the hip on average).
    """
    rough = heading_from_thighs(sensor_quats, standing_quat, sel)
    scatter = np.zeros((2, 2))
    for seg in ("left_thigh", "right_thigh", "left_shank", "right_shank"):
        if seg not in sensor_quats:
            continue
        q = np.asarray(sensor_quats[seg], float)
        if sel is not None:
            q = q[sel]
        ok = np.all(np.isfinite(q[1:]), axis=1) & np.all(np.isfinite(q[:-1]), axis=1)
        if ok.sum() < 10:
            continue
        # earth-frame rotation between samples (rate times dt: the scale does not matter here)
        h = to_rot(qmul(q[1:][ok], qconj(q[:-1][ok]))).as_rotvec()[:, :2]
        scatter += h.T @ h
    if not scatter.any():
        return rough
    evals, evecs = np.linalg.eigh(scatter)
    if evals[1] < 2.0 * evals[0]:  # no clear swing axis (not stepping straight): keep the rough one
        return rough
    lat = evecs[:, 1]
    cands = [np.arctan2(-lat[0], lat[1]), np.arctan2(lat[0], -lat[1])]
    diff = [abs(np.angle(np.exp(1j * (c - rough)))) for c in cands]
    return float(cands[int(np.argmin(diff))])


def heading_from_track(positions: np.ndarray) -> float:
    """Heading (rad, ENU) of a displacement: from the first to the last valid horizontal position."""
    p = np.asarray(positions, float)
    p = p[np.all(np.isfinite(p[:, :2]), axis=1)]
    if len(p) < 2:
        raise ValueError("need at least two positions for a heading")
    d = p[-1, :2] - p[0, :2]
    if np.linalg.norm(d) < 0.2:
        raise ValueError("track too short for a heading (< 0.2 m)")
    return float(np.arctan2(d[1], d[0]))


@dataclass
class Calibration:
    """One calibration event: from ``time_s`` on, segment = sensor * conj(mount)."""

    time_s: float
    heading_rad: float
    mounts: dict[str, np.ndarray]

    @classmethod
    def from_windows(cls, time_s: np.ndarray, sensor_quats: Mapping[str, np.ndarray],
                     stand: tuple[float, float], walk: tuple[float, float] | None = None,
                     heading_rad: float | None = None) -> "Calibration":
        """Standing window (+ steps window for the heading, unless ``heading_rad`` is given)."""
        time_s = np.asarray(time_s, float)
        s = _window(time_s, stand)
        standing = {seg: np.asarray(q, float)[s] for seg, q in sensor_quats.items()}
        if heading_rad is None:
            if walk is None:
                raise ValueError("give a steps window (walk) or a heading")
            w = _window(time_s, walk)
            means = {}
            for seg, q in standing.items():
                try:
                    means[seg] = mean_quat(q)
                except ValueError:
                    pass
            heading_rad = heading_from_legs(sensor_quats, means, w)
        return cls(float(stand[0]), float(heading_rad), standing_mounts(standing, heading_rad))


@dataclass
class CalibrationTimeline:
    """Calibration events over a session (re-calibration for long sessions)."""

    events: list[Calibration] = field(default_factory=list)

    def add(self, cal: Calibration) -> None:
        self.events.append(cal)
        self.events.sort(key=lambda c: c.time_s)

    def apply(self, time_s: np.ndarray, sensor_quats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Segment quaternions from sensor quaternions; segments without a mount are left out."""
        if not self.events:
            raise ValueError("no calibration event")
        time_s = np.asarray(time_s, float)
        idx = np.searchsorted([c.time_s for c in self.events], time_s, side="right") - 1
        idx = np.maximum(idx, 0)
        out = {}
        for seg, q in sensor_quats.items():
            q = np.asarray(q, float)
            res = np.full_like(q, np.nan)
            for k, cal in enumerate(self.events):
                if seg not in cal.mounts:
                    continue
                sel = idx == k
                res[sel] = qmul(q[sel], qconj(cal.mounts[seg]))
            if np.isfinite(res).any():
                out[seg] = res
        return out


def hold_missing(q: np.ndarray, max_hold_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Forward-fill NaN rows with the last valid quaternion (back-fill leading NaNs).

    Returns (filled, valid) where ``valid`` marks samples that were really measured (and, with
    ``max_hold_samples``, also not marks held samples beyond that as invalid: they stay held).
    """
    q = np.asarray(q, float)
    ok = np.all(np.isfinite(q), axis=1)
    if not ok.any():
        return np.full_like(q, np.nan), ok
    idx = np.where(ok, np.arange(len(q)), -1)
    idx = np.maximum.accumulate(idx)
    first = int(np.argmax(ok))
    idx[idx < 0] = first
    return q[idx], ok


def segments_from_sensors(time_s: np.ndarray, sensor_quats: Mapping[str, np.ndarray],
                          timeline: CalibrationTimeline, skeleton: Skeleton
                          ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Calibrated, gap-held segment quaternions for every skeleton segment, plus validity masks.

    A segment without data follows its parent rigidly (standing-pose relation) and is marked
    invalid everywhere; the pelvis without data is held at the calibration heading.
    """
    n = len(time_s)
    seg_q = timeline.apply(time_s, sensor_quats)
    out: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    heading = timeline.events[0].heading_rad
    for seg in skeleton.segments:
        q = seg_q.get(seg.name)
        if q is not None:
            filled, ok = hold_missing(q)
            out[seg.name], valid[seg.name] = filled, ok
            continue
        if seg.parent is None:
            out[seg.name] = np.tile(yaw_quat(heading), (n, 1))
        else:
            out[seg.name] = out[seg.parent].copy()
        valid[seg.name] = np.zeros(n, bool)
    return out, valid

