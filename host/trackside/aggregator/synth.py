"""Synthetic serial traces of nodes speaking the real wire protocol (tsproto encoders), with the
faults the aggregator must survive: clock offset and drift, counter wrap, USB latency jitter and
stalls, lost and duplicated frames, corrupt bytes, a reboot, an unplugged cable. Used by tests,
benchmarks and to make the committed trace fixtures. The truth comes back alongside.

    >>> traces, truth = synth_session(nodes=3, seconds=2.0, seed=1)
    >>> sorted(truth) == [1, 2, 3]
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tsproto import SampleBatcher
from tsproto.frame import FrameWriter

from trackside.aggregator.traces import EVENT, RX


@dataclass
class NodeTruth:
    node_id: int
    offset_s: float          # node clock reads (host - t_start + offset) * (1 + drift)
    drift: float
    t_start: float
    samples_sent: int = 0     # samples produced by the node
    frames_sent: int = 0
    frames_dropped: int = 0   # frames lost on the way (recorded as gaps by the aggregator)
    frames_duplicated: int = 0
    frames_corrupted: int = 0
    reboot_at: float | None = None
    unplug: tuple | None = None
    sample_host_t: list = field(default_factory=list)   # true host time of each delivered sample

    def node_us(self, host_t: float, boot_t0: float | None = None) -> int:
        base = self.t_start if boot_t0 is None else boot_t0
        off = self.offset_s if boot_t0 is None else 0.0
        return int(round((host_t - base + off) * 1e6 * (1.0 + self.drift)))


def _values(t: float, node: int) -> list[int]:
    """Plausible int16 sensor values (acc, gyr, mag, quat Q14) for a running leg."""
    w = 2 * math.pi * 1.4
    ph = node * 0.7
    acc = [int(4000 * math.sin(w * t + ph + i)) for i in range(3)]
    gyr = [int(8000 * math.sin(w * t + ph + 1.3 * i)) for i in range(3)]
    mag = [int(300 + 50 * math.sin(0.1 * t + i)) for i in range(3)]
    a = 0.5 * math.sin(w * t + ph)
    q = [int(16384 * math.cos(a)), int(16384 * math.sin(a)), 0, 0]
    return acc + gyr + mag + q


def synth_node(node_id: int, seconds: float, *, rate_hz: int = 200, spf: int = 4, seed: int = 0,
               t_start: float = 1_000.0, offset_s: float | None = None, drift_ppm: float | None = None,
               loss: float = 0.0, dup: float = 0.0, corrupt: float = 0.0, stall: float = 0.002,
               reboot_at: float | None = None, unplug: tuple[float, float] | None = None,
               status_every_s: float = 1.0, split: float = 0.1) -> tuple[list[tuple[float, bytes]], list[tuple[float, str]], NodeTruth]:
    """Chunks ``(host receive time, bytes)`` and port events of one node on its own port."""
    rng = np.random.default_rng(seed * 1000 + node_id)
    if offset_s is None:
        offset_s = float(rng.uniform(1, 4000))          # up to ~67 min: some clocks wrap 2**32 us
    if drift_ppm is None:
        drift_ppm = float(rng.uniform(-50, 50))
    truth = NodeTruth(node_id, offset_s, drift_ppm * 1e-6, t_start, reboot_at=reboot_at, unplug=unplug)
    period_us = int(round(1e6 / rate_hz))
    chunks: list[tuple[float, bytes]] = []
    events: list[tuple[float, str]] = []
    w = FrameWriter(node_id)
    enc = SampleBatcher(w, samples_per_frame=spf, period_us=period_us)
    boot_t0 = None
    last_rx = t_start
    pending_times: list[float] = []
    next_status = t_start + 0.5
    n_samples = int(seconds * rate_hz)
    rebooted = False

    def deliver(frame: bytes, t_ready: float, sample_times: list[float]) -> None:
        nonlocal last_rx
        truth.frames_sent += 1
        lat = 0.0003 + rng.exponential(0.0008)
        if rng.random() < stall:
            lat += rng.uniform(0.01, 0.03)                # USB stall
        t_rx = max(last_rx, t_ready + lat)
        if unplug is not None and unplug[0] <= t_rx < unplug[1]:
            truth.frames_dropped += 1                   # nobody listening: lost
            return
        if rng.random() < loss:
            truth.frames_dropped += 1
            return
        data = bytearray(frame)
        if rng.random() < corrupt:
            data[int(rng.integers(1, len(data) - 1))] ^= 0x5A
            truth.frames_corrupted += 1
            chunks.append((t_rx, bytes(data)))
            last_rx = t_rx
            return
        truth.sample_host_t.extend(sample_times)
        # sometimes a read returns a frame split in two
        if rng.random() < split and len(data) > 4:
            cut = int(rng.integers(1, len(data) - 1))
            chunks.append((t_rx, bytes(data[:cut])))
            chunks.append((t_rx + 0.0001, bytes(data[cut:])))
            t_rx += 0.0001
        else:
            chunks.append((t_rx, bytes(data)))
        if rng.random() < dup:
            truth.frames_duplicated += 1
            chunks.append((t_rx + 0.0002, bytes(data)))
            t_rx += 0.0002
        last_rx = t_rx

    def node_now(th: float) -> int:
        return truth.node_us(th, boot_t0) & 0xFFFFFFFF

    hello = w.hello(node_now(t_start), rate_hz, 16, 2000, 4900, 1, 0, "synth-1.0", "esp32s3")
    chunks.append((t_start + 0.001, hello))
    for i in range(n_samples):
        th = t_start + i / rate_hz + 0.002 + (0.5 if rebooted else 0.0)
        if reboot_at is not None and not rebooted and th >= reboot_at:
            rebooted = True
            if enc.flush():
                deliver(bytes(enc.frame()), th, pending_times)
            pending_times = []
            th += 0.5                                   # boot time: nothing for half a second
            boot_t0 = th - 0.05
            w = FrameWriter(node_id)
            enc = SampleBatcher(w, samples_per_frame=spf, period_us=period_us)
            chunks.append((th, w.hello(node_now(th), rate_hz, 16, 2000, 4900, 1, 0, "synth-1.0", "esp32s3")))
        truth.samples_sent += 1
        pending_times.append(th)
        if enc.add(node_now(th), _values(th, node_id)):
            deliver(bytes(enc.frame()), th, pending_times)
            pending_times = []
        if th >= next_status:
            next_status += status_every_s
            if enc.flush():
                deliver(bytes(enc.frame()), th, pending_times)
                pending_times = []
            st = w.status(node_now(th), 3900 - int(th - t_start), 3100, 0, 0, 0, 80_000, int(th - t_start))
            deliver(st, th, [])
    if enc.flush():
        deliver(bytes(enc.frame()), pending_times[-1] if pending_times else t_start + seconds, pending_times)
    if unplug is not None:
        events = [(unplug[0], "close"), (unplug[1], "open")]
    chunks.sort(key=lambda c: c[0])
    return chunks, events, truth


def to_records(chunks: list[tuple[float, bytes]], events: list[tuple[float, str]], t0: float) -> list:
    """Trace records (tag, t_ns since t0, payload), chunks and events merged in time order."""
    recs = [(t, 1, (RX, int(round((t - t0) * 1e9)), d)) for t, d in chunks]
    recs += [(t, 0, (EVENT, int(round((t - t0) * 1e9)), ('{"event": "%s"}' % e).encode())) for t, e in events]
    recs.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in recs]


def synth_session(nodes: int = 3, seconds: float = 2.0, *, seed: int = 0, gateway: bool = False,
                  **kw) -> tuple[list[dict], dict[int, NodeTruth]]:
    """Traces of ``nodes`` nodes: one per port, or all through one gateway port (``gateway``).
    Returns ``[{"name", "t0", "records"}]`` and the truth per node id (1..nodes)."""
    t0 = 1_000.0
    per = {}
    truth = {}
    for nid in range(1, nodes + 1):
        if gateway:
            kw["split"] = 0.0   # a gateway forwards whole frames: reads never interleave halves
        chunks, events, tr = synth_node(nid, seconds, seed=seed, t_start=t0, **kw)
        per[nid] = (chunks, events)
        truth[nid] = tr
    if gateway:
        allc = sorted((c for ch, _ in per.values() for c in ch), key=lambda c: c[0])
        return [{"name": "gateway", "t0": t0, "records": to_records(allc, [], t0)}], truth
    return [{"name": f"node{nid}", "t0": t0, "records": to_records(ch, ev, t0)} for nid, (ch, ev) in per.items()], truth
