"""The on-device filter as firmware: same integers under MicroPython and CPython, no heap
allocation in the hot loop (heap_lock), 31-bit small ints on hostile input, mpy-cross."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from trackside import mpy
from trackside.fusion.device import run_counts, run_counts_micropython
from trackside.fusion.metrics import load_recording
from trackside.fusion.quantize import quantize
from trackside.fusion.simulate import simulate_recording

pytestmark = pytest.mark.wasm


@pytest.fixture(scope="module", autouse=True)
def _need_micropython():
    try:
        mpy.node_binary()
    except mpy.MicroPythonUnavailable as exc:
        pytest.skip(str(exc))


def _same_under_micropython(counts: np.ndarray, fs: float, chip: str) -> dict:
    q_mp, stats = run_counts_micropython(counts, fs, chip)
    q_py = run_counts(counts, fs, chip)
    assert stats["heap_locked"], "hot loop did not complete under heap_lock"
    assert q_mp.shape == q_py.shape == (len(counts), 4)
    diff = np.flatnonzero(np.any(q_mp != q_py, axis=1))
    assert diff.size == 0, f"first differing sample {diff[:1]}: {q_mp[diff[0]]} vs {q_py[diff[0]]}"
    return stats


def test_broad_stretch_same_integers_and_no_allocation(shared_data):
    # start of trial 01: rest (bias windows commit), then motion; and a fast-rotation stretch
    rec = load_recording(shared_data / "broad" / "01_undisturbed_slow_rotation_A.npz")
    _same_under_micropython(quantize(rec)[:9000], rec.fs, "mpu9250")
    rec = load_recording(shared_data / "broad" / "06_undisturbed_fast_rotation_A.npz")
    q = _same_under_micropython(quantize(rec)[20000:24000], rec.fs, "mpu9250")
    assert q["n"] == 4000


def test_gyroless_mode_same_integers_and_no_allocation():
    rec = simulate_recording(duration=12.0, fs=100.0, seed=11, rest=2.0)
    _same_under_micropython(quantize(rec, "lsm303"), rec.fs, "lsm303")


def test_disturbed_start_and_reacquisition_same_integers():
    # starts inside a disturbed field, then adopts the real one (candidate-field path)
    rec = simulate_recording(duration=45.0, fs=200.0, seed=9, rest=2.0, field_dist=(0.0, 6.0),
                             field_dist_ut=(10.0, -10.0, 12.0))
    _same_under_micropython(quantize(rec), rec.fs, "mpu9250")


def test_hostile_counts_stay_small_ints():
    """Saturated, alternating and random int16 counts: any intermediate beyond 31 bits would
    need a heap-allocated big int, which raises MemoryError under heap_lock."""
    rng = np.random.default_rng(5)
    n = 3000
    c = rng.integers(-32768, 32768, size=(n, 9)).astype(np.int16)
    c[0] = (0, 0, 0, 0, 0, 4096, 300, 1000, -2000)              # a sane first sample to start on
    c[200:600, 0:3] = -32768                                     # gyro saturated on all axes
    c[600:1000, 0:3] = np.where(np.arange(400)[:, None] % 2, 32767, -32768)
    c[1000:1400, 3:6] = -32768                                   # acc saturated
    c[1400:1800, 6:9] = 32767                                    # mag saturated
    c[1800:2200] = 0                                             # dead sensor
    c[2200:2600, 3:9] = np.where(np.arange(400)[:, None] % 2, 32767, -32768)
    _same_under_micropython(c, 1000.0, "mpu9250")
    _same_under_micropython(c, 100.0, "icm20948")   # lowest supported rate class: N = 2
    q = run_counts(c, 1000.0, "mpu9250")
    assert np.all(np.abs(q) <= 16384 * 1.2)


def test_compiles_with_mpy_cross_for_esp32(repo, tmp_path):
    exe = shutil.which("mpy-cross")
    if exe is None:
        pytest.skip("mpy-cross not installed")
    for arch in ([], ["-march=xtensawin"]):
        out = tmp_path / ("fusion_%s.mpy" % (arch[0][7:] if arch else "bytecode"))
        res = subprocess.run([exe, *arch, "-o", str(out), str(repo / "firmware" / "tsfw" / "fusion.py")],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert out.stat().st_size > 1000
