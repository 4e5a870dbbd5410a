"""``trackside demo``: the whole chain on virtual nodes (see :mod:`trackside.demo.pipeline`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trackside.cli import UsageError


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seconds must be a number, got {text!r}") from None
    if not (v == v and 0 < v <= 3600):
        raise argparse.ArgumentTypeError(f"--seconds must be in (0, 3600], got {text}")
    return v


def register(subparsers) -> None:
    from trackside.demo.pipeline import ALL_SEGMENTS, LOWER_BODY

    p = subparsers.add_parser(
        "demo", help="the whole chain on virtual nodes (nothing plugged in)",
        description="Simulated athlete (or a BVH clip) -> one virtual node per segment running the real "
                    "firmware under MicroPython on its own pseudo-terminal -> aggregator -> session store -> "
                    "calibration and export: session.bvh, angles.csv, gait.json and PNG plots in --out.")
    p.add_argument("--seconds", type=_seconds, default=10.0,
                   help="session length in seconds, standing calibration pose (2 s) included (default 10)")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output directory (default out/demo)")
    p.add_argument("--motion", metavar="CLIP.bvh", help="drive the nodes with a BVH clip (looped) instead of "
                                                        "the simulated athlete")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--nodes", type=int, metavar="N",
                       help=f"number of nodes (1..{len(ALL_SEGMENTS)}; default {len(LOWER_BODY)}: "
                            + ", ".join(LOWER_BODY) + "; more add thorax, arms, head, hands)")
    which.add_argument("--segments", metavar="LIST", help="comma-separated segments, e.g. pelvis,left_thigh")
    p.add_argument("--gait", choices=("jog", "sprint"), default="jog", help="simulated athlete's gait (default jog; ignored with --motion)")
    p.add_argument("--db", type=Path, help="keep the session in this database (default: a temporary one)")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true",
                      help="nodes paced by the wall clock, like hardware: for watching the live table; on a "
                           "busy machine the nodes' motions drift out of step (see the warning it prints)")
    pace.add_argument("--fast", dest="realtime", action="store_false",
                      help="virtual time as fast as the machine goes (default)")
    p.set_defaults(realtime=False)
    p.add_argument("--seed", type=int, default=0, help="noise / bias seed (default 0)")
    p.add_argument("--chip", choices=("mpu9250", "icm20948", "mpu6500", "lsm303agr"), default="mpu9250",
                   help="simulated IMU chip on every node (default mpu9250)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from trackside.demo.pipeline import ALL_SEGMENTS, LOWER_BODY, DemoConfig, DemoError, format_summary, run_demo

    if args.nodes is not None:
        if not 1 <= args.nodes <= len(ALL_SEGMENTS):
            raise UsageError(f"--nodes must be 1..{len(ALL_SEGMENTS)}, got {args.nodes}")
        segs = ALL_SEGMENTS[:args.nodes]
    elif args.segments is not None:
        segs = tuple(s.strip() for s in args.segments.split(",") if s.strip())
        bad = [s for s in segs if s not in ALL_SEGMENTS]
        if bad or not segs:
            raise UsageError(f"--segments: unknown {', '.join(bad) or '(empty list)'}; known: {', '.join(ALL_SEGMENTS)}")
        if len(set(segs)) != len(segs):
            raise UsageError("--segments: a segment is listed twice")
    else:
        segs = LOWER_BODY
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: {args.out} exists and is not a directory")
    if args.db is not None and args.db.is_dir():
        raise UsageError(f"--db: {args.db} is a directory")
    if args.motion is not None and not Path(args.motion).is_file():
        raise UsageError(f"--motion: no such file: {args.motion}")
    cfg = DemoConfig(seconds=args.seconds, out=args.out, motion=args.motion, segments=segs, gait=args.gait,
                     db=args.db, realtime=args.realtime, seed=args.seed, plots=not args.no_plots, chip=args.chip,
                     live=sys.stdout.isatty())
    try:
        summary = run_demo(cfg)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    print(format_summary(summary, cfg))
    return 0
