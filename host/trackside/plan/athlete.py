"""Athlete model: profile, ability scores, training load (TRIMP, session RPE) and a fitted
fitness-fatigue model.

* Heart rate: ``hr_max`` from the athlete file, else Tanaka et al. (2001) ``208 - 0.7 age``;
  heart-rate reserve (HRR) fraction ``x = (HR - HR_rest) / (HR_max - HR_rest)`` (Karvonen).
* Banister TRIMP of a session: ``minutes * x * a * exp(b x)`` with ``a, b = 0.64, 1.92`` for men
  and ``0.86, 1.67`` for women (Banister 1991).
* Session-RPE load (Foster et al. 2001): ``RPE (CR-10) * minutes``.  Sessions logged with an RPE
  only are put on the TRIMP scale by the athlete's own TRIMP/sRPE ratio when the history has
  sessions with both, else by taking ``x = RPE / 10``.
* Ability areas (speed, jumping, strength, endurance, flexibility): each test result is scored
  0-1 as the normal CDF of its z-score against sex-specific norms (``NORMS``; illustrative
  college-athlete values, replaceable); an area's score is the mean over its latest tests.
* Fitness-fatigue (Banister impulse-response): ``p(t) = p0 + k1 sum w(s) e^{-(t-s)/tau1}
  - k2 sum w(s) e^{-(t-s)/tau2}`` fitted with ``scipy.optimize.least_squares`` (bounded) to the
  composite test score over time; population defaults when fewer than ``MIN_FIT_POINTS`` dated
  test sessions exist.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AREAS", "NORMS", "Athlete", "AthleteError", "FitnessFatigue", "load_athlete", "banister_trimp",
    "trimp_coefficients", "session_rpe_load", "fit_fitness_fatigue", "EVENT_EMPHASIS", "DEFAULT_FF",
]

AREAS = ("speed", "jumping", "strength", "endurance", "flexibility")

# test -> (area, lower_is_better, {sex: (mean, sd)}); units: seconds, centimetres, metres
NORMS: dict[str, tuple[str, bool, dict[str, tuple[float, float]]]] = {
    "sprint_30m": ("speed", True, {"M": (4.5, 0.25), "F": (5.2, 0.30)}),
    "sprint_100m": ("speed", True, {"M": (13.0, 0.8), "F": (15.0, 1.0)}),
    "run_800m": ("endurance", True, {"M": (180.0, 20.0), "F": (226.0, 30.0)}),
    "run_1000m": ("endurance", True, {"M": (244.0, 30.0), "F": (300.0, 35.0)}),
    "standing_long_jump": ("jumping", False, {"M": (230.0, 20.0), "F": (175.0, 18.0)}),
    "vertical_jump": ("jumping", False, {"M": (50.0, 8.0), "F": (38.0, 6.0)}),
    "shot_put": ("strength", False, {"M": (9.5, 1.5), "F": (7.5, 1.2)}),
    "sit_and_reach": ("flexibility", False, {"M": (12.0, 7.0), "F": (16.0, 6.0)}),
}

# how much each ability area counts for an event group (rows sum to 1)
EVENT_EMPHASIS: dict[str, tuple[float, ...]] = {
    "sprints": (0.35, 0.20, 0.20, 0.10, 0.15),
    "hurdles": (0.30, 0.20, 0.15, 0.10, 0.25),
    "middle_distance": (0.15, 0.10, 0.15, 0.45, 0.15),
    "distance": (0.05, 0.05, 0.15, 0.60, 0.15),
    "jumps": (0.25, 0.35, 0.20, 0.05, 0.15),
    "throws": (0.15, 0.20, 0.45, 0.05, 0.15),
    "combined": (0.20, 0.20, 0.20, 0.20, 0.20),
}

MIN_FIT_POINTS = 6


class AthleteError(ValueError):
    """Invalid athlete data (the message names the field)."""


@dataclass
class FitnessFatigue:
    """Banister impulse-response parameters (performance in composite-score units per TRIMP)."""

    k1: float
    k2: float
    tau1: float
    tau2: float
    p0: float = 0.5
    source: str = "population defaults"
    n_points: int = 0
    rmse: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"k1": self.k1, "k2": self.k2, "tau1": self.tau1, "tau2": self.tau2, "p0": self.p0,
                "source": self.source, "n_points": self.n_points, "rmse": self.rmse}


# population defaults: tau1 = 42 d, tau2 = 7 d (Banister 1991; Busso 2003 report similar), k2/k1 = 2
DEFAULT_FF = FitnessFatigue(k1=1.0e-4, k2=2.0e-4, tau1=42.0, tau2=7.0)


def trimp_coefficients(sex: str) -> tuple[float, float]:
    """Banister's weighting ``(a, b)``: 0.64 e^(1.92 x) for men, 0.86 e^(1.67 x) for women."""
    if sex == "M":
        return 0.64, 1.92
    if sex == "F":
        return 0.86, 1.67
    raise AthleteError(f"sex must be 'M' or 'F', got {sex!r}")


def banister_trimp(minutes, hrr, sex: str):
    """Banister TRIMP for ``minutes`` at heart-rate-reserve fraction ``hrr`` (arrays broadcast)."""
    a, b = trimp_coefficients(sex)
    hrr = np.asarray(hrr, dtype=float)
    return np.asarray(minutes, dtype=float) * hrr * a * np.exp(b * hrr)


def session_rpe_load(minutes, rpe):
    """Foster's session-RPE load: ``RPE (CR-10) * minutes`` (arbitrary units)."""
    return np.asarray(minutes, dtype=float) * np.asarray(rpe, dtype=float)


def _date(value: Any, where: str) -> _dt.date:
    try:
        return _dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise AthleteError(f"{where}: date must be YYYY-MM-DD, got {value!r}") from None


def _num(d: dict, key: str, where: str, *, required: bool = True, lo: float | None = None,
         hi: float | None = None) -> float | None:
    if key not in d or d[key] is None:
        if required:
            raise AthleteError(f"{where}: missing {key!r}")
        return None
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise AthleteError(f"{where}: {key} must be a number, got {v!r}")
    if lo is not None and v < lo:
        raise AthleteError(f"{where}: {key}={v} is below {lo}")
    if hi is not None and v > hi:
        raise AthleteError(f"{where}: {key}={v} is above {hi}")
    return float(v)


@dataclass
class Athlete:
    """A validated athlete profile with derived heart-rate and load quantities."""

    name: str
    sex: str
    age: float
    height_cm: float
    hr_rest: float
    hr_max: float
    event_group: str = "combined"
    hr_zone: tuple[float, float] = (0.5, 0.85)
    weight_kg: float | None = None
    tests: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    hr_max_source: str = "file"

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Any) -> "Athlete":
        """Validate a parsed athlete JSON object; raises :class:`AthleteError`."""
        if not isinstance(d, dict):
            raise AthleteError("athlete file must hold a JSON object")
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            raise AthleteError("athlete: 'name' must be a non-empty string")
        sex = d.get("sex")
        if sex not in ("M", "F"):
            raise AthleteError(f"athlete: sex must be 'M' or 'F', got {sex!r}")
        age = _num(d, "age", "athlete", lo=0.0)
        if age <= 0 or age > 100:
            raise AthleteError(f"athlete: age must be in (0, 100], got {age}")
        height = _num(d, "height_cm", "athlete", lo=50.0, hi=260.0)
        hr_rest = _num(d, "hr_rest", "athlete", lo=25.0, hi=120.0)
        hr_max = _num(d, "hr_max", "athlete", required=False, lo=80.0, hi=240.0)
        src = "file"
        if hr_max is None:
            hr_max, src = 208.0 - 0.7 * age, "Tanaka 208 - 0.7 age"
        if hr_rest >= hr_max:
            raise AthleteError(f"athlete: hr_rest={hr_rest:g} must be below hr_max={hr_max:g}")
        group = d.get("event_group", "combined")
        if group not in EVENT_EMPHASIS:
            raise AthleteError(f"athlete: event_group must be one of {sorted(EVENT_EMPHASIS)}, got {group!r}")
        zone = d.get("hr_zone", [0.5, 0.85])
        if (not isinstance(zone, (list, tuple)) or len(zone) != 2
                or not all(isinstance(z, (int, float)) and not isinstance(z, bool) for z in zone)
                or not 0.0 <= zone[0] < zone[1] <= 1.0):
            raise AthleteError(f"athlete: hr_zone must be [low, high] HRR fractions with 0 <= low < high <= 1, "
                               f"got {zone!r}")
        weight = _num(d, "weight_kg", "athlete", required=False, lo=20.0, hi=250.0)
        tests = d.get("tests", []) or []
        history = d.get("history", []) or []
        if not isinstance(tests, list) or not isinstance(history, list):
            raise AthleteError("athlete: 'tests' and 'history' must be lists")
        ath = cls(name=name, sex=sex, age=age, height_cm=height, hr_rest=hr_rest, hr_max=hr_max,
                  event_group=group, hr_zone=(float(zone[0]), float(zone[1])), weight_kg=weight,
                  hr_max_source=src)
        ath.tests = [ath._check_test(t, i) for i, t in enumerate(tests)]
        ath.history = [ath._check_session(s, i) for i, s in enumerate(history)]
        return ath

    def _check_test(self, t: Any, i: int) -> dict:
        where = f"tests[{i}]"
        if not isinstance(t, dict):
            raise AthleteError(f"{where}: must be an object")
        test = t.get("test")
        if test not in NORMS:
            raise AthleteError(f"{where}: unknown test {test!r}; known: {', '.join(sorted(NORMS))}")
        value = _num(t, "value", where)
        if value <= 0 and test != "sit_and_reach":  # sit-and-reach may be negative (short of the toes)
            raise AthleteError(f"{where}: {test} must be positive, got {value}")
        return {"date": _date(t.get("date"), where), "test": test, "value": value}

    def _check_session(self, s: Any, i: int) -> dict:
        where = f"history[{i}]"
        if not isinstance(s, dict):
            raise AthleteError(f"{where}: must be an object")
        dur = _num(s, "duration_min", where, lo=0.0, hi=600.0)
        hr = _num(s, "avg_hr", where, required=False, lo=20.0, hi=250.0)
        rpe = _num(s, "rpe", where, required=False, lo=0.0, hi=10.0)
        if hr is None and rpe is None:
            raise AthleteError(f"{where}: needs 'avg_hr' or 'rpe'")
        return {"date": _date(s.get("date"), where), "duration_min": dur, "avg_hr": hr, "rpe": rpe}

    # ---- heart rate and load ---------------------------------------------------------------
    @property
    def hrr(self) -> float:
        """Heart-rate reserve in beats per minute."""
        return self.hr_max - self.hr_rest

    def karvonen(self, fraction):
        """Target heart rate at an HRR ``fraction`` (Karvonen): ``rest + fraction * (max - rest)``."""
        return self.hr_rest + np.asarray(fraction, dtype=float) * self.hrr

    def hrr_fraction(self, hr):
        """HRR fraction of a heart rate, clipped to [0, 1]."""
        return np.clip((np.asarray(hr, dtype=float) - self.hr_rest) / self.hrr, 0.0, 1.0)

    def trimp(self, minutes, hrr):
        """Banister TRIMP with this athlete's sex-specific coefficients."""
        return banister_trimp(minutes, hrr, self.sex)

    def trimp_per_srpe(self) -> tuple[float, str]:
        """TRIMP units per sRPE unit, from sessions that logged both; else via HRR = RPE/10."""
        both = [s for s in self.history if s["avg_hr"] is not None and s["rpe"] is not None and s["rpe"] > 0]
        if len(both) >= 3:
            t = np.array([float(self.trimp(s["duration_min"], self.hrr_fraction(s["avg_hr"]))) for s in both])
            r = np.array([float(session_rpe_load(s["duration_min"], s["rpe"])) for s in both])
            return float(t @ r / (r @ r)), f"fitted on {len(both)} sessions"
        return math.nan, "HRR = RPE / 10"

    def session_trimp(self, s: dict) -> float:
        """Load of a history session in TRIMP units (see the module docstring)."""
        if s["avg_hr"] is not None:
            return float(self.trimp(s["duration_min"], self.hrr_fraction(s["avg_hr"])))
        ratio, _ = self.trimp_per_srpe()
        if math.isfinite(ratio):
            return float(ratio * session_rpe_load(s["duration_min"], s["rpe"]))
        return float(self.trimp(s["duration_min"], min(1.0, s["rpe"] / 10.0)))

    def daily_loads(self, start: _dt.date, end: _dt.date) -> np.ndarray:
        """History loads (TRIMP) per day for days ``start <= day < end``."""
        n = max(0, (end - start).days)
        out = np.zeros(n)
        for s in self.history:
            i = (s["date"] - start).days
            if 0 <= i < n:
                out[i] += self.session_trimp(s)
        return out

    # ---- abilities --------------------------------------------------------------------------
    def test_score(self, test: str, value: float) -> float:
        """0-1 score of a test result: normal CDF of its z-score against ``NORMS``."""
        area, lower_better, norms = NORMS[test]
        mean, sd = norms[self.sex]
        z = (value - mean) / sd
        if lower_better:
            z = -z
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))

    def ability_scores(self, on: _dt.date | None = None) -> dict[str, float | None]:
        """Area -> score (mean over the latest result of each test up to ``on``); None if untested."""
        latest: dict[str, dict] = {}
        for t in sorted(self.tests, key=lambda t: t["date"]):
            if on is None or t["date"] <= on:
                latest[t["test"]] = t
        scores: dict[str, list[float]] = {a: [] for a in AREAS}
        for t in latest.values():
            scores[NORMS[t["test"]][0]].append(self.test_score(t["test"], t["value"]))
        return {a: (float(np.mean(v)) if v else None) for a, v in scores.items()}

    def composite_series(self) -> list[tuple[_dt.date, float]]:
        """(date, mean score of the tests taken that day) for every test date."""
        by_day: dict[_dt.date, list[float]] = {}
        for t in self.tests:
            by_day.setdefault(t["date"], []).append(self.test_score(t["test"], t["value"]))
        return [(d, float(np.mean(v))) for d, v in sorted(by_day.items())]

    def fitness_fatigue(self) -> FitnessFatigue:
        """Fitness-fatigue parameters fitted to this athlete (defaults when data are short)."""
        return fit_fitness_fatigue(self)


def load_athlete(path: str | Path) -> Athlete:
    """Read and validate an athlete JSON file (raises :class:`AthleteError`)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise AthleteError(f"athlete file not found: {p}") from None
    except json.JSONDecodeError as exc:
        raise AthleteError(f"athlete file {p} is not valid JSON: {exc}") from None
    return Athlete.from_dict(data)


def _impulse(loads: np.ndarray, tau: float, at: np.ndarray) -> np.ndarray:
    """sum_{s < t} w(s) e^{-(t - s)/tau} for each day index t in ``at``."""
    out = np.zeros(at.size)
    days = np.arange(loads.size)
    for i, t in enumerate(at):
        m = days < t
        out[i] = np.sum(loads[m] * np.exp(-(t - days[m]) / tau))
    return out


def fit_fitness_fatigue(athlete: Athlete, defaults: FitnessFatigue = DEFAULT_FF) -> FitnessFatigue:
    """Fit (p0, k1, k2, tau1, tau2) to the athlete's composite test scores and history loads.

    Bounded least squares (scipy ``least_squares``, trust-region reflective) with
    ``tau1 in [15, 60]``, ``tau2 in [2, 15]``, ``k1, k2 >= 0``; fewer than ``MIN_FIT_POINTS`` test
    dates (or no history load) keeps the population defaults, with ``p0`` the mean score.
    """
    from scipy.optimize import least_squares

    series = athlete.composite_series()
    if not series:
        return FitnessFatigue(defaults.k1, defaults.k2, defaults.tau1, defaults.tau2, 0.5,
                              "population defaults (no tests)", 0)
    dates = [d for d, _ in series]
    y = np.array([v for _, v in series])
    hist_dates = [s["date"] for s in athlete.history]
    if len(series) < MIN_FIT_POINTS or not hist_dates:
        return FitnessFatigue(defaults.k1, defaults.k2, defaults.tau1, defaults.tau2, float(y.mean()),
                              f"population defaults ({len(series)} test dates < {MIN_FIT_POINTS})", len(series))
    start = min(min(hist_dates), min(dates))
    end = max(max(hist_dates), max(dates)) + _dt.timedelta(days=1)
    loads = athlete.daily_loads(start, end)
    if loads.sum() <= 0:
        return FitnessFatigue(defaults.k1, defaults.k2, defaults.tau1, defaults.tau2, float(y.mean()),
                              "population defaults (no training load)", len(series))
    at = np.array([(d - start).days for d in dates])

    def resid(p):
        p0, k1, k2, t1, t2 = p
        return p0 + k1 * _impulse(loads, t1, at) - k2 * _impulse(loads, t2, at) - y

    x0 = [float(y.mean()), defaults.k1, defaults.k2, defaults.tau1, defaults.tau2]
    lo = [-1.0, 0.0, 0.0, 15.0, 2.0]
    hi = [2.0, 0.01, 0.02, 60.0, 15.0]
    sol = least_squares(resid, x0, bounds=(lo, hi), x_scale=[0.1, 1e-4, 1e-4, 10.0, 2.0])
    p0, k1, k2, t1, t2 = (float(v) for v in sol.x)
    rmse = float(np.sqrt(np.mean(sol.fun**2)))
    return FitnessFatigue(k1, k2, t1, t2, p0, f"fitted on {len(series)} test dates", len(series), rmse)
