"""Simulated IMU recordings with known truth, for tests and held-out checks of the filters.

The orientation follows a smooth random angular velocity (integrated exactly per sample with
the quaternion exponential); the position is a bounded sum of sinusoids (linear acceleration
that averages out, as in real movement); gyro bias, white noise and optional magnetic
disturbances (a sensor-fixed hard iron appearing at ``hard_iron_at`` seconds, or an
earth-fixed field change between ``field_dist`` seconds) are added.
"""

from __future__ import annotations

import numpy as np

from trackside.fusion.metrics import Recording, quat_conj, quat_multiply

G = 9.80665
EARTH_FIELD = np.array([0.0, 15.0, -40.0])  # uT, ENU (north horizontal, dip ~69 deg)


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v rotated by unit quaternions q (both (N, ...)), i.e. q v q*."""
    qv = np.concatenate([np.zeros(v.shape[:-1] + (1,)), v], axis=-1)
    return quat_multiply(quat_multiply(q, qv), quat_conj(q))[..., 1:]


def _smooth_noise(rng: np.random.Generator, n: int, fs: float, cutoff_hz: float, dims: int = 3) -> np.ndarray:
    """Unit-RMS low-pass noise (moving average of white noise, twice)."""
    win = max(1, int(fs / cutoff_hz))
    x = rng.standard_normal((n + 2 * win, dims))
    k = np.ones(win) / win
    for _ in range(2):
        x = np.stack([np.convolve(x[:, d], k, mode="same") for d in range(dims)], axis=1)
    x = x[win:win + n]
    return x / (np.sqrt(np.mean(x * x)) + 1e-12)


def simulate_recording(
    duration: float = 60.0,
    fs: float = 200.0,
    seed: int = 0,
    rate_dps: float = 90.0,
    rest: float = 5.0,
    lin_acc: float = 2.0,
    gyro_bias_dps: tuple[float, float, float] = (0.4, -0.3, 0.5),
    gyro_noise_dps: float = 0.1,
    acc_noise: float = 0.03,
    mag_noise: float = 0.3,
    hard_iron: tuple[float, float, float] | None = None,
    hard_iron_at: float = 0.0,
    field_dist: tuple[float, float] | None = None,
    field_dist_ut: tuple[float, float, float] = (12.0, -8.0, 10.0),
) -> Recording:
    """A recording (gyr rad/s, acc m/s^2, mag uT) with its true orientation ``quat``.

    Still for ``rest`` seconds at both ends (where the filters learn the gyro bias); in
    between the angular velocity has RMS ``rate_dps`` per axis and the linear acceleration
    RMS about ``lin_acc`` m/s^2. ``movement`` marks the moving part.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * fs))
    dt = 1.0 / fs
    t = np.arange(n) * dt
    moving = (t >= rest) & (t < duration - rest)
    ramp = np.clip(np.minimum(t - rest, duration - rest - t), 0.0, 1.0)  # 1 s fade in/out
    omega = np.radians(rate_dps) * _smooth_noise(rng, n, fs, 1.0) * ramp[:, None]
    # exact integration: q_{k+1} = q_k (x) exp(omega_k dt / 2)
    q = np.empty((n, 4))
    q0 = rng.standard_normal(4)
    q0 /= np.linalg.norm(q0)
    q[0] = q0
    ang = np.linalg.norm(omega, axis=1) * dt
    axis = omega / np.maximum(np.linalg.norm(omega, axis=1, keepdims=True), 1e-300)
    dq = np.concatenate([np.cos(ang / 2)[:, None], axis * np.sin(ang / 2)[:, None]], axis=1)
    for k in range(n - 1):
        q[k + 1] = quat_multiply(q[k], dq[k])
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    # bounded position: sum of sinusoids -> linear acceleration (earth frame)
    acc_e = np.zeros((n, 3))
    for _ in range(4):
        f = rng.uniform(0.3, 2.0)
        amp = lin_acc / 2.0 * rng.standard_normal(3)
        ph = rng.uniform(0, 2 * np.pi, 3)
        acc_e += amp * np.sin(2 * np.pi * f * t[:, None] + ph)
    acc_e *= ramp[:, None]
    qc = quat_conj(q)
    acc = _rotate(qc, acc_e + np.array([0.0, 0.0, G])) + acc_noise * rng.standard_normal((n, 3))
    field = np.tile(EARTH_FIELD, (n, 1))
    if field_dist is not None:
        a, b = field_dist
        inside = (t >= a) & (t < b)
        field[inside] += np.asarray(field_dist_ut)
    mag = _rotate(qc, field) + mag_noise * rng.standard_normal((n, 3))
    if hard_iron is not None:
        mag[t >= hard_iron_at] += np.asarray(hard_iron)
    gyr = omega + np.radians(np.asarray(gyro_bias_dps)) + np.radians(gyro_noise_dps) * rng.standard_normal((n, 3))
    return Recording(gyr, acc, mag, fs, quat=q, movement=moving, name=f"sim{seed}")


def save_recording(rec: Recording, path) -> None:
    """Write ``rec`` as an npz that ``load_recording`` and ``trackside fusion run`` read."""
    extra = {}
    if rec.quat is not None:
        extra["quat"] = rec.quat
    if rec.movement is not None:
        extra["movement"] = rec.movement
    np.savez(path, gyr=rec.gyr, acc=rec.acc, mag=rec.mag, fs=rec.fs, **extra)
