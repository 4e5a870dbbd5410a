"""Clock mapping (offset, drift, wrap, USB jitter) and alignment (gaps marked, not filled)."""

from __future__ import annotations

import numpy as np
import pytest

from trackside.aggregator.clock import ClockSync, StreamAligner, Unwrapper, align, fit_clock


def test_unwrap_scalar_and_batch() -> None:
    period = 1 << 16
    true = np.arange(0, 5 * period, 977, dtype=np.int64) + 60000
    raw = true % period
    u = Unwrapper(period)
    got = np.array([u(int(r)) for r in raw])
    assert np.array_equal(got - got[0], true - true[0])
    ub = Unwrapper(period)
    parts = np.array_split(raw, 7)
    gotb = np.concatenate([ub.batch(p) for p in parts])
    assert np.array_equal(gotb - gotb[0], true - true[0])
    # a small step back is jitter, not a wrap
    u2 = Unwrapper(period)
    assert u2(100) == 100 and u2(90) == 90 and u2(period - 5) == -5


def _node_clock(host: np.ndarray, offset: float, drift: float, period: int) -> np.ndarray:
    # node µs counter: runs (1 + drift) faster than host... expressed inversely for the model
    node_true = np.round((host - offset) / (1.0 + drift) * 1e6).astype(np.int64)
    return node_true, node_true % period


@pytest.mark.parametrize("period", [1 << 32, 1 << 30])
def test_exchanges_with_usb_jitter(period: int) -> None:
    rng = np.random.default_rng(5)
    drift = 45e-6
    offset = 3.25
    t1 = 1000.0 + np.arange(0, 1500, 0.1)                   # 25 min of pings at 10 Hz: wraps 2^30
    lat_out = 0.0002 + rng.exponential(0.002, t1.size)       # USB latency, heavy tail
    lat_out[rng.random(t1.size) < 0.05] += 0.05               # and stalls
    lat_back = 0.0002 + rng.exponential(0.002, t1.size)
    t_node_host = t1 + lat_out
    node_true, node_raw = _node_clock(t_node_host, offset, drift, period)
    t2 = t_node_host + lat_back
    cs = ClockSync(period=period, window_s=2.0)               # fit over the last 120 windows
    for a, n, b in zip(t1, node_raw, t2):
        cs.exchange(float(a), int(n), float(b))
    m = cs.flush()
    assert abs(m.drift_ppm - 45) < 2
    est = m.to_host(Unwrapper(period).batch(node_raw))      # same unwrapping as the estimator
    recent = t1 > t1[-1] - 240                              # the span the model was fitted on
    err = np.abs(est - t_node_host)[recent]
    assert np.percentile(err, 99) < 300e-6                  # well below the 5 ms sample period
    assert m.residual_s < 300e-6


def test_one_way_lower_envelope() -> None:
    rng = np.random.default_rng(1)
    host_sample = 50.0 + np.arange(0, 120, 0.005)
    node_true, node_raw = _node_clock(host_sample, -7.0, -30e-6, 1 << 32)
    t_recv = host_sample + 0.001 + rng.exponential(0.003, host_sample.size)
    cs = ClockSync(window_s=1.0)
    for n, t in zip(node_raw, t_recv):
        cs.one_way(int(n), float(t))
    m = cs.flush()
    est = m.to_host(Unwrapper(1 << 32).batch(node_raw))
    assert abs(m.drift_ppm + 30) < 5
    # up to the minimum latency (1 ms, unobservable one-way), the mapping is tight
    e = est - host_sample
    assert abs(np.median(e) - 0.001) < 0.0005 and np.std(e) < 200e-6


def test_fit_clock_outliers() -> None:
    x = np.arange(0, 100_000_000, 1_000_000)
    y = 10 + x * 1e-6 * (1 + 20e-6)
    y[::7] += 0.02                                  # a few stalled exchanges
    m = fit_clock(x, y)
    assert abs(m.drift_ppm - 20) < 0.5


def test_align_marks_gaps_and_reports_error() -> None:
    rate = 200.0
    t = 10.0 + np.arange(400) / rate
    a_t = t + 0.0004                                   # node A 0.4 ms late
    a_v = np.arange(400, dtype=float)
    keep = np.ones(400, bool)
    keep[100:120] = False                              # node B lost 20 samples
    b_t = t[keep] - 0.001
    b_v = np.arange(400, dtype=float)[keep] * 10
    al = align({1: a_t, 2: b_t}, {1: a_v, 2: b_v}, rate, t0=10.0, clock_residual_s={1: 1e-5, 2: float("nan")})
    assert al.n == 400
    assert al.valid[1].all() and np.array_equal(al.values[1][:, 0], a_v)
    assert not al.valid[2][100:120].any() and np.isnan(al.values[2][100:120]).all()
    assert al.valid[2].sum() == 380
    assert al.error_s[1] == pytest.approx(0.0004 + 1e-5, rel=1e-3)
    assert al.error_s[2] == pytest.approx(0.001, rel=1e-3)
    # duplicates of a slot: the nearer one wins, the other is counted
    al2 = align({1: np.array([10.0, 10.001, 10.005])}, {1: np.array([1.0, 2.0, 3.0])}, rate, t0=10.0)
    assert al2.values[1][:, 0].tolist() == [1.0, 3.0] and al2.collisions[1] == 1
    with pytest.raises(ValueError):
        align({}, {}, 0)


def test_stream_aligner_emits_complete_and_overdue_slots() -> None:
    out = []
    sa = StreamAligner(100.0, 0.0, lambda k, t, vals: out.append((k, vals)), max_wait_s=0.015)
    for k in range(5):
        sa.add(1, k / 100 + 0.001, k)
        if k != 2:
            sa.add(2, k / 100 - 0.001, -k)
    sa.poll(0.041)  # node 1 and 2 both reached slot 4
    assert [k for k, _ in out] == [0, 1, 2, 3, 4]
    assert out[2][1] == {1: 2, 2: None}                # node 2's slot 2 is missing, not invented
    sa.add(1, 0.051, 5)
    assert sa.poll(0.052) == 0                         # waiting for node 2
    assert sa.poll(0.0651) == 1 and out[-1][1] == {1: 5, 2: None}   # overdue: emitted, marked


def test_theil_sen_matches_scipy() -> None:
    from scipy.stats import theilslopes

    from trackside.aggregator.clock import theil_sen

    rng = np.random.default_rng(3)
    x = np.sort(rng.uniform(0, 100, 50))
    y = 3 + 1.00002 * x + rng.exponential(0.001, 50)
    s, b = theil_sen(x, y)
    ref = theilslopes(y, x, method="joint")
    assert s == pytest.approx(ref[0], rel=1e-12) and b == pytest.approx(ref[1], rel=1e-12)


def test_stream_aligner_silent_node_stops_holding_back() -> None:
    out = []
    sa = StreamAligner(100.0, 0.0, lambda k, t, vals: out.append((k, vals)), max_wait_s=0.05, stale_s=0.2)
    sa.add(2, 0.0, "b0")                    # node 2 says one thing, then goes silent (unplugged)
    for k in range(40):
        sa.add(1, k / 100, k)
    assert sa.poll(0.30) >= 39                # node 2 is stale: node 1's slots go out at once
    assert out[0][1] == {1: 0, 2: "b0"} and out[5][1] == {1: 5, 2: None}
    sa.add(1, 0.01, 99)                       # too late for an emitted slot: counted, not used
    assert sa.late == 1
