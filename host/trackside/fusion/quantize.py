"""Turn a float recording into the int16 counts a chip would deliver (host side of the device filter).

``resample`` puts a recording on the node's sample rate first when they differ (linear
interpolation; the device filter maps its output back onto the recording's time base).

Each chip has fixed ranges: the counts are round(value / resolution), clipped to int16 (so
saturation is reproduced), in the common sensor frame (the driver maps the magnetometer's
axes onto the accelerometer/gyro frame before the filter, so no axis change happens here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trackside.fusion.metrics import Recording

G = 9.80665  # m/s^2 per g


@dataclass(frozen=True)
class Chip:
    """Scale constants of one IMU chip as configured by the node firmware."""

    name: str
    acc_lsb_g: float        # accelerometer counts per g
    gyr_lsb_dps: float      # gyro counts per deg/s; 0 = no gyroscope
    mag_ut_lsb: float       # magnetometer uT per count
    acc_step: int = 1       # counts between adjacent codes (12-bit left-justified data: 16)


CHIPS: dict[str, Chip] = {
    # MPU-9250: gyro +-2000 dps, accel +-8 g, AK8963 16-bit 0.15 uT/LSB
    "mpu9250": Chip("mpu9250", 4096.0, 16.4, 0.15),
    # ICM-20948: gyro +-2000 dps, accel +-8 g, AK09916 0.15 uT/LSB
    "icm20948": Chip("icm20948", 4096.0, 16.4, 0.15),
    # LSM303AGR: accel +-4 g high-resolution (12-bit, left-justified: 2 mg/LSB = 16 counts),
    # magnetometer 1.5 mG = 0.15 uT/LSB, no gyroscope
    "lsm303": Chip("lsm303", 8192.0, 0.0, 0.15, acc_step=16),
}


def get_chip(name: str) -> Chip:
    """Chip by name; ValueError listing the known chips otherwise."""
    try:
        return CHIPS[name]
    except KeyError:
        raise ValueError(f"unknown chip {name!r}; choose from {', '.join(CHIPS)}") from None


def _counts(values: np.ndarray, per_unit: float, step: int = 1) -> np.ndarray:
    c = np.rint(np.asarray(values, dtype=float) * (per_unit / step)) * step
    return np.clip(c, -32768, 32767).astype(np.int16)


def resample(rec: Recording, rate_hz: float) -> Recording:
    """``rec`` linearly interpolated onto a ``rate_hz`` grid over the same time span (no truth)."""
    if not rate_hz > 0:
        raise ValueError(f"rate must be positive, got {rate_hz}")
    n = rec.gyr.shape[0]
    t_in = np.arange(n) / rec.fs
    m = max(1, int(np.floor(t_in[-1] * rate_hz)) + 1)
    t = np.arange(m) / rate_hz

    def interp(a: np.ndarray) -> np.ndarray:
        return np.stack([np.interp(t, t_in, a[:, k]) for k in range(a.shape[1])], axis=1)

    return Recording(interp(rec.gyr), interp(rec.acc), interp(rec.mag), float(rate_hz), name=rec.name)


def quantize(rec: Recording, chip: str | Chip = "mpu9250") -> np.ndarray:
    """Nx9 int16 counts (gx gy gz ax ay az mx my mz) of ``rec`` as read from ``chip``.

    Gyro columns are zero for gyro-less chips.
    """
    c = get_chip(chip) if isinstance(chip, str) else chip
    out = np.zeros((rec.gyr.shape[0], 9), dtype=np.int16)
    if c.gyr_lsb_dps > 0:
        out[:, 0:3] = _counts(np.degrees(rec.gyr), c.gyr_lsb_dps)
    out[:, 3:6] = _counts(rec.acc, c.acc_lsb_g / G, c.acc_step)
    out[:, 6:9] = _counts(rec.mag, 1.0 / c.mag_ut_lsb)
    return out
