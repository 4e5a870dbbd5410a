"""The simulated athlete and the BVH motion source: truth consistency and IMU synthesis."""

from __future__ import annotations

import numpy as np
import pytest

from trackside.kinematics.joints import clinical_angles
from trackside.kinematics.quat import qconj, qmul, to_rot
from trackside.sim.athlete import ImuNoise, MagField, SimulatedAthlete


@pytest.fixture(scope="module")
def jog():
    return SimulatedAthlete(heading_deg=30.0).simulate(duration_s=10.0, fs=200.0)


def test_standing_imu_is_gravity_and_earth_field(jog):
    mount = np.array([0.8, 0.2, -0.4, 0.4])
    imu = jog.imu("left_thigh", mount=mount)
    still = jog.time_s < 1.5
    assert np.allclose(imu["gyr"][still], 0.0, atol=1e-9)
    f_e = to_rot(imu["quat"][still]).apply(imu["acc"][still])
    assert np.allclose(f_e, [0, 0, 9.81], atol=1e-6)
    m_e = to_rot(imu["quat"][still]).apply(imu["mag"][still])
    inc = np.degrees(np.arctan2(-m_e[:, 2], m_e[:, 1]))
    assert np.allclose(inc, 67.0, atol=1e-6) and np.allclose(np.linalg.norm(m_e, axis=1), 49.0)
    # standing: every segment is the heading rotation -> all angles zero
    ang = clinical_angles({k: v[still] for k, v in jog.segment_quats.items()})
    assert max(np.nanmax(np.abs(a)) for a in ang.values()) < 1e-6


def test_gyro_integrates_to_the_truth_orientation(jog):
    mount = np.array([0.5, 0.5, 0.5, 0.5])
    imu = jog.imu("right_shank", mount=mount)
    q = imu["quat"]
    # body-frame increment between samples vs the gyro (mid-point rule)
    dq = qmul(qconj(q[:-1]), q[1:])
    rotvec = to_rot(dq).as_rotvec() * 200.0
    mid = 0.5 * (imu["gyr"][1:] + imu["gyr"][:-1])
    err = np.linalg.norm(rotvec - mid, axis=1)
    assert np.percentile(err, 99) < 0.05 * max(1.0, np.abs(mid).max())


def test_feet_are_still_during_true_contacts(jog):
    p = jog.segment_pos["left_foot"]
    for s in jog.truth.for_side("left"):
        sel = (jog.time_s >= s["touchdown_s"] + 0.003) & (jog.time_s <= s["toeoff_s"] - 0.003)
        assert np.ptp(p[sel], axis=0).max() < 1e-9
        imu_sel = jog.imu("left_foot", offset_m=(0.05, 0, 0.03))
        assert np.abs(imu_sel["gyr"][sel]).max() < 1e-6
        break


def test_truth_matches_parameters(jog):
    steps = jog.truth.steps
    assert len(steps) > 15
    sides = [s["side"] for s in steps]
    assert all(a != b for a, b in zip(sides[:-1], sides[1:]))
    for s in steps:
        assert s["step_freq_hz"] == pytest.approx(2.8, rel=1e-9)
        assert s["step_length_m"] == pytest.approx(3.3 / 2.8, rel=1e-9)
        assert s["contact_s"] == pytest.approx(0.22)
        assert s["flight_s"] == pytest.approx(1 / 2.8 - 0.22)
    # footprints lie along the 30 degree heading
    fp = np.array([s["footprint"] for s in steps if s["side"] == "left"])
    d = fp[-1] - fp[0]
    assert np.degrees(np.arctan2(d[1], d[0])) == pytest.approx(30.0, abs=1e-6)


def test_noise_and_disturbance_options(jog):
    clean = jog.imu("pelvis")
    noisy = jog.imu("pelvis", noise=ImuNoise(gyr_std=0.01, gyr_bias=0.02, acc_std=0.1, mag_std=0.5, seed=3))
    again = jog.imu("pelvis", noise=ImuNoise(gyr_std=0.01, gyr_bias=0.02, acc_std=0.1, mag_std=0.5, seed=3))
    assert np.array_equal(noisy["gyr"], again["gyr"])
    assert 0.005 < np.std(noisy["gyr"] - clean["gyr"]) < 0.05
    dist = jog.imu("pelvis", mag=MagField(disturbance_ut=(30.0, 0, 0), disturb_from_s=1.0, disturb_to_s=2.0))
    diff = np.linalg.norm(dist["mag"] - clean["mag"], axis=1)
    assert np.allclose(diff[(jog.time_s >= 1.0) & (jog.time_s < 2.0)], 30.0)
    assert np.allclose(diff[jog.time_s < 1.0], 0.0)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        SimulatedAthlete(contact_s=0.5, step_freq_hz=3.0)
    with pytest.raises(ValueError):
        SimulatedAthlete(speed_mps=-1)
    with pytest.raises(ValueError):
        SimulatedAthlete().simulate(duration_s=1.0)
    with pytest.raises(KeyError):
        SimulatedAthlete().simulate(duration_s=4.0, fs=50).imu("tail")


@pytest.fixture(scope="module")
def clip(shared_data):
    from trackside.sim.bvh_motion import BvhMotion

    return BvhMotion(shared_data / "mocap" / "09_02.bvh", heading_deg=-20.0).simulate(duration_s=8.0, fs=200.0)


def test_bvh_motion_standing_start_and_smooth_loop(clip):
    ang = clinical_angles(clip.segment_quats)
    still = clip.time_s < 1.9
    assert max(np.nanmax(np.abs(a[still])) for a in ang.values()) < 1e-6
    # running: knees flex substantially, nothing jumps between samples (loop junctions included)
    run = clip.time_s > 3.5
    assert np.ptp(ang["left_knee_flexion"][run]) > 60
    for seg, q in clip.segment_quats.items():
        step = np.degrees(to_rot(qmul(qconj(q[:-1]), q[1:])).magnitude())
        assert step.max() < 8.0, seg  # < 1600 deg/s at 200 Hz
    # travels ~3.5 m/s along the -20 degree heading
    p = clip.segment_pos["pelvis"]
    d = p[-1, :2] - p[clip.time_s.searchsorted(4.0), :2]
    assert np.degrees(np.arctan2(d[1], d[0])) == pytest.approx(-20.0, abs=3.0)
    assert np.linalg.norm(d) / (clip.time_s[-1] - 4.0) == pytest.approx(3.5, rel=0.15)


def test_bvh_motion_rejects_bad_files(tmp_path):
    from trackside.sim.bvh_motion import BvhMotion

    with pytest.raises(FileNotFoundError):
        BvhMotion(tmp_path / "none.bvh")
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\nOFFSET 0 0\n}\n")
    with pytest.raises(ValueError):
        BvhMotion(bad)


def test_bvh_motion_matches_other_joint_names(shared_data, tmp_path):
    """A skeleton with other names (Mixamo-style prefix, UpperLeg/LowerLeg, Chest) maps the same."""
    import re

    from trackside.sim.bvh_motion import BvhMotion

    text = (shared_data / "mocap" / "09_02.bvh").read_text()
    ren = {"Spine1": "Chest", "LeftUpLeg": "LeftUpperLeg", "RightUpLeg": "RightUpperLeg",
           "LeftLeg": "LeftLowerLeg", "RightLeg": "RightLowerLeg"}
    text2 = re.sub(r"(ROOT|JOINT) (\w+)", lambda m: f"{m.group(1)} mixamorig:{ren.get(m.group(2), m.group(2))}", text)
    (tmp_path / "renamed.bvh").write_text(text2)
    a = clinical_angles(BvhMotion(shared_data / "mocap" / "09_02.bvh").simulate(4.0, 50.0).segment_quats)
    b = clinical_angles(BvhMotion(tmp_path / "renamed.bvh").simulate(4.0, 50.0).segment_quats)
    for k in ("left_knee_flexion", "right_hip_flexion", "left_elbow_flexion"):
        assert np.allclose(a[k], b[k], atol=1e-9)
