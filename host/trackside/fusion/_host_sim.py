"""Simulated IMU recordings with known truth, for testing the host filters.

A sensor rests, rotates (smooth random angular velocity), and rests again; the gyro has a constant
bias, the magnetometer white noise and optionally a hard-iron offset (a magnet attached) over part
of the recording. Everything is returned as a :class:`~trackside.fusion.metrics.Recording` whose
``quat`` is the true sensor-to-earth orientation (ENU) and ``movement`` marks the rotation.
"""

from __future__ import annotations

import numpy as np

from trackside.fusion.metrics import Recording

FIELD_ENU_UT = np.array([0.0, 15.0, -41.0])  # horizontal north 15 uT, dip ~70 deg


def _rotmats(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def simulate(fs: float = 100.0, rest_s: float = 5.0, move_s: float = 40.0, *,
             gyr_bias_rad_s: tuple = (0.004, -0.003, 0.008), rate_rad_s: float = 1.5,
             hard_iron_ut: tuple = (0.0, 0.0, 0.0), hard_iron_span: tuple = (0.4, 0.7),
             seed: int = 1, initial_quat: tuple = (0.9, 0.1, -0.3, 0.3)) -> Recording:
    """Rest ``rest_s``, rotate ``move_s`` at about ``rate_rad_s`` RMS, rest ``rest_s``.

    ``hard_iron_ut`` is added to the magnetometer between the fractions ``hard_iron_span`` of
    the recording (a magnet attached, then removed).
    """
    rng = np.random.default_rng(seed)
    dt = 1.0 / fs
    n_rest, n_move = int(rest_s * fs), int(move_s * fs)
    n = 2 * n_rest + n_move
    # Smooth angular velocity: white noise low-passed by a moving sum of sines, tapered in/out.
    t = np.arange(n_move) * dt
    w = np.zeros((n_move, 3))
    for axis in range(3):
        for _ in range(4):
            f = rng.uniform(0.05, 0.6)
            w[:, axis] += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    w *= rate_rad_s / np.sqrt(np.mean(w * w))
    taper = np.clip(np.minimum(t, t[-1] - t) / 1.0, 0.0, 1.0)[:, None]
    omega = np.zeros((n, 3))
    omega[n_rest:n_rest + n_move] = w * taper

    q = np.empty((n, 4))
    cur = np.asarray(initial_quat, dtype=float)
    cur /= np.linalg.norm(cur)
    for k in range(n):
        if k:  # q_k = q_{k-1} * exp(omega_k dt): sample k's gyro covers the interval ending at k
            v = omega[k] * dt
            a = np.linalg.norm(v)
            dq = np.r_[np.cos(a / 2), v / a * np.sin(a / 2)] if a > 0 else np.r_[1.0, 0, 0, 0]
            w0, x0, y0, z0 = cur
            w1, x1, y1, z1 = dq
            cur = np.array([w0 * w1 - x0 * x1 - y0 * y1 - z0 * z1,
                            w0 * x1 + x0 * w1 + y0 * z1 - z0 * y1,
                            w0 * y1 - x0 * z1 + y0 * w1 + z0 * x1,
                            w0 * z1 + x0 * y1 - y0 * x1 + z0 * w1])
            cur /= np.linalg.norm(cur)
        q[k] = cur
    rt = np.transpose(_rotmats(q), (0, 2, 1))  # earth -> sensor
    gyr = omega + np.asarray(gyr_bias_rad_s) + rng.normal(0, 0.002, (n, 3))
    acc = rt @ np.array([0.0, 0.0, 9.81]) + rng.normal(0, 0.05, (n, 3))
    mag = rt @ FIELD_ENU_UT + rng.normal(0, 0.7, (n, 3))
    lo, hi = int(hard_iron_span[0] * n), int(hard_iron_span[1] * n)
    mag[lo:hi] += np.asarray(hard_iron_ut, dtype=float)
    movement = np.zeros(n, bool)
    movement[n_rest:n_rest + n_move] = True
    return Recording(gyr, acc, mag, float(fs), q, movement, "simulated")
