#!/usr/bin/env python3
"""Benchmark: gait on simulated truth, and the whole chain on real running clips.

1. Gait (ZUPT on both feet) vs the simulated athlete's truth, per step: contact time (target
   +-10 ms), step length (+-3 %), step frequency (+-1 %), flight time; clean and noisy sensors.
2. Virtual nodes (random mountings) driven by the CMU running clips in ../shared/data/mocap,
   calibrated from the standing pose + first steps: knee and hip flexion RMS error vs the clip's
   own angles (target 3 deg). Orientations exact, then from noisy IMU signals through
   orientation filters (vqf online/offline from PyPI, and trackside's host/offline filters when
   the fusion package provides them).

Usage: python3 tools/bench/bench_kinematics.py [--seconds 30] [--fs 200] [--quick]
The CMU data: "The data used in this project was obtained from mocap.cs.cmu.edu. The database
was created with funding from NSF EIA-0196217."
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"

from trackside.kinematics.export import segments_from_nodes  # noqa: E402
from trackside.kinematics.gait import gait_session  # noqa: E402
from trackside.kinematics.joints import clinical_angles  # noqa: E402
from trackside.kinematics.quat import from_rot, qmul  # noqa: E402
from trackside.sim.athlete import ImuNoise, SimulatedAthlete  # noqa: E402

NOISE = dict(gyr_std=0.003, gyr_bias=0.005, acc_std=0.04, acc_bias=0.03, mag_std=0.3)
KEYS = ("left_knee_flexion", "right_knee_flexion", "left_hip_flexion", "right_hip_flexion")


def bench_gait(seconds: float, fs: float) -> None:
    print(f"== gait vs simulated truth ({seconds:.0f} s runs, {fs:.0f} Hz, foot sensors with random-ish mounting)")
    print(f"{'run':<22}{'noise':<7}{'steps':>6}{'contact ms max|mean':>22}{'flight ms max':>15}"
          f"{'step len % max':>16}{'step freq % max':>17}")
    presets = {
        "jog 3.3 m/s": SimulatedAthlete(heading_deg=30.0),
        "sprint 8.5 m/s": SimulatedAthlete.sprint(heading_deg=-120.0, seed=4),
        "jog jitter+asym": SimulatedAthlete(jitter=0.03, asymmetry=0.15, seed=3),
    }
    for name, ath in presets.items():
        mo = ath.simulate(duration_s=seconds, fs=fs)
        for noisy in (False, True):
            feet = {}
            for i, side in enumerate(("left", "right")):
                nz = ImuNoise(seed=10 + i, **NOISE) if noisy else None
                feet[side] = mo.imu(f"{side}_foot", mount=(0.9, 0.1, -0.3, 0.2), offset_m=(0.05, 0.01, 0.03), noise=nz)
            res = gait_session(feet["left"], feet["right"], fs)
            errs = []
            for st in res["steps"]:
                m = [x for x in mo.truth.steps
                     if x["side"] == st["side"] and abs(x["touchdown_s"] - st["touchdown_s"]) < 0.03]
                if m and st["step_length_m"] is not None:
                    t = m[0]
                    errs.append((st["contact_s"] - t["contact_s"], st["flight_s"] - t["flight_s"],
                                 100 * (st["step_length_m"] / t["step_length_m"] - 1),
                                 100 * (st["step_freq_hz"] / t["step_freq_hz"] - 1)))
            e = np.abs(np.array(errs))
            print(f"{name:<22}{'yes' if noisy else 'no':<7}{len(e):>6}"
                  f"{1000 * e[:, 0].max():>13.2f} | {1000 * e[:, 0].mean():5.2f}{1000 * e[:, 1].max():>15.2f}"
                  f"{e[:, 2].max():>16.3f}{e[:, 3].max():>17.3f}   (truth steps {len(mo.truth.steps)})")


def _filters():
    out = {}
    try:
        from vqf import offlineVQF, VQF

        def vqf_online(imu):
            v = VQF(1.0 / imu["fs"])
            r = v.updateBatch(np.ascontiguousarray(imu["gyr"]), np.ascontiguousarray(imu["acc"]),
                              np.ascontiguousarray(imu["mag"]))
            return r["quat9D"]

        def vqf_offline(imu):
            r = offlineVQF(np.ascontiguousarray(imu["gyr"]), np.ascontiguousarray(imu["acc"]),
                           np.ascontiguousarray(imu["mag"]), 1.0 / imu["fs"])
            return r["quat9D"]

        out["vqf online"] = vqf_online
        out["vqf offline"] = vqf_offline
    except ImportError:
        print("(vqf not installed: skipped)")
    try:
        from trackside.fusion.metrics import Recording
        from trackside.fusion.registry import available_filters, run_filter

        for name in ("host", "offline"):
            if name in available_filters():
                out[f"trackside {name}"] = (lambda imu, _n=name: run_filter(
                    _n, Recording(imu["gyr"], imu["acc"], imu["mag"], imu["fs"])))
    except Exception as exc:  # the fusion package is another engineer's: report, do not fail
        print(f"(trackside filters unavailable: {exc})")
    return out


def bench_chain(seconds: float, fs: float, quick: bool) -> None:
    from trackside.sim.bvh_motion import BvhMotion

    clips = sorted((SHARED / "mocap").glob("*.bvh"))
    if not clips:
        print("== chain: ../shared/data/mocap not present, skipped")
        return
    print(f"\n== whole chain on real running clips ({seconds:.0f} s incl. 2 s standing + 1 s blend, {fs:.0f} Hz, "
          "15 virtual nodes, random mountings)")
    print("RMS error (deg) vs the clip's own angles over the run, " + ", ".join(KEYS))
    filters = {} if quick else _filters()
    for clip in clips:
        mo = BvhMotion(clip, heading_deg=65.0).simulate(duration_s=seconds, fs=fs)
        rng = np.random.default_rng(5)
        mounts = {s: from_rot(Rotation.random(random_state=int(rng.integers(1e6)))) for s in mo.segment_quats}
        truth = clinical_angles(mo.segment_quats)
        run = mo.time_s > 3.5

        def score(node_q, label):
            t0 = time.perf_counter()
            seg, _, tl = segments_from_nodes(mo.time_s, node_q, {s: s for s in node_q}, mo.skeleton,
                                             (0.5, 1.8), (2.0, min(8.0, seconds)))
            est = clinical_angles(seg)
            rms = [float(np.sqrt(np.nanmean((est[k][run] - truth[k][run]) ** 2))) for k in KEYS]
            print(f"  {clip.name:<10}{label:<22}" + "".join(f"{r:8.2f}" for r in rms)
                  + f"   max {max(rms):5.2f}  heading err {np.degrees(tl.events[0].heading_rad) - 65.0:+6.2f} deg"
                  + f"  ({time.perf_counter() - t0:.1f} s)")

        exact = {s: qmul(q, mounts[s]) for s, q in mo.segment_quats.items()}
        score(exact, "exact orientations")
        if not filters:
            continue
        imus = {s: mo.imu(s, mount=mounts[s], noise=ImuNoise(seed=i, **NOISE)) for i, s in enumerate(mo.segment_quats)}
        for fname, f in filters.items():
            t0 = time.perf_counter()
            try:
                node_q = {s: np.asarray(f(imu), float) for s, imu in imus.items()}
            except Exception as exc:
                print(f"  {clip.name:<10}{fname:<22} failed: {exc}")
                continue
            dt = time.perf_counter() - t0
            score(node_q, f"{fname} ({dt:.0f}s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--fs", type=float, default=200.0)
    ap.add_argument("--quick", action="store_true", help="exact orientations only, no filters")
    args = ap.parse_args(argv)
    bench_gait(args.seconds, args.fs)
    bench_chain(args.seconds, args.fs, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
