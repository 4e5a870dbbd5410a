"""Gait from foot-mounted IMUs: stance detection, strapdown + zero-velocity updates, steps.

Pipeline for one foot (:func:`foot_track`):

1. stance (zero-velocity) detection: a sample is still when the gyro norm is below
   ``gyr_thresh`` rad/s and the specific-force norm is within ``acc_thresh`` m/s^2 of gravity
   (first pass) / the gravity-free earth acceleration is below ``acc_thresh`` (second pass,
   after the strapdown attitude is known);
   runs shorter than ``min_stance_s`` are dropped, gaps shorter than ``min_swing_s`` closed;
   the interval edges are refined to sub-sample times by extrapolating the foot's acceleration
   (which vanishes at contact) linearly to zero from the two moving samples outside the stance;
2. strapdown: attitude from the gyro (quaternion integration with the mid-point rate), tilt
   reset to the measured gravity at every stance, initial heading from the magnetometer
   (tilt-compensated) when given, else 0; acceleration rotated to earth, gravity removed;
3. zero-velocity update: velocity forced to zero during stance, and the velocity error found
   at each touchdown removed linearly over the preceding swing; positions by integration.

Per-foot figures (:func:`gait_one_foot`): each contact's touchdown/toe-off, contact time, stride
time and length; step figures for one foot assume symmetric steps (step = stride / 2,
step frequency = 2 / stride time, flight = stride time / 2 - contact). With both feet
(:func:`gait_session`) steps are measured between contralateral contacts: step time,
frequency (1 / step time), flight time (previous toe-off to this touchdown), step length
(``step_length_m``: the foot's own stride length split in the ratio of the mid-stance times,
i.e. footprints under a steadily moving body at mid-stance; drift-free because it uses one
track only; ``step_length_tracks_m``: the footprint distance between the two foot tracks
along the direction of travel, anchored at the initial standing pose, exact in principle but
the two tracks' independent errors accumulate into it over a session) and left/right asymmetry as the symmetry index
100 * (L - R) / ((L + R) / 2) of the side means. The pelvis path is the stride-averaged
midpoint of the two foot tracks.

Limits: the detector needs a still foot during contact (true for flat-foot running contacts;
a heel-to-toe roll shortens the detected stance); without a magnetometer each foot's heading
is relative, so tracks are compared along their own direction of travel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from trackside.kinematics.quat import from_rot, qmul, rotate

__all__ = ["GRAVITY", "FootTrack", "detect_stance", "foot_track", "gait_one_foot", "gait_session",
           "pelvis_track", "load_foot_npz"]

GRAVITY = 9.81


@dataclass
class FootTrack:
    """Result of :func:`foot_track`. Arrays are N long; intervals as (touchdown_s, toeoff_s)."""

    time_s: np.ndarray
    quat: np.ndarray      # sensor-to-earth (w, x, y, z)
    vel: np.ndarray       # m/s, earth
    pos: np.ndarray       # m, earth (start = 0)
    stance: np.ndarray    # bool
    contacts: list[tuple[float, float]]
    footprints: np.ndarray  # mean position during each contact, K x 3
    has_heading: bool


def _check_imu(gyr, acc, fs, mag=None):
    gyr = np.asarray(gyr, float)
    acc = np.asarray(acc, float)
    if gyr.ndim != 2 or gyr.shape[1] != 3 or acc.shape != gyr.shape:
        raise ValueError(f"gyr and acc must both be N x 3, got {gyr.shape} and {acc.shape}")
    fs = float(fs)
    if not (fs > 0):
        raise ValueError(f"fs must be positive, got {fs!r}")
    if len(gyr) < int(1.0 * fs):
        raise ValueError("need at least 1 s of data")
    if not (np.all(np.isfinite(gyr)) and np.all(np.isfinite(acc))):
        raise ValueError("gyr/acc contain NaN or infinite values")
    if mag is not None:
        mag = np.asarray(mag, float)
        if mag.shape != gyr.shape:
            raise ValueError(f"mag must be N x 3 like gyr, got {mag.shape}")
        if not np.all(np.isfinite(mag)):
            mag = None
    return gyr, acc, fs, mag


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs of True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def detect_stance(gyr, acc, fs, gyr_thresh: float = 0.8, acc_thresh: float = 1.0,
                  min_stance_s: float = 0.04, min_swing_s: float = 0.06, acc_dev: np.ndarray | None = None):
    """Stance mask and contact intervals ``[(touchdown_s, toeoff_s, i0, i1), ...]`` (sub-sample edges).

    ``acc_dev``: optional N-vector of |acceleration without gravity| (m/s^2, from a strapdown
    pass); without it the deviation of the specific-force norm from g is used, which is only
    second-order in horizontal accelerations and so finds the edges a few ms late/early.
    """
    gyr, acc, fs, _ = _check_imu(gyr, acc, fs)
    dev = np.abs(np.linalg.norm(acc, axis=1) - GRAVITY) if acc_dev is None else np.asarray(acc_dev, float)
    stat = np.maximum(np.linalg.norm(gyr, axis=1) / gyr_thresh, dev / acc_thresh)
    still = stat < 1.0
    # close short gaps (a jolt inside a contact), then drop short stances
    for a, b in _runs(~still):
        if a > 0 and b < len(still) and (b - a) / fs < min_swing_s:
            still[a:b] = True
    for a, b in _runs(still):
        if (b - a) / fs < min_stance_s:
            still[a:b] = False
    contacts = []
    for a, b in _runs(still):
        contacts.append((_edge(dev, a, fs, rising=False), _edge(dev, b - 1, fs, rising=True), int(a), int(b)))
    return still, contacts


def _edge(dev: np.ndarray, k: int, fs: float, rising: bool) -> float:
    """Sub-sample contact edge next to still sample ``k``.

    The foot's acceleration goes to zero at contact; extrapolate it linearly from the two
    moving samples outside the still run to its zero crossing (clipped to within one sample).
    ``rising``: the motion resumes after ``k`` (toe-off); else it ends at ``k`` (touchdown).
    """
    n = len(dev)
    if not rising:
        if k < 2:
            return k / fs
        a1, a2 = dev[k - 1], dev[k - 2]  # nearest and next moving samples before the stance
        frac = a1 / (a2 - a1) if a2 > a1 else 1.0
        return (k - 1 + min(max(frac, 0.0), 1.0)) / fs
    if k + 2 >= n:
        return (k + 1) / fs
    a1, a2 = dev[k + 1], dev[k + 2]
    frac = a1 / (a2 - a1) if a2 > a1 else 1.0
    return (k + 1 - min(max(frac, 0.0), 1.0)) / fs


def _heading_align(q: np.ndarray, m_sensor: np.ndarray, m_ref: np.ndarray, tol: float = 0.1) -> np.ndarray:
    """Remove heading drift: turn q about the vertical so the stance's field matches the
    reference field's horizontal direction. Skipped when the field looks disturbed (norm or
    vertical component off by more than ``tol`` of the reference norm)."""
    m_e = rotate(q, m_sensor)
    nr = np.linalg.norm(m_ref)
    if abs(np.linalg.norm(m_e) - nr) > tol * nr or abs(m_e[2] - m_ref[2]) > tol * nr:
        return q
    err = np.arctan2(m_e[1], m_e[0]) - np.arctan2(m_ref[1], m_ref[0])
    c = Rotation.from_rotvec([0.0, 0.0, -err])
    return from_rot(c * Rotation.from_quat(q[[1, 2, 3, 0]]))


def _tilt_align(q: np.ndarray, f_sensor: np.ndarray) -> np.ndarray:
    """Rotate q (sensor-to-earth) minimally so the measured specific force points up."""
    f_e = rotate(q, f_sensor)
    f_e = f_e / np.linalg.norm(f_e)
    axis = np.cross(f_e, [0.0, 0.0, 1.0])
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return q
    corr = Rotation.from_rotvec(axis / s * np.arctan2(s, f_e[2]))
    return from_rot(corr * Rotation.from_quat(q[[1, 2, 3, 0]]))


def _inner(c) -> slice:
    """Samples well inside a contact (edges may still carry a little motion)."""
    a, b = c[2], c[3]
    m = min(2, (b - a) // 4)
    return slice(a + m, b - m)


def _prefix_product(inc: np.ndarray) -> np.ndarray:
    """Running quaternion products inc[0], inc[0]*inc[1], ... (Hillis-Steele scan)."""
    out = inc.copy()
    shift = 1
    while shift < len(out):
        out[shift:] = qmul(out[:-shift], out[shift:])
        shift *= 2
    return out


def _attitude(gyr, acc, mag, contacts, dt) -> np.ndarray:
    """Gyro strapdown attitude with tilt (and magnetic heading) resets at each contact start."""
    n = len(gyr)
    first = _inner(contacts[0])
    f0 = acc[first].mean(axis=0)
    # initial attitude: gravity; heading from the magnetometer if there is one
    z_s = f0 / np.linalg.norm(f0)
    if mag is not None:
        m0 = mag[first].mean(axis=0)
        e_s = np.cross(m0, z_s)
        e_s /= np.linalg.norm(e_s)
        n_s = np.cross(z_s, e_s)
        r0 = Rotation.from_matrix(np.vstack([e_s, n_s, z_s]))
    else:
        # heading 0: the sensor x axis's horizontal part points east
        x_h = np.array([1.0, 0, 0]) - z_s[0] * z_s
        if np.linalg.norm(x_h) < 0.1:
            x_h = np.array([0, 1.0, 0]) - z_s[1] * z_s
        x_h /= np.linalg.norm(x_h)
        r0 = Rotation.from_matrix(np.vstack([x_h, np.cross(z_s, x_h), z_s]))
    q = np.empty((n, 4))
    q[0] = from_rot(r0)
    stance_start = np.zeros(n, bool)
    for c in contacts:
        stance_start[c[2]] = True
    mean_f = {c[2]: acc[_inner(c)].mean(axis=0) for c in contacts}
    mag_ref = None
    if mag is not None:
        # the earth-frame field seen in the first stance is the reference for later stances
        mean_m = {c[2]: mag[_inner(c)].mean(axis=0) for c in contacts}
        mag_ref = rotate(q[0], mag[first].mean(axis=0))
    if stance_start[0]:
        q[0] = _tilt_align(q[0], mean_f[0])
    inc = from_rot(Rotation.from_rotvec(0.5 * (gyr[1:] + gyr[:-1]) * dt))
    # between two stance starts the attitude is a running product of increments: computed
    # vectorized (prefix scan); the corrections at stance starts chain the pieces
    starts = [k for k in np.flatnonzero(stance_start) if k > 0] + [n]
    k0 = 1
    for k1 in starts:
        if k1 > k0:
            q[k0:k1] = qmul(q[k0 - 1], _prefix_product(inc[k0 - 1:k1 - 1]))
            q[k0:k1] /= np.linalg.norm(q[k0:k1], axis=1, keepdims=True)
        if k1 < n:
            qk = qmul(q[k1 - 1], inc[k1 - 1])
            qk = _tilt_align(qk / np.linalg.norm(qk), mean_f[k1])
            if mag_ref is not None:
                qk = _heading_align(qk, mean_m[k1], mag_ref)
            q[k1] = qk
        k0 = k1 + 1
    return q


def foot_track(gyr, acc, fs, mag=None, **stance_kw) -> FootTrack:
    """Strapdown integration with zero-velocity updates for one foot (see module docstring)."""
    gyr, acc, fs, mag = _check_imu(gyr, acc, fs, mag)
    n = len(gyr)
    dt = 1.0 / fs
    still, contacts = detect_stance(gyr, acc, fs, **stance_kw)
    if not contacts:
        raise ValueError("no stance phase detected: is this a foot-mounted sensor at rest at some point?")
    q = _attitude(gyr, acc, mag, contacts, dt)
    a_e = rotate(q, acc)
    a_e[:, 2] -= GRAVITY
    # second pass: stance from the gravity-free acceleration vector (first-order in motion),
    # then the attitude again with corrections from those (tighter) stance intervals
    still2, contacts2 = detect_stance(gyr, acc, fs, acc_dev=np.linalg.norm(a_e, axis=1), **stance_kw)
    if contacts2:
        still, contacts = still2, contacts2
        q = _attitude(gyr, acc, mag, contacts, dt)
    a_e = rotate(q, acc)
    a_e[:, 2] -= GRAVITY
    vel = np.zeros((n, 3))
    vel[1:] = np.cumsum(0.5 * (a_e[1:] + a_e[:-1]) * dt, axis=0)
    # ZUPT: zero in stance; remove the velocity error linearly over each swing
    out_v = np.zeros_like(vel)
    bounds = [(c[2], c[3]) for c in contacts]
    for (a_prev, b_prev), (a_next, _) in zip(bounds[:-1], bounds[1:]):
        seg = slice(b_prev - 1, a_next + 1)
        v = vel[seg] - vel[b_prev - 1]
        ramp = np.linspace(0.0, 1.0, len(v))[:, None]
        out_v[seg] = v - ramp * v[-1]
    # after the last contact: integrate freely from zero (no later update to correct it)
    last_b = bounds[-1][1]
    if last_b < n:
        out_v[last_b - 1:] = vel[last_b - 1:] - vel[last_b - 1]
    out_v[still] = 0.0
    pos = np.zeros((n, 3))
    pos[1:] = np.cumsum(0.5 * (out_v[1:] + out_v[:-1]) * dt, axis=0)
    fps = np.array([pos[c[2]:c[3]].mean(axis=0) for c in contacts])
    t = np.arange(n) / fs
    return FootTrack(t, q, out_v, pos, still, [(c[0], c[1]) for c in contacts], fps, mag is not None)


def _summary(values: list[float]) -> dict:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) == 0:
        return {"n": 0, "mean": None, "sd": None}
    return {"n": int(len(v)), "mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def _moving_contacts(track: FootTrack, min_stride_m: float) -> list[int]:
    """Indices of contacts that belong to locomotion (the foot moved before or after)."""
    fp = track.footprints[:, :2]
    keep = []
    for i in range(len(fp)):
        d_prev = np.linalg.norm(fp[i] - fp[i - 1]) if i > 0 else 0.0
        d_next = np.linalg.norm(fp[i + 1] - fp[i]) if i + 1 < len(fp) else 0.0
        # locomotion contact: the foot arrived from a stride (the standing start is excluded)
        if d_prev >= min_stride_m or (i > 0 and d_next >= min_stride_m and d_prev >= min_stride_m / 3):
            keep.append(i)
    return keep


def gait_one_foot(gyr, acc, fs, side: str, mag=None, min_stride_m: float = 0.3, **stance_kw) -> dict:
    """Per-contact gait figures of one foot, JSON-ready (see module docstring)."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    tr = foot_track(gyr, acc, fs, mag, **stance_kw)
    keep = _moving_contacts(tr, min_stride_m)
    steps = []
    for j, i in enumerate(keep):
        td, to = tr.contacts[i]
        row = {"touchdown_s": td, "toeoff_s": to, "contact_s": to - td, "stride_time_s": None,
               "stride_length_m": None, "step_length_m": None, "step_freq_hz": None, "flight_s": None,
               "speed_mps": None, "footprint_m": [float(x) for x in tr.footprints[i]]}
        if j > 0 and keep[j - 1] == i - 1:
            td_prev = tr.contacts[i - 1][0]
            stride_t = td - td_prev
            stride_l = float(np.linalg.norm(tr.footprints[i, :2] - tr.footprints[i - 1, :2]))
            row.update(stride_time_s=stride_t, stride_length_m=stride_l, step_length_m=stride_l / 2,
                       step_freq_hz=2.0 / stride_t, flight_s=stride_t / 2 - (to - td),
                       speed_mps=stride_l / stride_t)
        steps.append(row)
    summ = {k: _summary([s[k] for s in steps]) for k in
            ("contact_s", "flight_s", "step_length_m", "step_freq_hz", "stride_length_m", "stride_time_s", "speed_mps")}
    return {
        "side": side, "fs": float(fs), "n_contacts": len(steps), "steps": steps, "summary": summ,
        "method": "ZUPT strapdown, one foot: step = stride / 2, flight = stride time / 2 - contact",
        "heading_from_magnetometer": tr.has_heading,
    }


def _along_track(fp: np.ndarray, direction: np.ndarray) -> np.ndarray:
    return fp[:, :2] @ direction


def _direction(fp: np.ndarray) -> np.ndarray:
    d = fp[-1, :2] - fp[0, :2]
    nd = np.linalg.norm(d)
    return d / nd if nd > 1e-6 else np.array([1.0, 0.0])


def gait_session(left: dict, right: dict, fs: float, min_stride_m: float = 0.3, **stance_kw) -> dict:
    """Step-by-step gait from both feet (dicts with ``gyr``, ``acc`` and optional ``mag``)."""
    tracks = {}
    for side, imu in (("left", left), ("right", right)):
        tracks[side] = foot_track(imu["gyr"], imu["acc"], fs, imu.get("mag"), **stance_kw)
    events = []
    for side, tr in tracks.items():
        keep = _moving_contacts(tr, min_stride_m)
        if len(keep) < 2:
            continue
        fp = tr.footprints
        direction = _direction(fp[keep])
        # both tracks start at the standing pose, side by side: along-track origin = first footprint
        along = _along_track(fp - fp[0], direction)
        kept = set(keep)
        for i in keep:
            stride = float(np.linalg.norm(fp[i, :2] - fp[i - 1, :2])) if i - 1 in kept else None
            events.append({"side": side, "touchdown_s": tr.contacts[i][0], "toeoff_s": tr.contacts[i][1],
                           "along_m": float(along[i]), "stride_m": stride})
    events.sort(key=lambda e: e["touchdown_s"])
    for e in events:
        e["mid_s"] = 0.5 * (e["touchdown_s"] + e["toeoff_s"])
    steps = []
    for k in range(1, len(events)):
        prev, e = events[k - 1], events[k]
        row = {"side": e["side"], "touchdown_s": e["touchdown_s"], "toeoff_s": e["toeoff_s"],
               "contact_s": e["toeoff_s"] - e["touchdown_s"], "step_time_s": None, "step_freq_hz": None,
               "flight_s": None, "step_length_m": None, "step_length_tracks_m": None}
        if prev["side"] != e["side"]:
            st = e["touchdown_s"] - prev["touchdown_s"]
            row.update(step_time_s=st, step_freq_hz=1.0 / st, flight_s=e["touchdown_s"] - prev["toeoff_s"],
                       step_length_tracks_m=e["along_m"] - prev["along_m"])
            # drift-free step length: this foot's stride split by the mid-stance timing
            # (footprints lie under the body at mid-stance, the body moving steadily)
            if k >= 2 and events[k - 2]["side"] == e["side"] and e["stride_m"] is not None:
                span = e["mid_s"] - events[k - 2]["mid_s"]
                if span > 0:
                    row["step_length_m"] = e["stride_m"] * (e["mid_s"] - prev["mid_s"]) / span
        steps.append(row)
    keys = ("contact_s", "flight_s", "step_length_m", "step_freq_hz", "step_time_s", "step_length_tracks_m")
    by_side = {s: {k: _summary([r[k] for r in steps if r["side"] == s]) for k in keys} for s in ("left", "right")}
    asym = {}
    for k in keys:
        lm, rm = by_side["left"][k]["mean"], by_side["right"][k]["mean"]
        asym[k] = None if lm is None or rm is None or (lm + rm) == 0 else float(100.0 * (lm - rm) / ((lm + rm) / 2))
    pel = pelvis_track(tracks["left"], tracks["right"], fs)
    return {
        "fs": float(fs), "n_steps": len(steps), "steps": steps,
        "summary": {k: _summary([r[k] for r in steps]) for k in keys},
        "by_side": by_side, "asymmetry_pct": asym,
        "pelvis_path_m": {"time_s": pel["time_s"].tolist(), "xy": pel["xy"].round(4).tolist()},
        "method": "ZUPT strapdown on both feet; steps between contralateral contacts; step_length_m = the "
                  "foot's stride split by mid-stance timing (drift-free); step_length_tracks_m = footprint "
                  "distance between the two foot tracks (exact, but drifts with sensor errors over a session); "
                  "asymmetry = 100 (L - R) / mean(L, R)",
    }


def pelvis_track(left: FootTrack, right: FootTrack, fs: float, decimate_hz: float = 10.0) -> dict:
    """Pelvis horizontal path: midpoint of the two foot tracks, averaged over ~one stride."""
    n = min(len(left.pos), len(right.pos))
    mid = 0.5 * (left.pos[:n, :2] + right.pos[:n, :2])
    contacts = sorted(left.contacts + right.contacts)
    if len(contacts) > 2:
        stride = 2 * np.median(np.diff([c[0] for c in contacts]))
    else:
        stride = 1.0
    w = max(1, int(round(stride * fs)))
    kernel = np.ones(w) / w
    sm = np.column_stack([np.convolve(np.pad(mid[:, k], (w // 2, w - 1 - w // 2), mode="edge"), kernel, "valid")
                          for k in range(2)])
    step = max(1, int(round(fs / decimate_hz)))
    t = np.arange(n) / fs
    return {"time_s": t[::step], "xy": sm[::step], "time_full_s": t, "xy_full": sm}


def load_foot_npz(path) -> dict:
    """Load a foot recording (.npz with ``gyr`` rad/s, ``acc`` m/s^2, optional ``mag`` uT, ``fs``)."""
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("gyr", "acc", "fs") if k not in z]
        if missing:
            raise ValueError(f"{path}: missing keys {', '.join(missing)} (need gyr, acc, fs; mag optional)")
        out = {"gyr": np.asarray(z["gyr"], float), "acc": np.asarray(z["acc"], float), "fs": float(z["fs"])}
        if "mag" in z:
            out["mag"] = np.asarray(z["mag"], float)
    return out
