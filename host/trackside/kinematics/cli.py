"""``trackside gait`` and ``trackside export``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trackside.cli import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("gait", help="gait figures from one foot-mounted IMU recording",
                              description="ZUPT strapdown on one foot: contact, flight, step length and "
                                          "frequency per contact (one-foot step = stride / 2).")
    p.add_argument("--input", required=True, help="FOOT.npz with gyr (rad/s), acc (m/s^2), fs, optional mag (uT)")
    p.add_argument("--side", required=True, choices=("left", "right"))
    p.add_argument("--out", required=True, help="OUT.json")
    p.set_defaults(func=_gait)

    e = subparsers.add_parser("export", help="session.bvh, angles.csv, gait.json and plots for a session",
                              description="Export a session (an .npz of orientations, see "
                                          "trackside.kinematics.export.load_session_npz, or a stored session).")
    e.add_argument("session", metavar="SESSION")
    e.add_argument("--out", required=True, help="output directory")
    e.add_argument("--channel-order", default="ZXY", help="BVH rotation channel order (default ZXY)")
    e.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    e.add_argument("--db", type=Path, default=None,
                   help="session database for a stored SESSION id (default: $TRACKSIDE_HOME/trackside.db)")
    e.add_argument("--stand-s", type=float, default=2.0,
                   help="stored sessions: seconds of standing calibration pose at the start (default 2)")
    e.set_defaults(func=_export)


def _export_stored(args: argparse.Namespace) -> int:
    from trackside.aggregator.paths import default_db
    from trackside.demo.pipeline import DemoError
    from trackside.demo.stored import export_stored_session

    db = args.db or default_db()
    try:
        res = export_stored_session(db, int(args.session), args.out, stand_s=args.stand_s, plots=not args.no_plots)
    except DemoError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {res['frames']} BVH frames, angles.csv, gait.json"
          + (f", {len(res['plots'])} plots" if res.get("plots") else "") + f" -> {args.out}")
    return 0


def _gait(args: argparse.Namespace) -> int:
    from trackside.kinematics.gait import gait_one_foot, load_foot_npz

    path = Path(args.input)
    if not path.exists():
        raise UsageError(f"no such file: {path}")
    try:
        d = load_foot_npz(path)
        res = gait_one_foot(d["gyr"], d["acc"], d["fs"], args.side, d.get("mag"))
    except (ValueError, OSError, KeyError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    from trackside.kinematics.export import _jsonable

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_jsonable(res), indent=1))
    s = res["summary"]

    def f(k, scale=1.0, unit=""):
        m = s[k]["mean"]
        return "n/a" if m is None else f"{m * scale:.3g}{unit}"

    print(f"{args.side}: {res['n_contacts']} contacts, contact {f('contact_s', 1000, ' ms')}, "
          f"step length {f('step_length_m', 1, ' m')}, step frequency {f('step_freq_hz', 1, ' Hz')} -> {out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from trackside.kinematics.export import SESSION_LOADERS, export_outputs, load_session_npz

    if args.session.isdigit():
        return _export_stored(args)

    kw = None
    for loader in SESSION_LOADERS:
        kw = loader(args.session)
        if kw is not None:
            break
    if kw is None:
        path = Path(args.session)
        if path.suffix != ".npz" or not path.exists():
            raise UsageError(f"unknown session {args.session!r} (give an existing .npz file or a stored session)")
        try:
            kw = load_session_npz(path)
        except (ValueError, OSError, KeyError) as exc:
            raise UsageError(str(exc)) from None
    try:
        res = export_outputs(args.out, channel_order=args.channel_order, plots=not args.no_plots, **kw)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {res['frames']} BVH frames, angles.csv, gait.json"
          + (f", {len(res['plots'])} plots" if res["plots"] else "") + f" -> {args.out}")
    return 0

