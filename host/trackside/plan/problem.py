"""The training-plan problem: decision variables, objective, injury-risk limits, solving.

A plan covers ``weeks`` (1-16) from ``start`` (or up to a competition date, with a taper).
Sessions fall on fixed training days (``sessions_per_week`` spread over the days that are not
``rest_days``).  Each session has four decision variables:

* category (categorical) from :data:`trackside.plan.library.LIBRARY`;
* intensity, a heart-rate-reserve fraction inside the athlete's safe and effective interval
  (Karvonen target heart rate ``rest + x (max - rest)``), and inside the category's band;
* duration in minutes (ordinal, :data:`DURATIONS`);
* volume level 1-5 (ordinal; 3 = the category's standard number of sets/reps).

Session load is Banister TRIMP.  Predicted ability score of area ``a`` on the target day ``T``::

    s_a + room_a (1 - exp(-k1 Fit_a / room_a)) - k2 Fat  (+ decay of what the history built)
    Fit_a = sum_sessions TRIMP * transfer[cat, a] * sqrt(volume / 3) * exp(-(T - t) / tau1)
    Fat   = sum_sessions TRIMP * (volume / 3) * exp(-(T - t) / tau2)

with ``room_a = 1 - s_a`` (gains saturate as a score nears 1) and ``k1, k2, tau1, tau2`` the
athlete's fitness-fatigue model.  The objective is minus the weighted composite on ``T``, weights
``event emphasis * room`` normalised (weakest areas count most).

Hard limits (constraints <= 0): category heart-rate band; maximum daily TRIMP; recovery (the
day after a session above ``hard_trimp`` stays below ``easy_trimp``); weekly load ramp
``L_w <= (1 + ramp) L_{w-1}``; Foster monotony (mean / sd of daily loads) < ``mono_max`` each
week; EWMA acute:chronic workload ratio (Williams et al. 2017, lambda = 2/(N+1), N = 7 and 28)
in ``[acwr_lo, acwr_hi]`` at the end of each week (lower bound not in taper weeks) and below
``acwr_daily_hi`` every day; taper: mean daily load over the last ``taper_days`` before the
competition <= ``taper_keep`` x the mean of the 21 days before (Bosquet et al. 2007: cut volume
by 40-60 %).

``PlanProblem.evaluate`` runs the C core (``plan_eval`` in acocore.c);
``PlanProblem.evaluate_numpy`` is the reference implementation of the same computation.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from trackside.plan import aco
from trackside.plan.athlete import AREAS, EVENT_EMPHASIS, Athlete, FitnessFatigue
from trackside.plan.library import LIBRARY, Category

__all__ = ["PlanLimits", "PlanProblem", "PlanError", "DURATIONS", "VOLUMES", "WEEKDAYS", "make_plan"]

DURATIONS = (20, 30, 40, 50, 60, 75, 90, 105, 120)
VOLUMES = (1, 2, 3, 4, 5)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LAM_A, LAM_C = 2.0 / (7 + 1), 2.0 / (28 + 1)


class PlanError(ValueError):
    """A plan request that cannot be met (the message names the conflicting limits)."""


@dataclass
class PlanLimits:
    """Injury-risk limits; ``None`` fields are derived from the athlete's history."""

    max_daily_trimp: float = 200.0
    hard_fraction: float = 0.6       # hard session: TRIMP above this fraction of the daily maximum
    easy_fraction: float = 0.4       # the day after a hard one stays below this fraction
    ramp: float = 0.10               # weekly load may grow by at most 10 %
    acwr_lo: float = 0.8
    acwr_hi: float = 1.3
    acwr_daily_hi: float = 1.5
    mono_max: float = 2.0
    taper_days: int = 10
    taper_keep: float = 0.6          # taper load <= 60 % of the 21 days before
    base_weekly_trimp: float | None = None

    def check(self) -> None:
        if not self.max_daily_trimp > 0:
            raise PlanError(f"max_daily_trimp must be positive, got {self.max_daily_trimp}")
        if not 0 < self.easy_fraction <= self.hard_fraction <= 1:
            raise PlanError(f"need 0 < easy_fraction ({self.easy_fraction}) <= hard_fraction "
                            f"({self.hard_fraction}) <= 1")
        if not self.ramp >= 0:
            raise PlanError(f"ramp must be >= 0, got {self.ramp}")
        if not 0 < self.acwr_lo < self.acwr_hi <= self.acwr_daily_hi:
            raise PlanError(f"need 0 < acwr_lo ({self.acwr_lo}) < acwr_hi ({self.acwr_hi}) <= "
                            f"acwr_daily_hi ({self.acwr_daily_hi})")
        if not self.mono_max > 0:
            raise PlanError(f"mono_max must be positive, got {self.mono_max}")
        if not 0 < self.taper_keep <= 1:
            raise PlanError(f"taper_keep must be in (0, 1], got {self.taper_keep}")


def _parse_weekdays(days: Sequence[str] | str | None) -> list[int]:
    if days is None:
        return []
    if isinstance(days, str):
        days = [d for d in days.replace(" ", "").split(",") if d]
    out = []
    for d in days:
        key = str(d).strip().lower()[:3]
        if key not in WEEKDAYS:
            raise PlanError(f"unknown weekday {d!r}; use {', '.join(WEEKDAYS)}")
        out.append(WEEKDAYS.index(key))
    return sorted(set(out))


class PlanProblem:
    """One athlete's plan as a mixed-variable problem for :func:`trackside.plan.aco.minimize`."""

    def __init__(self, athlete: Athlete, *, weeks: int, start: _dt.date, sessions_per_week: int = 4,
                 rest_days: Sequence[str] | str | None = ("sun",), competition: _dt.date | None = None,
                 limits: PlanLimits | None = None, ff: FitnessFatigue | None = None) -> None:
        self.athlete = athlete
        self.limits = lim = limits or PlanLimits()
        lim.check()
        if not isinstance(weeks, int) or not 1 <= weeks <= 16:
            raise PlanError(f"weeks must be an integer from 1 to 16, got {weeks!r}")
        self.start = start
        self.weeks_requested = weeks
        horizon_end = start + _dt.timedelta(days=7 * weeks)
        self.competition = competition
        if competition is not None:
            if competition <= start:
                raise PlanError(f"competition date {competition} is not after the plan start {start}")
            if competition > horizon_end:
                raise PlanError(f"competition date {competition} is beyond the {weeks}-week horizon "
                                f"(ends {horizon_end}); use more --weeks")
            self.n_days = (competition - start).days
            if lim.taper_days >= self.n_days:
                raise PlanError(f"taper_days={lim.taper_days} does not fit before the competition "
                                f"({self.n_days} days after the start)")
        else:
            self.n_days = 7 * weeks
        self.target = start + _dt.timedelta(days=self.n_days)
        self.n_weeks = -(-self.n_days // 7)
        rest = _parse_weekdays(rest_days)
        avail = [d for d in range(7) if d not in rest]
        if not isinstance(sessions_per_week, int) or sessions_per_week < 1:
            raise PlanError(f"sessions_per_week must be a positive integer, got {sessions_per_week!r}")
        if sessions_per_week > len(avail):
            raise PlanError(f"sessions_per_week={sessions_per_week} conflicts with rest_days="
                            f"{[WEEKDAYS[d] for d in rest]}: only {len(avail)} training days a week")
        pos = np.round(np.linspace(0, len(avail) - 1, sessions_per_week)).astype(int) if sessions_per_week > 1 \
            else np.array([0])
        self.train_weekdays = sorted({avail[i] for i in pos})
        self.sessions_per_week = sessions_per_week
        self.rest_days = [WEEKDAYS[d] for d in rest]
        days = [t for t in range(self.n_days)
                if (start + _dt.timedelta(days=t)).weekday() in self.train_weekdays]
        if not days:
            raise PlanError("the horizon holds no training day")
        self.sess_day = np.array(days, dtype=np.int32)
        self.n_sess = len(days)

        # categories available to this athlete: band intersected with the safe interval
        zlo, zhi = athlete.hr_zone
        self.categories: list[Category] = []
        self.excluded: list[str] = []
        lo_b, hi_b = [], []
        for c in LIBRARY:
            lo, hi = max(c.band[0], zlo), min(c.band[1], zhi)
            if lo < hi:
                self.categories.append(c)
                lo_b.append(lo)
                hi_b.append(hi)
            else:
                self.excluded.append(c.name)
        if not self.categories:
            raise PlanError(f"no exercise category fits the athlete's heart-rate interval {athlete.hr_zone}")
        self.cat_lo, self.cat_hi = np.array(lo_b), np.array(hi_b)
        self.transfer = np.ascontiguousarray([c.transfer_vector() for c in self.categories], dtype=float)

        # ability areas and weights
        self.ff = ff or athlete.fitness_fatigue()
        scores = athlete.ability_scores(on=start)
        self.untested = [a for a, s in scores.items() if s is None]
        self.scores = np.array([0.5 if scores[a] is None else scores[a] for a in AREAS])
        self.room = np.clip(1.0 - self.scores, 0.02, 1.0)
        w = np.array(EVENT_EMPHASIS[athlete.event_group]) * self.room
        self.area_w = w / w.sum()

        self.trimp_a, self.trimp_b = (0.64, 1.92) if athlete.sex == "M" else (0.86, 1.67)
        # history: loads of the 42 days before the start
        hist = athlete.daily_loads(start - _dt.timedelta(days=42), start)
        self.history_loads = hist
        covered = [s["date"] for s in athlete.history if s["date"] < start]
        if lim.base_weekly_trimp is not None:
            base = float(lim.base_weekly_trimp)
        elif covered and (start - min(covered)).days >= 14:
            span = min(28, (start - min(covered)).days)
            base = float(hist[-span:].sum() / span * 7.0)
        else:
            base = sessions_per_week * 60.0
        if base <= 0:
            base = sessions_per_week * 60.0
        self.base_weekly = base
        ac = ch = base / 7.0
        if covered and (start - min(covered)).days >= 14:
            first = max(0, 42 - (start - min(covered)).days)
            ac = ch = float(hist[first:first + 7].mean()) if hist[first:first + 7].sum() > 0 else base / 7.0
            for x in hist[first:]:
                ac = LAM_A * x + (1 - LAM_A) * ac
                ch = LAM_C * x + (1 - LAM_C) * ch
            ch = max(ch, 1e-6)
        # after a long gap the EWMA chronic load decays towards zero and no session at all could
        # keep the ACWR below its limits; floor the EWMA state at the steady state of a week of the
        # lightest possible sessions (the re-entry level), and measure the weekly ramp from that level when
        # the last 28 days hold no training (the 28-day average is then no baseline)
        smallest = float(self.trimp(DURATIONS[0], self.cat_lo).min())
        fac = self._week_pattern(sessions_per_week)
        floor = smallest * float((fac / fac.min()).sum()) / 7.0
        # the weekly load to return to (templates ramp towards it): the 28 days up to the last session
        self.goal_weekly = base
        if covered:
            last = max(covered)
            pre = float(athlete.daily_loads(last - _dt.timedelta(days=27), last + _dt.timedelta(days=1)).sum()) / 4.0
            self.goal_weekly = max(base, pre)
        if covered and lim.base_weekly_trimp is None:
            # the ramp is measured from at least the lightest possible week (else it cannot hold)
            base = self.base_weekly = max(base if hist[-28:].sum() > 0 else 7.0 * ch, 7.0 * floor)
        if ch < floor:
            # detrained below the re-entry level: start from the steady state at that level (as for
            # an athlete without history); acute ~0 against it would break acwr_lo in any week the
            # ramp allows
            ac = ch = floor
        self.acute0, self.chronic0 = ac, ch

        # decays to the target day
        T = self.n_days
        self.dfit = np.exp(-(T - self.sess_day) / self.ff.tau1)
        self.dfat = np.exp(-(T - self.sess_day) / self.ff.tau2)
        hd = np.arange(-hist.size, 0)
        g_hist = float(np.sum(hist * np.exp(-(0 - hd) / self.ff.tau1)))
        h_hist = float(np.sum(hist * np.exp(-(0 - hd) / self.ff.tau2)))
        # k1 is the composite score's response to total load; an area responds to the load that
        # trains it, so a program spread evenly over the areas reproduces k1 for the composite
        self.k1_area = self.ff.k1 * len(AREAS)
        # what the history built decays: fitness lost, fatigue recovered (same for every area)
        self.hist_loss = (self.ff.k1 * g_hist * (1 - math.exp(-T / self.ff.tau1))
                          - self.ff.k2 * h_hist * (1 - math.exp(-T / self.ff.tau2)))
        self.f_const = -(float(self.area_w @ self.scores) - self.hist_loss)

        # taper and weekly ACWR lower bound
        if competition is not None:
            self.taper_start, self.taper_end = self.n_days - lim.taper_days, self.n_days
        else:
            self.taper_start, self.taper_end = -1, 0
        self.week_low = np.array([1 if (self.taper_start < 0 or 7 * w + 6 < self.taper_start) else 0
                                  for w in range(self.n_weeks)], dtype=np.int32)
        self.pre_taper_daily = float(hist[-21:].mean()) if hist.sum() > 0 else base / 7.0

        self.variables = []
        for _ in range(self.n_sess):
            self.variables += [aco.Categorical(range(len(self.categories))), aco.Real(0.0, 1.0),
                               aco.Ordinal(DURATIONS), aco.Ordinal(VOLUMES)]
        self.n_constraints = 4 * self.n_sess - 1 + 4 * self.n_weeks + self.n_days + 1
        self._precheck()
        self._c = None
        self._cache: tuple[Any, np.ndarray] | None = None

    # ---- feasibility of the request ---------------------------------------------------------
    def trimp(self, minutes, hrr):
        return np.asarray(minutes, float) * np.asarray(hrr, float) * self.trimp_a * np.exp(self.trimp_b * np.asarray(hrr, float))

    def _precheck(self) -> None:
        lim = self.limits
        smallest = float(self.trimp(DURATIONS[0], self.cat_lo).min())
        if smallest > lim.max_daily_trimp:
            raise PlanError(f"max_daily_trimp={lim.max_daily_trimp:g} is below the lightest possible session "
                            f"({DURATIONS[0]} min at {self.cat_lo.min():.2f} HRR = TRIMP {smallest:.0f})")
        easy = lim.easy_fraction * lim.max_daily_trimp
        if smallest > easy:
            raise PlanError(f"recovery limit easy_fraction*max_daily_trimp={easy:g} is below the lightest "
                            f"possible session (TRIMP {smallest:.0f})")
        heaviest = min(lim.max_daily_trimp, float(self.trimp(DURATIONS[-1], self.cat_hi).max()))
        most_week = heaviest * self.sessions_per_week
        need = lim.acwr_lo * self.chronic0 * 7.0
        if most_week < need:
            raise PlanError(
                f"acwr_lo={lim.acwr_lo:g} needs a weekly load of about {need:.0f} TRIMP (chronic load "
                f"{self.chronic0 * 7:.0f}/week from the history) but sessions_per_week={self.sessions_per_week} x "
                f"min(max_daily_trimp={lim.max_daily_trimp:g}, heaviest session) allows {most_week:.0f}")
        if self.sessions_per_week == 7 and lim.mono_max <= 1.0:
            raise PlanError(f"mono_max={lim.mono_max:g} with 7 sessions a week needs very uneven days")

    # ---- C parameters ------------------------------------------------------------------------
    def _cparams(self):
        if self._c is None:
            core = aco._load_core()
            ffi = core.ffi
            keep = []

            def d(a):
                a = np.ascontiguousarray(a, dtype=float)
                keep.append(a)
                return ffi.from_buffer("double[]", a)

            def i(a):
                a = np.ascontiguousarray(a, dtype=np.int32)
                keep.append(a)
                return ffi.from_buffer("int[]", a)

            p = ffi.new("plan_params *")
            lim = self.limits
            p.n_sess, p.n_days, p.n_weeks = self.n_sess, self.n_days, self.n_weeks
            p.n_cat, p.n_areas = len(self.categories), len(AREAS)
            p.sess_day = i(self.sess_day)
            p.cat_lo, p.cat_hi = d(self.cat_lo), d(self.cat_hi)
            p.transfer, p.area_w, p.area_room = d(self.transfer), d(self.area_w), d(self.room)
            p.dfit, p.dfat = d(self.dfit), d(self.dfat)
            p.week_low = i(self.week_low)
            p.trimp_a, p.trimp_b, p.k1, p.k2 = self.trimp_a, self.trimp_b, self.k1_area, self.ff.k2
            p.f_const = self.f_const
            p.max_daily = lim.max_daily_trimp
            p.hard_trimp = lim.hard_fraction * lim.max_daily_trimp
            p.easy_trimp = lim.easy_fraction * lim.max_daily_trimp
            p.base_weekly, p.ramp = self.base_weekly, lim.ramp
            p.acute0, p.chronic0, p.lam_a, p.lam_c = self.acute0, self.chronic0, LAM_A, LAM_C
            p.acwr_lo, p.acwr_hi, p.acwr_daily_hi, p.mono_max = lim.acwr_lo, lim.acwr_hi, lim.acwr_daily_hi, lim.mono_max
            p.taper_start, p.taper_end = self.taper_start, self.taper_end
            p.taper_keep, p.pre_taper_daily = lim.taper_keep, self.pre_taper_daily
            p.band_scale = 0.05
            self._c = (core, p, keep)
        return self._c

    def evaluate(self, X: np.ndarray, with_g: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """C core: objective ``f`` (n,), total violation (n,) and constraints (n, c) of plans ``X``."""
        core, p, _ = self._cparams()
        X = np.ascontiguousarray(X, dtype=float)
        n = X.shape[0]
        f, v = np.empty(n), np.empty(n)
        G = np.empty((n, self.n_constraints)) if with_g else None
        ffi = core.ffi
        rc = core.lib.plan_eval(p, n, ffi.from_buffer("double[]", X), ffi.from_buffer("double[]", f),
                                ffi.from_buffer("double[]", v),
                                ffi.from_buffer("double[]", G) if with_g else ffi.NULL)
        if rc != 0:
            raise PlanError("plan horizon too long for the C core")
        return f, v, G

    def evaluate_numpy(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reference implementation of :meth:`evaluate` (same operations, vectorised over plans)."""
        lim = self.limits
        X = np.asarray(X, dtype=float)
        n, S, D, W = X.shape[0], self.n_sess, self.n_days, self.n_weeks
        cat, hrr, dur, vol = self.decode_sessions(X)
        vol = vol / 3.0
        tr = dur * hrr * self.trimp_a * np.exp(self.trimp_b * hrr)
        load = np.zeros((n, D))
        np.add.at(load, (slice(None), self.sess_day), tr)
        fit = np.einsum("ns,nsa->na", tr * np.sqrt(vol) * self.dfit, self.transfer[cat])
        fat = (tr * vol * self.dfat).sum(axis=1)
        perf = (self.area_w * self.room * (1.0 - np.exp(-self.k1_area * fit / self.room))).sum(axis=1)
        f = -(perf - self.ff.k2 * fat) + self.f_const
        md, bw = lim.max_daily_trimp, self.base_weekly
        g = [(self.cat_lo[cat] - hrr) / 0.05, (hrr - self.cat_hi[cat]) / 0.05, (tr - md) / md]
        consec = self.sess_day[1:] == self.sess_day[:-1] + 1
        rec = np.minimum(tr[:, :-1] - lim.hard_fraction * md, tr[:, 1:] - lim.easy_fraction * md) / md
        g.append(np.where(consec, rec, -1.0))
        pad = np.zeros((n, 7 * W))
        pad[:, :D] = load
        week = pad.reshape(n, W, 7).sum(axis=2)
        prev = np.concatenate([np.full((n, 1), bw), week[:, :-1]], axis=1)
        g.append((week - (1.0 + lim.ramp) * prev) / bw)
        nd = np.array([min(7, D - 7 * w) for w in range(W)])
        mono = []
        for w in range(W):
            seg = load[:, 7 * w: 7 * w + nd[w]]
            mean = week[:, w] / nd[w]
            sd = np.sqrt(((seg - mean[:, None]) ** 2).sum(axis=1) / (nd[w] - 1)) if nd[w] > 1 else 0.0 * mean
            mono.append((mean - lim.mono_max * sd) / (bw / 7.0))
        g.append(np.column_stack(mono))
        ac = np.full(n, self.acute0)
        ch = np.full(n, self.chronic0)
        daily = np.empty((n, D))
        wk_hi, wk_lo = np.empty((n, W)), np.empty((n, W))
        for t in range(D):
            ac = LAM_A * load[:, t] + (1.0 - LAM_A) * ac
            ch = LAM_C * load[:, t] + (1.0 - LAM_C) * ch
            r = ac / ch
            daily[:, t] = r - lim.acwr_daily_hi
            if t % 7 == 6 or t == D - 1:
                wk_hi[:, t // 7] = r - lim.acwr_hi
                wk_lo[:, t // 7] = lim.acwr_lo - r if self.week_low[t // 7] else -1.0
        g += [wk_hi, wk_lo, daily]
        if self.taper_start >= 0:
            ts, te = self.taper_start, self.taper_end
            pre = sum(load[:, t] if t >= 0 else np.full(n, self.pre_taper_daily) for t in range(ts - 21, ts))
            tap = load[:, ts:te].sum(axis=1)
            g.append(((tap / (te - ts) - lim.taper_keep * pre / 21.0) / (bw / 7.0))[:, None])
        else:
            g.append(np.full((n, 1), -1.0))
        G = np.concatenate(g, axis=1)
        return f, np.maximum(G, 0.0).sum(axis=1), G

    def decode_sessions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Category index, HRR fraction, minutes and volume level of every session of plans X
        (the intensity variable is the position 0-1 inside the category's band)."""
        X = np.asarray(X, dtype=float)
        cat = X[..., 0::4].astype(int)
        lo, hi = self.cat_lo[cat], self.cat_hi[cat]
        return cat, lo + X[..., 1::4] * (hi - lo), X[..., 2::4], X[..., 3::4]

    # ---- solver interface -----------------------------------------------------------------
    def objective(self, X: np.ndarray) -> np.ndarray:
        """Objective for :func:`aco.minimize` (C core); caches the constraints of the same X."""
        f, _, G = self.evaluate(X)
        self._cache = (X, G)
        return f

    def constraints(self, X: np.ndarray) -> np.ndarray:
        """Constraint matrix for :func:`aco.minimize` (reuses the objective's evaluation)."""
        if self._cache is not None and self._cache[0] is X and self._cache[1].shape[1] == self.n_constraints:
            return self._cache[1]
        return self.evaluate(X)[2]

    def _fast_objective(self, X: np.ndarray) -> np.ndarray:
        # solver fast path: the C core sums the positive constraint parts itself; ranking on
        # that one column is the same as on the full matrix (ctol = 0)
        f, v, _ = self.evaluate(X, with_g=False)
        self._cache = (X, v[:, None])
        return f

    def _fast_constraints(self, X: np.ndarray) -> np.ndarray:
        if self._cache is not None and self._cache[0] is X:
            return self._cache[1]
        return self.evaluate(X, with_g=False)[1][:, None]

    @staticmethod
    def _week_pattern(n: int) -> np.ndarray:
        # relative session loads of a template week: 6-7 equal sessions break Foster monotony,
        # so alternate heavier and lighter days
        fac = np.ones(n)
        if n >= 6:
            fac[0::2], fac[1::2] = 1.35, 0.65
            fac /= fac.mean()
        return fac

    def _session_for(self, c: int, target: float) -> tuple[float, float]:
        """Duration and band position (0-1) of a session of category ``c`` whose TRIMP is about
        ``target`` (longest duration that can reach it at the band's low end, then intensity)."""
        lo, hi = float(self.cat_lo[c]), float(self.cat_hi[c])
        tr_lo = self.trimp(np.array(DURATIONS), lo)
        ok = np.flatnonzero(tr_lo <= target)
        dur = DURATIONS[int(ok[-1])] if ok.size else DURATIONS[0]
        a, b = 0.0, 1.0
        if float(self.trimp(dur, hi)) <= target:
            return dur, 1.0
        for _ in range(50):
            m = 0.5 * (a + b)
            if float(self.trimp(dur, lo + m * (hi - lo))) <= target:
                a = m
            else:
                b = m
        return dur, a

    def template(self, scale: float = 1.0) -> np.ndarray:
        """A conservative plan: weakest areas first, about the weekly load before the last
        recorded session (times ``scale``) spread evenly, volume 3; each week's load is kept within the ramp and the ACWR
        limits given the athlete's EWMA state at that date (after a gap: a re-entry progression
        from the detrained level); taper sessions cut to ``0.9 taper_keep`` of the load before."""
        lim = self.limits
        order = np.argsort(-self.area_w)
        cats = [next(i for i, c in enumerate(self.categories) if c.area == AREAS[a])
                for a in order if any(c.area == AREAS[a] for c in self.categories)]
        lightest = self.trimp(DURATIONS[0], self.cat_lo)  # per category
        cap = 0.95 * lim.hard_fraction * lim.max_daily_trimp  # no "hard" days: recovery holds
        ts = self.taper_start
        ac, ch, prev = self.acute0, self.chronic0, self.base_weekly
        loads = np.zeros(self.n_days)
        x = np.empty(4 * self.n_sess)

        def run(w, per, ac, ch):
            # week w with every session at ``per``: (ACWR upper limits kept, EWMA state after)
            ok = True
            for t in range(7 * w, min(7 * w + 7, self.n_days)):
                xl = per * on[t] if (t in on and (ts < 0 or t < ts)) else loads[t]
                ac, ch = LAM_A * xl + (1 - LAM_A) * ac, LAM_C * xl + (1 - LAM_C) * ch
                if ac / ch > 0.97 * lim.acwr_daily_hi:
                    ok = False
            return ok and ac / ch <= 0.97 * lim.acwr_hi, ac, ch

        k = 0
        for w in range(self.n_weeks):
            idx = np.flatnonzero(self.sess_day // 7 == w)
            # 6-7 equal sessions a week break Foster monotony: alternate heavier and lighter days
            fac = self._week_pattern(idx.size)
            on = {int(d): float(f) for d, f in zip(self.sess_day[idx], fac)}
            n = max(1, idx.size)
            hi_ = min(cap / (fac.max() if idx.size else 1.0), scale * self.goal_weekly / self.sessions_per_week, 0.99 * (1 + lim.ramp) * prev / n)
            if not run(w, hi_, ac, ch)[0]:  # largest per-session load under the ACWR limits
                lo_ = 0.0
                for _ in range(40):
                    mid = 0.5 * (lo_ + hi_)
                    lo_, hi_ = (mid, hi_) if run(w, mid, ac, ch)[0] else (lo_, mid)
                hi_ = lo_
            if idx.size:
                hi_ = max(hi_, float(lightest.min()) / fac.min())
            for s in idx:
                d = int(self.sess_day[s])
                target = hi_ * on[d]
                if ts >= 0 and d >= ts:
                    pre = sum(loads[t] if t >= 0 else self.pre_taper_daily for t in range(ts - 21, ts)) / 21.0
                    n_t = int((self.sess_day >= ts).sum())
                    target = min(target, 0.9 * lim.taper_keep * pre * (self.taper_end - ts) / n_t)
                # weakest areas first, skipping categories whose lightest session is too heavy
                fits = [c for c in cats if lightest[c] <= target]
                c = fits[k % len(fits)] if fits else int(np.argmin(lightest))
                k += 1
                dur, pos = self._session_for(c, target)
                x[4 * s: 4 * s + 4] = (c, pos, dur, 3)
                loads[d] = float(self.trimp(dur, self.cat_lo[c] + pos * (self.cat_hi[c] - self.cat_lo[c])))
            for t in range(7 * w, min(7 * w + 7, self.n_days)):
                ac, ch = LAM_A * loads[t] + (1 - LAM_A) * ac, LAM_C * loads[t] + (1 - LAM_C) * ch
            prev = float(loads[7 * w: 7 * w + 7].sum()) if idx.size else prev
        return x

    def initial_plans(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Rows for the first archive: templates at a few load scales, then variants of them in
        which each session is re-drawn with probability 0.25 (keeps the archive's spread, and so
        the sampling width, on the scale of sensible plans rather than of random ones)."""
        base = [self.template(s) for s in (0.85, 0.95, 1.0, 1.05)]
        rows = list(base)
        ncat = len(self.categories)
        zlo, zhi = self.athlete.hr_zone
        while len(rows) < n:
            x = base[len(rows) % len(base)].copy()
            for s in np.flatnonzero(rng.random(self.n_sess) < 0.25):
                c = int(rng.integers(ncat))
                x[4 * s] = c
                x[4 * s + 1] = rng.random()
                x[4 * s + 2] = DURATIONS[int(rng.integers(len(DURATIONS)))]
                x[4 * s + 3] = VOLUMES[int(rng.integers(len(VOLUMES)))]
            rows.append(x)
        return np.array(rows[:n])

    def solve(self, *, seed: int = 0, max_evals: int = 40000, max_time: float | None = 1.6,
              backend: str = "c", **kw) -> "Plan":
        """Optimise the plan; raises :class:`PlanError` if no plan meets every hard limit."""
        t0 = time.perf_counter()
        x0 = self.initial_plans(np.random.default_rng(seed), kw.get("archive_size", 30))
        if backend == "numpy":
            def obj(X):
                f, v, _ = self.evaluate_numpy(X)
                self._cache = (X, v[:, None])
                return f
        else:
            obj = self._fast_objective
        opts = dict(archive_size=30, n_ants=8, q=0.01, xi=0.3, restart_iters=10**9, restart_spread=0.0,
                    rotation=False)
        opts.update(kw)
        res = aco.minimize(obj, self.variables, self._fast_constraints, max_evals=max_evals, seed=seed, x0=x0,
                           max_time=max_time, backend="numpy" if backend == "numpy" else "c", **opts)
        elapsed = time.perf_counter() - t0
        if not res.feasible:
            raise PlanError("no plan meets every limit; the best one still breaks: "
                            + self.describe_violations(res.x))
        return Plan(self, res.x, res, elapsed)

    def describe_violations(self, x: np.ndarray) -> str:
        """Names of the limits a plan breaks, with the worst excess of each."""
        _, _, G = self.evaluate_numpy(np.asarray(x, float)[None, :])
        parts = self.constraint_groups()
        out = []
        for name, sl in parts.items():
            worst = float(G[0, sl].max())
            if worst > 0:
                out.append(f"{name} (by {worst:.3g})")
        return ", ".join(out) or "none"

    def constraint_groups(self) -> dict[str, slice]:
        """Constraint column ranges by limit name (order of acocore.c's plan_eval)."""
        S, W, D = self.n_sess, self.n_weeks, self.n_days
        names = [("heart-rate band (low)", S), ("heart-rate band (high)", S),
                 (f"max_daily_trimp={self.limits.max_daily_trimp:g}", S), ("recovery after hard days", S - 1),
                 (f"weekly ramp={self.limits.ramp:g}", W), (f"monotony<{self.limits.mono_max:g}", W),
                 (f"acwr_hi={self.limits.acwr_hi:g}", W), (f"acwr_lo={self.limits.acwr_lo:g}", W),
                 (f"acwr_daily_hi={self.limits.acwr_daily_hi:g}", D), (f"taper_keep={self.limits.taper_keep:g}", 1)]
        out, c = {}, 0
        for name, n in names:
            out[name] = slice(c, c + n)
            c += n
        return out

    # ---- reporting ---------------------------------------------------------------------------
    def daily_series(self, x: np.ndarray, history_days: int = 28) -> dict[str, np.ndarray]:
        """Daily load, fitness, fatigue, form (k1/k2-weighted Banister terms), acute, chronic, ACWR."""
        _, hrr, dur, _ = self.decode_sessions(np.asarray(x, float))
        tr = self.trimp(dur, hrr)
        plan = np.zeros(self.n_days + 1)
        np.add.at(plan, self.sess_day, tr)
        hist = self.history_loads[-history_days:] if history_days else self.history_loads[:0]
        loads = np.concatenate([self.history_loads, plan])
        fit = np.zeros(loads.size)
        fat = np.zeros(loads.size)
        e1, e2 = math.exp(-1 / self.ff.tau1), math.exp(-1 / self.ff.tau2)
        g = h = 0.0
        for t in range(loads.size):
            fit[t], fat[t] = self.ff.k1 * g, self.ff.k2 * h  # before the day's session
            g = g * e1 + loads[t] * e1
            h = h * e2 + loads[t] * e2
        ac, ch = self.acute0, self.chronic0
        acute, chronic = np.empty(plan.size), np.empty(plan.size)
        for t in range(plan.size):
            ac = LAM_A * plan[t] + (1 - LAM_A) * ac
            ch = LAM_C * plan[t] + (1 - LAM_C) * ch
            acute[t], chronic[t] = ac, ch
        off = self.history_loads.size - hist.size
        days = np.arange(-hist.size, plan.size)
        return {"day": days, "load": loads[off:], "fitness": fit[off:], "fatigue": fat[off:],
                "form": fit[off:] - fat[off:], "acute": acute, "chronic": chronic, "acwr": acute / chronic}


@dataclass
class Plan:
    """A solved plan: sessions, summary and exports."""

    problem: PlanProblem
    x: np.ndarray
    result: Any
    seconds: float
    sessions: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        pb, x = self.problem, np.asarray(self.x, float)
        ath = pb.athlete
        self.sessions = []
        cats, hrrs, durs, vols = pb.decode_sessions(x)
        for s in range(pb.n_sess):
            c, hrr, dur, vol = int(cats[s]), float(hrrs[s]), float(durs[s]), float(vols[s])
            cat = pb.categories[c]
            lo, hi = max(pb.cat_lo[c], hrr - 0.05), min(pb.cat_hi[c], hrr + 0.05)
            self.sessions.append({
                "date": (pb.start + _dt.timedelta(days=int(pb.sess_day[s]))).isoformat(),
                "category": cat.name,
                "ability_area": cat.area,
                "intensity_hrr": round(hrr, 3),
                "target_hr_low": int(round(float(ath.karvonen(lo)))),
                "target_hr_high": int(round(float(ath.karvonen(hi)))),
                "duration_min": int(dur),
                "volume": int(vol),
                "trimp": round(float(pb.trimp(dur, hrr)), 1),
            })
        f, viol, G = pb.evaluate_numpy(x[None, :])
        ser = pb.daily_series(x, history_days=0)
        plan_loads = ser["load"][: pb.n_days]
        weekly = [float(plan_loads[7 * w: 7 * w + 7].sum()) for w in range(pb.n_weeks)]
        mono = []
        for w in range(pb.n_weeks):
            seg = plan_loads[7 * w: 7 * w + 7]
            sd = float(seg.std(ddof=1)) if seg.size > 1 else 0.0
            mono.append(round(float(seg.mean()) / sd, 3) if sd > 0 else None)
        acwr = ser["acwr"][: pb.n_days]
        week_end = [float(acwr[min(7 * w + 6, pb.n_days - 1)]) for w in range(pb.n_weeks)]
        per_area = self._area_prediction()
        groups = pb.constraint_groups()
        self.summary = {
            "athlete": ath.name,
            "start": pb.start.isoformat(),
            "target_date": pb.target.isoformat(),
            "competition": pb.competition.isoformat() if pb.competition else None,
            "weeks": pb.n_weeks,
            "sessions_per_week": pb.sessions_per_week,
            "training_days": [WEEKDAYS[d] for d in pb.train_weekdays],
            "hr_interval_hrr": list(ath.hr_zone),
            "hr_interval_bpm": [int(round(float(ath.karvonen(z)))) for z in ath.hr_zone],
            "hr_max": round(ath.hr_max, 1),
            "hr_max_source": ath.hr_max_source,
            "weekly_loads": [round(v, 1) for v in weekly],
            "baseline_weekly_load": round(pb.base_weekly, 1),
            "acwr_week_end": [round(v, 3) for v in week_end],
            "acwr_max_daily": round(float(acwr.max()), 3),
            "monotony": mono,
            "max_session_trimp": round(max(s["trimp"] for s in self.sessions), 1),
            "ability_scores_now": {a: round(float(v), 3) for a, v in zip(AREAS, pb.scores)},
            "untested_areas": pb.untested,
            "area_weights": {a: round(float(v), 3) for a, v in zip(AREAS, pb.area_w)},
            "predicted_scores": per_area,
            "predicted_performance": round(float(-f[0]), 4),
            "current_performance": round(float(pb.area_w @ pb.scores), 4),
            "fitness_fatigue": pb.ff.as_dict(),
            "limits": {k: getattr(pb.limits, k) for k in pb.limits.__dataclass_fields__},
            "limits_met": {name: bool(G[0, sl].max() <= 0) for name, sl in groups.items()},
            "excluded_categories": pb.excluded,
            "solver": {"nfev": int(self.result.nfev), "restarts": int(self.result.restarts),
                       "backend": self.result.backend, "seconds": round(self.seconds, 3)},
        }

    def _area_prediction(self) -> dict[str, float]:
        pb, x = self.problem, np.asarray(self.x, float)
        cat, hrr, dur, vol = pb.decode_sessions(x)
        vol = vol / 3.0
        tr = pb.trimp(dur, hrr)
        fit = np.einsum("s,sa->a", tr * np.sqrt(vol) * pb.dfit, pb.transfer[cat])
        fat = float((tr * vol * pb.dfat).sum())
        pred = pb.scores + pb.room * (1 - np.exp(-pb.k1_area * fit / pb.room)) - pb.ff.k2 * fat - pb.hist_loss
        return {a: round(float(np.clip(v, 0, 1)), 4) for a, v in zip(AREAS, pred)}

    def to_dict(self) -> dict:
        return {"sessions": self.sessions, "summary": self.summary}


def make_plan(athlete: Athlete, *, weeks: int, start: _dt.date, seed: int = 0, **kw) -> Plan:
    """Build and solve a plan in one call (keywords go to :class:`PlanProblem`)."""
    solve_kw = {k: kw.pop(k) for k in ("max_evals", "max_time", "backend") if k in kw}
    return PlanProblem(athlete, weeks=weeks, start=start, **kw).solve(seed=seed, **solve_kw)
