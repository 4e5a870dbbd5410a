"""`trackside fusion run`: the device filter end to end, the registry, bad input files."""

from __future__ import annotations

import numpy as np
import pytest

from trackside.cli import main
from trackside.fusion import registry
from trackside.fusion.metrics import Recording, broad_rmse, load_recording
from trackside.fusion.simulate import save_recording, simulate_recording


@pytest.fixture(scope="module")
def rec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "sim.npz"
    save_recording(simulate_recording(duration=15.0, fs=200.0, seed=2), path)
    return path


@pytest.mark.parametrize("chip", ["mpu9250", "icm20948", "lsm303"])
def test_run_device_writes_unit_quaternions(rec_file, tmp_path, capsys, chip):
    out = tmp_path / "out.npz"
    assert main(["fusion", "run", "--input", str(rec_file), "--filter", "device", "--out", str(out),
                 "--chip", chip]) == 0
    q = np.load(out)["quat"]
    rec = load_recording(rec_file)
    assert q.shape == (len(rec.gyr), 4)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0)
    text = capsys.readouterr().out
    assert "RMSE vs reference" in text
    if chip != "lsm303":
        assert broad_rmse(q, rec.quat, rec.movement).total < 3.0


def test_device_at_node_rate(rec_file, tmp_path, capsys):
    out = tmp_path / "r.npz"
    assert main(["fusion", "run", "-i", str(rec_file), "-o", str(out), "--rate", "100"]) == 0
    rec = load_recording(rec_file)
    q = np.load(out)["quat"]
    assert q.shape == (len(rec.gyr), 4)
    assert broad_rmse(q, rec.quat, rec.movement).total < 3.0
    assert main(["fusion", "run", "-i", str(rec_file), "-o", str(out), "--rate", "100", "-f", "vqf"]) == 2
    assert "device filter only" in capsys.readouterr().err


def test_default_filter_is_device_and_list(rec_file, tmp_path, capsys):
    out = tmp_path / "o.npz"
    assert main(["fusion", "run", "-i", str(rec_file), "-o", str(out)]) == 0
    assert out.exists()
    assert main(["fusion", "run", "--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("device", "reference", "vqf"):
        assert name in listed


def _junk(path):
    path.write_bytes(b"not a zip file")
    return path


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.npz", "no such file"),
        (lambda d: _junk(d / "junk.npz"), "not a readable .npz"),
        (lambda d: _write(d / "nokey.npz", gyr=np.zeros((5, 3)), acc=np.zeros((5, 3)), fs=100.0), "missing key"),
        (lambda d: _write(d / "shape.npz", gyr=np.zeros((5, 2)), acc=np.zeros((5, 3)), mag=np.zeros((5, 3)),
                          fs=100.0), "must be Nx3"),
        (lambda d: _write(d / "nan.npz", gyr=np.full((5, 3), np.nan), acc=np.zeros((5, 3)), mag=np.zeros((5, 3)),
                          fs=100.0), "NaN"),
        (lambda d: _write(d / "fs.npz", gyr=np.zeros((5, 3)), acc=np.zeros((5, 3)), mag=np.zeros((5, 3)),
                          fs=-1.0), "fs must be"),
        (lambda d: _write(d / "slow.npz", gyr=np.zeros((5, 3)), acc=np.zeros((5, 3)), mag=np.zeros((5, 3)),
                          fs=20.0), "rate too low"),
    ],
)
def test_bad_input_gives_clear_error(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert main(["fusion", "run", "--input", str(path), "--out", str(tmp_path / "o.npz")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_filter_and_missing_args(rec_file, tmp_path, capsys):
    assert main(["fusion", "run", "-i", str(rec_file), "-o", str(tmp_path / "o.npz"), "-f", "nope"]) == 2
    assert "unknown filter 'nope'" in capsys.readouterr().err
    assert main(["fusion", "run", "-i", str(rec_file)]) == 2
    assert "--out" in capsys.readouterr().err


def test_registry_plugin_and_shape_check(rec_file):
    rec = load_recording(rec_file)
    registry.register_filter("test-identity", lambda r, **o: np.tile([1.0, 0, 0, 0], (len(r.gyr), 1)), "test")
    try:
        assert "test-identity" in registry.available_filters()
        assert registry.run_filter("test-identity", rec, chip="mpu9250").shape == (len(rec.gyr), 4)
        registry.register_filter("test-bad", lambda r, **o: np.zeros((3, 4)))
        with pytest.raises(RuntimeError, match="returned shape"):
            registry.run_filter("test-bad", rec)
    finally:
        registry._registered.pop("test-identity", None)
        registry._registered.pop("test-bad", None)
    with pytest.raises(ValueError, match="unknown filter"):
        registry.get_filter("nope")
    assert isinstance(rec, Recording)
