"""Accuracy of the device filter (fixed point) and its float twin: BROAD, simulated truth,
disturbance rejection, exact slow-rate integration, gyro-less mode, quantiser."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from trackside.fusion.device import make_filter, run_device
from trackside.fusion.metrics import broad_rmse, broad_trials, error_angles, load_recording
from trackside.fusion.quantize import CHIPS, quantize
from trackside.fusion.reference import run_reference
from trackside.fusion.simulate import simulate_recording


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(a * a)))


def test_broad_mean_total_rmse_within_target(shared_data):
    trials = broad_trials(shared_data.parent)
    assert len(trials) == 7
    totals = []
    for p in trials:
        rec = load_recording(p)
        totals.append(broad_rmse(run_device(rec), rec.quat, rec.movement).total)
    # target 3.0 deg (VQF 9D online gets 3.34 on these trials)
    assert np.mean(totals) <= 3.0, totals
    assert max(totals) < 5.0, totals


@pytest.fixture(scope="module")
def sim_plain():
    return simulate_recording(duration=40.0, fs=200.0, seed=21)


def test_simulated_truth_and_fixed_float_gap(sim_plain):
    rec = sim_plain
    qd = run_device(rec)
    qr = run_reference(rec)
    ed = broad_rmse(qd, rec.quat, rec.movement)
    er = broad_rmse(qr, rec.quat, rec.movement)
    assert ed.total < 2.0 and er.total < 2.0, (ed, er)
    assert ed.inclination < 1.5
    # same algorithm: fixed point stays within a fraction of a degree of the float twin
    gap = _rms(error_angles(qd, qr)[0])
    assert gap < 0.3, gap


def test_learns_gyro_bias_at_rest():
    rec = simulate_recording(duration=20.0, fs=200.0, seed=3, gyro_bias_dps=(1.5, -1.0, 0.7))
    f = make_filter(rec.fs)
    c = quantize(rec)
    f.update_block(array("h", c.tobytes()), len(c), None)
    bias_dps = np.array([f.bx, f.by, f.bz]) / 256.0 / 16.4
    assert np.allclose(bias_dps, (1.5, -1.0, 0.7), atol=0.05), bias_dps


def test_magnetic_disturbance_is_rejected():
    """An earth-fixed field change (magnet nearby) and a sensor-fixed hard iron (magnet on the
    sensor): with gating the heading holds; with the gates opened it is pulled away."""
    for kw in (dict(field_dist=(10.0, 30.0), field_dist_ut=(15.0, 0.0, 10.0)),
               dict(hard_iron=(25.0, -20.0, 15.0), hard_iron_at=10.0)):
        rec = simulate_recording(duration=40.0, fs=200.0, seed=8, **kw)
        gated = broad_rmse(run_device(rec), rec.quat, rec.movement)
        open_ = broad_rmse(run_device(rec, mag_norm_th=10.0, mag_dip_th=10.0), rec.quat, rec.movement)
        assert gated.heading < 3.0, (kw, gated)
        assert open_.heading > 2 * gated.heading, (kw, gated, open_)


def test_started_in_disturbed_field_recovers():
    """Switched on next to a magnet: the start-up reference is wrong and every later (clean)
    sample fails the gates, until the consistent new field is adopted after 20 s of motion."""
    rec = simulate_recording(duration=90.0, fs=200.0, seed=9, field_dist=(0.0, 8.0),
                             field_dist_ut=(10.0, -10.0, 12.0))
    late = np.arange(len(rec.gyr)) > 60 * 200
    e = broad_rmse(run_device(rec), rec.quat, rec.movement & late)
    stuck = broad_rmse(run_device(rec, mag_new_time=1e4), rec.quat, rec.movement & late)
    assert e.heading < 3.0 and stuck.heading > 20.0, (e, stuck)


def test_slow_rotation_integrates_exactly():
    """5 deg/s about the vertical for 60 s at 285.7 Hz: each sample moves q by ~2.5 Q14 counts;
    error feedback keeps the integral exact (truncation would lose ~20 %)."""
    fs = 2000.0 / 7.0
    n = int(60 * fs)
    f = make_filter(fs, "mpu9250", mag_norm_th=0.0)  # no magnetometer correction
    f_nomag = f
    buf = array("h", bytes(18 * n))
    for i in range(n):
        buf[9 * i + 2] = 82          # gz counts: 82 / 16.4 = 5.0 deg/s
        buf[9 * i + 5] = 4096        # 1 g up
        buf[9 * i + 7] = 100         # a field to start the TRIAD on
        buf[9 * i + 8] = -270
    out = array("h", bytes(8 * n))
    f_nomag.update_block(buf, n, out)
    q = np.frombuffer(out, dtype=np.int16).reshape(n, 4).astype(float)
    yaw = np.degrees(2 * np.arctan2(q[:, 3], q[:, 0]))
    turned = (yaw[-1] - yaw[0]) % 360.0
    expected = 82 / 16.4 * (n - 1) / fs
    assert abs(turned - expected) < 0.02, (turned, expected)


def test_gyroless_mode_tracks_slow_motion():
    rec = simulate_recording(duration=30.0, fs=100.0, seed=4, rate_dps=20.0, lin_acc=0.3)
    e = broad_rmse(run_device(rec, chip="lsm303"), rec.quat, rec.movement)
    er = broad_rmse(run_reference(rec, chip="lsm303"), rec.quat, rec.movement)
    assert e.total < 8.0 and abs(e.total - er.total) < 0.5, (e, er)
    still = simulate_recording(duration=10.0, fs=100.0, seed=4, rate_dps=0.0, lin_acc=0.0)
    assert broad_rmse(run_device(still, chip="lsm303"), still.quat).total < 1.0


def test_quantiser_scales_and_saturates():
    rec = simulate_recording(duration=1.0, fs=100.0, seed=1, rate_dps=0.0)
    rec = type(rec)(gyr=np.tile([np.radians(10.0), np.radians(3000.0), 0.0], (100, 1)),
                    acc=np.tile([9.80665, 0.0, -100.0], (100, 1)), mag=np.tile([15.0, -0.15, 0.0], (100, 1)),
                    fs=100.0)
    c = quantize(rec, "mpu9250")
    assert c.dtype == np.int16
    assert tuple(c[0]) == (164, 32767, 0, 4096, 0, -32768, 100, -1, 0)
    c = quantize(rec, "lsm303")
    assert tuple(c[0, :3]) == (0, 0, 0) and c[0, 3] == 8192 and c[0, 3] % 16 == 0
    assert set(CHIPS) == {"mpu9250", "icm20948", "lsm303"}


def test_single_sample_update_equals_block_update():
    from trackside.fusion.device import run_counts

    rec = simulate_recording(duration=5.0, fs=200.0, seed=1, rest=1.0)
    c = quantize(rec)
    f = make_filter(rec.fs)
    q = []
    for row in c.tolist():
        f.update(*row)
        q.append((f.w, f.x, f.y, f.z))
    assert np.array_equal(np.array(q), run_counts(c, rec.fs))


def test_filter_rejects_bad_configuration():
    from tsfw.fusion import FixedKalman

    with pytest.raises(ValueError):
        FixedKalman(0, 4096, 16.4, 0.15)
    with pytest.raises(ValueError):
        FixedKalman(10.0, 4096, 16.4, 0.15)  # too slow for +-2000 dps first-order strapdown
    assert FixedKalman(200.0, 4096, 16.4, 0.15).N == 7
