"""Live terminal view of a recording (rich): per node rate, loss, latency, battery, FIFO
overflows, clock offset and warnings; plus a progress bar helper for replays and exports."""

from __future__ import annotations

import statistics
import time
from typing import Callable

from rich.console import Group
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from trackside.aggregator.core import Pipeline


def node_rows(pl: Pipeline, now: float | None = None) -> list[dict]:
    """Per-node figures as plain data (also what the view shows)."""
    now = time.time() if now is None else now
    rows = []
    pl.sync_lanes()
    with pl._lock:
        recent = list(pl.events)
        for nid in sorted(pl.nodes):
            n = pl.nodes[nid]
            lat = sorted(n.latency_ms)
            st = n.status
            m = n.model()
            warn = [f"{kind}" for t, node, kind, _ in recent[-50:] if node == nid and now - t < 10]
            if n.last_t_host is not None and now - n.last_t_host > 1.0:
                warn.append(f"silent {now - n.last_t_host:.0f}s")
            rows.append({
                "node": nid,
                "segment": pl.segments.get(nid, ""),
                "port": n.port,
                "rate_hz": n.rate_hz,
                "loss_pct": n.tracker.loss_pct,
                "latency_ms": statistics.median(lat) if lat else None,
                "battery_mv": None if st is None else st.battery_mv,
                "fifo_overflows": None if st is None else st.fifo_overflows,
                "offset_s": n.clock_offset_s,
                "drift_ppm": None if m is None else m.drift_ppm,
                "clock": "sync" if n.sync.ready else ("one-way" if n.oneway.ready else "provisional"),
                "reboots": n.tracker.reboots,
                "warnings": sorted(set(warn)),
            })
    return rows


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def render(pl: Pipeline, title: str = "trackside record", started: float | None = None) -> Group:
    """A rich renderable of the current state."""
    now = time.time()
    t = Table(title=title, expand=False)
    for col, just in (("node", "right"), ("segment", "left"), ("port", "left"), ("rate Hz", "right"),
                      ("loss %", "right"), ("latency ms", "right"), ("battery mV", "right"),
                      ("FIFO ovf", "right"), ("clock offset s", "right"), ("drift ppm", "right"),
                      ("clock", "left"), ("warnings", "left")):
        t.add_column(col, justify=just)
    for r in node_rows(pl, now):
        style = "yellow" if r["warnings"] or r["loss_pct"] > 1 else None
        t.add_row(str(r["node"]), r["segment"], r["port"], _fmt(r["rate_hz"], ".1f"), _fmt(r["loss_pct"], ".2f"),
                  _fmt(r["latency_ms"], ".1f"), _fmt(r["battery_mv"], "d"), _fmt(r["fifo_overflows"], "d"),
                  _fmt(r["offset_s"], ".6f"), _fmt(r["drift_ppm"], ".1f"), r["clock"], ", ".join(r["warnings"]),
                  style=style)
    bad = pl.bad_frames()
    nbad = sum(bad.get(k, 0) for k in ("crc_errors", "cobs_errors", "truncated", "oversize", "bad_major", "malformed"))
    lat = sorted(pl.aligned_latency_ms)
    p99 = lat[int(0.99 * (len(lat) - 1))] if lat else None
    elapsed = "" if started is None else f"  elapsed {now - started:.0f} s"
    foot = Text(f"aligned rows {pl.aligned_rows}  p99 frame->aligned {_fmt(p99, '.1f')} ms  "
                f"bad frames {nbad}  unknown {bad.get('unknown_type', 0)}{elapsed}")
    return Group(t, foot)


def progress_bar(description: str) -> tuple[Progress, Callable[[int, int], None]]:
    """A rich progress bar and the ``progress(done, total)`` callback that drives it."""
    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                    TimeRemainingColumn(), transient=False)
    task = prog.add_task(description, total=1)

    def cb(done: int, total: int) -> None:
        prog.update(task, completed=done, total=max(total, 1))
    return prog, cb
