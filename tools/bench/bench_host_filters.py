#!/usr/bin/env python3
"""Benchmark the host-side orientation filters on the BROAD trials beside the repo.

For every trial in ``../shared/data/broad/``: BROAD RMSE (total / heading / inclination, degrees,
over the trial's movement samples) of

* ``host``     - online error-state EKF (trackside.fusion.host)
* ``offline``  - RTS smoother over that EKF, heading from the smoother only around magnetic
                 disturbances (trackside.fusion.offline, the registered ``offline`` filter)
* ``rts``      - the plain RTS smoother (smoothed heading everywhere), for comparison
* ``vqf``      - VQF 9D online (PyPI vqf), the reference the host filter must not lose to
* ``vqf-off``  - offline VQF (vqf.offlineVQF)

all in the same run, with means and run times. Data: BROAD (Laidig, Caruso, Cereatti, Seel,
Data 2021, CC-BY-4.0).

    python3 tools/bench/bench_host_filters.py [--shared ../shared] [--trials 01,28] [--jobs 2]
        [--blend-s 10]

``--leave-out`` prints the means over every subset that leaves two trials out, to show the
figures do not hinge on one trial. Exit code 0; 2 if the data is missing.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"host": 3.34, "offline": 2.0}  # issue 4: mean total RMSE limits (degrees)
METHODS = ("host", "offline", "rts", "vqf", "vqf-off")


def _run_trial(path: str, blend_s: float = -1.0) -> dict:
    from vqf import VQF, offlineVQF

    from trackside.fusion import host, offline
    from trackside.fusion.metrics import broad_rmse, load_recording

    rec = load_recording(path)
    out: dict = {"name": rec.name, "n": len(rec.gyr)}

    t = time.perf_counter()
    ekf = host.HostEKF(rec.fs)
    q_host, trace = ekf.run(rec.gyr, rec.acc, rec.mag, store=True)
    t_host = time.perf_counter() - t
    t = time.perf_counter()
    q_rts = offline.rts_smooth(q_host, trace)
    t_rts = time.perf_counter() - t + t_host  # the smoother needs the forward pass
    t = time.perf_counter()
    q_off = offline.blend_heading(q_host, q_rts, offline.disturbed_samples(trace, len(q_host)),
                                  rec.fs, offline.HEADING_BLEND_S if blend_s < 0 else blend_s)
    t_off = time.perf_counter() - t + t_rts

    g = np.ascontiguousarray(rec.gyr)
    a = np.ascontiguousarray(rec.acc)
    m = np.ascontiguousarray(rec.mag)
    dt = 1.0 / rec.fs
    t = time.perf_counter()
    q_vqf = VQF(dt).updateBatch(g, a, m)["quat9D"]
    t_vqf = time.perf_counter() - t
    t = time.perf_counter()
    q_vqf_off = offlineVQF(g, a, m, dt, None)["quat9D"]
    t_vqf_off = time.perf_counter() - t

    for name, q, secs in (("host", q_host, t_host), ("offline", q_off, t_off), ("rts", q_rts, t_rts),
                          ("vqf", q_vqf, t_vqf), ("vqf-off", q_vqf_off, t_vqf_off)):
        e = broad_rmse(q, rec.quat, rec.movement)
        out[name] = (e.total, e.heading, e.inclination, secs)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                    help="reference data directory (default ../shared beside the repo)")
    ap.add_argument("--trials", default="", help="comma-separated trial number prefixes (default all)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--leave-out", action="store_true",
                    help="also print means over all subsets leaving two trials out")
    ap.add_argument("--blend-s", type=float, default=-1.0,
                    help="offline heading blend ramp in s (default offline.HEADING_BLEND_S)")
    args = ap.parse_args(argv)

    from trackside.fusion.metrics import broad_trials

    paths = broad_trials(args.shared)
    if args.trials:
        wanted = set(args.trials.split(","))
        paths = [p for p in paths if p.stem.split("_")[0] in wanted]
    if not paths:
        print(f"no BROAD trials under {args.shared}/data/broad", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(_run_trial, [str(p) for p in paths],
                                    [args.blend_s] * len(paths)))
    else:
        results = [_run_trial(str(p), args.blend_s) for p in paths]
    wall = time.perf_counter() - t0

    print("BROAD RMSE in degrees, total/heading/inclination (run time s)")
    print(f"{'trial':36s}" + "".join(f"{m:>24s}" for m in METHODS))
    for r in results:
        cells = "".join(f"{'%.2f/%.2f/%.2f (%.1f)' % r[m]:>24s}" for m in METHODS)
        print(f"{r['name'][:36]:36s}{cells}")
    means = {m: np.mean([r[m][:3] for r in results], axis=0) for m in METHODS}
    print(f"{'mean':36s}" + "".join(f"{'%.2f/%.2f/%.2f' % tuple(means[m]):>24s}" for m in METHODS))
    secs = {m: sum(r[m][3] for r in results) for m in METHODS}
    samples = sum(r["n"] for r in results)
    print(f"{'run time total (s)':36s}" + "".join(f"{secs[m]:>24.1f}" for m in METHODS))
    print(f"{'us per sample':36s}" + "".join(f"{1e6 * secs[m] / samples:>24.1f}" for m in METHODS))
    print(f"wall time {wall:.1f} s with {args.jobs} job(s), {samples} samples")
    for m, limit in TARGETS.items():
        verdict = "meets" if means[m][0] <= limit else "MISSES"
        print(f"{m}: mean total {means[m][0]:.2f} deg, target <= {limit:.2f}: {verdict}")

    if args.leave_out and len(results) > 2:
        print("\nleave-two-out mean total RMSE (deg): worst / median / best subset")
        for m in METHODS:
            vals = [np.mean([r[m][0] for i, r in enumerate(results) if i not in out])
                    for out in itertools.combinations(range(len(results)), 2)]
            print(f"  {m:8s} {max(vals):.2f} / {np.median(vals):.2f} / {min(vals):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
