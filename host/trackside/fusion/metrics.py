"""Orientation error as BROAD defines it (Laidig et al., Data 2021).

q_err = q_est * conj(q_ref), both normalised, earth frame. total = 2 acos|w|,
heading = 2 atan(|z| / |w|), inclination = 2 acos(sqrt(w^2 + z^2)); each reported as RMSE in
degrees over the trial's movement samples, ignoring samples without a reference. No heading
offset is removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


def quat_multiply(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamilton product of (..., 4) quaternions, w x y z."""
    pw, px, py, pz = np.moveaxis(np.asarray(p, dtype=float), -1, 0)
    qw, qx, qy, qz = np.moveaxis(np.asarray(q, dtype=float), -1, 0)
    return np.stack(
        [
            pw * qw - px * qx - py * qy - pz * qz,
            pw * qx + px * qw + py * qz - pz * qy,
            pw * qy - px * qz + py * qw + pz * qx,
            pw * qz + px * qy - py * qx + pz * qw,
        ],
        axis=-1,
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    return np.asarray(q, dtype=float) * np.array([1.0, -1.0, -1.0, -1.0])


def _normalise(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=float)
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


@dataclass(frozen=True)
class OrientationError:
    """RMSE in degrees over the counted samples."""

    total: float
    heading: float
    inclination: float
    samples: int


def error_angles(q_est: np.ndarray, q_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample total, heading and inclination error angles in degrees (NaN where ref is NaN)."""
    e = quat_multiply(_normalise(q_est), quat_conj(_normalise(q_ref)))
    w = np.abs(e[..., 0])
    z = np.abs(e[..., 3])
    total = 2.0 * np.arccos(np.clip(w, 0.0, 1.0))
    heading = 2.0 * np.arctan2(z, w)
    incl = 2.0 * np.arccos(np.clip(np.sqrt(w * w + z * z), 0.0, 1.0))
    return np.degrees(total), np.degrees(heading), np.degrees(incl)


def broad_rmse(q_est: np.ndarray, q_ref: np.ndarray, movement: np.ndarray | None = None) -> OrientationError:
    """BROAD RMSE (degrees) of an estimate against the optical reference."""
    q_est = np.asarray(q_est, dtype=float)
    q_ref = np.asarray(q_ref, dtype=float)
    if q_est.shape != q_ref.shape or q_est.ndim != 2 or q_est.shape[1] != 4:
        raise ValueError(f"quaternion arrays must both be Nx4, got {q_est.shape} and {q_ref.shape}")
    mask = np.all(np.isfinite(q_ref), axis=1) & np.all(np.isfinite(q_est), axis=1)
    if movement is not None:
        mask &= np.asarray(movement, dtype=bool)
    if not mask.any():
        raise ValueError("no samples to score")
    tot, head, inc = error_angles(q_est[mask], q_ref[mask])

    def rmse(a: np.ndarray) -> float:
        return float(np.sqrt(np.mean(a * a)))

    return OrientationError(rmse(tot), rmse(head), rmse(inc), int(mask.sum()))


@dataclass(frozen=True)
class Recording:
    """An IMU recording: gyr rad/s, acc m/s^2, mag uT (Nx3, sensor frame), fs Hz; optional truth."""

    gyr: np.ndarray
    acc: np.ndarray
    mag: np.ndarray
    fs: float
    quat: np.ndarray | None = None
    movement: np.ndarray | None = None
    name: str = ""


def load_recording(path: str | Path) -> Recording:
    """Load an IMU recording npz (keys gyr, acc, mag, fs; optional quat, movement); clear errors."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:  # zip/npy errors come in many types
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    with data:
        missing = [k for k in ("gyr", "acc", "mag", "fs") if k not in data.files]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)} (need gyr, acc, mag, fs)")
        arrays = {}
        for key in ("gyr", "acc", "mag"):
            a = np.asarray(data[key], dtype=float)
            if a.ndim != 2 or a.shape[1] != 3:
                raise ValueError(f"{path}: {key} must be Nx3, got shape {a.shape}")
            arrays[key] = a
        n = arrays["gyr"].shape[0]
        if n == 0 or any(arrays[k].shape[0] != n for k in arrays):
            raise ValueError(f"{path}: gyr, acc and mag must have the same non-zero number of rows")
        for key, a in arrays.items():
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{path}: {key} contains NaN or infinite values")
        try:
            fs = float(np.asarray(data["fs"]).reshape(-1)[0])
        except (ValueError, IndexError, TypeError):
            raise ValueError(f"{path}: fs must be a number") from None
        if not np.isfinite(fs) or fs <= 0:
            raise ValueError(f"{path}: fs must be a positive sampling rate in Hz, got {fs}")
        quat = np.asarray(data["quat"], dtype=float) if "quat" in data.files else None
        movement = np.asarray(data["movement"], dtype=bool) if "movement" in data.files else None
    return Recording(arrays["gyr"], arrays["acc"], arrays["mag"], fs, quat, movement, path.stem)


def broad_trials(shared_dir: str | Path) -> list[Path]:
    """The BROAD trial files under ``shared_dir`` (``../shared`` beside the repo), sorted."""
    return sorted((Path(shared_dir) / "data" / "broad").glob("*.npz"))
