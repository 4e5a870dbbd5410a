"""Skeleton, calibration (standing + heading), re-calibration, missing nodes, clinical angles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trackside.kinematics.calibration import (Calibration, CalibrationTimeline, heading_from_track,
                                              segments_from_sensors)
from trackside.kinematics.export import segments_from_nodes
from trackside.kinematics.joints import ANGLE_COLUMNS, REQUIRED_COLUMNS, bvh_euler, bvh_rotations, clinical_angles
from trackside.kinematics.quat import from_rot, qmul, yaw_quat
from trackside.kinematics.skeleton import RATIOS, SEGMENT_NAMES, Skeleton, assign_nodes
from trackside.sim.athlete import SimulatedAthlete


def test_skeleton_from_height_and_overrides():
    sk = Skeleton.from_height(1.80)
    assert sk.names()[0] == "pelvis" and set(sk.names()) == set(SEGMENT_NAMES)
    assert sk.segment("left_thigh").length_m == pytest.approx(0.245 * 1.8)
    assert sk.segment("right_shank").length_m == pytest.approx(0.246 * 1.8)
    assert sk.segment("left_upper_arm").length_m == pytest.approx(0.186 * 1.8)
    assert sk.pelvis_height_m == pytest.approx(0.530 * 1.8)
    sk2 = Skeleton.from_height(1.70, lengths={"thigh": 0.5})
    assert sk2.segment("left_thigh").length_m == 0.5
    assert sk2.segment("left_shank").length_m == pytest.approx(RATIOS["shank"] * 1.7)
    for bad in ({"tail": 1.0}, {"thigh": -1.0}):
        with pytest.raises(ValueError):
            Skeleton.from_height(1.8, lengths=bad)
    with pytest.raises(ValueError):
        Skeleton.from_height(7.0)


def test_assignment_validation():
    assert assign_nodes({"n1": "pelvis", 7: "left_foot"}) == {"n1": "pelvis", "7": "left_foot"}
    with pytest.raises(ValueError, match="unknown segment"):
        assign_nodes({"n1": "tail"})
    with pytest.raises(ValueError, match="two nodes"):
        assign_nodes({"a": "pelvis", "b": "pelvis"})


def _rot(axis, deg):
    return from_rot(Rotation.from_rotvec(np.radians(deg) * np.asarray(axis, float)))[None, :]


def test_clinical_angle_signs():
    ident = np.array([[1.0, 0, 0, 0]])
    base = {s: ident for s in SEGMENT_NAMES}
    # left thigh swings forward 30 deg: rotation about -y (right axis) moves the knee forward
    q = dict(base, left_thigh=_rot([0, -1, 0], 30), right_thigh=_rot([0, -1, 0], 30))
    q["left_shank"] = q["left_thigh"]  # knee straight
    q["right_shank"] = q["right_thigh"]
    q["left_foot"] = q["left_shank"]
    q["right_foot"] = q["right_shank"]
    a = clinical_angles(q)
    assert a["left_hip_flexion"][0] == pytest.approx(30) and a["right_hip_flexion"][0] == pytest.approx(30)
    assert a["left_knee_flexion"][0] == pytest.approx(0, abs=1e-9)
    # knee flexion: shank rotates back relative to thigh; ankle: toes up = dorsiflexion
    q2 = dict(base, left_shank=_rot([0, 1, 0], 40), left_foot=qmul(_rot([0, 1, 0], 40), _rot([0, -1, 0], 10)))
    a2 = clinical_angles(q2)
    assert a2["left_knee_flexion"][0] == pytest.approx(40)
    assert a2["left_ankle_dorsiflexion"][0] == pytest.approx(10)
    # abduction: left thigh to the left (+y), right thigh to the right
    q3 = dict(base, left_thigh=_rot([1, 0, 0], 15), right_thigh=_rot([-1, 0, 0], 15))
    a3 = clinical_angles(q3)
    assert a3["left_hip_abduction"][0] == pytest.approx(15) and a3["right_hip_abduction"][0] == pytest.approx(15)
    # internal rotation: left toes turn right (-z), right toes turn left (+z)
    q4 = dict(base, left_thigh=_rot([0, 0, -1], 20), right_thigh=_rot([0, 0, 1], 20))
    a4 = clinical_angles(q4)
    assert a4["left_hip_rotation"][0] == pytest.approx(20) and a4["right_hip_rotation"][0] == pytest.approx(20)
    assert list(ANGLE_COLUMNS[:10]) == [f"{s}_{c}" for s in ("left", "right") for c in REQUIRED_COLUMNS]


def test_angles_are_continuous_through_180():
    t = np.linspace(0, 1, 400)
    rot = np.radians(400.0 * t)  # hip rotation sweeping past +-180 deg
    ident = np.tile([1.0, 0, 0, 0], (len(t), 1))
    q = {s: ident for s in SEGMENT_NAMES}
    q["left_thigh"] = from_rot(Rotation.from_rotvec(np.outer(-rot, [0, 0, 1])))
    a = clinical_angles(q)["left_hip_rotation"]
    assert np.abs(np.diff(a)).max() < 2.0
    assert a[-1] == pytest.approx(400.0, abs=1e-6)
    e = bvh_euler(q, Skeleton.from_height(1.8))
    assert np.abs(np.diff(e, axis=0)).max() < 2.0


@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX"])
def test_bvh_euler_reconstructs_the_joint_rotation(order):
    rng = np.random.default_rng(1)
    sk = Skeleton.from_height(1.8)
    q = {s: from_rot(Rotation.random(5, random_state=int(rng.integers(1e6)))) for s in SEGMENT_NAMES}
    e = bvh_euler(q, sk, order)
    mats = bvh_rotations(q, sk)
    for i, s in enumerate(sk.names()):
        r = Rotation.from_euler(order, e[:, 3 * i:3 * i + 3], degrees=True)
        assert np.allclose(r.as_matrix(), mats[s], atol=1e-9)


@pytest.fixture(scope="module")
def run():
    mo = SimulatedAthlete(heading_deg=-50.0, seed=2).simulate(duration_s=9.0, fs=100.0)
    rng = np.random.default_rng(7)
    mounts = {s: from_rot(Rotation.random(random_state=int(rng.integers(1e6)))) for s in SEGMENT_NAMES}
    sensors = {s: qmul(q, mounts[s]) for s, q in mo.segment_quats.items()}
    return mo, mounts, sensors


def test_calibration_recovers_mounts_and_heading(run):
    mo, mounts, sensors = run
    cal = Calibration.from_windows(mo.time_s, sensors, stand=(0.0, 1.5), walk=(2.5, 7.0))
    assert np.degrees(cal.heading_rad) == pytest.approx(-50.0, abs=0.5)
    seg, valid = segments_from_sensors(mo.time_s, sensors, CalibrationTimeline([cal]), mo.skeleton)
    truth = clinical_angles(mo.segment_quats)
    est = clinical_angles(seg)
    for k in ANGLE_COLUMNS:
        assert np.abs(est[k] - truth[k]).max() < 0.5, k
    assert all(v.all() for v in valid.values())
    # the node pipeline gives the same with a known heading
    nodes = {f"n{i}": q for i, q in enumerate(sensors.values())}
    assignment = {f"n{i}": s for i, s in enumerate(sensors)}
    seg2, _, _ = segments_from_nodes(mo.time_s, nodes, assignment, mo.skeleton, (0.0, 1.5), heading_rad=np.radians(-50))
    assert np.abs(clinical_angles(seg2)["left_knee_flexion"] - truth["left_knee_flexion"]).max() < 1e-6
    assert heading_from_track(np.array([[0, 0, 0], [1, -1.0, 0]])) == pytest.approx(np.radians(-45))


def test_recalibration_event_fixes_a_slipped_sensor(run):
    mo, mounts, sensors = run
    n = len(mo.time_s)
    stand = mo.time_s < 2.0
    # a second session half: the athlete stands again, then runs; the thigh sensor has slipped
    t2 = np.concatenate([mo.time_s, mo.time_s + mo.time_s[-1] + 0.01])
    seg_truth = {s: np.concatenate([q, q]) for s, q in mo.segment_quats.items()}
    slip = from_rot(Rotation.from_euler("xyz", [20, -35, 50], degrees=True))
    sens2 = {s: np.concatenate([q, q]) for s, q in sensors.items()}
    sens2["left_thigh"][n:] = qmul(mo.segment_quats["left_thigh"], qmul(mounts["left_thigh"], slip))
    _, _, tl0 = segments_from_nodes(t2, sens2, {s: s for s in sens2}, mo.skeleton, (0.0, 1.5), (2.5, 7.0))
    win2 = (t2[n], t2[n] + 1.5)
    seg1, _, tl = segments_from_nodes(t2, sens2, {s: s for s in sens2}, mo.skeleton, (0.0, 1.5), (2.5, 7.0),
                                      recalibrations=[(win2, None)])
    assert len(tl.events) == 2
    seg0, _ = segments_from_sensors(t2, sens2, tl0, mo.skeleton)
    truth = clinical_angles(seg_truth)["left_hip_flexion"][n:]
    err_without = np.abs(clinical_angles(seg0)["left_hip_flexion"][n:] - truth).max()
    err_with = np.abs(clinical_angles(seg1)["left_hip_flexion"][n:] - truth).max()
    assert err_without > 10.0 and err_with < 0.5
    assert stand.any()


def test_missing_nodes_and_gaps_degrade_gracefully(run):
    mo, mounts, sensors = run
    part = {s: q.copy() for s, q in sensors.items() if s not in ("left_foot", "head")}
    part["right_shank"][300:340] = np.nan  # a 0.4 s radio gap
    seg, valid, _ = segments_from_nodes(mo.time_s, part, {s: s for s in part}, mo.skeleton, (0.0, 1.5), (2.5, 7.0))
    assert set(seg) == set(SEGMENT_NAMES) and all(np.isfinite(q).all() for q in seg.values())
    assert not valid["left_foot"].any() and not valid["right_shank"][300:340].any() and valid["right_shank"][:300].all()
    assert np.allclose(seg["right_shank"][300:340], seg["right_shank"][299])  # held
    a = clinical_angles(seg)
    assert np.abs(a["left_ankle_dorsiflexion"]).max() < 1e-6  # foot rigid to the shank
    with pytest.raises(ValueError, match="none of the assigned"):
        segments_from_nodes(mo.time_s, {}, {"x": "pelvis"}, mo.skeleton, (0.0, 1.5), (2.5, 7.0))
    with pytest.raises(ValueError, match="window"):
        segments_from_nodes(mo.time_s, part, {s: s for s in part}, mo.skeleton, (100.0, 101.0), (2.5, 7.0))
    assert yaw_quat(0.0).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_bvh_channels_stay_continuous_past_90_degrees():
    """A knee flexing to 130 deg about BVH X (the middle axis of ZXY) must not flip branches."""
    t = np.linspace(0, 1, 300)
    flex = 130.0 * np.sin(np.pi * t)
    ident = np.tile([1.0, 0, 0, 0], (len(t), 1))
    q = {s: ident for s in SEGMENT_NAMES}
    q["left_thigh"] = from_rot(Rotation.from_rotvec(np.outer(np.radians(5 * t), [0, 0, 1])))
    q["left_shank"] = qmul(q["left_thigh"], from_rot(Rotation.from_rotvec(np.outer(np.radians(flex), [0, 1, 0]))))
    sk = Skeleton.from_height(1.8)
    e = bvh_euler(q, sk, "ZXY")
    i = sk.names().index("left_shank")
    knee = e[:, 3 * i:3 * i + 3]
    assert np.abs(np.diff(e, axis=0)).max() < 3.0
    assert knee[:, 1].max() == pytest.approx(130.0, abs=0.1)  # X carries the flexion (sign per BVH axes)
    assert np.abs(knee[:, [0, 2]]).max() < 1e-6
    assert clinical_angles(q)["left_knee_flexion"].max() == pytest.approx(130.0, abs=0.1)


def test_heading_from_legs_short_window_and_one_thigh(run):
    """The swing axis fixes the heading even from 0.8 s of steps and a single thigh's sign."""
    from trackside.kinematics.calibration import heading_from_legs, mean_quat

    mo, mounts, sensors = run
    st = mo.time_s < 1.5
    sel = (mo.time_s >= 3.2) & (mo.time_s < 4.0)
    legs = {k: sensors[k] for k in ("left_thigh", "left_shank", "right_shank")}
    h = heading_from_legs(legs, {k: mean_quat(q[st]) for k, q in legs.items()}, sel)
    assert np.degrees(h) == pytest.approx(-50.0, abs=0.5)
    with pytest.raises(ValueError, match="thigh"):
        heading_from_legs({"left_shank": sensors["left_shank"]}, {"left_shank": mean_quat(sensors["left_shank"][st])}, sel)
