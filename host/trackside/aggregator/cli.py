"""Commands of the aggregator: ``record``, ``sessions``, ``show``, ``trace record``, ``replay``.

(``flash`` lives in :mod:`trackside.flash.cli`; ``demo`` plugs virtual nodes into :func:`record_ports`.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from trackside.cli import UsageError


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", type=Path, default=None,
                   help="session database (default: $TRACKSIDE_HOME/trackside.db, TRACKSIDE_HOME=~/.trackside)")


def _positive(kind: type, name: str) -> Callable[[str], float]:
    def conv(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {text}")
        return v
    return conv


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="record nodes on serial ports (auto-discovers ESP32 USB bridges)",
                       description="Read any number of nodes (serial ports or one ESP-NOW gateway), check, "
                                   "align and record them in the session store.")
    p.add_argument("ports", nargs="*", metavar="PORT", help="serial ports or pyserial URLs (default: discover)")
    _db_arg(p)
    p.add_argument("--athlete", help="athlete name (created if new)")
    p.add_argument("--rate", type=_positive(float, "--rate"), default=200.0, help="session rate in Hz (default 200)")
    p.add_argument("--seconds", type=_positive(float, "--seconds"), help="stop after this long (default: Ctrl-C)")
    p.add_argument("--assign", action="append", default=[], metavar="NODE=SEGMENT",
                   help="node-to-segment assignment, e.g. --assign 3=left_shank (repeatable)")
    p.add_argument("--baud", type=int, default=921600, help="baud rate (default 921600)")
    p.add_argument("--trace-dir", type=Path, help="also keep raw serial traces of every port here")
    p.add_argument("--start", action="store_true", help="send START to every node seen (ack/nack/timeout shown)")
    p.add_argument("--no-live", action="store_true", help="no live table (print a summary at the end)")
    p.add_argument("--notes", default="", help="free text stored with the session")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("sessions", help="list recorded sessions")
    _db_arg(p)
    p.set_defaults(func=cmd_sessions)

    p = sub.add_parser("show", help="summarise a session; export it to npz / CSV")
    p.add_argument("session", help="session id (see `trackside sessions`)")
    _db_arg(p)
    p.add_argument("--npz", type=Path,
                   help="export samples, gaps, assignment and the aligned grid (session rate) to this .npz file")
    p.add_argument("--csv", type=Path, help="export frames and gaps to this .csv file")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("trace", help="raw serial traces (record)")
    tsub = p.add_subparsers(dest="trace_command", metavar="ACTION")
    tr = tsub.add_parser("record", help="keep the raw bytes of one port with host receive times (docs/traces.md)")
    tr.add_argument("port", metavar="PORT")
    tr.add_argument("file", metavar="FILE", type=Path)
    tr.add_argument("--seconds", type=_positive(float, "--seconds"), help="stop after this long (default: Ctrl-C)")
    tr.add_argument("--baud", type=int, default=921600)
    tr.set_defaults(func=cmd_trace_record)
    p.set_defaults(func=lambda a: (_ for _ in ()).throw(UsageError("say `trace record PORT FILE`")))

    p = sub.add_parser("replay", help="feed recorded traces back through pseudo-terminals",
                       description="Replay traces through pseudo-terminals into the same pyserial path as "
                                   "hardware; record the result as a session (default) or just serve the ports.")
    p.add_argument("files", nargs="+", metavar="FILE", type=Path)
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--fast", action="store_true", help="as fast as possible (default: real time)")
    speed.add_argument("--speed", type=_positive(float, "--speed"), default=1.0, help="time scale (default 1)")
    p.add_argument("--serve", action="store_true",
                   help="only serve the ptys (print their paths) for another reader, e.g. `trackside record`")
    p.add_argument("--link-dir", type=Path, help="where the stable port links go (default: a temp dir)")
    _db_arg(p)
    p.add_argument("--athlete")
    p.add_argument("--rate", type=_positive(float, "--rate"), default=200.0)
    p.add_argument("--no-live", action="store_true", help="progress bar only")
    p.set_defaults(func=cmd_replay)


def _parse_assign(items: Sequence[str]) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in items:
        node, sep, seg = item.partition("=")
        if not sep or not seg:
            raise UsageError(f"--assign wants NODE=SEGMENT, got {item!r}")
        try:
            nid = int(node)
        except ValueError:
            raise UsageError(f"--assign: node id must be an integer, got {node!r}") from None
        if not 0 <= nid <= 254:
            raise UsageError(f"--assign: node id must be 0..254, got {nid}")
        out[nid] = seg
    return out


def _store(db: Path | None):
    from trackside.aggregator.store import SessionStore, StoreError

    try:
        return SessionStore(db)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot open the session database: {exc}") from None


def record_ports(ports: Sequence[str], *, db: Path | None = None, athlete: str | None = None,
                 rate_hz: float = 200.0, seconds: float | None = None, segments: dict[int, str] | None = None,
                 baudrate: int = 921600, trace_dir: Path | None = None, live: bool = True, start_nodes: bool = False,
                 notes: str = "", until: Callable[[], bool] | None = None, title: str = "trackside record") -> int:
    """Record ``ports`` into a new session; returns the session id. Stops after ``seconds``, when
    ``until()`` turns true, or on Ctrl-C. The seam ``trackside demo`` uses for virtual nodes."""
    from rich.console import Console
    from rich.live import Live

    from trackside.aggregator.core import Aggregator
    from trackside.aggregator.live import render
    from trackside.aggregator.store import FrameWriter

    st = _store(db)
    sid = st.create_session(athlete=athlete, rate_hz=rate_hz, notes=notes)
    segments = dict(segments or {})
    for nid, seg in segments.items():
        st.add_node(sid, nid)
        st.assign(sid, nid, seg)
    writer = FrameWriter(st.path, sid)
    agg = Aggregator(ports, writer=writer, rate_hz=rate_hz, baudrate=baudrate, trace_dir=trace_dir)
    agg.pipeline.segments = segments
    console = Console(stderr=False)
    started = time.time()
    agg.start()
    status = "closed"
    commanded: set[int] = set()
    try:
        def step() -> bool:
            if seconds is not None and time.time() - started >= seconds:
                return False
            if until is not None and until():
                return False
            if start_nodes:
                for nid in list(agg.pipeline.nodes):
                    if nid not in commanded:
                        commanded.add(nid)
                        agg.command(nid, "start")
            return True

        if live and console.is_terminal:
            with Live(render(agg.pipeline, title, started), console=console, refresh_per_second=4) as lv:
                while step():
                    time.sleep(0.25)
                    lv.update(render(agg.pipeline, title, started))
        else:
            while step():
                time.sleep(0.1)
    except KeyboardInterrupt:
        status = "closed"
    finally:
        agg.stop()
        writer.close()
        st.end_session(sid, status=status)
        if not (live and console.is_terminal):
            console.print(render(agg.pipeline, f"{title}: session {sid}", started))
        st.close()
    return sid


def cmd_record(args: argparse.Namespace) -> int:
    from trackside.aggregator.reader import discover_ports

    segments = _parse_assign(args.assign)
    ports = list(dict.fromkeys(args.ports))
    if not ports:
        ports = [f.device for f in discover_ports()]
        if not ports:
            raise UsageError("no ESP32 serial port found (CP210x, CH340/CH9102, ESP32-S2/S3/C3 USB); "
                             "name a PORT, or try `trackside demo` with virtual nodes")
    for port in ports:
        if "://" not in port and not os.path.exists(port):
            raise UsageError(f"no such serial port: {port}")
    if args.baud <= 0:
        raise UsageError(f"--baud must be > 0, got {args.baud}")
    sid = record_ports(ports, db=args.db, athlete=args.athlete, rate_hz=args.rate, seconds=args.seconds,
                       segments=segments, baudrate=args.baud, trace_dir=args.trace_dir, live=not args.no_live,
                       start_nodes=args.start, notes=args.notes)
    print(f"session {sid} recorded")
    return 0


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def cmd_sessions(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    with _store(args.db) as st:
        rows = st.sessions()
        t = Table(title=f"sessions in {st.path}")
        for c in ("id", "athlete", "started", "duration s", "rate Hz", "nodes", "frames", "status"):
            t.add_column(c)
        for s in rows:
            t.add_row(str(s.id), s.athlete or "", _when(s.started),
                      "-" if s.duration_s is None else f"{s.duration_s:.1f}", f"{s.rate_hz:g}", str(s.nodes),
                      str(s.frames), s.status)
    Console().print(t if rows else "no sessions yet (record one with `trackside record` or `trackside demo`)")
    return 0


def _decoder():
    """raw frame -> {"values": (n, 13) int16, "t_node_us": (n,)} for exports (sample batches only;
    the reference decoder: per frame it is far cheaper than a vectorised call)."""
    import numpy as np

    from tsproto.decoder import decode_frame

    def dec(raw: bytes):
        try:
            m = decode_frame(bytes(raw))
        except ValueError:
            return None
        if m.type != 0x10:
            return None
        return {"values": np.array(m.samples, np.int16).reshape(-1, 13), "t_node_us": np.array(m.times, np.int64)}
    return dec


def cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from trackside.aggregator.live import progress_bar
    from trackside.aggregator.store import StoreError

    try:
        sid = int(args.session)
    except ValueError:
        raise UsageError(f"SESSION must be a session id (integer), got {args.session!r}") from None
    con = Console()
    with _store(args.db) as st:
        try:
            s = st.summary(sid)
        except StoreError as exc:
            raise UsageError(str(exc)) from None
        info = s["session"]
        con.print(f"[bold]session {info.id}[/bold]  athlete {info.athlete or '-'}  status {info.status}  "
                  f"rate {info.rate_hz:g} Hz  started {_when(info.started)}  "
                  f"duration {'-' if info.duration_s is None else f'{info.duration_s:.1f} s'}  "
                  f"frames stored {s['frames_stored']}")
        t = Table(title="nodes")
        for c in ("node", "segment", "port", "frames", "samples", "lost", "dup", "reboots", "offset s",
                  "drift ppm", "residual us", "gaps"):
            t.add_column(c)
        gaps_by = {}
        for g in s["gaps"]:
            gaps_by[g["node_id"]] = gaps_by.get(g["node_id"], 0) + 1
        for n in s["nodes"]:
            def f(v, spec):
                return "-" if v is None else format(v, spec)
            t.add_row(str(n["node_id"]), n["segment"], n["port"], str(n["frames"]), str(n["samples"]),
                      str(n["lost"]), str(n["duplicates"]), str(n["reboots"]), f(n["clock_offset_s"], ".6f"),
                      f(n["clock_drift_ppm"], ".1f"), f(n["residual_us"], ".0f"), str(gaps_by.get(n["node_id"], 0)))
        con.print(t)
        if s["events"]:
            kinds: dict[str, int] = {}
            for e in s["events"]:
                kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
            con.print("events: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
        for path, fn in ((args.npz, st.export_npz), (args.csv, st.export_csv)):
            if path is None:
                continue
            prog, cb = progress_bar(f"export {path.name}")
            try:
                with prog:
                    if fn == st.export_npz:
                        from trackside.aggregator.core import aligned_from_store

                        fn(sid, path, decode=_decoder(), progress=cb, extra=aligned_from_store(st, sid))
                    else:
                        fn(sid, path, progress=cb)
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc}") from None
            con.print(f"wrote {path}")
    return 0


def cmd_trace_record(args: argparse.Namespace) -> int:
    from trackside.aggregator.reader import PortReader
    from trackside.aggregator.traces import TraceWriter

    if "://" not in args.port and not os.path.exists(args.port):
        raise UsageError(f"no such serial port: {args.port}")
    try:
        tw = TraceWriter(args.file, port=args.port, baudrate=args.baud)
    except OSError as exc:
        raise UsageError(f"cannot write {args.file}: {exc}") from None
    r = PortReader(args.port, lambda d, t: tw.rx(d, int((t - tw.t0) * 1e9)),
                   on_state=lambda s, t, d: tw.event(s, int((t - tw.t0) * 1e9), detail=d) if s != "error" else None,
                   baudrate=args.baud)
    started = time.time()
    r.start()
    try:
        while args.seconds is None or time.time() - started < args.seconds:
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        r.stop()
        tw.close()
    print(f"{args.file}: {tw.nbytes} bytes in {time.time() - started:.1f} s")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from trackside.aggregator.live import progress_bar
    from trackside.aggregator.replay import Replayer
    from trackside.aggregator.traces import TraceError

    speed = None if args.fast else args.speed
    try:
        rp = Replayer(args.files, speed=speed, link_dir=args.link_dir,
                      names=[f"{i}-{Path(f).stem}" for i, f in enumerate(args.files)])
    except TraceError as exc:
        raise UsageError(str(exc)) from None
    for tr in rp.traces:
        if tr.truncated:
            print(f"warning: {tr.path}: damaged tail, {tr.bytes_dropped} bytes ignored", file=sys.stderr)
    try:
        if args.serve:
            for path, tr in zip(rp.paths, rp.traces):
                print(f"{path}  <- {tr.path} ({tr.duration_s:.1f} s)", flush=True)
            prog, cb = progress_bar("replay")
            rp.progress = cb
            with prog:
                rp.start()
                print(f"replay started at {rp.start_wall:.6f}", flush=True)   # host time of trace time 0
                while not rp.join(timeout=0.2):
                    pass
            return 0
        done = {"v": False}
        prog, cb = progress_bar("replay")
        rp.progress = cb

        def finished() -> bool:
            return done["v"]

        import threading

        def run() -> None:
            rp.start()
            rp.join()
            time.sleep(0.3)   # let the readers take the last bytes
            done["v"] = True
        th = threading.Thread(target=run, daemon=True)
        th.start()
        if args.no_live:
            with prog:
                sid = record_ports(rp.paths, db=args.db, athlete=args.athlete, rate_hz=args.rate, live=False,
                                   until=finished, title="trackside replay", notes="replay of " + ", ".join(
                                       str(f) for f in args.files))
        else:
            sid = record_ports(rp.paths, db=args.db, athlete=args.athlete, rate_hz=args.rate, live=True,
                               until=finished, title="trackside replay",
                               notes="replay of " + ", ".join(str(f) for f in args.files))
        print(f"session {sid} recorded from {len(args.files)} trace(s)")
        return 0
    finally:
        rp.stop()
