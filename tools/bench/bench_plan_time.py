#!/usr/bin/env python3
"""Time to plan 8 and 16 weeks (athlete loading, problem set-up, optimisation, summary), whether
every hard limit holds, and the predicted performance against the starting template.

    python tools/bench/bench_plan_time.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

from trackside.plan.athlete import load_athlete
from trackside.plan.problem import PlanProblem

EX = Path(__file__).resolve().parents[2] / "host" / "trackside" / "plan" / "examples" / "athlete.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; optimiser budget 1.6 s (default)")
    print(f"{'weeks':>5}{'comp':>6}{'seed':>5}{'total s':>9}{'evals':>8}{'limits ok':>10}{'template':>10}{'plan':>8}")
    for weeks, comp in ((8, None), (16, None), (16, dt.date(2027, 2, 26))):
        for seed in range(a.seeds):
            t0 = time.perf_counter()
            ath = load_athlete(EX)
            pb = PlanProblem(ath, weeks=weeks, start=dt.date(2026, 11, 9), competition=comp)
            plan = pb.solve(seed=seed)
            total = time.perf_counter() - t0
            tmpl = -pb.evaluate(pb.template(1.0)[None, :])[0][0]
            sm = plan.summary
            print(f"{weeks:>5}{'yes' if comp else 'no':>6}{seed:>5}{total:>9.2f}{sm['solver']['nfev']:>8}"
                  f"{str(all(sm['limits_met'].values())):>10}{tmpl:>10.4f}{sm['predicted_performance']:>8.4f}")
    # quality against time budget (16 weeks)
    print("16 weeks, predicted performance vs optimiser budget (seed 0):")
    for budget in (0.4, 1.6, 6.0):
        pb = PlanProblem(load_athlete(EX), weeks=16, start=dt.date(2026, 11, 9))
        plan = pb.solve(seed=0, max_time=budget, max_evals=10**7)
        print(f"  {budget:>4.1f} s: {plan.summary['predicted_performance']:.4f} ({plan.summary['solver']['nfev']} evals)")


if __name__ == "__main__":
    main()
