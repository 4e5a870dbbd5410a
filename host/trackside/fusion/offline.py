"""Offline orientation smoother for recorded sessions: the host EKF forward, then a
Rauch-Tung-Striebel (RTS) backward pass over its error state, then a heading blend (below).
Registered as filter ``offline``.

Same file contract as the other filters: gyr rad/s, acc m/s^2, mag uT (Nx3), fs Hz in; quat Nx4
(w, x, y, z), sensor-to-earth, ENU out.

What it adds to the online filter: every sample's orientation, gyro bias and hard-iron offset is
estimated from the whole recording. The bias learnt at the end of a rest or once a magnet's offset
has converged is carried back to the samples before it, and heading corrections that the online
filter applies late are spread over the stretch they belong to. Measured on BROAD (see
tools/bench/bench_host_filters.py): inclination is better on every trial and the disturbed trials
gain, but on undisturbed trials the heading can be worse than online, because the field's
direction where the sensor moves differs by a few degrees from the field at the start (which the
reference's north follows) and the smoother spreads that difference backwards. So the output
(:func:`run_offline`) takes the smoothed inclination everywhere but the smoothed heading only
where the forward filter flagged the magnetometer as disturbed, ramping to the forward heading
within HEADING_BLEND_S seconds of it (:func:`blend_heading`): there the online filter ran on the
gyro alone and hindsight pays; elsewhere it follows the local field as the reference does.
BROAD mean total RMSE (7 trials): 1.96 deg (plain RTS 2.12, online 2.13); leave-two-out worst /
median subset 2.32 / 1.93 deg.

Error-state RTS (earth-frame attitude error, as in :mod:`trackside.fusion.host`): with the
filter's posterior ``x_j``/``P_j``, prior ``x_{j+1}^-``/``P_{j+1}^-`` and transition ``Phi_{j+1}``,

    C_j = P_j Phi_{j+1}^T (P_{j+1}^-)^-1,    e_j = C_j (Delta_{j+1} + e_{j+1}),   e_last = 0,

where ``Delta_{j+1} = x_{j+1} [-] x_{j+1}^-`` is the measurement correction the filter applied at
step j+1 and ``e_j`` the smoothed correction of the posterior ``x_j``. Samples between filter
steps get a correction interpolated between the neighbouring steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trackside.fusion.host import HostEKF, HostFilterParams, _params
from trackside.fusion.metrics import Recording, quat_conj, quat_multiply


def _rotvec_to_quat(v: np.ndarray) -> np.ndarray:
    """(..., 3) rotation vectors -> (..., 4) unit quaternions w x y z."""
    ang = np.linalg.norm(v, axis=-1, keepdims=True)
    half = 0.5 * ang
    # sin(half)/ang -> 0.5 as ang -> 0
    k = np.where(ang > 1e-12, np.sin(half) / np.where(ang > 1e-12, ang, 1.0), 0.5)
    return np.concatenate([np.cos(half), v * k], axis=-1)


def _quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions -> (..., 3) rotation vectors (shortest rotation)."""
    q = np.where(q[..., :1] < 0, -q, q)
    vn = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    ang = 2.0 * np.arctan2(vn, q[..., :1])
    k = np.where(vn > 1e-12, ang / np.where(vn > 1e-12, vn, 1.0), 2.0)
    return q[..., 1:] * k


def rts_smooth(quat_fwd: np.ndarray, trace: Any) -> np.ndarray:
    """RTS backward pass over a :class:`~trackside.fusion.host.FilterTrace`.

    ``quat_fwd`` is the forward filter's per-sample output (Nx4). Returns the smoothed Nx4
    orientation.
    """
    m = len(trace.step_index)
    n = quat_fwd.shape[0]
    if m < 2:
        return quat_fwd.copy()
    # Transition matrices Phi_{j} (j = 1..m-1): identity plus the attitude/gyro-bias block.
    ns = trace.p_post.shape[1]
    phi = np.broadcast_to(np.eye(ns), (m, ns, ns)).copy()
    phi[:, 0:3, 3:6] = trace.phi_m
    # C_j^T = (P_{j+1}^-)^-1 Phi_{j+1} P_j  (all symmetric), solved for all j at once.
    rhs = phi[1:] @ trace.p_post[:-1]
    prior = trace.p_prior[1:] + 1e-12 * np.eye(ns)  # guard a singular block (e.g. frozen state)
    ct = np.linalg.solve(prior, rhs)
    c = np.transpose(ct, (0, 2, 1))

    # Delta_{j}: correction applied by the measurement updates at step j.
    delta = np.empty((m, ns))
    delta[:, 0:3] = _quat_to_rotvec(quat_multiply(trace.quat, quat_conj(trace.quat_prior)))
    delta[:, 3:] = trace.bias - trace.bias_prior

    e = np.zeros((m, ns))      # smoothed correction of the posterior at step j
    d = np.zeros((m, ns))      # smoothed correction of the prior at step j (= Delta_j + e_j)
    d[m - 1] = delta[m - 1]
    cur = np.zeros(ns)
    reset = trace.reset
    for j in range(m - 2, -1, -1):
        nxt = delta[j + 1] + cur
        d[j + 1] = nxt
        if reset[j + 1]:  # offset restored by fiat: nothing about b_m flows back across it
            nxt = nxt.copy()
            nxt[6:9] = 0.0
        cur = c[j] @ nxt
        e[j] = cur
    d[0] = delta[0] + e[0]

    # Per-sample attitude correction: e_j at step j's sample, moving linearly to d_{j+1} (relative
    # to the gyro-propagated orientation) just before step j+1; after the last step, e_last = 0.
    idx = trace.step_index
    corr = np.zeros((n, 3))
    # Steps are every L samples (the filter's decimation), so all segments have length L.
    L = int(idx[1] - idx[0])
    full = m - 1
    frac = np.arange(L) / L  # 0 at step j, -> 1 towards step j+1
    a = e[:full, 0:3][:, None, :] * (1.0 - frac)[None, :, None] \
        + d[1:full + 1, 0:3][:, None, :] * frac[None, :, None]
    corr[: full * L] = a.reshape(-1, 3)[: full * L]
    # Samples from the last step on keep e_last = 0 (smoothed = filtered there).
    return _normalise(quat_multiply(_rotvec_to_quat(corr), quat_fwd))


def _normalise(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def _heading_angle(q: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, in (-pi, pi]) of the earth-z (heading) part of (..., 4) quaternions."""
    return np.angle(np.exp(2j * np.arctan2(q[..., 3], q[..., 0])))


def disturbed_samples(trace: Any, n: int) -> np.ndarray:
    """Per-sample bool (length ``n``): the forward filter flagged the magnetometer as disturbed
    (each filter step's flag covers its samples up to the next step)."""
    out = np.zeros(n, bool)
    idx = trace.step_index
    ends = np.append(idx[1:], n)
    for k0, k1 in zip(idx[trace.disturbed], ends[trace.disturbed]):
        out[k0:k1] = True
    return out


def blend_heading(quat_fwd: np.ndarray, quat_smooth: np.ndarray, disturbed: np.ndarray,
                  fs: float, blend_s: float) -> np.ndarray:
    """Smoothed inclination everywhere; the smoother's heading only where it knows more.

    Where the magnetometer was disturbed the forward filter runs on the gyro with the bias and
    hard-iron offset it had, and corrects the heading late; there (and within ``blend_s`` seconds
    of it, weight falling linearly to 0) the smoothed heading is used. Elsewhere the heading is
    the forward filter's: it follows the local field as the online filter does, whereas the
    smoother would carry the field's direction where the sensor moves back to the start, which
    the reference's north follows (see the module docstring).

    Returns Nx4 quaternions: ``Rz((1 - w) * phi) * quat_smooth`` with ``phi`` the heading of
    ``quat_fwd * conj(quat_smooth)`` and ``w`` the per-sample weight of the smoothed heading.
    """
    n = quat_fwd.shape[0]
    disturbed = np.asarray(disturbed, bool)
    if disturbed.any() and blend_s > 0:
        from scipy.ndimage import distance_transform_edt

        dist_s = distance_transform_edt(~disturbed) / fs  # time to the nearest disturbed sample
        w = np.clip(1.0 - dist_s / blend_s, 0.0, 1.0)
    else:
        w = disturbed.astype(float)
    phi = _heading_angle(quat_multiply(quat_fwd, quat_conj(quat_smooth)))
    half = 0.5 * (1.0 - w) * phi
    rz = np.zeros((n, 4))
    rz[:, 0] = np.cos(half)
    rz[:, 3] = np.sin(half)
    return _normalise(quat_multiply(rz, quat_smooth))


def run_offline(rec: Recording, **options: Any) -> np.ndarray:
    """Offline smoother over a recording: quat Nx4 (w, x, y, z), sensor-to-earth, ENU.

    Keyword options: ``params=HostFilterParams(...)`` or individual parameter fields (the
    forward filter's); ``heading_blend_s`` (s, default HEADING_BLEND_S; the ramp of
    :func:`blend_heading`; ``None`` keeps the plain RTS heading everywhere); other options (such
    as the CLI's ``chip``) are ignored.
    """
    blend_s = options.pop("heading_blend_s", HEADING_BLEND_S)
    if blend_s is not None and not (isinstance(blend_s, (int, float)) and np.isfinite(blend_s)
                                    and blend_s >= 0):
        raise ValueError(f"heading_blend_s must be a non-negative number of seconds or None, "
                         f"got {blend_s!r}")
    params = _params({"params": OFFLINE_DEFAULTS, **options}) if "params" not in options \
        else _params(options)
    ekf = HostEKF(rec.fs, params)
    quat, trace = ekf.run(rec.gyr, rec.acc, rec.mag, store=True)
    smooth = rts_smooth(quat, trace)
    if blend_s is None:
        return smooth
    return blend_heading(quat, smooth, disturbed_samples(trace, len(quat)), rec.fs, blend_s)


# Forward-filter parameters for smoothing (the same physics as online; see the bench).
OFFLINE_DEFAULTS = HostFilterParams()

HEADING_BLEND_S = 10.0
"""Ramp (s) from the smoothed to the forward heading around a disturbed span: about the
time the forward filter takes to pull its heading back onto the magnetometer (mag_noise_ut is
set for tens of seconds) and the same as its reference-field time constant mag_ref_tau_s. BROAD
mean total RMSE is flat around it: 1.98 / 1.96 / 1.95 deg for 5 / 10 / 20 s."""


try:  # register with the filter registry when it exists (owned by the fusion CLI)
    from trackside.fusion.registry import register_filter
except ImportError:  # pragma: no cover - registry not present
    pass
else:
    register_filter("offline", run_offline, "offline RTS smoother over the host EKF (recorded "
                    "sessions: tilt, bias and hard-iron from the whole recording; heading too "
                    "around magnetic disturbances)")
