"""Gait from foot IMUs against the simulated athlete's truth (targets: contact +-10 ms,
step length +-3 %, step frequency +-1 %), the one-foot CLI, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trackside.cli import main
from trackside.kinematics.gait import foot_track, gait_one_foot, gait_session
from trackside.sim.athlete import ImuNoise, SimulatedAthlete

MOUNT = (0.9, 0.1, -0.3, 0.2)
OFFSET = (0.05, 0.01, 0.03)


def _feet(mo, noise=False):
    out = {}
    for i, side in enumerate(("left", "right")):
        nz = ImuNoise(gyr_std=0.005, gyr_bias=0.003, acc_std=0.03, acc_bias=0.02, mag_std=0.3, seed=i) if noise else None
        out[side] = mo.imu(f"{side}_foot", mount=MOUNT, offset_m=OFFSET, noise=nz)
    return out


def _match(steps, truth):
    pairs = []
    for st in steps:
        m = [x for x in truth if x["side"] == st["side"] and abs(x["touchdown_s"] - st["touchdown_s"]) < 0.03]
        if m and st["step_length_m"] is not None:
            pairs.append((st, m[0]))
    return pairs


@pytest.mark.parametrize("preset,noise", [("jog", False), ("sprint", True), ("asym", True)])
def test_session_gait_meets_targets(preset, noise):
    ath = {"jog": SimulatedAthlete(heading_deg=30.0),
           "sprint": SimulatedAthlete.sprint(heading_deg=-120.0, seed=4),
           "asym": SimulatedAthlete(jitter=0.03, asymmetry=0.15, seed=3)}[preset]
    mo = ath.simulate(duration_s=9.0, fs=200.0)
    feet = _feet(mo, noise)
    res = gait_session(feet["left"], feet["right"], 200.0)
    pairs = _match(res["steps"], mo.truth.steps)
    assert len(pairs) >= len(mo.truth.steps) - 1 and len(pairs) > 10
    for st, tr in pairs:
        assert abs(st["contact_s"] - tr["contact_s"]) <= 0.010
        assert abs(st["flight_s"] - tr["flight_s"]) <= 0.010
        assert st["step_length_m"] == pytest.approx(tr["step_length_m"], rel=0.03)
        assert st["step_freq_hz"] == pytest.approx(tr["step_freq_hz"], rel=0.01)
        if not noise:  # the two-track geometry is exact too while sensor errors have not accumulated
            assert st["step_length_tracks_m"] == pytest.approx(tr["step_length_m"], rel=0.03)
    if preset == "asym":
        # left contacts are 15 % longer than right ones
        assert res["asymmetry_pct"]["contact_s"] == pytest.approx(15.0, abs=2.0)
    else:
        assert abs(res["asymmetry_pct"]["contact_s"]) < 2.0
    # the pelvis path runs along the heading
    xy = np.asarray(res["pelvis_path_m"]["xy"])
    d = xy[-1] - xy[len(xy) // 2]
    assert np.degrees(np.arctan2(d[1], d[0])) == pytest.approx(np.degrees(ath.heading), abs=3.0)


def test_one_foot_and_cli(tmp_path):
    mo = SimulatedAthlete(heading_deg=10.0).simulate(duration_s=8.0, fs=200.0)
    imu = _feet(mo)["right"]
    res = gait_one_foot(imu["gyr"], imu["acc"], 200.0, "right")
    truth = mo.truth.for_side("right")
    full = [s for s in res["steps"] if s["stride_length_m"] is not None]
    assert len(full) >= len(truth) - 2
    for s in full:
        assert s["step_length_m"] == pytest.approx(3.3 / 2.8, rel=0.03)
        assert s["step_freq_hz"] == pytest.approx(2.8, rel=0.01)
        assert abs(s["contact_s"] - 0.22) <= 0.010
    # the CLI writes the same figures
    np.savez(tmp_path / "foot.npz", gyr=imu["gyr"], acc=imu["acc"], mag=imu["mag"], fs=200.0)
    rc = main(["gait", "--input", str(tmp_path / "foot.npz"), "--side", "right", "--out", str(tmp_path / "g.json")])
    assert rc == 0
    js = json.loads((tmp_path / "g.json").read_text())
    assert js["side"] == "right" and js["heading_from_magnetometer"] is True
    assert js["summary"]["contact_s"]["mean"] == pytest.approx(0.22, abs=0.005)
    tr = foot_track(imu["gyr"], imu["acc"], 200.0, imu["mag"])
    d = tr.footprints[-1, :2] - tr.footprints[0, :2]
    assert np.degrees(np.arctan2(d[1], d[0])) == pytest.approx(10.0, abs=2.0)  # ENU with a magnetometer


def test_gait_bad_input(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", gyr=np.zeros((100, 3)), fs=200.0)
    assert main(["gait", "--input", str(tmp_path / "bad.npz"), "--side", "left", "--out", str(tmp_path / "o.json")]) == 2
    assert "missing keys" in capsys.readouterr().err
    assert main(["gait", "--input", str(tmp_path / "none.npz"), "--side", "left", "--out", str(tmp_path / "o.json")]) == 2
    # never still: a spinning sensor has no stance
    n = 600
    np.savez(tmp_path / "spin.npz", gyr=np.tile([0, 0, 5.0], (n, 1)), acc=np.tile([0, 0, 9.81], (n, 1)), fs=200.0)
    assert main(["gait", "--input", str(tmp_path / "spin.npz"), "--side", "left", "--out", str(tmp_path / "o.json")]) == 2
    assert "no stance" in capsys.readouterr().err
    with pytest.raises(ValueError):
        gait_one_foot(np.zeros((400, 3)), np.zeros((400, 2)), 200.0, "left")
    with pytest.raises(ValueError):
        gait_one_foot(np.full((400, 3), np.nan), np.zeros((400, 3)), 200.0, "left")
    with pytest.raises(ValueError):
        gait_one_foot(np.zeros((400, 3)), np.zeros((400, 3)), 200.0, "middle")
