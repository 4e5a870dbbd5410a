"""The whole Trackside chain on virtual nodes: motion -> firmware (wasm) on ptys -> aggregator ->
session store -> calibration + kinematics export.

    from trackside.demo.pipeline import DemoConfig, run_demo
    res = run_demo(DemoConfig(seconds=10, out="out/demo"))          # simulated jogger, 7 nodes
    res = run_demo(DemoConfig(seconds=10, out="out/clip", motion="../shared/data/mocap/09_02.bvh"))

Steps (each one is another component's public API, called unchanged):

1. motion: :class:`trackside.sim.athlete.SimulatedAthlete` (jog / sprint) or
   :class:`trackside.sim.bvh_motion.BvhMotion` (a BVH clip, looped, standing pose prepended);
2. one IMU per segment (:meth:`trackside.sim.athlete.Motion.imu`) with a skewed mounting and an
   offset from the joint, sensor noise and bias, Earth's field with a local disturbance;
3. one virtual node per segment (:func:`trackside.virtual.node.start_virtual_node`: the real
   firmware under MicroPython/wasm, its own pseudo-terminal);
4. the aggregator reads the ptys like hardware and records a session
   (:func:`trackside.aggregator.cli.record_ports`);
5. the stored frames are decoded (:mod:`tsproto.fast`), put on one grid
   (:func:`trackside.aggregator.clock.align`) and exported
   (:func:`trackside.kinematics.export.export_from_nodes`): standing calibration, running
   heading from the legs' swing axis (:func:`heading_from_swing`), ``session.bvh``,
   ``angles.csv``, ``gait.json``, plots.

Firmware work-around: a sample that does not fit a frame's payload opens the next frame, and
``tsfw.app`` stamps that frame t_us = 0 (it passes time 0 for every sample but a frame's
first); such frames are re-timed from their predecessor (:func:`_frame_times`). The aggregator
counts each of them as a node reboot.

Time base: by default the nodes run virtual time as fast as the interpreter goes (``realtime``
False): N wasm processes at 200 Hz do not fit in real time on two loaded cores, and a virtual
clock never falls behind (the pty simply fills and the node waits). Samples are aligned on the
nodes' own clocks. In virtual time they are one clock (every board starts at the same
virtual instant and boots identically); in real time each simulated chip starts playing its
motion when its own process boots, so node time since boot -- not host time -- is what keeps
the segments of one athlete in step (each node's time counted from its boot hello). But the
chip starts its motion at configuration, before the hello, and on a busy machine the wall
time between the two differs by node (measured on this 2-core machine at load ~10, 3 nodes:
MPU-9250 0.47-0.70 s, ICM-20948 0.10-0.15 s after the hello, against 0.105 s in virtual
time), so real-time segments are out of step and joint angles can be tens of degrees off.
Use real time to watch the live table, virtual time for results.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

_T_HELLO = 0x01   # tsproto.consts.T_HELLO: the frames table's kind of a hello message

__all__ = ["LOWER_BODY", "ALL_SEGMENTS", "DemoConfig", "DemoError", "build_motion", "node_imus", "record_virtual",
           "load_session", "run_demo", "MOUNTS"]

#: default node set: pelvis, thighs, shanks, feet
LOWER_BODY = ("pelvis", "left_thigh", "right_thigh", "left_shank", "right_shank", "left_foot", "right_foot")
#: order in which ``--nodes N`` adds segments
ALL_SEGMENTS = LOWER_BODY + ("thorax", "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm",
                             "head", "left_hand", "right_hand")

#: sensor mounting per segment type: (intrinsic xyz Euler angles in degrees of the sensor in the
#: segment frame, offset from the segment origin in m, x fwd / y left / z up; y mirrored on the
#: right). Deliberately skewed: the calibration has to find them, as on a real athlete.
MOUNTS = {
    "pelvis": ((0.0, 10.0, 180.0), (-0.12, 0.0, 0.02)),          # sacrum, facing back
    "thorax": ((5.0, -10.0, 180.0), (-0.10, 0.0, 0.15)),         # between the shoulder blades
    "head": ((0.0, 0.0, 0.0), (-0.08, 0.0, 0.10)),
    "thigh": ((80.0, 5.0, 15.0), (0.02, 0.09, -0.20)),           # lateral thigh, strap
    "shank": ((-70.0, 10.0, -20.0), (0.05, 0.02, -0.12)),        # anteromedial tibia
    "foot": ((-15.0, 25.0, 90.0), (0.06, 0.0, 0.04)),            # instep, on the laces
    "upper_arm": ((90.0, 0.0, 0.0), (0.0, 0.05, -0.12)),
    "forearm": ((90.0, 0.0, 30.0), (0.0, 0.03, -0.15)),
    "hand": ((0.0, 0.0, 0.0), (0.0, 0.0, -0.05)),
}


class DemoError(Exception):
    """The demo could not run (bad input, a node died, no data)."""


@dataclass
class DemoConfig:
    """Parameters of one demo run (see ``trackside demo --help``)."""

    seconds: float = 10.0
    out: str | os.PathLike = "out/demo"
    motion: str | os.PathLike | None = None    # BVH clip; None = simulated athlete
    segments: Sequence[str] = LOWER_BODY
    gait: str = "jog"
    db: str | os.PathLike | None = None          # None = a temporary database
    realtime: bool = False
    seed: int = 0
    rate_hz: int = 200
    stand_s: float = 2.0
    blend_s: float = 1.0
    plots: bool = True
    live: bool = False
    chip: str = "mpu9250"
    disturbance_ut: tuple[float, float, float] = (6.0, -4.0, 3.0)   # local field, earth frame
    timeout_s: float | None = None               # wall-clock limit for recording
    quiet: bool = False
    extra: dict = field(default_factory=dict)


def _mount(seg: str) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial.transform import Rotation

    kind = seg.split("_", 1)[1] if seg.startswith(("left_", "right_")) else seg
    eul, off = MOUNTS[kind]
    eul = np.array(eul, float)
    off = np.array(off, float)
    if seg.startswith("right_"):   # mirror in the sagittal plane
        eul = eul * np.array([-1.0, 1.0, -1.0])
        off = off * np.array([1.0, -1.0, 1.0])
    q = Rotation.from_euler("xyz", eul, degrees=True).as_quat()  # x y z w
    return np.roll(q, 1), off


def build_motion(cfg: DemoConfig):
    """The athlete's segment motion (truth) for ``cfg``: a :class:`trackside.sim.athlete.Motion`
    sampled at the node rate, ``cfg.stand_s`` standing first, a little longer than ``cfg.seconds``
    (the node's boot and the recording's tail)."""
    duration = float(cfg.seconds) + 1.0
    if cfg.motion is not None:
        from trackside.sim.bvh_motion import BvhMotion

        p = Path(cfg.motion)
        if not p.is_file():
            raise DemoError(f"motion clip not found: {p}")
        try:
            src = BvhMotion(p, stand_s=cfg.stand_s, blend_s=cfg.blend_s)
            return src.simulate(duration_s=duration, fs=float(cfg.rate_hz))
        except (ValueError, KeyError, IndexError) as exc:
            raise DemoError(f"{p}: cannot use this clip: {exc}") from None
    from trackside.sim.athlete import SimulatedAthlete

    if cfg.gait not in ("jog", "sprint"):
        raise DemoError(f"gait must be jog or sprint, got {cfg.gait!r}")
    kw = dict(stand_s=cfg.stand_s, blend_s=cfg.blend_s, seed=cfg.seed, jitter=0.02)
    ath = SimulatedAthlete.sprint(**kw) if cfg.gait == "sprint" else SimulatedAthlete(**kw)
    return ath.simulate(duration_s=duration, fs=float(cfg.rate_hz))


def node_imus(motion, cfg: DemoConfig) -> dict[str, dict]:
    """Segment -> IMU dict (``gyr``, ``acc``, ``mag``, ``quat``, ``fs``) for the virtual nodes:
    mounted as :data:`MOUNTS`, with white noise and a constant bias per sensor (seeded), and
    Earth's field plus ``cfg.disturbance_ut`` (earth frame) for two seconds of the run."""
    from trackside.sim.athlete import ImuNoise, MagField

    t_dist = cfg.stand_s + cfg.blend_s + 1.0
    mag = MagField(disturbance_ut=tuple(cfg.disturbance_ut), disturb_from_s=t_dist, disturb_to_s=t_dist + 2.0)
    out = {}
    for k, seg in enumerate(cfg.segments):
        q, off = _mount(seg)
        noise = ImuNoise(gyr_std=np.radians(0.1), gyr_bias=np.radians(0.3), acc_std=0.02, acc_bias=0.03,
                         mag_std=0.3, seed=cfg.seed * 100 + k)
        out[seg] = motion.imu(seg, mount=q, offset_m=off, noise=noise, mag=mag)
    return out


def _newest_session(db: Path) -> int:
    """Highest session id in ``db`` (0 if none or no database yet)."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            return int(con.execute("SELECT COALESCE(MAX(id), 0) FROM sessions").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _samples_so_far(db: Path, after: int = 0) -> dict[int, int]:
    """Samples stored per node in the newest session of ``db`` with an id above ``after``
    (committed frames only). ``record_ports`` gives ``until()`` no view of its pipeline, so the
    recording's progress is read back from the store."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return {}
    try:
        rows = con.execute("SELECT node_id, SUM(nsamples) FROM frames WHERE session_id = "
                           "(SELECT MAX(id) FROM sessions WHERE id > ?) GROUP BY node_id", (after,)).fetchall()
        return {int(a): int(b or 0) for a, b in rows}
    except sqlite3.Error:
        return {}
    finally:
        con.close()


def record_virtual(imus: dict[str, dict], cfg: DemoConfig, db: Path) -> tuple[int, dict]:
    """Start one virtual node per segment (ids 1..N), record them through the aggregator into
    ``db`` until every node has sent ``cfg.seconds`` of samples; returns ``(session id, info)``."""
    from trackside.aggregator.cli import record_ports
    from trackside.virtual.node import start_virtual_node

    need = int(round((cfg.seconds + 0.3) * cfg.rate_hz))
    ids = {seg: k + 1 for k, seg in enumerate(imus)}
    timeout = cfg.timeout_s or (90.0 + 3.0 * cfg.seconds * len(imus))
    info: dict = {"node_ids": dict(ids), "stopped_by": None}
    before = _newest_session(db)   # our session is the first one created after this
    with ExitStack() as stack:
        nodes = []
        for seg, imu in imus.items():
            nodes.append(stack.enter_context(start_virtual_node(
                ids[seg], seg, motion=imu, chip=cfg.chip, realtime=cfg.realtime, rate_hz=cfg.rate_hz)))
        started = time.monotonic()
        state = {"last": 0.0}

        def until() -> bool:
            dead = [n for n in nodes if not n.alive()]
            if dead:
                info["stopped_by"] = "node %d died: %s" % (dead[0].node_id, dead[0].stderr()[-400:])
                return True
            if time.monotonic() - started > timeout:
                info["stopped_by"] = f"timeout after {timeout:.0f} s"
                return True
            now = time.monotonic()
            if now - state["last"] < 0.3:
                return False
            state["last"] = now
            got = _samples_so_far(db, before)
            return len(got) == len(nodes) and min(got.values()) >= need

        sid = record_ports([n.port for n in nodes], db=db, rate_hz=float(cfg.rate_hz), segments={
            ids[s]: s for s in imus}, live=cfg.live, until=until, title="trackside demo",
            notes="trackside demo: " + (str(cfg.motion) if cfg.motion else f"simulated {cfg.gait}"))
        info["record_wall_s"] = time.monotonic() - started
    if info["stopped_by"]:
        raise DemoError(f"recording stopped early: {info['stopped_by']}")
    return sid, info


def load_session(db: Path, sid: int, rate_hz: float, *, acc_range_g: int = 16,
                 gyro_range_dps: int = 2000, per_node_start: bool = False) -> dict:
    """Decode a session's stored frames and align them on one grid (node clocks, see module doc).

    Returns ``time_s`` (K,), ``quat`` {node: (K, 4) sensor-to-earth, NaN where missing},
    ``acc`` / ``gyr`` {node: (K, 3) m/s^2, rad/s}, ``valid`` {node: (K,)}, ``segments``
    {node: segment}, ``stats`` (the aggregator's per-node counters) and ``align_err_s``.
    ``per_node_start``: count each node's time from its own first sample (real-time virtual
    nodes: each simulated chip starts its motion when its own process has booted, so node time
    since the boot hello is the motion's time)."""
    from tsproto.fast import decode

    from trackside.aggregator.clock import Unwrapper, align
    from trackside.aggregator.store import SessionStore

    with SessionStore(db) as st:
        segs = st.assignments(sid)
        stats = {n["node_id"]: n for n in st.node_stats(sid)}
        raws: dict[int, list[bytes]] = {}
        follows: dict[int, list[bool]] = {}   # sample frame directly after the node's previous frame
        last_seq: dict[int, int] = {}
        boot_hello: dict[int, int] = {}       # node time of the hello sent at boot (sequence 0)
        for nid, seq, tn, _th, kind, ns, raw in st.frames(sid):
            if kind == _T_HELLO and seq == 0 and nid not in boot_hello:
                boot_hello[nid] = int(tn)
            if ns:
                raws.setdefault(nid, []).append(bytes(raw))
                follows.setdefault(nid, []).append(nid in last_seq and (seq - last_seq[nid]) % 65536 == 1)
            last_seq[nid] = seq
    if not raws:
        raise DemoError(f"session {sid} holds no samples")
    times, vals, repaired = {}, {}, {}
    for nid, chunks in raws.items():
        r = decode(b"".join(chunks))
        if len(r) == 0:
            continue
        if len(r.frame_n) != len(chunks):
            raise DemoError(f"node {nid}: {len(chunks)} stored frames decode to {len(r.frame_n)}")
        ft, fixed = _frame_times(r, np.asarray(follows[nid], bool))
        repaired[nid] = fixed
        k = np.arange(len(r)) - np.repeat(np.cumsum(r.frame_n) - r.frame_n, r.frame_n)
        u = Unwrapper(1 << 32).batch(ft)[r.frame] + k * r.frame_period_us[r.frame]
        times[nid] = u * 1e-6
        vals[nid] = np.asarray(r.values, np.float64)
    if not times:
        raise DemoError(f"session {sid}: no decodable samples")
    first = {n: float(t[0]) for n, t in times.items()}
    if per_node_start:
        # the boot hello goes out right after the sensor is configured, i.e. when the simulated
        # chip starts playing its motion; without it, the node's first sample
        times = {n: t - (boot_hello[n] * 1e-6 if n in boot_hello else t[0]) for n, t in times.items()}
    # common span: from the latest first sample to the earliest last sample
    t0 = max(float(t[0]) for t in times.values())
    t1 = min(float(t[-1]) for t in times.values())
    al = align(times, vals, rate_hz, t0=t0, t1=t1)
    acc_scale = 9.80665 * acc_range_g / 32768.0
    gyr_scale = np.radians(gyro_range_dps / 32768.0)
    quat, acc, gyr = {}, {}, {}
    for nid, v in al.values.items():
        q = v[:, 9:13] / 16384.0
        nrm = np.linalg.norm(q, axis=1, keepdims=True)
        bad = ~al.valid[nid] | ~(nrm[:, 0] > 0.5)
        q = q / np.where(nrm > 0, nrm, 1.0)
        q[bad] = np.nan
        quat[nid] = q
        acc[nid] = v[:, 0:3] * acc_scale
        gyr[nid] = v[:, 3:6] * gyr_scale
    return {"time_s": np.arange(al.n) / rate_hz, "t0_node_s": t0, "quat": quat, "acc": acc, "gyr": gyr,
            "valid": al.valid, "segments": segs, "stats": stats, "align_err_s": al.error_s,
            "first_sample_s": first, "repaired_frames": repaired}


def _frame_times(r, follows: np.ndarray) -> tuple[np.ndarray, int]:
    """Frame start times (node us, mod 2**32) with the firmware's zero time stamps repaired.

    Work-around: when a sample does not fit a frame's payload it opens the next frame, and
    ``tsfw.app`` hands the batcher time 0 for every sample but a frame's first, so that next
    frame goes out stamped t_us = 0. Such a frame directly follows its predecessor (``follows``:
    the node's previous frame, messages included, has the previous sequence number), so its
    time is the previous sample frame's end. Returns (times, frames repaired).
    """
    ft = np.asarray(r.frame_t_us, np.int64).copy()
    n = np.asarray(r.frame_n, np.int64)
    per = np.asarray(r.frame_period_us, np.int64)
    fixed = 0
    for i in range(1, len(ft)):
        if ft[i] == 0 and follows[i]:
            ft[i] = (ft[i - 1] + n[i - 1] * per[i - 1]) % (1 << 32)
            fixed += 1
    return ft, fixed


def _filled(x: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN rows (gait wants continuous raw signals)."""
    x = np.array(x, float)
    ok = np.all(np.isfinite(x), axis=1)
    if ok.all() or not ok.any():
        return x
    idx = np.arange(len(x))
    for c in range(x.shape[1]):
        x[~ok, c] = np.interp(idx[~ok], idx[ok], x[ok, c])
    return x


def heading_from_swing(time_s: np.ndarray, quat: dict[str, np.ndarray], gyr: dict[str, np.ndarray],
                       stand: tuple[float, float], run: tuple[float, float]) -> float:
    """Running direction (rad, ENU) from the legs' swing axis.

    While running, thighs and shanks rotate mostly about the medio-lateral axis: the dominant
    horizontal direction of their earth-frame angular velocity is that axis, the heading is
    perpendicular to it. The 180-degree ambiguity is settled by
    :func:`trackside.kinematics.calibration.heading_from_thighs` (or the shanks' equivalent),
    which alone is biased by a single leg's ab/adduction and a short window (tens of degrees
    with one thigh over 1.5 s). ``quat``/``gyr``: segment -> sensor quaternions / rates (rad/s).
    """
    from trackside.kinematics.calibration import heading_from_thighs, mean_quat
    from trackside.kinematics.quat import rotate

    t = np.asarray(time_s, float)
    sel = (t >= run[0]) & (t < run[1])
    st = (t >= stand[0]) & (t < stand[1])
    scatter = np.zeros((2, 2))
    rough_in, rough_std = {}, {}
    for seg in ("left_thigh", "right_thigh", "left_shank", "right_shank"):
        if seg not in quat or seg not in gyr:
            continue
        q, w = quat[seg][sel], gyr[seg][sel]
        ok = np.all(np.isfinite(q), axis=1) & np.all(np.isfinite(w), axis=1)
        if ok.sum() < 10:
            continue
        h = rotate(q[ok], w[ok])[:, :2]
        scatter += h.T @ h
        try:
            # heading_from_thighs reads thigh names: hand it the shanks under those names if needed
            name = seg.replace("shank", "thigh")
            if name not in rough_in:
                rough_std[name] = mean_quat(quat[seg][st])
                rough_in[name] = quat[seg]
        except ValueError:
            pass
    if not scatter.any() or not rough_in:
        raise ValueError("no thigh or shank data to take the heading from")
    rough = heading_from_thighs(rough_in, rough_std, sel)
    evals, evecs = np.linalg.eigh(scatter)
    left = evecs[:, int(np.argmax(evals))]
    cands = [np.arctan2(-left[0], left[1]), np.arctan2(left[0], -left[1])]  # forward = left turned -90 deg
    diff = [abs(np.angle(np.exp(1j * (c - rough)))) for c in cands]
    return float(cands[int(np.argmin(diff))])


def export_session(sess: dict, cfg: DemoConfig, skeleton) -> dict:
    """Calibrate (standing window, heading from the thighs while running) and write the outputs."""
    from trackside.kinematics.export import export_from_nodes

    t = sess["time_s"]
    n = min(len(t), int(round(cfg.seconds * cfg.rate_hz)))
    t = t[:n]
    node_q = {str(nid): q[:n] for nid, q in sess["quat"].items()}
    assign = {str(nid): seg for nid, seg in sess["segments"].items() if nid in sess["quat"]}
    # standing: the second half of the standing pose (the node filters settle in the first)
    stand = (0.5 * cfg.stand_s, cfg.stand_s - 0.2)
    walk = (cfg.stand_s + cfg.blend_s, float(t[-1]) + 1e-9)
    if walk[1] - walk[0] < 0.5:
        raise DemoError("too short to take the heading from the run: give more --seconds")
    by_seg = {seg: nid for nid, seg in sess["segments"].items() if nid in sess["quat"]}
    try:
        heading = heading_from_swing(t, {s: sess["quat"][i][:n] for s, i in by_seg.items()},
                                     {s: sess["gyr"][i][:n] for s, i in by_seg.items()}, stand, walk)
        source = "legs' swing axis"
    except ValueError:
        heading = None  # no legs (or no gyro): the export's own estimate (thighs) decides or refuses
        source = "thigh direction"
    feet = {}
    for nid, seg in sess["segments"].items():
        if seg in ("left_foot", "right_foot") and nid in sess["acc"]:
            feet[seg.split("_")[0]] = {"gyr": _filled(sess["gyr"][nid][:n]), "acc": _filled(sess["acc"][nid][:n])}
    try:
        res = export_from_nodes(cfg.out, t, node_q, assign, skeleton, stand=stand, walk=walk, heading_rad=heading,
                                foot_nodes=feet or None, fs=float(cfg.rate_hz), plots=cfg.plots,
                                extra={"source": "trackside demo", **cfg.extra})
    except ValueError as exc:
        raise DemoError(f"export failed: {exc}") from None
    except OSError as exc:
        raise DemoError(f"cannot write to {cfg.out}: {exc}") from None
    res["n"] = n
    res["heading_source"] = source
    return res


def run_demo(cfg: DemoConfig) -> dict:
    """Run the whole chain (module docstring); returns a summary dict (also what is printed)."""
    if not cfg.seconds >= cfg.stand_s + cfg.blend_s + 1.0:
        raise DemoError(f"--seconds must be at least {cfg.stand_s + cfg.blend_s + 1.0:g} "
                        f"({cfg.stand_s:g} s standing + {cfg.blend_s:g} s start + 1 s running)")
    segs = list(dict.fromkeys(cfg.segments))
    from trackside.kinematics.skeleton import Skeleton

    unknown = [s for s in segs if s not in Skeleton.from_height(1.8).names()]
    if unknown or not segs:
        raise DemoError(f"unknown segments {', '.join(unknown) or '(none)'}; known: {', '.join(ALL_SEGMENTS)}")
    cfg.segments = tuple(segs)
    t_start = time.monotonic()
    motion = build_motion(cfg)
    imus = node_imus(motion, cfg)
    tmp = None
    db = Path(cfg.db) if cfg.db else None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="trackside-demo-")
        db = Path(tmp.name) / "demo.db"
    try:
        sid, info = record_virtual(imus, cfg, db)
        sess = load_session(db, sid, cfg.rate_hz, per_node_start=cfg.realtime)
        res = export_session(sess, cfg, motion.skeleton)
    finally:
        if tmp is not None:
            tmp.cleanup()
    stats = sess["stats"]
    summary = {
        "session": sid, "db": None if tmp is not None else str(db), "nodes": len(sess["quat"]),
        "segments": dict(sess["segments"]), "samples": {n: int(s["samples"]) for n, s in stats.items()},
        "lost": {n: int(s["lost"]) for n, s in stats.items()},
        "frames_exported": res["n"], "rate_hz": cfg.rate_hz, "repaired_frames": sum(sess["repaired_frames"].values()),
        "align_err_ms": {n: 1e3 * e for n, e in sess["align_err_s"].items()},
        "host_clock_residual_us": {n: s["residual_us"] for n, s in stats.items()},
        "start_skew_ms": 1e3 * (max(sess["first_sample_s"].values()) - min(sess["first_sample_s"].values())),
        "heading_deg": float(np.degrees(res["heading_rad"])), "heading_source": res["heading_source"],
        "gait": res.get("gait_summary"), "files": [res["bvh"], res["angles_csv"], res["gait_json"], *res["plots"]],
        "record_wall_s": info["record_wall_s"], "wall_s": time.monotonic() - t_start,
        "motion": motion, "time_s": sess["time_s"][:res["n"]],
    }
    return summary


def format_summary(s: dict, cfg: DemoConfig) -> str:
    """Human-readable lines for the CLI."""
    lines = []
    src = f"clip {cfg.motion}" if cfg.motion else f"simulated {cfg.gait}"
    mode = "real time" if cfg.realtime else "virtual time, as fast as possible"
    lines.append(f"demo: {s['nodes']} virtual nodes ({', '.join(s['segments'][k] for k in sorted(s['segments']))}), "
                 f"{src}, {mode}; recorded in {s['record_wall_s']:.1f} s wall")
    tot = sum(s["samples"].values())
    lost = sum(s["lost"].values())
    lines.append(f"samples: {tot} received, {lost} lost frames; {s['frames_exported']} frames of "
                 f"{1 / s['rate_hz'] * 1e3:.0f} ms exported ({s['frames_exported'] / s['rate_hz']:.1f} s); "
                 f"{s['repaired_frames']} frames stamped t=0 by the firmware re-timed from their predecessor")
    errs = [e for e in s["align_err_ms"].values() if e == e]
    res = [r for r in s["host_clock_residual_us"].values() if r is not None]
    lines.append(f"alignment (node clocks): grid residual max {max(errs) if errs else float('nan'):.3f} ms, "
                 f"node start skew {s['start_skew_ms']:.1f} ms"
                 + (f", aggregator host-clock fit residual max {max(res):.0f} us" if res and cfg.realtime else ""))
    lines.append(f"calibration: standing 0-{cfg.stand_s:g} s, running heading {s['heading_deg']:.1f} deg "
                 f"({s['heading_source']})")
    g = s.get("gait")
    if g:
        def f(k, scale=1.0, unit=""):
            m = (g.get(k) or {}).get("mean")
            return "n/a" if m is None else f"{m * scale:.3g}{unit}"
        lines.append(f"gait: contact {f('contact_s', 1000, ' ms')}, flight {f('flight_s', 1000, ' ms')}, "
                     f"step length {f('step_length_m', 1, ' m')}, step frequency {f('step_freq_hz', 1, ' Hz')}")
    else:
        lines.append("gait: not available (see gait.json)")
    if cfg.realtime:
        lines.append("warning: in real time each virtual chip plays its motion from its own boot, and on a busy "
                     "machine the delay from boot to the first samples differs by node (0.1-0.9 s measured here), so "
                     "segments can be out of step (joint angles off by up to tens of degrees). The default --fast "
                     "(virtual time) keeps them exactly in step.")
    lines.append("wrote " + ", ".join(Path(p).name for p in s["files"]) + f" -> {cfg.out}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - manual check
    r = run_demo(DemoConfig(seconds=float(sys.argv[1]) if len(sys.argv) > 1 else 6.0))
    print(r["files"])
