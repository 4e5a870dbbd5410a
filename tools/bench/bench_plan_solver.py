#!/usr/bin/env python3
"""Solver quality: ACO_MV (trackside.plan.aco) vs scipy differential_evolution with integrality.

For each problem and seed: success = feasible and within 1e-4 (relative) of the best known value,
with at most 10,000 evaluations.  ACO_MV's evaluations are those used until the first success
(from its history); DE's are its nfev.  Pressure vessel and coil spring were used to tune the
solver defaults; gear train, speed reducer and the categorical material beam were not.

    python tools/bench/bench_plan_solver.py [--seeds 20] [--first-seed 0] [--problems a,b] [--no-de]
        [--jobs 2] [--probe-evals N]   (0: ACO_MV without the local probe)
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import Pool

import numpy as np
from scipy.optimize import NonlinearConstraint, differential_evolution

from trackside.plan import testproblems as tp
from trackside.plan.aco import Real, minimize

BUDGET = 10_000


def aco_run(args):
    name, seed, probe_evals = args
    p = tp.PROBLEMS[name]()
    t = time.perf_counter()
    kw = {} if probe_evals is None else {"probe_evals": probe_evals}
    r = minimize(p.objective, p.variables, p.constraints, max_evals=BUDGET, seed=seed, ctol=p.ctol, **kw)
    dt = time.perf_counter() - t
    hit = next((n for n, f, v in r.history if v <= 0 and tp.is_success(p, f, True)), None)
    return name, seed, hit is not None, hit or BUDGET, r.fun, dt


def de_run(args):
    name, seed = args
    p = tp.PROBLEMS[name]()
    # DE searches indices for discrete variables (integrality) and decodes them to values
    bounds, integral, tables = [], [], []
    for v in p.variables:
        if isinstance(v, Real):
            bounds.append((v.lo, v.hi)), integral.append(False), tables.append(None)
        else:
            bounds.append((0, v.values.size - 1)), integral.append(True), tables.append(v.values)

    def decode(x):
        x = np.array(x, dtype=float)
        for j, tab in enumerate(tables):
            if tab is not None:
                x[j] = tab[int(round(min(max(x[j], 0), tab.size - 1)))]
        return x[None, :]

    n_eval = [0]

    def f(x):
        n_eval[0] += 1
        return float(p.objective(decode(x))[0])

    cons = ()
    if p.constraints is not None:
        cons = (NonlinearConstraint(lambda x: p.constraints(decode(x))[0], -np.inf, p.ctol),)
    d = len(bounds)
    popsize = 15
    maxiter = BUDGET // (popsize * d) - 1
    t = time.perf_counter()
    r = differential_evolution(f, bounds, integrality=integral, constraints=cons, seed=seed, popsize=popsize,
                               maxiter=maxiter, polish=False, tol=0, atol=0)
    dt = time.perf_counter() - t
    X = decode(r.x)
    feas = p.constraints is None or bool(p.constraints(X).max() <= p.ctol)
    fun = float(p.objective(X)[0])
    return name, seed, tp.is_success(p, fun, feas), int(r.nfev), fun, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--probe-evals", type=int, default=None, help="minimize's probe_evals (default: its default)")
    ap.add_argument("--problems", default=",".join(tp.PROBLEMS))
    ap.add_argument("--no-de", action="store_true")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    a = ap.parse_args()
    names = a.problems.split(",")
    seeds = range(a.first_seed, a.first_seed + a.seeds)
    jobs = [(n, s) for n in names for s in seeds]
    print(f"budget {BUDGET} evaluations, seeds {a.first_seed}-{a.first_seed + a.seeds - 1}, success = feasible and within 1e-4 relative; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with Pool(a.jobs) as pool:
        aco_res = pool.map(aco_run, [(n, s, a.probe_evals) for n, s in jobs])
        de_res = [] if a.no_de else pool.map(de_run, jobs)
    print(f"{'problem':<17}{'tuned':>6} | {'ACO_MV ok':>9}{'evals mean':>11}{'median':>8}{'max':>7}{'worst f':>14}"
          f"{'s/run':>7} | {'DE ok':>6}{'nfev':>7}{'worst f':>14}")
    for n in names:
        p = tp.PROBLEMS[n]()
        ar = [r for r in aco_res if r[0] == n]
        ok = [r[3] for r in ar if r[2]]
        line = (f"{n:<17}{'yes' if p.tuned_on else 'no':>6} | {sum(r[2] for r in ar):>4}/{len(ar):<4}"
                f"{(np.mean(ok) if ok else float('nan')):>11.0f}{(np.median(ok) if ok else float('nan')):>8.0f}"
                f"{(max(ok) if ok else 0):>7}{max(r[4] for r in ar):>14.7g}{np.mean([r[5] for r in ar]):>7.2f}")
        if de_res:
            dr = [r for r in de_res if r[0] == n]
            line += (f" | {sum(r[2] for r in dr):>2}/{len(dr):<3}{np.mean([r[3] for r in dr]):>7.0f}"
                     f"{max(r[4] for r in dr):>14.7g}")
        print(line + f"   (best known {p.f_best:.7g})")


if __name__ == "__main__":
    main()
