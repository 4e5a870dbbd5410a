"""export_outputs / trackside export: the files, their columns, zero standing angles; and the
whole chain on a real running clip with exact orientations (knee/hip flexion within 3 deg)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trackside.cli import main
from trackside.kinematics.export import export_outputs, segments_from_nodes
from trackside.kinematics.joints import ANGLE_COLUMNS, clinical_angles
from trackside.kinematics.quat import from_rot, qmul
from trackside.sim.athlete import SimulatedAthlete


@pytest.fixture(scope="module")
def session():
    mo = SimulatedAthlete(heading_deg=75.0, seed=1).simulate(duration_s=8.0, fs=100.0)
    rng = np.random.default_rng(3)
    nodes = {s: qmul(q, from_rot(Rotation.random(random_state=int(rng.integers(1e6)))))
             for s, q in mo.segment_quats.items()}
    feet = {side: mo.imu(f"{side}_foot", offset_m=(0.05, 0, 0.03)) for side in ("left", "right")}
    return mo, nodes, feet


def test_export_outputs_files(tmp_path, session):
    mo, nodes, feet = session
    seg, valid, _ = segments_from_nodes(mo.time_s, nodes, {s: s for s in nodes}, mo.skeleton, (0, 1.5), (2.5, 7.5))
    res = export_outputs(tmp_path, mo.time_s, seg, mo.skeleton, foot_imu=feet, valid=valid)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["angles.csv", "angles_per_stride.png", "gait.json", "gait_over_session.png", "session.bvh"]
    with open(tmp_path / "angles.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["time_s"] + list(ANGLE_COLUMNS)
    assert rows[0][1:6] == ["left_hip_flexion", "left_hip_abduction", "left_hip_rotation", "left_knee_flexion",
                            "left_ankle_dorsiflexion"]
    assert len(rows) == len(mo.time_s) + 1
    data = np.array(rows[1:], float)
    standing = data[:, 0] < 1.5
    assert np.abs(data[standing, 1:]).max() < 0.01
    truth = clinical_angles(mo.segment_quats)
    assert np.abs(data[:, 4] - truth["left_knee_flexion"]).max() < 0.5
    gait = json.loads((tmp_path / "gait.json").read_text())
    assert gait["available"] and gait["n_steps"] > 8
    assert gait["summary"]["contact_s"]["mean"] == pytest.approx(0.22, abs=0.01)
    assert res["frames"] == len(mo.time_s)
    # BVH root follows the feet's pelvis path
    last = (tmp_path / "session.bvh").read_text().strip().splitlines()[-1].split()
    assert float(last[2]) / 100 == pytest.approx(mo.segment_pos["pelvis"][-1, 0], abs=0.6)  # BVH Z = east


def test_export_cli_and_missing_node(tmp_path, session):
    mo, nodes, feet = session
    d = {"time_s": mo.time_s, "fs": 100.0}
    for s, q in nodes.items():
        if s != "right_foot":
            d[f"node_{s}"] = q
    d["stand"] = np.array([0.0, 1.5])
    d["walk"] = np.array([2.5, 7.5])
    np.savez(tmp_path / "s.npz", **d)
    assert main(["export", str(tmp_path / "s.npz"), "--out", str(tmp_path / "out"), "--no-plots"]) == 0
    with open(tmp_path / "out" / "angles.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows[50]["right_ankle_dorsiflexion"] == "" and rows[50]["left_ankle_dorsiflexion"] != ""
    gait = json.loads((tmp_path / "out" / "gait.json").read_text())
    assert gait["available"] is False
    assert main(["export", str(tmp_path / "nothing.npz"), "--out", str(tmp_path / "o2")]) == 2
    np.savez(tmp_path / "bad.npz", time_s=mo.time_s, seg_tail=nodes["pelvis"])
    assert main(["export", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o3")]) == 2


def test_real_running_clip_through_the_chain(shared_data):
    """Virtual nodes with random mountings on the CMU run, exact sensor orientations:
    calibration from the standing pose + the first steps recovers the clip's angles."""
    from trackside.sim.bvh_motion import BvhMotion

    mo = BvhMotion(shared_data / "mocap" / "09_05.bvh", heading_deg=140.0).simulate(duration_s=9.0, fs=100.0)
    rng = np.random.default_rng(11)
    nodes = {s: qmul(q, from_rot(Rotation.random(random_state=int(rng.integers(1e6)))))
             for s, q in mo.segment_quats.items()}
    seg, _, tl = segments_from_nodes(mo.time_s, nodes, {s: s for s in nodes}, mo.skeleton, (0.0, 1.5), (2.0, 6.0))
    assert np.degrees(tl.events[0].heading_rad) == pytest.approx(140.0, abs=2.0)
    est, truth = clinical_angles(seg), clinical_angles(mo.segment_quats)
    run = mo.time_s > 3.0
    for k in ("left_knee_flexion", "right_knee_flexion", "left_hip_flexion", "right_hip_flexion"):
        rms = np.sqrt(np.mean((est[k][run] - truth[k][run]) ** 2))
        assert rms < 3.0, (k, rms)


def test_export_from_nodes(tmp_path, session):
    from trackside.kinematics.export import export_from_nodes

    mo, nodes, feet = session
    ids = {f"node{i:02d}": s for i, s in enumerate(nodes)}
    res = export_from_nodes(tmp_path, mo.time_s, {k: nodes[s] for k, s in ids.items()}, ids, mo.skeleton,
                            stand=(0.0, 1.5), walk=(2.5, 7.5), foot_nodes={"left": feet["left"]}, plots=False)
    assert np.degrees(res["heading_rad"]) == pytest.approx(75.0, abs=1.0)
    gait = json.loads((tmp_path / "gait.json").read_text())
    assert gait["side"] == "left" and gait["summary"]["step_freq_hz"]["mean"] == pytest.approx(2.8, rel=0.01)
    assert res["plots"] == []
