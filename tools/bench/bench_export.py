#!/usr/bin/env python3
"""Benchmark: export of a 10-minute, 15-node session at 200 Hz (target: BVH in under 10 s).

Segment orientations come from the simulated athlete (600 s of jogging, 15 segments), so the
BVH has realistic, continuous channels. Times printed: BVH only (Euler channels + text +
crash-safe writing), then the whole ``export_outputs`` (BVH, angles.csv, gait.json from both
feet, PNG plots).

Usage: python3 tools/bench/bench_export.py [--minutes 10] [--fs 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from trackside.bvh.writer import write_bvh
from trackside.kinematics.export import export_outputs
from trackside.sim.athlete import SimulatedAthlete


def _load() -> str:
    try:
        import os

        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fs", type=float, default=200.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    seconds = args.minutes * 60
    t0 = time.perf_counter()
    mo = SimulatedAthlete(heading_deg=15.0).simulate(duration_s=seconds, fs=args.fs, imu_rate_min_hz=0)
    feet = {s: mo.imu(f"{s}_foot", offset_m=(0.05, 0, 0.03)) for s in ("left", "right")}
    print(f"session: {args.minutes:g} min, {len(mo.segment_quats)} segments, {args.fs:g} Hz, "
          f"{len(mo.time_s)} frames (simulated in {time.perf_counter() - t0:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        t0, c0 = time.perf_counter(), time.process_time()
        n = write_bvh(out / "only.bvh", mo.skeleton, mo.segment_quats, args.fs, mo.segment_pos["pelvis"])
        t_bvh, c_bvh = time.perf_counter() - t0, time.process_time() - c0
        size = (out / "only.bvh").stat().st_size / 1e6
        print(f"BVH only: {n} frames, {size:.1f} MB in {t_bvh:.2f} s wall, {c_bvh:.2f} s CPU "
              f"(target < 10 s: {'met' if t_bvh < 10 else 'MISSED'}; machine load {_load()})")
        t0, c0 = time.perf_counter(), time.process_time()
        res = export_outputs(out / "export", mo.time_s, mo.segment_quats, mo.skeleton, fs=args.fs, foot_imu=feet)
        t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
        g = res["gait_summary"] or {}
        n_steps = g.get("contact_s", {}).get("n")
        print(f"whole export (BVH + angles.csv + gait.json from both feet + 2 PNG): {t_all:.2f} s wall, "
              f"{c_all:.2f} s CPU, "
              f"{n_steps} steps found (truth {len(mo.truth.steps)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
