"""Athlete model: validation, TRIMP, ability scores, fitness-fatigue fit."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm

from trackside.plan.athlete import (DEFAULT_FF, NORMS, Athlete, AthleteError, banister_trimp, fit_fitness_fatigue,
                                    load_athlete, session_rpe_load)

EXAMPLE = Path(__file__).resolve().parents[2] / "host" / "trackside" / "plan" / "examples" / "athlete.json"


def base(**kw):
    d = {"name": "A", "sex": "M", "age": 20, "height_cm": 180, "hr_rest": 50}
    d.update(kw)
    return d


def test_example_loads_and_tanaka_default():
    a = load_athlete(EXAMPLE)
    assert a.hr_max == pytest.approx(208 - 0.7 * 20) and "Tanaka" in a.hr_max_source
    assert a.karvonen(0.5) == pytest.approx(a.hr_rest + 0.5 * (a.hr_max - a.hr_rest))
    scores = a.ability_scores()
    assert set(scores) == {"speed", "jumping", "strength", "endurance", "flexibility"}
    assert all(0 < s < 1 for s in scores.values())


@pytest.mark.parametrize("patch, match", [
    ({"hr_rest": 100, "hr_max": 95}, "hr_rest=100 must be below hr_max=95"),
    ({"age": -3}, "age"),
    ({"sex": "X"}, "sex must be 'M' or 'F'"),
    ({"name": ""}, "name"),
    ({"height_cm": "tall"}, "height_cm must be a number"),
    ({"event_group": "swimming"}, "event_group"),
    ({"hr_zone": [0.9, 0.5]}, "hr_zone"),
    ({"tests": [{"date": "2026-01-01", "test": "marathon", "value": 1}]}, "unknown test"),
    ({"tests": [{"date": "01/02/2026", "test": "sprint_30m", "value": 4.4}]}, "YYYY-MM-DD"),
    ({"history": [{"date": "2026-01-01", "duration_min": 30}]}, "avg_hr' or 'rpe"),
])
def test_invalid_athletes_get_clear_errors(patch, match):
    with pytest.raises(AthleteError, match=match):
        Athlete.from_dict(base(**patch))


def test_bad_files(tmp_path):
    with pytest.raises(AthleteError, match="not found"):
        load_athlete(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(AthleteError, match="not valid JSON"):
        load_athlete(tmp_path / "x.json")


def test_trimp_and_srpe():
    assert banister_trimp(60, 0.5, "M") == pytest.approx(60 * 0.5 * 0.64 * math.exp(1.92 * 0.5))
    assert banister_trimp(60, 0.5, "F") == pytest.approx(60 * 0.5 * 0.86 * math.exp(1.67 * 0.5))
    assert session_rpe_load(45, 6) == 270
    # RPE-only sessions use the athlete's own TRIMP/sRPE ratio when sessions logged both
    hist = [{"date": f"2026-01-{d:02d}", "duration_min": 60, "avg_hr": 150, "rpe": 6} for d in range(1, 5)]
    hist.append({"date": "2026-01-06", "duration_min": 30, "rpe": 6})
    a = Athlete.from_dict(base(history=hist, hr_max=190))
    ratio, how = a.trimp_per_srpe()
    per = banister_trimp(60, (150 - 50) / 140, "M") / 360
    assert ratio == pytest.approx(per) and "4 sessions" in how
    assert a.session_trimp(a.history[-1]) == pytest.approx(per * 180)


def test_ability_score_against_norms():
    a = Athlete.from_dict(base())
    mean, sd = NORMS["sprint_30m"][2]["M"]
    assert a.test_score("sprint_30m", mean) == pytest.approx(0.5)
    assert a.test_score("sprint_30m", mean - sd) == pytest.approx(norm.cdf(1.0))  # faster is better
    assert a.test_score("shot_put", NORMS["shot_put"][2]["M"][0] + 2 * NORMS["shot_put"][2]["M"][1]) > 0.97


def _synthetic(k1, k2, tau1, tau2, p0, n_tests, seed=0):
    rng = np.random.default_rng(seed)
    start = dt.date(2026, 1, 1)
    days = 150
    loads = np.where(rng.random(days) < 0.6, rng.uniform(40, 160, days), 0.0)
    loads[60:75] *= 2.5  # a block of hard training, so the model is identifiable
    hr_rest, hr_max = 50.0, 190.0
    hist = []
    a0 = Athlete.from_dict(base(hr_max=hr_max))
    for t in range(days):
        if loads[t] > 0:
            # invert TRIMP for a 60-minute session: find the HRR fraction giving this load
            xs = np.linspace(0.05, 1.0, 20001)
            x = xs[np.argmin(abs(a0.trimp(60, xs) - loads[t]))]
            hist.append({"date": (start + dt.timedelta(days=t)).isoformat(), "duration_min": 60,
                         "avg_hr": float(hr_rest + x * (hr_max - hr_rest))})
    ath = Athlete.from_dict(base(hr_max=hr_max, history=hist))
    real = np.array([ath.session_trimp(s) for s in ath.history])
    w = np.zeros(days)
    for s, v in zip(ath.history, real):
        w[(s["date"] - start).days] += v
    tests = []
    mean, sd = NORMS["sit_and_reach"][2]["M"]
    for t in np.linspace(10, days - 1, n_tests).astype(int):
        g = sum(w[s] * math.exp(-(t - s) / tau1) for s in range(t))
        h = sum(w[s] * math.exp(-(t - s) / tau2) for s in range(t))
        p = p0 + k1 * g - k2 * h
        tests.append({"date": (start + dt.timedelta(days=int(t))).isoformat(), "test": "sit_and_reach",
                      "value": float(mean + sd * norm.ppf(p))})
    ath.tests = [ath._check_test(x, i) for i, x in enumerate(tests)]
    return ath


def test_fitness_fatigue_fit_recovers_known_parameters():
    ath = _synthetic(k1=1.5e-4, k2=4.0e-4, tau1=35.0, tau2=6.0, p0=0.2, n_tests=14)
    ff = fit_fitness_fatigue(ath)
    assert ff.source.startswith("fitted") and ff.rmse < 1e-3
    assert ff.tau1 == pytest.approx(35.0, rel=0.15) and ff.tau2 == pytest.approx(6.0, rel=0.2)
    assert ff.k1 == pytest.approx(1.5e-4, rel=0.2) and ff.k2 == pytest.approx(4.0e-4, rel=0.2)


def test_short_data_use_population_defaults():
    ath = _synthetic(k1=1.5e-4, k2=4.0e-4, tau1=35.0, tau2=6.0, p0=0.2, n_tests=3)
    ff = fit_fitness_fatigue(ath)
    assert "population defaults" in ff.source
    assert (ff.k1, ff.k2, ff.tau1, ff.tau2) == (DEFAULT_FF.k1, DEFAULT_FF.k2, DEFAULT_FF.tau1, DEFAULT_FF.tau2)
    json.dumps(ff.as_dict())
