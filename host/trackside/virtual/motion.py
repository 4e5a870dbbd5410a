"""Small host-side motion model feeding the simulated IMU chips (numpy/scipy).

A :class:`Motion` is a sampled trajectory with its truth: orientation quaternions (sensor to
earth, scalar first, earth frame ENU as in BROAD), angular velocity in the sensor frame, the
specific force an accelerometer feels (gravity + linear acceleration, sensor frame) and the
magnetic field (Earth's ~49 uT at ~67 deg inclination, plus an optional local disturbance).
``with_errors`` adds noise and bias. :func:`chip_stream` quantises it into one chip's raw units
and axes (int32 rows, see ``chips/base.py``), :func:`write_stream` saves the ``.tsms`` file the
chip model plays back, and :func:`expected_output` predicts, bit for bit, what the firmware
driver returns for those rows (for tests).

Other trajectory sources (e.g. the simulated athlete in ``trackside.sim``) can build a
``Motion(fs, quat, gyro_rads, acc_mps2, mag_ut)`` directly and use the same stream functions.
The sensor frame is the accel/gyro frame of the chip (the drivers' common frame). The gyro
value of sample k is the mean rate over [t_k, t_k+1) (the rate at mid-interval of a rotation
at constant rate per step), so integrating it reproduces the truth exactly.

    >>> m = constant_rotation(2.0, 200.0, rate_dps=(0, 0, 90))
    >>> rows = chip_stream(m.with_errors(seed=1), "mpu9250")
    >>> write_stream("mpu.tsms", rows, 200.0)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

G = 9.80665
EARTH_FIELD_UT = 49.0
INCLINATION_DEG = 67.0
CHIPS = ("mpu9250", "mpu6500", "icm20948", "lsm303agr", "lsm303dlhc")
DEFAULT_ASA = (176, 177, 165)

# stream units: accel LSB per g, gyro LSB per dps, mag LSB per uT (finest full-scale settings)
_ACC_LSB_PER_G = {"mpu9250": 16384, "mpu6500": 16384, "icm20948": 16384, "lsm303agr": 16000,
                  "lsm303dlhc": 16000}
_DLHC_LSB_PER_UT = 11  # X/Y sensitivity at gain +-1.3 gauss (1100 LSB/gauss)
_GYRO_LSB_PER_DPS = 131.0
_MAG_LSB_PER_UT = 1 / 0.15


def earth_field(strength_ut: float = EARTH_FIELD_UT, inclination_deg: float = INCLINATION_DEG) -> np.ndarray:
    """Earth's magnetic field in ENU (north = +y, pointing down by the inclination)."""
    inc = np.radians(inclination_deg)
    return np.array([0.0, strength_ut * np.cos(inc), -strength_ut * np.sin(inc)])


@dataclass(frozen=True)
class Motion:
    """A sampled trajectory: ``fs`` Hz, arrays of length N (see the module docstring)."""

    fs: float
    quat: np.ndarray        # (N, 4) w x y z, sensor -> earth (truth)
    gyro_rads: np.ndarray   # (N, 3) sensor frame, rad/s
    acc_mps2: np.ndarray    # (N, 3) specific force, sensor frame, m/s^2
    mag_ut: np.ndarray      # (N, 3) sensor frame, uT

    @property
    def n(self) -> int:
        return len(self.quat)

    @property
    def t(self) -> np.ndarray:
        return np.arange(self.n) / self.fs

    def with_errors(self, *, acc_noise_mg: float = 2.0, gyro_noise_dps: float = 0.05,
                    mag_noise_ut: float = 0.3, acc_bias_mg=(0.0, 0.0, 0.0),
                    gyro_bias_dps=(0.0, 0.0, 0.0), mag_bias_ut=(0.0, 0.0, 0.0),
                    seed: int = 0) -> "Motion":
        """Copy with white noise (standard deviations) and constant biases added; truth kept."""
        rng = np.random.default_rng(seed)
        n = self.n
        acc = self.acc_mps2 + np.asarray(acc_bias_mg) * 1e-3 * G + rng.normal(0, acc_noise_mg * 1e-3 * G, (n, 3))
        gyro = self.gyro_rads + np.radians(np.asarray(gyro_bias_dps, float)) + rng.normal(0, np.radians(gyro_noise_dps), (n, 3))
        mag = self.mag_ut + np.asarray(mag_bias_ut, float) + rng.normal(0, mag_noise_ut, (n, 3))
        return replace(self, acc_mps2=acc, gyro_rads=gyro, mag_ut=mag)


def _from_rates(fs: float, q0: Rotation, omega_mid: np.ndarray, lin_acc_earth: np.ndarray,
                field_earth: np.ndarray) -> Motion:
    """Integrate body rates (mean rate of each step) from ``q0``; derive accel and mag."""
    n = len(omega_mid)
    dt = 1.0 / fs
    steps = Rotation.from_rotvec(omega_mid * dt)
    quats = np.empty((n, 4))
    r = q0
    for k in range(n):
        quats[k] = np.roll(r.as_quat(), 1)  # scipy is scalar-last
        r = r * steps[k]
    rot = Rotation.from_quat(np.roll(quats, -1, axis=1))
    f_earth = lin_acc_earth + np.array([0.0, 0.0, G])  # at rest the accelerometer reads +1 g up
    acc = rot.inv().apply(f_earth)
    fe = np.array(np.broadcast_to(field_earth, (n, 3)), dtype=float)
    mag = rot.inv().apply(fe)
    return Motion(fs=fs, quat=quats, gyro_rads=omega_mid, acc_mps2=acc, mag_ut=mag)


def _check(duration_s: float, fs: float) -> int:
    if not (duration_s > 0 and fs > 0):
        raise ValueError(f"duration_s and fs must be positive (got {duration_s}, {fs})")
    n = int(round(duration_s * fs))
    if n < 1:
        raise ValueError("duration_s * fs gives no samples")
    return n


def static(duration_s: float, fs: float, q0=(1.0, 0.0, 0.0, 0.0), *,
           field_earth: np.ndarray | None = None) -> Motion:
    """The sensor held still at orientation ``q0`` (w, x, y, z)."""
    n = _check(duration_s, fs)
    fe = earth_field() if field_earth is None else np.asarray(field_earth, float)
    q = Rotation.from_quat(np.roll(np.asarray(q0, float), -1))
    return _from_rates(fs, q, np.zeros((n, 3)), np.zeros((n, 3)), fe)


def constant_rotation(duration_s: float, fs: float, rate_dps=(0.0, 0.0, 30.0),
                      q0=(1.0, 0.0, 0.0, 0.0), *, field_earth: np.ndarray | None = None) -> Motion:
    """Rotation at a constant body rate ``rate_dps`` (x, y, z) from ``q0``."""
    n = _check(duration_s, fs)
    fe = earth_field() if field_earth is None else np.asarray(field_earth, float)
    omega = np.tile(np.radians(np.asarray(rate_dps, float)), (n, 1))
    q = Rotation.from_quat(np.roll(np.asarray(q0, float), -1))
    return _from_rates(fs, q, omega, np.zeros((n, 3)), fe)


def random_motion(duration_s: float, fs: float, *, seed: int = 0, max_rate_dps: float = 200.0,
                  lin_acc_mps2: float = 0.0, bandwidth_hz: float = 2.0,
                  field_earth: np.ndarray | None = None,
                  disturbance_ut=None) -> Motion:
    """Smooth random rotation (sums of random sinusoids below ``bandwidth_hz`` per axis,
    peak rate about ``max_rate_dps``) with optional smooth linear acceleration (peak about
    ``lin_acc_mps2``, earth frame) and an optional magnetic disturbance: a constant earth-frame
    vector, or an (N, 3) array of earth-frame vectors in uT."""
    n = _check(duration_s, fs)
    if max_rate_dps < 0 or lin_acc_mps2 < 0 or bandwidth_hz <= 0:
        raise ValueError("max_rate_dps and lin_acc_mps2 must be >= 0, bandwidth_hz > 0")
    rng = np.random.default_rng(seed)
    t = (np.arange(n) + 0.5) / fs  # mid-step times: the gyro's mean rate over each step

    def smooth(peak: float) -> np.ndarray:
        out = np.zeros((n, 3))
        for axis in range(3):
            for _ in range(4):
                f = rng.uniform(0.1, bandwidth_hz)
                out[:, axis] += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        scale = np.abs(out).max()
        return out * (peak / scale if scale > 0 else 0.0)

    omega = np.radians(smooth(max_rate_dps))
    lin = smooth(lin_acc_mps2) if lin_acc_mps2 > 0 else np.zeros((n, 3))
    fe = earth_field() if field_earth is None else np.asarray(field_earth, float)
    if disturbance_ut is not None:
        fe = fe + np.asarray(disturbance_ut, float)
    q0 = Rotation.from_rotvec(rng.normal(0, 0.5, 3))
    return _from_rates(fs, q0, omega, lin, fe)


def chip_stream(motion: Motion, chip: str, asa=DEFAULT_ASA) -> np.ndarray:
    """int32 rows (N, 9) for the chip model: accel, gyro in the chip's finest units, mag raw
    counts in the magnetometer's own axes (AK8963 also divided by its ASA factor; LSM303DLHC in
    X/Y-gain units of its +-1.3 gauss range, 11 LSB/uT)."""
    chip = chip.lower()
    if chip not in CHIPS:
        raise ValueError(f"unknown chip {chip!r}; known: {', '.join(CHIPS)}")
    rows = np.zeros((motion.n, 9), dtype=np.int64)
    rows[:, 0:3] = np.round(motion.acc_mps2 / G * _ACC_LSB_PER_G[chip])
    if not chip.startswith("lsm303"):
        rows[:, 3:6] = np.round(np.degrees(motion.gyro_rads) * _GYRO_LSB_PER_DPS)
    m = motion.mag_ut * _MAG_LSB_PER_UT
    if chip == "mpu9250":
        adj = (np.asarray(asa, float) + 128) / 256
        m_ak = np.stack([m[:, 1], m[:, 0], -m[:, 2]], axis=1) / adj
        rows[:, 6:9] = np.round(m_ak)
    elif chip == "icm20948":
        rows[:, 6:9] = np.round(np.stack([m[:, 0], -m[:, 1], -m[:, 2]], axis=1))
    elif chip == "lsm303agr":
        rows[:, 6:9] = np.round(m)
    elif chip == "lsm303dlhc":
        rows[:, 6:9] = np.round(motion.mag_ut * _DLHC_LSB_PER_UT)
    lim = 2**30 - 1
    return np.clip(rows, -lim, lim).astype(np.int32)


def write_stream(path: str | Path, rows: np.ndarray, rate_hz: float) -> Path:
    """Save rows as a ``.tsms`` file (format in ``chips/base.py``)."""
    rows = np.ascontiguousarray(rows, dtype="<i4")
    if rows.ndim != 2 or rows.shape[0] < 1:
        raise ValueError("rows must be a non-empty (N, channels) array")
    if not 0 < rate_hz < 4e6:
        raise ValueError(f"bad rate {rate_hz}")
    path = Path(path)
    with open(path, "wb") as f:
        f.write(struct.pack("<4sHHII", b"TSMS", 1, rows.shape[1], int(round(rate_hz * 1000)), rows.shape[0]))
        f.write(rows.tobytes())
    return path


def read_stream(path: str | Path) -> tuple[np.ndarray, float]:
    """Rows and rate (Hz) of a ``.tsms`` file."""
    data = Path(path).read_bytes()
    if len(data) < 16:
        raise ValueError(f"{path}: too short for a TSMS header")
    magic, ver, ch, rate_mhz, n = struct.unpack("<4sHHII", data[:16])
    if magic != b"TSMS" or ver != 1:
        raise ValueError(f"{path}: not a TSMS v1 stream")
    body = np.frombuffer(data, "<i4", offset=16)
    if len(body) != n * ch:
        raise ValueError(f"{path}: truncated ({len(body)} of {n * ch} values)")
    return body.reshape(n, ch).astype(np.int32), rate_mhz / 1000.0


def _sat16(v: np.ndarray) -> np.ndarray:
    return np.clip(v, -32768, 32767)


def expected_output(rows: np.ndarray, chip: str, acc_range_g: int = 8, gyro_range_dps: int = 2000,
                    asa=DEFAULT_ASA) -> np.ndarray:
    """What the driver's ``fifo_read`` gives for each stream row (N, 9) int16, replicating the
    chip's range shift, saturation and resolution and the driver's axis mapping and ASA.
    The magnetometer columns assume the row's own mag sample (the AK/LSM magnetometer runs at
    100 Hz, so compare them only where the field is constant)."""
    chip = chip.lower()
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), 9), dtype=np.int64)
    afs = (2, 4, 8, 16).index(acc_range_g)
    if chip.startswith("lsm303"):
        v = rows[:, 0:3] // 12 if afs == 3 else rows[:, 0:3] >> afs
        out[:, 0:3] = _sat16(v) & ~0x0F
        if chip == "lsm303agr":
            out[:, 6:9] = _sat16(rows[:, 6:9])
        else:  # 12-bit outputs at gain +-1.3 gauss; the driver rescales Z (980 -> 1100 LSB/gauss)
            out[:, 6:8] = rows[:, 6:8]
            out[:, 8] = (rows[:, 8] * 980 // 1100) * 1100 // 980
        return out.astype(np.int16)
    gfs = (250, 500, 1000, 2000).index(gyro_range_dps)
    out[:, 0:3] = _sat16(rows[:, 0:3] >> afs)
    out[:, 3:6] = _sat16(rows[:, 3:6] >> gfs)
    if chip == "mpu9250":
        h = np.clip(rows[:, 6:9], -32760, 32760)
        p = np.asarray(asa, np.int64) + 128
        out[:, 6] = (h[:, 1] * p[1]) >> 8
        out[:, 7] = (h[:, 0] * p[0]) >> 8
        out[:, 8] = -((h[:, 2] * p[2]) >> 8)
    elif chip == "icm20948":
        h = np.clip(rows[:, 6:9], -32752, 32752)
        out[:, 6] = h[:, 0]
        out[:, 7] = -h[:, 1]
        out[:, 8] = -h[:, 2]
    return out.astype(np.int16)


def stream_file(path: str | Path, motion: Motion, chip: str, asa=DEFAULT_ASA) -> Path:
    """``chip_stream`` + ``write_stream`` at the motion's rate."""
    return write_stream(path, chip_stream(motion, chip, asa), motion.fs)
