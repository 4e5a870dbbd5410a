"""Plan problem: C objective vs numpy reference, hard limits, taper, impossible requests."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest

from trackside.plan import aco
from trackside.plan.athlete import load_athlete
from trackside.plan.problem import LAM_A, LAM_C, PlanError, PlanLimits, PlanProblem

EXAMPLE = Path(__file__).resolve().parents[2] / "host" / "trackside" / "plan" / "examples" / "athlete.json"
START = dt.date(2026, 11, 9)
needs_core = pytest.mark.skipif(not aco.core_available(), reason="C core not built")


@pytest.fixture(scope="module")
def athlete():
    return load_athlete(EXAMPLE)


@needs_core
@pytest.mark.parametrize("weeks, comp", [(8, None), (16, None), (6, dt.date(2026, 12, 17))])
def test_c_objective_matches_numpy_reference(athlete, weeks, comp):
    pb = PlanProblem(athlete, weeks=weeks, start=START, competition=comp)
    rng = np.random.default_rng(weeks)
    X = pb.initial_plans(rng, 40)
    sp = aco._Space(pb.variables)
    X = np.concatenate([X, aco._NumpyCore(sp, 0.1).decode(sp.random_codes(rng, 40))])
    f, v, G = pb.evaluate(X)
    fn, vn, Gn = pb.evaluate_numpy(X)
    assert G.shape == (80, pb.n_constraints)
    np.testing.assert_allclose(f, fn, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(G, Gn, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(v, vn, rtol=1e-10, atol=1e-12)
    assert (v[40:] > 0).mean() > 0.5  # random plans mostly break limits: the constraints bite
    assert pb.evaluate(X, with_g=False)[2] is None


def _check_plan(plan, athlete):
    pb, sm = plan.problem, plan.summary
    assert all(sm["limits_met"].values())
    lo, hi = athlete.hr_zone
    daily = np.zeros(pb.n_days)
    for s in plan.sessions:
        assert set(s) >= {"date", "category", "ability_area", "intensity_hrr", "target_hr_low", "target_hr_high",
                          "duration_min", "trimp"}
        assert lo - 1e-9 <= s["intensity_hrr"] <= hi + 1e-9
        assert athlete.karvonen(lo) - 1 <= s["target_hr_low"] <= s["target_hr_high"] <= athlete.karvonen(hi) + 1
        assert s["trimp"] <= pb.limits.max_daily_trimp + 0.05
        daily[(dt.date.fromisoformat(s["date"]) - pb.start).days] += s["trimp"]
    # recompute the limits independently of the C core / reference code
    lim = pb.limits
    weeks = [daily[7 * w: 7 * w + 7] for w in range(pb.n_weeks)]
    prev = pb.base_weekly
    for w, seg in enumerate(weeks):
        assert seg.sum() <= (1 + lim.ramp) * prev + 0.5
        prev = seg.sum()
        if seg.std(ddof=1) > 0:
            assert seg.mean() / seg.std(ddof=1) < lim.mono_max + 1e-3
    ac, ch = pb.acute0, pb.chronic0
    for t, x in enumerate(daily):
        ac, ch = LAM_A * x + (1 - LAM_A) * ac, LAM_C * x + (1 - LAM_C) * ch
        assert ac / ch <= lim.acwr_daily_hi + 1e-3
        if t % 7 == 6:
            assert ac / ch <= lim.acwr_hi + 1e-3
            if pb.week_low[t // 7]:
                assert ac / ch >= lim.acwr_lo - 1e-3
    json.dumps(plan.to_dict())
    return daily


@needs_core
def test_eight_week_plan_meets_every_limit_and_improves_on_template(athlete):
    pb = PlanProblem(athlete, weeks=8, start=START)
    plan = pb.solve(seed=1, max_time=1.0)
    _check_plan(plan, athlete)
    f_template = pb.evaluate(pb.template(1.0)[None, :])[0][0]
    assert -plan.result.fun >= -f_template
    assert plan.summary["predicted_performance"] == pytest.approx(-plan.result.fun, abs=1e-4)
    assert len(plan.sessions) == 8 * 4


@needs_core
def test_competition_plan_tapers(athlete):
    comp = START + dt.timedelta(days=60)
    pb = PlanProblem(athlete, weeks=9, start=START, competition=comp, sessions_per_week=5, rest_days="sun,wed")
    plan = pb.solve(seed=2, max_time=1.0)
    daily = _check_plan(plan, athlete)
    assert all(dt.date.fromisoformat(s["date"]) < comp for s in plan.sessions)
    ts = pb.taper_start
    assert daily[ts:].mean() <= pb.limits.taper_keep * daily[ts - 21: ts].mean() + 1e-6
    assert plan.summary["target_date"] == comp.isoformat()


def test_numpy_backend_solves_too(athlete):
    plan = PlanProblem(athlete, weeks=2, start=START).solve(seed=0, max_time=None, max_evals=400, backend="numpy")
    assert plan.result.backend == "numpy" and all(plan.summary["limits_met"].values())


@pytest.mark.parametrize("kw, match", [
    (dict(weeks=17), "weeks must be an integer from 1 to 16"),
    (dict(weeks=4, sessions_per_week=6, rest_days="sat,sun"), "sessions_per_week=6 conflicts with rest_days"),
    (dict(weeks=4, competition=dt.date(2027, 3, 1)), "beyond the 4-week horizon"),
    (dict(weeks=4, competition=START), "not after the plan start"),
    (dict(weeks=4, rest_days="funday"), "unknown weekday"),
    (dict(weeks=4, limits=PlanLimits(max_daily_trimp=15)), "max_daily_trimp=15 is below the lightest"),
    (dict(weeks=4, limits=PlanLimits(max_daily_trimp=60)), "acwr_lo=0.8 needs a weekly load"),
    (dict(weeks=4, limits=PlanLimits(acwr_lo=1.4, acwr_hi=1.3)), "acwr_lo"),
])
def test_impossible_requests_name_the_conflict(athlete, kw, match):
    with pytest.raises(PlanError, match=match):
        PlanProblem(athlete, start=START, **kw)


@needs_core
def test_infeasible_after_search_names_broken_limits(athlete):
    # a ramp of 0 with a chronic load well above the baseline: cannot be met; the error says which
    pb = PlanProblem(athlete, weeks=3, start=START, limits=PlanLimits(ramp=0.0, base_weekly_trimp=60.0))
    with pytest.raises(PlanError, match="acwr_lo"):
        pb.solve(seed=0, max_time=0.3)


@needs_core
def test_athlete_without_history_gets_a_plan():
    from trackside.plan.athlete import Athlete

    a = Athlete.from_dict({"name": "N", "sex": "M", "age": 30, "height_cm": 180, "hr_rest": 60,
                           "tests": [{"date": "2026-01-01", "test": "sit_and_reach", "value": -4}]})
    plan = PlanProblem(a, weeks=2, start=START).solve(seed=0, max_time=0.3)
    assert all(plan.summary["limits_met"].values())
    assert set(plan.summary["untested_areas"]) == {"speed", "jumping", "strength", "endurance"}
    assert "population defaults" in plan.summary["fitness_fatigue"]["source"]


@needs_core
@pytest.mark.parametrize("gap_weeks", [0, 3, 5, 8, 16])
def test_plan_after_a_training_gap_meets_every_limit(athlete, gap_weeks):
    # issue 5: the further the start from the last session, the lower the EWMA chronic load; the
    # starting templates must respect ramp/ACWR from that state and the solved plan every limit
    last = max(s["date"] for s in athlete.history)
    start = last + dt.timedelta(days=2 + 7 * gap_weeks)  # a Monday, as the CLI default
    pb = PlanProblem(athlete, weeks=8, start=start)
    for scale in (0.85, 0.95, 1.0, 1.05):
        assert pb.describe_violations(pb.template(scale)) == "none"
    plan = pb.solve(seed=0, max_time=1.0)
    daily = _check_plan(plan, athlete)
    if gap_weeks >= 3:  # re-entry: first week well below the load before the gap, then ramping
        before = athlete.daily_loads(last - dt.timedelta(days=27), last + dt.timedelta(days=1)).sum() / 4
        assert daily[:7].sum() < 0.5 * before
        assert daily[-7:].sum() > daily[:7].sum()
