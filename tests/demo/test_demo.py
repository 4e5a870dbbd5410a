"""``trackside demo``: the whole chain on virtual nodes (firmware under wasm on ptys -> aggregator
-> store -> calibration -> export), its outputs, real motion from a BVH clip, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from trackside.cli import main
from trackside.kinematics.joints import ANGLE_COLUMNS, clinical_angles


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(x) if x else np.nan for x in r] for r in rows[1:]])


@pytest.mark.wasm
def test_demo_cli_writes_the_export_files(tmp_path, capsys):
    out = tmp_path / "out"
    db = tmp_path / "s.db"
    rc = main(["demo", "--seconds", "5", "--segments", "pelvis,left_thigh,left_shank,left_foot",
               "--out", str(out), "--db", str(db), "--seed", "3"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "4 virtual nodes" in text and "wrote session.bvh" in text
    for name in ("session.bvh", "angles.csv", "gait.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.png")), "no plots"
    head, a = read_csv(out / "angles.csv")
    assert head == ["time_s", *ANGLE_COLUMNS]
    assert a.shape[0] == 1000                                     # 5 s at 200 Hz
    assert np.allclose(np.diff(a[:, 0]), 0.005, atol=1e-4)
    col = {h: a[:, i] for i, h in enumerate(head)}
    # measured side filled in (bar the filter's first sample), the other side empty (no nodes)
    assert np.isfinite(col["left_knee_flexion"][1:]).all()
    assert np.isnan(col["right_knee_flexion"]).all()
    # zero in the standing calibration pose, a real knee swing while jogging
    stand = slice(200, 360)
    for c in ("left_hip_flexion", "left_knee_flexion", "left_ankle_dorsiflexion"):
        assert np.nanmax(np.abs(col[c][stand])) < 2.0, c
    run = col["left_knee_flexion"][700:]
    assert np.nanmax(run) - np.nanmin(run) > 40.0
    # a BVH others can read: frame count and rate match angles.csv
    from trackside.bvh.parser import read_bvh

    clip = read_bvh(out / "session.bvh")
    assert len(clip.motion) == 1000 and abs(clip.frame_time - 0.005) < 1e-6
    assert np.isfinite(clip.motion).all()
    bvh = pytest.importorskip("bvh")   # and an independent reader agrees
    other = bvh.Bvh((out / "session.bvh").read_text())
    assert other.nframes == 1000 and abs(other.frame_time - 0.005) < 1e-6
    json.loads((out / "gait.json").read_text())
    # the session stays in --db, recorded through the aggregator
    from trackside.aggregator.store import SessionStore

    with SessionStore(db) as st:
        s = st.sessions()
        assert len(s) == 1 and s[0].nodes == 4 and s[0].frames > 0
        assert st.assignments(s[0].id) == {1: "pelvis", 2: "left_thigh", 3: "left_shank", 4: "left_foot"}


@pytest.mark.wasm
def test_demo_driven_by_a_real_running_clip(tmp_path, shared_data):
    from trackside.demo.pipeline import DemoConfig, run_demo

    clip = shared_data / "mocap" / "09_02.bvh"
    if not clip.is_file():
        pytest.skip("09_02.bvh not present")
    cfg = DemoConfig(seconds=5.0, out=tmp_path, motion=clip, segments=("pelvis", "left_thigh", "left_shank"),
                     plots=False, seed=1)
    s = run_demo(cfg)
    assert s["nodes"] == 3 and sum(s["lost"].values()) == 0
    head, a = read_csv(tmp_path / "angles.csv")
    meas = {h: a[:, i] for i, h in enumerate(head)}
    ref = clinical_angles(s["motion"].segment_quats)
    start = int(3.5 * 200)   # after standing (2 s) and the start blend (1 s)
    n = len(a)
    errs = []
    for lag in range(0, 60):  # the sensors start a fixed boot time into the motion
        d = [meas[c][start:n] - ref[c][start + lag:n + lag] for c in ("left_knee_flexion", "left_hip_flexion")]
        errs.append(max(float(np.sqrt(np.nanmean(x * x))) for x in d))
    best = int(np.argmin(errs))
    assert errs[best] < 4.0, (best, errs[best])               # bench: ~1-1.5 deg over 10 s
    assert np.ptp(ref["left_knee_flexion"][start:n]) > 60.0   # a real running knee, not a trivial match


def test_frames_stamped_zero_are_re_timed():
    from trackside.demo.pipeline import _frame_times

    r = SimpleNamespace(frame_t_us=np.array([1000, 81000, 0, 0, 500000]), frame_n=np.array([16, 14, 15, 16, 16]),
                        frame_period_us=np.array([5000] * 5))
    ft, fixed = _frame_times(r, np.array([False, True, True, True, True]))
    assert ft.tolist() == [1000, 81000, 151000, 226000, 500000] and fixed == 2
    ft, fixed = _frame_times(r, np.array([False, True, False, True, True]))  # a frame lost before: not guessed
    assert ft[2] == 0 and fixed == 1


@pytest.mark.parametrize("argv, msg", [
    (["--motion", "/nonexistent/clip.bvh"], "no such file"),
    (["--seconds", "2"], "--seconds must be at least"),
    (["--segments", "pelvis,tail"], "unknown tail"),
    (["--segments", "pelvis,pelvis"], "listed twice"),
    (["--nodes", "99"], "--nodes must be"),
])
def test_bad_input_is_a_clear_error(argv, msg, tmp_path, capsys):
    rc = main(["demo", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and msg in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "nan"])
def test_bad_seconds_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--seconds", bad])
    assert e.value.code == 2
    assert "--seconds" in capsys.readouterr().err


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["demo", "--out", str(f)]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_bad_clip_content_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n")
    rc = main(["demo", "--motion", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2 and "bad.bvh" in capsys.readouterr().err
