"""The ``device`` filter on the host: the firmware's fixed-point filter (``tsfw.fusion``, the very
file flashed to the nodes) run by CPython over a recording quantised to a chip's int16 counts."""

from __future__ import annotations

from array import array

import numpy as np

from trackside.fusion.metrics import Recording
from trackside.fusion.quantize import Chip, get_chip, quantize


def make_filter(fs: float, chip: str | Chip = "mpu9250", **params):
    """A ``tsfw.fusion.FixedKalman`` configured for ``chip`` at ``fs`` Hz (params: time constants)."""
    from tsfw.fusion import FixedKalman

    c = get_chip(chip) if isinstance(chip, str) else chip
    return FixedKalman(fs, c.acc_lsb_g, c.gyr_lsb_dps, c.mag_ut_lsb, **params)


def run_counts(counts: np.ndarray, fs: float, chip: str | Chip = "mpu9250", **params) -> np.ndarray:
    """Run the fixed-point filter over Nx9 int16 counts; Nx4 int Q14 quaternions (w x y z)."""
    counts = np.ascontiguousarray(counts, dtype=np.int16)
    if counts.ndim != 2 or counts.shape[1] != 9:
        raise ValueError(f"counts must be Nx9, got {counts.shape}")
    n = counts.shape[0]
    filt = make_filter(fs, chip, **params)
    buf = array("h", counts.tobytes())
    out = array("h", bytes(8 * n))
    filt.update_block(buf, n, out)
    return np.frombuffer(out, dtype=np.int16).reshape(n, 4).astype(np.int32)


def run_counts_micropython(
    counts: np.ndarray, fs: float, chip: str | Chip = "mpu9250", pystone_loops: int = 0, timeout: float = 600.0
) -> tuple[np.ndarray, dict]:
    """Run the same firmware filter under real MicroPython (wasm port), hot loop heap-locked.

    Returns (Nx4 int Q14 quaternions, stats) with stats: ``n``, ``us`` (wall time of the
    n-1 heap-locked samples, run in 10 timed chunks), ``pystones`` (per second, best of 5
    short runs in the same process; 0 if not measured), ``us_per_sample`` (mean) and
    ``best_us_per_sample`` (fastest chunk: the least disturbed on a loaded machine),
    ``line_us`` (cost of one line ``v = (a*b + c*d + 8192) >> 14``, same run, best of 6). Raises ``mpy.MicroPythonError`` if the hot loop allocates.
    """
    import tempfile
    from pathlib import Path

    from trackside import mpy

    counts = np.ascontiguousarray(counts, dtype=np.int16)
    if counts.ndim != 2 or counts.shape[1] != 9 or counts.shape[0] < 2:
        raise ValueError(f"counts must be Nx9 with N >= 2, got {counts.shape}")
    c = get_chip(chip) if isinstance(chip, str) else chip
    here = Path(__file__).with_name("mp_run.py")
    bench = Path(__file__).resolve().parents[3] / "tools" / "bench" / "pystone_mp.py"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "counts.bin"
        data.write_bytes(counts.tobytes())
        files = [(data, "/data/counts.bin")]
        if pystone_loops and bench.exists():
            files.append((bench, "/lib/pystone_mp.py"))
        else:
            pystone_loops = 0
        argv = ["/data/counts.bin", repr(float(fs)), repr(c.acc_lsb_g), repr(c.gyr_lsb_dps), repr(c.mag_ut_lsb),
                str(int(pystone_loops))]
        res = mpy.run(script=here, files=files, argv=argv, timeout=timeout, heap=16 << 20)
    head, _, body = res.stdout.partition(b"\n")
    n, us, stones, locked, best, line = head.split()
    n = int(n)
    q = np.frombuffer(body, dtype=np.int16, count=4 * n).reshape(n, 4).astype(np.int32)
    stats = {"n": n, "us": int(us), "pystones": float(stones), "heap_locked": bool(int(locked)),
             "us_per_sample": int(us) / max(n - 1, 1), "best_us_per_sample": float(best),
             "line_us": float(line)}
    return q, stats


def run_device(rec: Recording, chip: str = "mpu9250", rate_hz: float | None = None, **params) -> np.ndarray:
    """Registry filter ``device``: quantise ``rec`` to ``chip`` counts, run the firmware filter.

    ``rate_hz``: run the node at this rate instead of the recording's (the input is resampled
    linearly, the output brought back to the recording's samples by normalised linear
    interpolation of the quaternions). Returns Nx4 float unit quaternions (w x y z,
    sensor-to-earth, ENU).
    """
    params.pop("chip", None)
    if rate_hz is None or abs(rate_hz - rec.fs) < 1e-9 * rec.fs:
        q = run_counts(quantize(rec, chip), rec.fs, chip, **params).astype(float)
        return q / np.linalg.norm(q, axis=1, keepdims=True)
    from trackside.fusion.quantize import resample

    low = resample(rec, rate_hz)
    qd = run_counts(quantize(low, chip), low.fs, chip, **params).astype(float)
    qd /= np.linalg.norm(qd, axis=1, keepdims=True)
    # device output k holds for time k / rate; interpolate onto the recording's times
    t = np.arange(rec.gyr.shape[0]) / rec.fs * low.fs
    k = np.clip(np.floor(t).astype(int), 0, len(qd) - 1)
    k1 = np.minimum(k + 1, len(qd) - 1)
    a = np.clip(t - k, 0.0, 1.0)[:, None]
    q1 = qd[k1] * np.sign(np.sum(qd[k] * qd[k1], axis=1, keepdims=True) + 1e-300)
    q = (1 - a) * qd[k] + a * q1
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def run_vqf(rec: Recording, **options) -> np.ndarray:
    """Registry filter ``vqf``: VQF 9D online (PyPI ``vqf``) on the float recording, for comparison."""
    from vqf import VQF

    v = VQF(1.0 / rec.fs)
    res = v.updateBatch(np.ascontiguousarray(rec.gyr, dtype=float), np.ascontiguousarray(rec.acc, dtype=float),
                        np.ascontiguousarray(rec.mag, dtype=float))
    return np.asarray(res["quat9D"], dtype=float)
