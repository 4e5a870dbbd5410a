"""Session outputs: ``session.bvh``, ``angles.csv``, ``gait.json`` and PNG plots.

:func:`export_outputs` is what ``trackside export`` and ``trackside demo`` call with calibrated
segment orientations; :func:`segments_from_nodes` turns raw node orientations into those
(assignment, standing + steps calibration, re-calibration events, missing nodes).

``angles.csv``: ``time_s``, then ``left_`` + hip_flexion, hip_abduction, hip_rotation,
knee_flexion, ankle_dorsiflexion, the same for ``right_``, then extra columns
(see :data:`trackside.kinematics.joints.ANGLE_COLUMNS`); degrees, zero in the standing
calibration pose; an empty cell where a segment had no data (missing node or gap).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from trackside.bvh.writer import write_bvh
from trackside.kinematics.calibration import Calibration, CalibrationTimeline, segments_from_sensors
from trackside.kinematics.gait import gait_one_foot, gait_session
from trackside.kinematics.joints import ANGLE_COLUMNS, clinical_angles
from trackside.kinematics.skeleton import Skeleton, assign_nodes

__all__ = ["export_outputs", "export_from_nodes", "segments_from_nodes", "write_angles_csv", "SESSION_LOADERS",
           "load_session_npz"]

#: Loaders for ``trackside export SESSION``: callables taking the SESSION argument and returning
#: a dict of :func:`export_outputs` keyword arguments (or None if not theirs). The aggregator
#: appends its session-store loader here; ``.npz`` files are handled by :func:`load_session_npz`.
SESSION_LOADERS: list[Callable[[str], dict | None]] = []

_JOINT_SEGMENTS = {
    "hip": ("pelvis", "thigh"), "knee": ("thigh", "shank"), "ankle": ("shank", "foot"),
    "shoulder": ("thorax", "upper_arm"), "elbow": ("upper_arm", "forearm"),
}


def segments_from_nodes(time_s: np.ndarray, node_quats: Mapping[str, np.ndarray], assignment: Mapping[str, str],
                        skeleton: Skeleton, stand: tuple[float, float], walk: tuple[float, float] | None = None,
                        heading_rad: float | None = None,
                        recalibrations: list[tuple[tuple[float, float], float | None]] = ()):
    """Calibrated segment quaternions from node (sensor-to-earth) quaternions.

    ``assignment``: node id -> segment name. ``stand``: standing window (s); ``walk``: a few
    steps forward for the heading (or give ``heading_rad``). ``recalibrations``: further
    ``(standing window, heading or None = keep the first heading)`` events.
    Returns ``(segment_quats, valid, timeline)``; see
    :func:`trackside.kinematics.calibration.segments_from_sensors`.
    """
    amap = assign_nodes(assignment, skeleton)
    n = len(time_s)
    sensor = {}
    for node, seg in amap.items():
        if node not in node_quats:
            continue
        q = np.asarray(node_quats[node], float)
        if q.shape != (n, 4):
            raise ValueError(f"node {node!r}: quaternions must be {n} x 4, got {q.shape}")
        sensor[seg] = q
    if not sensor:
        raise ValueError("none of the assigned nodes has data")
    tl = CalibrationTimeline()
    first = Calibration.from_windows(time_s, sensor, stand, walk, heading_rad)
    tl.add(first)
    for win, head in recalibrations:
        tl.add(Calibration.from_windows(time_s, sensor, win, None, first.heading_rad if head is None else head))
    seg_q, valid = segments_from_sensors(np.asarray(time_s, float), sensor, tl, skeleton)
    return seg_q, valid, tl


def _angle_valid(valid: Mapping[str, np.ndarray] | None, n: int) -> dict[str, np.ndarray]:
    out = {}
    for col in ANGLE_COLUMNS:
        side, rest = col.split("_", 1)
        joint = rest.split("_", 1)[0]
        p, c = _JOINT_SEGMENTS[joint]
        p = p if p in ("pelvis", "thorax") else f"{side}_{p}"
        c = f"{side}_{c}"
        ok = np.ones(n, bool)
        if valid is not None:
            for s in (p, c):
                if s in valid:
                    ok &= np.asarray(valid[s], bool)
        out[col] = ok
    return out


def write_angles_csv(path: str | os.PathLike, time_s: np.ndarray, angles: Mapping[str, np.ndarray],
                     valid: Mapping[str, np.ndarray] | None = None) -> None:
    """Write ``angles.csv`` (header ``time_s,<ANGLE_COLUMNS>``), 3 decimals, empty = no data."""
    n = len(time_s)
    ok = _angle_valid(valid, n)
    cols = [np.asarray(time_s, float)]
    for c in ANGLE_COLUMNS:
        a = np.asarray(angles[c], float).copy()
        a[~ok[c]] = np.nan
        cols.append(a)
    arr = np.round(np.column_stack(cols), 4) + 0.0  # no "-0.000"
    fmt = "%.4f," + ",".join(["%.3f"] * len(ANGLE_COLUMNS))
    body = "\n".join(fmt % tuple(r) for r in arr.tolist()).replace("nan", "")
    with open(path, "w", newline="") as f:
        f.write("time_s," + ",".join(ANGLE_COLUMNS) + "\n")
        f.write(body + "\n")


def export_outputs(out_dir: str | os.PathLike, time_s: np.ndarray, segment_quats: Mapping[str, np.ndarray],
                   skeleton: Skeleton, *, fs: float | None = None, root_pos_m: np.ndarray | None = None,
                   foot_imu: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                   valid: Mapping[str, np.ndarray] | None = None, channel_order: str = "ZXY",
                   plots: bool = True, extra: Mapping | None = None) -> dict:
    """Write ``session.bvh``, ``angles.csv``, ``gait.json`` and PNG plots into ``out_dir``.

    ``segment_quats``: segment -> (N, 4) segment-to-earth quaternions (calibrated; see
    :func:`segments_from_nodes`). ``fs`` defaults to the median sample rate of ``time_s``.
    ``foot_imu``: ``{"left": {"gyr", "acc", "mag"?}, "right": ...}`` raw foot IMU data at the same
    rate, for gait (either side alone works). ``root_pos_m``: pelvis position (N, 3) ENU; if
    omitted and both feet are given, the pelvis path from the feet at standing pelvis height.
    Returns a dict with the written paths and the gait summary.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    time_s = np.asarray(time_s, float)
    n = len(time_s)
    if n < 2:
        raise ValueError("need at least two samples to export")
    for k, q in segment_quats.items():
        if np.shape(q) != (n, 4):
            raise ValueError(f"segment {k!r}: quaternions must be {n} x 4, got {np.shape(q)}")
    if fs is None:
        fs = float(1.0 / np.median(np.diff(time_s)))
    # gait
    gait: dict = {"available": False, "reason": "no foot IMU data"}
    if foot_imu:
        sides = {s: d for s, d in foot_imu.items() if d is not None}
        reasons = []
        if "left" in sides and "right" in sides:
            try:
                gait = dict(gait_session(sides["left"], sides["right"], fs), available=True)
            except ValueError as exc:
                reasons.append(f"both feet: {exc}")
        if not gait.get("available"):
            # one foot alone (the other missing or unusable)
            for side, d in sides.items():
                try:
                    gait = dict(gait_one_foot(d["gyr"], d["acc"], fs, side, d.get("mag")), available=True)
                    break
                except (ValueError, KeyError) as exc:
                    reasons.append(f"{side}: {exc}")
        if not gait.get("available"):
            gait = {"available": False, "reason": "; ".join(reasons) or "no foot IMU data"}
        elif reasons:
            gait["warnings"] = reasons
    if root_pos_m is None and gait.get("pelvis_path_m"):
        pp = np.asarray(gait["pelvis_path_m"]["xy"], float)
        tp = np.asarray(gait["pelvis_path_m"]["time_s"], float)
        root_pos_m = np.column_stack([np.interp(time_s - time_s[0], tp, pp[:, 0]),
                                      np.interp(time_s - time_s[0], tp, pp[:, 1]),
                                      np.full(n, skeleton.pelvis_height_m)])
    if extra:
        gait["extra"] = dict(extra)
    n_frames = write_bvh(out / "session.bvh", skeleton, segment_quats, fs, root_pos_m, channel_order)
    angles = clinical_angles(segment_quats)
    write_angles_csv(out / "angles.csv", time_s, angles, valid)
    with open(out / "gait.json", "w") as f:
        json.dump(_jsonable(gait), f, indent=1)
    pngs = []
    if plots:
        from trackside.kinematics import plots as _plots

        pngs = _plots.write_plots(out, time_s, angles, gait)
    return {"bvh": str(out / "session.bvh"), "angles_csv": str(out / "angles.csv"),
            "gait_json": str(out / "gait.json"), "plots": [str(p) for p in pngs], "frames": n_frames,
            "gait_summary": gait.get("summary")}


def export_from_nodes(out_dir: str | os.PathLike, time_s: np.ndarray, node_quats: Mapping[str, np.ndarray],
                      assignment: Mapping[str, str], skeleton: Skeleton, *, stand: tuple[float, float],
                      walk: tuple[float, float] | None = None, heading_rad: float | None = None,
                      foot_nodes: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                      recalibrations: list = (), **export_kw) -> dict:
    """Calibrate node orientations (:func:`segments_from_nodes`) and write all outputs
    (:func:`export_outputs`). ``foot_nodes``: raw IMU dicts of the foot nodes by side, for gait.
    Returns the :func:`export_outputs` result plus ``heading_rad`` of the first calibration."""
    seg, valid, tl = segments_from_nodes(time_s, node_quats, assignment, skeleton, stand, walk, heading_rad,
                                         list(recalibrations))
    res = export_outputs(out_dir, time_s, seg, skeleton, foot_imu=foot_nodes, valid=valid, **export_kw)
    res["heading_rad"] = tl.events[0].heading_rad
    return res


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    return x


def load_session_npz(path: str | os.PathLike) -> dict:
    """Export arguments from an ``.npz`` session file.

    Keys: ``time_s`` (N), optional ``fs``, ``height_m``; orientations either as calibrated
    ``seg_<segment>`` (N x 4, segment-to-earth) or raw ``node_<segment>`` (sensor-to-earth, the
    node named after its segment), the latter calibrated from ``stand`` (2,) and ``walk`` (2,)
    windows in seconds (defaults 0-1.5 s and 2-6 s) or a ``heading_rad``; optional
    ``left_foot_gyr``/``_acc``/``_mag``, ``right_foot_...`` and ``root_pos`` (N x 3, m, ENU).
    """
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    if "time_s" not in d:
        raise ValueError(f"{path}: missing 'time_s'")
    t = np.asarray(d["time_s"], float)
    height = float(d.get("height_m", 1.80))
    sk = Skeleton.from_height(height)
    seg = {k[4:]: np.asarray(v, float) for k, v in d.items() if k.startswith("seg_")}
    nodes = {k[5:]: np.asarray(v, float) for k, v in d.items() if k.startswith("node_")}
    unknown = [s for s in list(seg) + list(nodes) if s not in sk.names()]
    if unknown:
        raise ValueError(f"{path}: unknown segments {', '.join(unknown)}")
    valid = None
    if not seg:
        if not nodes:
            raise ValueError(f"{path}: no 'seg_<segment>' or 'node_<segment>' orientations")
        stand = tuple(np.asarray(d.get("stand", (0.0, 1.5)), float))
        walk = tuple(np.asarray(d.get("walk", (2.0, 6.0)), float))
        heading = float(d["heading_rad"]) if "heading_rad" in d else None
        seg, valid, _ = segments_from_nodes(t, nodes, {s: s for s in nodes}, sk, stand, walk, heading)
    feet = {}
    for side in ("left", "right"):
        if f"{side}_foot_gyr" in d and f"{side}_foot_acc" in d:
            feet[side] = {"gyr": d[f"{side}_foot_gyr"], "acc": d[f"{side}_foot_acc"]}
            if f"{side}_foot_mag" in d:
                feet[side]["mag"] = d[f"{side}_foot_mag"]
    return {"time_s": t, "segment_quats": seg, "skeleton": sk, "fs": float(d["fs"]) if "fs" in d else None,
            "foot_imu": feet or None, "valid": valid,
            "root_pos_m": np.asarray(d["root_pos"], float) if "root_pos" in d else None}
