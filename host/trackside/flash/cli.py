"""``trackside flash PORT --node-id N --segment NAME``: build, deploy and verify a node image."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from trackside.cli import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "flash",
        help="compile firmware with mpy-cross, deploy with mpremote, write config, verify hashes",
        description="Flash a node over its serial port (or socket://HOST:PORT for a virtual board).",
    )
    p.add_argument("port", help="serial port (e.g. /dev/ttyUSB0) or socket://127.0.0.1:PORT")
    p.add_argument("--node-id", type=int, required=True, help="node id, 1..254")
    p.add_argument("--segment", required=True, help="body segment the node is strapped to, e.g. left_shank")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=JSON",
        help="extra config value, e.g. --set rate_hz=200 --set link='\"espnow\"' (repeatable)",
    )
    p.add_argument("--build-dir", type=Path, help="keep the compiled image here (default: a temp dir)")
    p.add_argument("--march", help="mpy-cross architecture, e.g. xtensawin (default: portable bytecode)")
    p.add_argument("--no-reset", action="store_true", help="do not soft-reset the board afterwards")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per mpremote call")
    p.set_defaults(func=run)


def _parse_sets(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set wants KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw  # a bare word is a string
    return out


def run(args: argparse.Namespace) -> int:
    from trackside.flash import FlashError, build_image, deploy

    overrides = _parse_sets(args.set)
    with tempfile.TemporaryDirectory(prefix="trackside-flash-") as tmp:
        out = args.build_dir or Path(tmp) / "image"
        try:
            files = build_image(out, node_id=args.node_id, segment=args.segment,
                                config_overrides=overrides, march=args.march)
        except ValueError as exc:
            raise UsageError(f"invalid node config: {exc}") from None
        except FlashError as exc:
            raise UsageError(str(exc)) from None
        print(f"built {len(files)} files ({sum(f.local.stat().st_size for f in files)} bytes)")
        try:
            hashes = deploy(args.port, files, reset=not args.no_reset, timeout=args.timeout)
        except FlashError as exc:
            print(f"trackside flash: error: {exc}")
            return 1
    print(f"flashed node {args.node_id} ({args.segment}) on {args.port}: {len(hashes)} files verified by sha256")
    return 0
