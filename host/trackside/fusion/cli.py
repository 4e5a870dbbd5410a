"""``trackside fusion run``: run an orientation filter over a recording file."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CHIPS = ("mpu9250", "icm20948", "lsm303")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``fusion`` command group (``fusion run``)."""
    p = subparsers.add_parser("fusion", help="orientation filters over IMU recordings")
    sub = p.add_subparsers(dest="fusion_command", metavar="SUBCOMMAND")
    r = sub.add_parser(
        "run",
        help="run a filter over a recording npz (gyr rad/s, acc m/s^2, mag uT, fs Hz)",
        description="Run an orientation filter over IN.npz and write OUT.npz with quat (Nx4, w x y z, "
        "sensor-to-earth, ENU). If IN holds a reference quat (and movement), BROAD RMSE is printed.",
    )
    r.add_argument("--input", "-i", type=Path, help="recording .npz (gyr, acc, mag, fs)")
    r.add_argument("--filter", "-f", default="device", help="filter name (default device; see --list)")
    r.add_argument("--out", "-o", type=Path, help="output .npz (quat)")
    r.add_argument("--chip", default="mpu9250", choices=CHIPS,
                   help="chip whose counts and ranges the input is quantised to (device filter)")
    r.add_argument("--rate", type=float, default=None,
                   help="run the device filter at this node rate in Hz (input resampled; default: the recording's)")
    r.add_argument("--list", action="store_true", help="list the available filters and exit")
    r.set_defaults(func=_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _run(args: argparse.Namespace) -> int:
    from trackside.cli import UsageError
    from trackside.fusion.metrics import broad_rmse, load_recording
    from trackside.fusion.registry import available_filters, run_filter

    if args.list:
        for name, desc in available_filters().items():
            print(f"{name:12s} {desc}")
        return 0
    if args.input is None or args.out is None:
        raise UsageError("--input and --out are required")
    if args.filter not in available_filters():
        raise UsageError(f"unknown filter {args.filter!r}; choose from {', '.join(available_filters())}")
    try:
        rec = load_recording(args.input)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        options = {"chip": args.chip}
        if args.rate is not None:
            if args.filter != "device":
                raise UsageError("--rate applies to the device filter only")
            if not args.rate > 0:
                raise UsageError("--rate must be positive")
            options["rate_hz"] = args.rate
        quat = run_filter(args.filter, rec, **options)
    except ValueError as exc:  # input the filter cannot use (e.g. rate out of range)
        raise UsageError(f"{args.filter}: {exc}") from None
    out = args.out
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    try:
        np.savez(out, quat=quat, fs=rec.fs)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc}") from None
    print(f"{args.filter}: {len(quat)} samples -> {out}")
    if rec.quat is not None and rec.quat.shape == quat.shape:
        try:
            e = broad_rmse(quat, rec.quat, rec.movement)
            print(f"RMSE vs reference (deg): total {e.total:.2f} heading {e.heading:.2f} "
                  f"inclination {e.inclination:.2f} over {e.samples} samples")
        except ValueError:
            pass
    return 0
