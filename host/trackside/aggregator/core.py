"""The aggregation pipeline: bytes of many ports -> checked frames -> one clock -> aligned samples,
recorded in the session store.

:class:`Pipeline` holds no threads and does no I/O: ``feed(port, data, t_host)`` takes what a port
delivered and when. It decodes with :class:`tsproto.fast.FastDecoder` (one per port), checks
every node's sequence (gaps recorded, duplicates dropped, reboots detected, unknown messages
skipped and counted), keeps each node's clock model, appends the raw frames to the store and
feeds a live :class:`~trackside.aggregator.clock.StreamAligner`. :class:`Aggregator` adds the
serial ports (reader threads), time-sync requests and commands with ack/nack/timeouts.

Offline, :func:`process_trace` runs the same checks on a whole trace in one go.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from tsproto import consts as C
from tsproto.decoder import StreamDecoder
from tsproto.fast import FastDecoder, LiveDecoder
from tsproto.frame import FrameWriter as WireWriter

from trackside.aggregator import livecore
from trackside.aggregator.clock import US, Aligned, ClockModel, ClockSync, StreamAligner, Unwrapper, align
from trackside.aggregator.reader import CommandTracker, MultiPortReader, NodeTracker, PendingCommand
from trackside.aggregator.store import FrameWriter

CLOCK_PERIOD = 1 << 32     # header t_us is the node clock modulo 2**32
SEQ_PERIOD = 1 << 16

COMMANDS = {
    "start": C.CMD_START, "stop": C.CMD_STOP, "rate": C.CMD_SET_RATE, "ranges": C.CMD_SET_RANGES,
    "mode": C.CMD_SET_MODE, "calibrate": C.CMD_CALIB_GYRO, "mag_cal": C.CMD_STORE_MAG_CAL,
    "identify": C.CMD_IDENTIFY, "reboot": C.CMD_REBOOT, "hello": C.CMD_HELLO, "status": C.CMD_STATUS,
}
NACK_ERRORS = {C.E_UNKNOWN_CMD: "unknown command", C.E_BAD_ARG: "bad argument", C.E_BUSY: "busy",
               C.E_UNSUPPORTED: "unsupported", C.E_FAILED: "failed", C.E_BAD_STATE: "bad state"}


@dataclass
class NodeState:
    """Everything known about one node in this session."""

    node_id: int
    port: str
    tracker: NodeTracker = field(default_factory=NodeTracker)
    unwrap: Unwrapper = field(default_factory=lambda: Unwrapper(CLOCK_PERIOD))
    sync: ClockSync = field(default_factory=lambda: ClockSync(CLOCK_PERIOD, window_s=1.0, history=60))
    oneway: ClockSync = field(default_factory=lambda: ClockSync(CLOCK_PERIOD, window_s=1.0, history=60))
    provisional: float = float("inf")      # min(t_recv - node time): offset before any fit
    hello: object = None
    status: object = None
    samples: int = 0
    bad_samples_frames: int = 0
    last_t_host: float | None = None       # receive time of the last accepted frame
    unplugged_at: float | None = None
    rate_window: deque = field(default_factory=lambda: deque(maxlen=64))   # (t_recv, n samples)
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=512))
    warnings: list = field(default_factory=list)
    _lin_key: tuple | None = field(default=None, repr=False)
    _lin: tuple = field(default=(0.0, US), repr=False)

    def model(self) -> ClockModel | None:
        """Best clock model so far: exchanges, else one-way, else None."""
        if self.sync.ready:
            return self.sync.model
        if self.oneway.ready:
            return self.oneway.model
        return None

    def linear(self) -> tuple[float, float]:
        """``(c0, c1)`` with host time = c0 + c1 * unwrapped node µs (current best model)."""
        key = (self.sync.version, self.oneway.version, self.provisional)
        if key == self._lin_key:   # per frame on the live path: the fits change ~once a second
            return self._lin
        m = self.model()
        if m is None:
            lin = (self.provisional, US)
        else:
            c1 = US * (1.0 + m.drift)
            lin = (m.host_ref + m.offset_s - m.node_ref * c1, c1)
        self._lin_key, self._lin = key, lin
        return lin

    def to_host(self, u: np.ndarray) -> np.ndarray:
        m = self.model()
        if m is not None:
            return m.to_host(u)
        return np.asarray(u, np.float64) * US + self.provisional

    @property
    def clock_offset_s(self) -> float | None:
        m = self.model()
        return None if m is None else float(m.host_ref + m.offset_s - m.node_ref * US)

    @property
    def rate_hz(self) -> float:
        w = self.rate_window
        if len(w) < 2 or w[-1][0] <= w[0][0]:
            return 0.0
        return sum(n for _, n in list(w)[1:]) / (w[-1][0] - w[0][0])

    def reset_clock(self) -> None:
        self.unwrap.reset()
        self.sync.reset()
        self.oneway.reset()
        self.provisional = float("inf")


@dataclass
class PortState:
    name: str
    decoder: FastDecoder = field(default_factory=FastDecoder)        # bulk input (feed_chunks)
    live: StreamDecoder = field(default_factory=LiveDecoder)         # live input (push): per-frame shortcut
    tail: bytes = b""                     # bytes after the last delimiter (unfinished frame)
    nodes: set = field(default_factory=set)
    open: bool = False
    bytes_in: int = 0
    unplugs: int = 0
    index: int = -1                       # position in Pipeline.port_list (C records name it)
    core: object = None                   # C state of the live path (livecore), if in use


class Pipeline:
    """Decode, check, clock, store and align the bytes of any number of ports (no threads).

    ``writer``: a store :class:`FrameWriter` (or None). ``rate_hz``: the session rate of the
    aligned grid. ``on_aligned(k, t_slot, {node: values or None})``: aligned rows (live).
    ``on_reply(port, bytes)``: where to send answers the host owes (time-sync replies).
    ``live_core``: decode and check live input in C (:mod:`~trackside.aggregator.livecore`) when
    the extension is built; False keeps everything in Python (same results, ~3x the CPU)."""

    def __init__(self, writer: FrameWriter | None = None, *, rate_hz: float = 200.0,
                 on_aligned: Callable | None = None, max_wait_s: float = 0.015,
                 clock: Callable[[], float] = time.time, on_reply: Callable[[str, bytes], None] | None = None,
                 keep_samples: bool = False, segments: dict[int, str] | None = None, live_core: bool = True):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.writer = writer
        self.rate_hz = float(rate_hz)
        self.clock = clock
        self.on_reply = on_reply
        self.on_aligned = on_aligned
        self.max_wait_s = max_wait_s
        self.keep_samples = keep_samples
        self.segments = dict(segments or {})
        self.ports: dict[str, PortState] = {}
        self._nodes: dict[int, NodeState] = {}                  # (public: .nodes, lanes synced)
        self.commands = CommandTracker(clock)
        self.aligner: StreamAligner | None = None
        self.sync_pending: dict[tuple[str, int], float] = {}   # (port, req_id) -> host t1 (s)
        self.host_writers: dict[int, WireWriter] = {}
        self.events: deque = deque(maxlen=200)                 # (t, node, kind, detail) for the view
        self.unknown = 0
        self.logs: deque = deque(maxlen=50)
        self.kept: dict[int, list] = {}                         # node -> frames of this boot (keep_samples)
        self.kept_mapped: dict[int, list] = {}                  # node -> [(host t, values)] of past boots
        self.aligned_latency_ms: deque = deque(maxlen=100_000)
        self._lock = threading.RLock()
        self._inbox: deque = deque()                            # (port, bytes, t) from reader threads
        self._core = livecore.LiveCore() if live_core and livecore.AVAILABLE else None
        self.port_list: list[PortState] = []
        self._armed: set[int] = set()                           # nodes whose lane is armed in C
        self._fd_key: dict | None = None
        self._wait = None                                       # lc_wait_params (wait_fds)
        self._scratch = None                                    # bulk decoders' C buffers
        self._fd_reader = None

    @property
    def nodes(self) -> dict[int, NodeState]:
        """Every node of the session, its figures up to date (C lanes synced first)."""
        self.sync_lanes()
        return self._nodes

    # -- ports ------------------------------------------------------------------------------
    def port(self, name: str) -> PortState:
        p = self.ports.get(name)
        if p is None:
            p = self.ports[name] = PortState(name, index=len(self.port_list))
            self.port_list.append(p)
            if self._core is not None:
                p.core = self._core.new_port(p.index)
                p.decoder = livecore.CDecoder(scratch=self._bulk_scratch())   # bulk input, decoded in C
        return p

    def _bulk_scratch(self) -> "livecore.LiveCore":
        """Output buffers shared by the ports' bulk decoders (used under the lock, one at a time)."""
        if self._scratch is None:
            self._scratch = livecore.LiveCore(max_records=16384, max_rows=1 << 17, raw_cap=1 << 21)
        return self._scratch

    def port_event(self, name: str, state: str, t_host: float, detail: str = "") -> None:
        """``open`` / ``close`` (unplug) / ``error`` from a reader."""
        with self._lock:
            p = self.port(name)
            if state == "open":
                p.open = True
                if p.unplugs:
                    self._event(t_host, None, "replug", name)
            elif state == "close":
                p.open = False
                p.unplugs += 1
                # an unfinished frame dies with the cable
                p.decoder = FastDecoder() if p.core is None else livecore.CDecoder(scratch=self._bulk_scratch())
                p.tail = b""
                if p.core is not None:
                    self._core.reset_port(p.core)
                    self._core.disarm_port(p.index)
                    for nid in p.nodes & self._armed:
                        self._core.sync(self._nodes[nid])
                    self._armed -= p.nodes
                for nid in p.nodes:
                    self._nodes[nid].unplugged_at = t_host
                self._event(t_host, None, "unplug", f"{name}: {detail}")
            elif state == "error":
                self._event(t_host, None, "port_error", f"{name}: {detail}")

    def _event(self, t: float, node: int | None, kind: str, detail: str = "") -> None:
        self.events.append((t, node, kind, detail))
        if self.writer is not None:
            self.writer.event(kind, t, node_id=node, detail=detail)

    # -- bytes in ------------------------------------------------------------------------------
    def feed(self, name: str, data: bytes, t_host: float) -> None:
        """Bytes received on port ``name`` at host time ``t_host`` (a live read: decoded frame by
        frame with the reference decoder, cheapest for small inputs; see :meth:`feed_chunks`)."""
        self._process_run([(name, bytes(data), t_host)])

    def feed_chunks(self, name: str, data: bytes, ends: np.ndarray | None, times: np.ndarray) -> None:
        """Many chunks at once: ``data`` is their concatenation, ``ends`` the end offset of each
        chunk (None: one chunk) and ``times`` their receive times (a frame takes the time of the
        chunk holding its delimiter)."""
        with self._lock:
            p = self.port(name)
            p.bytes_in += len(data)
            res = p.decoder.feed(data)
            buf = p.tail + bytes(data)
            shift = len(p.tail)
            last = bytes(data).rfind(b"\x00")
            if last >= 0:
                p.tail = bytes(data[last + 1:])
            else:
                p.tail = buf
                if len(p.tail) > p.decoder.max_frame:   # the decoder dropped it too (oversize)
                    p.tail = b""
            if ends is None:
                t_of = lambda pos: times[0]  # noqa: E731
                frame_t = np.full(len(res.frame_end), float(times[0]))
            else:
                t_of = lambda pos: float(times[min(np.searchsorted(ends, pos, side="right"), len(times) - 1)])  # noqa: E731
                frame_t = times[np.minimum(np.searchsorted(ends, res.frame_end, side="right"), len(times) - 1)]
            first_row = np.zeros(len(res.frame_n) + 1, np.int64)
            np.cumsum(res.frame_n, out=first_row[1:])
            msg_t = [t_of(pos) for pos in res.message_end]
            self._bulk_all(p, res, frame_t, msg_t, first_row, buf, shift)
            now = self.clock() if ends is None else float(times[-1])
            if self.aligner is not None:
                self.aligner.poll(now)

    def _in_order(self, p: PortState, res, fidx: np.ndarray, midx: list, frame_t: np.ndarray, msg_t: list,
                  first_row: np.ndarray, buf: bytes, shift: int) -> None:
        """Frames ``fidx`` and messages ``midx`` of a decode result, one by one in stream order."""
        fe = res.frame_end
        me = res.message_end
        fi = 0
        fidx = np.asarray(fidx)
        for j in midx:
            pos = me[j]
            k = fi + int(np.searchsorted(fe[fidx[fi:]], pos))
            if k > fi:
                self._frames_one_by_one(p, fidx[fi:k], res, frame_t, first_row, buf, shift)
                fi = k
            self._message(p, res.messages[j], msg_t[j], buf, shift + pos)
        if fi < len(fidx):
            self._frames_one_by_one(p, fidx[fi:], res, frame_t, first_row, buf, shift)

    def _bulk_all(self, p: PortState, res, frame_t: np.ndarray, msg_t: list, first_row: np.ndarray, buf: bytes,
                  shift: int, frames: slice = slice(None), messages: range | None = None) -> None:
        """Per node, frames and messages together in stream order: clean runs vectorised, anything
        that needs a decision (first frame, duplicate, late frame, reboot, unplug, FIFO gap) alone.
        ``frames`` / ``messages``: the part of ``res`` that came from port ``p``."""
        f_all = np.arange(len(res.frame_end))[frames]
        m_all = range(len(res.messages)) if messages is None else messages
        if len(f_all) + len(m_all) <= 24:
            # a few frames (live, per tick): plain Python beats numpy's per-call overhead
            self._in_order(p, res, f_all, list(m_all), frame_t, msg_t, first_row, buf, shift)
            return
        fn_sub = res.frame_node[f_all].astype(np.int64)
        by_node: dict[int, list] = {}
        for j in m_all:
            by_node.setdefault(res.messages[j].node_id, []).append(j)
        for nid in sorted(set(np.unique(fn_sub).tolist()) | set(by_node)):
            fidx = f_all[fn_sub == nid]
            midx = np.array(by_node.get(nid, []), np.int64)
            msgs = [res.messages[j] for j in midx.tolist()]
            pos = np.concatenate([res.frame_end[fidx], np.array([res.message_end[j] for j in midx.tolist()], np.int64)])
            order = np.argsort(pos, kind="stable")
            is_frame = np.concatenate([np.ones(len(fidx), bool), np.zeros(len(midx), bool)])[order]
            ref = np.concatenate([fidx, midx])[order]
            seq = np.concatenate([res.frame_seq[fidx].astype(np.int64), np.array([m.seq for m in msgs], np.int64)])[order]
            tus = np.concatenate([res.frame_t_us[fidx].astype(np.int64),
                                  np.array([m.t_us for m in msgs], np.int64)])[order]
            th = np.concatenate([frame_t[fidx].astype(np.float64),
                                 np.array([msg_t[j] for j in midx.tolist()], np.float64)])[order]
            odd = np.concatenate([(res.frame_flags[fidx] & C.F_GAP) != 0,
                                  np.array([m.type == C.T_COMMAND for m in msgs], bool)])[order]
            node = self._node(nid, p)
            tr = node.tracker
            start = 0
            n_items = len(ref)
            while start < n_items:
                k = 0
                if tr.last_seq is not None and tr.last_t_node is not None and tr.last_t_host is not None \
                        and node.unplugged_at is None:
                    d = np.diff(seq[start:], prepend=tr.last_seq) % SEQ_PERIOD
                    step = np.diff(tus[start:], prepend=tr.last_t_node) % CLOCK_PERIOD
                    step[step >= CLOCK_PERIOD // 2] -= CLOCK_PERIOD
                    host_step = np.diff(th[start:], prepend=tr.last_t_host) * 1e6
                    bad = (d == 0) | (d >= SEQ_PERIOD // 2) | odd[start:] | (step < -tr.reboot_jump_us) | \
                        (step - host_step > tr.reboot_jump_us)
                    k = int(np.argmax(bad)) if bad.any() else len(bad)
                if k == 0:      # this one needs a decision: judge it alone
                    r = int(ref[start])
                    if is_frame[start]:
                        self._frames_one_by_one(p, [r], res, frame_t, first_row, buf, shift)
                    else:
                        self._message(p, res.messages[r], msg_t[r], buf, shift + res.message_end[r])
                    start += 1
                    continue
                sl = slice(start, start + k)
                self._bulk(p, node, d[:k], seq[sl], tus[sl], th[sl], ref[sl][is_frame[sl]],
                           ref[sl][~is_frame[sl]], res, frame_t, msg_t, first_row, buf, shift)
                start += k

    def _bulk(self, p: PortState, node: NodeState, d: np.ndarray, seq: np.ndarray, tus: np.ndarray, th: np.ndarray,
              fidx: np.ndarray, midx: np.ndarray, res, frame_t: np.ndarray, msg_t: list, first_row: np.ndarray,
              buf: bytes, shift: int) -> None:
        """Accept a clean run of one node's items (seq steps ``d`` all forward, no clock jump)."""
        nid = node.node_id
        tr = node.tracker
        writer = self.writer
        missing = d - 1
        if writer is not None:
            for k in np.flatnonzero(missing).tolist():
                before = th[k - 1] if k else tr.last_t_host
                writer.gap(nid, int((seq[k] - missing[k]) % SEQ_PERIOD), int(missing[k]), float(before), float(th[k]),
                           "seq")
        tr.lost += int(missing.sum())
        tr.frames += len(seq)
        tr.last_seq = int(seq[-1])
        tr.last_t_node = int(tus[-1])
        tr.last_t_host = float(th[-1])
        tr._recent = set(seq[-32:].tolist())
        node.last_t_host = float(th[-1])
        if len(fidx):
            fth = frame_t[fidx].astype(np.float64)
            ftus = res.frame_t_us[fidx].astype(np.int64)
            n = res.frame_n[fidx].astype(np.int64)
            per = res.frame_period_us[fidx].astype(np.int64)
            u_first = node.unwrap.batch(ftus)
            u_last = u_first + (n - 1) * per
            one_way = node.oneway.one_way
            for a, b in zip(u_last.tolist(), fth.tolist()):
                one_way(a, b, unwrapped=True)
            node.provisional = min(node.provisional, float((fth - u_last * US).min()))
            total = int(n.sum())
            node.samples += total
            node.rate_window.append((float(fth[-1]), total))
            if writer is not None:
                fe = res.frame_end
                fseq = res.frame_seq
                for k, i in enumerate(fidx.tolist()):
                    writer.frame(nid, int(fseq[i]), int(ftus[k]), float(fth[k]), C.T_SAMPLES,
                                 self._raw(buf, shift + int(fe[i])), nsamples=int(n[k]))
            if self.keep_samples:
                self.kept.setdefault(nid, []).append((u_first, per, n, first_row[fidx], res.values))
            if self.aligner is not None:
                k = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
                u = np.repeat(u_first, n) + np.repeat(per, n) * k
                t_s = node.to_host(u)
                rows = np.repeat(first_row[fidx], n) + k
                t_rx = np.repeat(fth, n)
                node.latency_ms.append((float(fth[-1]) - float(t_s[-1])) * 1e3)
                add = self.aligner.add
                vals = res.values
                for t1, r, tr_ in zip(t_s.tolist(), rows.tolist(), t_rx.tolist()):
                    add(nid, t1, (vals, r, tr_))
        for j in midx.tolist():
            self._message_body(p, node, res.messages[j], msg_t[j], buf, shift + res.message_end[j])

    def push(self, name: str, data: bytes, t_host: float) -> None:
        """Live input from a reader thread: queued (cheap); :meth:`process_pending` decodes."""
        self._inbox.append((name, data, t_host))

    def process_pending(self) -> int:
        """Decode everything queued by :meth:`push` in ONE vectorised call for all ports (each
        port's bytes cut at its last frame delimiter, the rest kept for next time); returns the
        number of bytes processed."""
        inbox = self._inbox
        items = []
        try:
            while True:
                items.append(inbox.popleft())
        except IndexError:
            pass
        if not items:
            return 0
        # port events (unplug/replug) are processed in order with the bytes around them
        done = 0
        run: list = []
        for it in items:
            if it[1] is None:
                done += self._process_run(run)
                run = []
                self.port_event(it[0], it[3], it[2], it[4])
            else:
                run.append(it)
        return done + self._process_run(run)

    def read_fds(self, fds: dict[int, str], t_host: float) -> list[tuple[str, str]] | None:
        """Live input read in C: every readable fd of ``fds`` (fd -> port name) read once, now,
        and processed (queued port events first). Returns ``(port, why)`` for the ports whose
        read failed (unplugged), or None without the C path (the caller reads in Python)."""
        if self._core is None:
            return None
        if self._inbox:
            self.process_pending()
        with self._lock:
            self._fd_reader_for(fds)
            rd = self._fd_reader
            failed = 0
            while True:
                r = rd.read(t_host)
                if r == -2:                 # no poll/read here (Windows): the caller reads
                    return None
                failed += r >> 1
                self._drain_core()
                if not r & 1:
                    break
            return self._failed_ports(fds) if failed else []

    def _fd_reader_for(self, fds: dict[int, str]) -> None:
        if fds is not self._fd_key:     # the reader rebuilds its dict when a port opens/drops
            if self._fd_reader is not None:
                self._fd_reader.close()
            self._fd_reader = self._core.reader(list(fds), [self.port(name).core for name in fds.values()])
            self._fd_key = fds

    def _failed_ports(self, fds: dict[int, str]) -> list[tuple[str, str]]:
        names = list(fds.values())
        return [(names[i], "end of file" if st == -1 else os.strerror(st)) for i, st in self._fd_reader.failed()]

    def wait_fds(self, fds: dict[int, str], min_period: float, max_block: float) -> list[tuple[str, str]] | None:
        """Live input read and decoded in C every ``min_period`` s (GIL released) until there is
        Python work: a frame its lane did not take, the live aligner's next row complete or due,
        or ``max_block`` s elapsed; then processed here. Returns ``(port, why)`` of failed reads
        (unplugged), or None when this is not available (no C path, or a clock other than
        time.time: the caller then ticks itself)."""
        if self._core is None or self.clock is not time.time:
            return None
        if self._inbox:
            self.process_pending()
        with self._lock:
            self._fd_reader_for(fds)
            w = self._wait
            if w is None:
                w = self._wait = self._core.wait_params()
            w.min_period = min_period
            w.max_block = max_block
            w.py_delay = 0.01
            w.rows_wake = self.on_aligned is not None
            r, t = self._fd_reader.wait(w)
            if r == -2:
                return None
            self._drain_core()
            if self.aligner is not None:
                self.aligner.poll(time.time())
            return self._failed_ports(fds) if r >> 1 else []

    def push_event(self, name: str, state: str, t_host: float, detail: str = "") -> None:
        """A port event from a reader thread, queued in order with the bytes (see :meth:`push`)."""
        self._inbox.append((name, None, t_host, state, detail))

    def _process_run(self, items: list) -> int:
        """Live chunks, in arrival order: split at frame delimiters, each frame through the port's
        reference decoder (pure Python: for a few frames per tick far cheaper than numpy)."""
        if not items:
            return 0
        if self._core is not None:
            return self._process_run_core(items)
        total = 0
        with self._lock:
            for name, data, t in items:
                p = self.port(name)
                p.bytes_in += len(data)
                total += len(data)
                buf = p.tail + data if p.tail else data
                dec = p.live
                frame = dec.frame
                start = 0
                find = buf.find
                while True:
                    i = find(b"\x00", start)
                    if i < 0:
                        break
                    if i > start:
                        fr = buf[start:i + 1]
                        out: list = []
                        frame(buf[start:i], out)     # complete frame: skip feed()'s buffering
                        for m in out:
                            if m.type == C.T_SAMPLES:
                                self._live_batch(p, m, t, fr)
                            else:
                                self._message(p, m, t, raw=fr)
                    start = i + 1
                p.tail = buf[start:]
                if len(p.tail) > dec.max_frame:
                    dec.feed(p.tail)          # counted as oversize and dropped by the decoder
                    p.tail = b""
            if self.aligner is not None:
                self.aligner.poll(self.clock())
        return total

    def _process_run_core(self, items: list) -> int:
        """The live chunks through the C path: frames split, decoded and (clean ones) checked in C,
        then the records in stream order here."""
        core = self._core
        total = 0
        with self._lock:
            for name, data, t in items:
                p = self.port(name)
                n = len(data)
                total += n                  # (counted in p.core.bytes_in)
                done = core.feed(p.core, data, t)
                while done < n:             # output full: take what is there, feed the rest
                    self._drain_core()
                    data = data[done:]
                    n = len(data)
                    done = core.feed(p.core, data, t)
            self._drain_core()
            if self.aligner is not None:
                self.aligner.poll(self.clock())
        return total

    def _drain_core(self) -> None:
        """Act on the C records: lane records need no decision (stored, kept, aligned); the
        others are judged here in stream order, then their nodes' lanes are armed again. Plain
        Python over a few tuples per tick: cheaper than numpy on a cold cache."""
        recs, rows, raw = self._core.take()
        if not recs:
            return
        LANE = livecore.LANE
        writer = self.writer
        keep = self.keep_samples
        if keep:
            kept_rows = rows.array()
        touched = None
        to_store: list = []
        for rec in recs:
            kind, nid, period, n, r0, u0 = rec[1], rec[2], rec[5], rec[7], rec[8], rec[15]
            if kind == LANE:                # sequence, clock, counters and aligner done in C
                to_store.append(rec)
                if keep:
                    self.kept.setdefault(nid, []).append((u0, period, n, r0, kept_rows))
                continue
            if to_store and writer is not None:     # the store keeps stream order
                writer.frames_deferred(_lane_rows(to_store, raw))
            to_store = []
            if touched is None:
                touched = set()
            self._core_record(rec, rows, raw, touched)
        if to_store and writer is not None:
            writer.frames_deferred(_lane_rows(to_store, raw))
        if touched:
            core = self._core
            armed = self._armed
            for nid in touched - armed:
                node = self._nodes.get(nid)
                p = None if node is None else self.ports.get(node.port)
                if p is not None and p.core is not None and core.arm(node, p.index):
                    armed.add(nid)

    def _core_record(self, rec: tuple, rows: np.ndarray, raw: bytes, touched: set) -> None:
        """A C record its lane did not take: judged by the Python path."""
        pi, kind, nid, seq, t_us, period, flags, n, r0, off, ln, _typ, _ver, _end, t, _u, _c0, _c1 = rec
        p = self.port_list[pi]
        armed = self._armed
        core = self._core
        fr = raw[off:off + ln]
        if nid >= 0:
            if nid in armed:                # the C side disarmed it at this frame
                core.sync(self._nodes[nid])
                armed.discard(nid)
            touched.add(nid)
        else:                               # undecodable bytes disarmed the whole port
            for x in p.nodes & armed:
                core.sync(self._nodes[x])
            armed -= p.nodes
            touched |= p.nodes
        if kind == livecore.BATCH:
            node = self._node(nid, p)
            if self._judge(node, seq, t_us, flags, t):
                self._accept_batch(node, seq, t_us, period, n, rows, r0, t, fr)
            return
        out: list = []
        p.live.frame(fr[:-1], out)
        for m in out:
            if m.node_id in armed:          # recovered from another port's bad bytes: stop its lane
                core.disarm(m.node_id)
                core.sync(self._nodes[m.node_id])
                armed.discard(m.node_id)
            touched.add(m.node_id)
            if m.type == C.T_SAMPLES:
                self._live_batch(p, m, t, fr)
            else:
                self._message(p, m, t, raw=fr)

    def sync_lanes(self) -> None:
        """Bring the Python state of every node with an armed C lane up to date (counters, clock
        window, latencies): before reading node figures (live view, end of recording)."""
        if self._core is None:
            return
        with self._lock:
            for nid in self._armed:
                self._core.sync(self._nodes[nid])

    def _judge(self, node: NodeState, seq: int, t_us: int, flags: int, t_recv: float) -> bool:
        """Sequence check of one sample batch, with what broke the stream recorded; False: drop it."""
        v = node.tracker.check(seq, t_us, clock_period=CLOCK_PERIOD, t_host=t_recv)
        if not v.accept:
            return False
        if v.missing or v.reboot or node.unplugged_at is not None:
            self._continuity(node, v, t_recv)
        else:                       # nothing broke: what _continuity would do
            node.last_t_host = t_recv
        if flags & C.F_GAP:
            self._event(t_recv, node.node_id, "sample_gap", "node reports lost samples (FIFO overflow)")
        return True

    def _live_batch(self, p: PortState, m, t_recv: float, raw: bytes) -> None:
        """One sample batch decoded by the reference decoder (live path)."""
        node = self._node(m.node_id, p)
        if self._judge(node, m.seq, m.t_us, m.flags, t_recv):
            self._accept_batch(node, m.seq, m.t_us, m.period_us, len(m.samples), m.samples, 0, t_recv, raw)

    def _accept_batch(self, node: NodeState, seq: int, t_us: int, period: int, n: int, vals, r0: int,
                      t_recv: float, raw: bytes, u_first: int | None = None) -> None:
        """An accepted sample batch (rows ``vals[r0:r0 + n]``): clock, store, keep, align.
        ``u_first``: its first sample's unwrapped node time when already known (C lane)."""
        nid = node.node_id
        if u_first is None:
            u_first = node.unwrap(t_us)
        u_last = u_first + (n - 1) * period
        node.oneway.one_way(u_last, t_recv, unwrapped=True)
        off = t_recv - u_last * US
        if off < node.provisional:
            node.provisional = off
        node.samples += n
        node.rate_window.append((t_recv, n))
        if self.writer is not None:
            self.writer.frame(nid, seq, t_us, t_recv, C.T_SAMPLES, raw, nsamples=n)
        if self.keep_samples:
            arr = vals if isinstance(vals, np.ndarray) else (
                vals.array() if isinstance(vals, livecore.SampleRows) else np.array(vals, np.int16))
            self.kept.setdefault(nid, []).append((u_first, period, n, r0, arr))
        c0, c1 = node.linear()
        node.latency_ms.append((t_recv - (c0 + u_last * c1)) * 1e3)
        if self.aligner is not None:
            add = self.aligner.add
            for k in range(n):
                add(nid, c0 + (u_first + k * period) * c1, (vals, r0 + k, t_recv))

    def _raw(self, buf: bytes, end: int) -> bytes:
        start = buf.rfind(b"\x00", 0, end) + 1
        return buf[start:end + 1]

    def _node(self, nid: int, p: PortState) -> NodeState:
        n = self._nodes.get(nid)
        if n is None:
            n = self._nodes[nid] = NodeState(nid, p.name)
            if self.writer is not None:
                self.writer.node(nid, port=p.name)
        if nid not in p.nodes:
            p.nodes.add(nid)
            n.port = p.name
        return n

    def _frames_one_by_one(self, p: PortState, idx: np.ndarray, res, frame_t: np.ndarray, first_row: np.ndarray,
                           buf: bytes, shift: int) -> None:
        """Sample frames ``idx`` (of one decode result), each judged on its own."""
        fn, fs, ft, fper, fflags, fcount = (res.frame_node, res.frame_seq, res.frame_t_us, res.frame_period_us,
                                            res.frame_flags, res.frame_n)
        writer = self.writer
        idx = np.asarray(idx)
        for i, nid, t_recv, t_us, n, period, seq, flags in zip(
                idx.tolist(), fn[idx].tolist(), frame_t[idx].tolist(), ft[idx].tolist(), fcount[idx].tolist(),
                fper[idx].tolist(), fs[idx].tolist(), fflags[idx].tolist()):
            node = self._node(nid, p)
            v = node.tracker.check(seq, t_us, clock_period=CLOCK_PERIOD, t_host=t_recv)
            if not v.accept:
                continue
            self._continuity(node, v, t_recv)
            if flags & C.F_GAP:
                self._event(t_recv, nid, "sample_gap", "node reports lost samples (FIFO overflow)")
            node.last_t_host = t_recv
            # node clock: unwrap the first and last sample time of the frame
            u_first = node.unwrap(t_us)
            u_last = u_first + (n - 1) * period
            node.oneway.one_way(u_last, t_recv, unwrapped=True)
            off = t_recv - u_last * US
            if off < node.provisional:
                node.provisional = off
            node.samples += n
            node.rate_window.append((t_recv, n))
            r0 = int(first_row[i])
            if writer is not None:
                writer.frame(nid, seq, t_us, t_recv, C.T_SAMPLES, self._raw(buf, shift + int(res.frame_end[i])),
                             nsamples=n)
            if self.keep_samples:
                self.kept.setdefault(nid, []).append((u_first, period, n, r0, res.values))
            c0, c1 = node.linear()
            node.latency_ms.append((t_recv - (c0 + u_last * c1)) * 1e3)
            if self.aligner is not None:
                add = self.aligner.add
                vals = res.values
                for k in range(n):
                    add(nid, c0 + (u_first + k * period) * c1, (vals, r0 + k, t_recv))

    def _close_epoch(self, node: NodeState) -> None:
        """Before a node's clock restarts: map its kept samples with the model of that boot."""
        parts = self.kept.get(node.node_id)
        if not parts:
            return
        node.sync.flush()
        node.oneway.flush()
        th, vals = self._map_parts(node, parts)
        self.kept_mapped.setdefault(node.node_id, []).append((th, vals))
        self.kept[node.node_id] = []

    def _map_parts(self, node: NodeState, parts: list) -> tuple[np.ndarray, np.ndarray]:
        """Host times and values of kept parts ``(u_first, period, n, first row, values)``
        (scalars for one frame or arrays for a bulk of frames)."""
        u0 = np.concatenate([np.atleast_1d(p[0]) for p in parts]).astype(np.int64)
        per = np.concatenate([np.atleast_1d(p[1]) for p in parts]).astype(np.int64)
        cnt = np.concatenate([np.atleast_1d(p[2]) for p in parts]).astype(np.int64)
        k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        u = np.repeat(u0, cnt) + np.repeat(per, cnt) * k
        vals = []
        for p in parts:
            r0 = np.atleast_1d(p[3]).astype(np.int64)
            c = np.atleast_1d(p[2]).astype(np.int64)
            rows = np.repeat(r0, c) + (np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c))
            vals.append(p[4][rows])
        return node.to_host(u), np.concatenate(vals)

    def sample_times(self, nid: int) -> np.ndarray:
        """Host times of every kept sample of a node (``keep_samples=True``), final clock models."""
        node = self._nodes[nid]
        node.sync.flush()
        node.oneway.flush()
        out = [th for th, _ in self.kept_mapped.get(nid, [])]
        if self.kept.get(nid):
            out.append(self._map_parts(node, self.kept[nid])[0])
        return np.concatenate(out) if out else np.zeros(0)

    def _continuity(self, node: NodeState, v, t_recv: float) -> None:
        """Record what broke the stream before this accepted frame: reboot, unplug, lost frames."""
        nid = node.node_id
        writer = self.writer
        before = node.last_t_host if node.last_t_host is not None else t_recv
        if v.reboot:
            self._close_epoch(node)
            node.reset_clock()
            self._event(t_recv, nid, "reboot", "node clock restarted")
            if writer is not None:
                writer.gap(nid, None, -1, before, t_recv, "reboot")
        cause = "seq"
        if node.unplugged_at is not None:
            cause = "unplug"
            if v.missing == 0 and not v.reboot and writer is not None:
                writer.gap(nid, None, 0, before, t_recv, "unplug")
            node.unplugged_at = None
        if v.missing and writer is not None:
            writer.gap(nid, v.seq_first_missing, v.missing, before, t_recv, cause)
        node.last_t_host = t_recv

    def _message(self, p: PortState, m, t_recv: float, buf: bytes = b"", end: int = 0, raw: bytes | None = None) -> None:
        nid = m.node_id
        typ = m.type
        if typ in (C.T_COMMAND,):            # echo of our own command (loopback): ignore
            return
        node = self._node(nid, p)
        v = node.tracker.check(m.seq, m.t_us, clock_period=CLOCK_PERIOD, t_host=t_recv)
        if not v.accept:
            return
        self._continuity(node, v, t_recv)
        self._message_body(p, node, m, t_recv, buf, end, raw)

    def _message_body(self, p: PortState, node: NodeState, m, t_recv: float, buf: bytes, end: int,
                      raw: bytes | None = None) -> None:
        """Store and act on an accepted (sequence-checked) message."""
        nid = m.node_id
        typ = m.type
        if typ == C.T_HELLO:
            node.hello = m
            if self.writer is not None:
                self.writer.node(nid, port=p.name, hw=str(m.chip), fw=str(m.fw_version))
        if self.writer is not None:
            self.writer.frame(nid, m.seq, m.t_us, t_recv, typ, raw if raw is not None else self._raw(buf, end),
                              nsamples=0)
        if typ == C.T_STATUS:
            prev = node.status
            node.status = m
            if prev is not None and m.fifo_overflows > prev.fifo_overflows:
                self._event(t_recv, nid, "fifo_overflow", f"{m.fifo_overflows - prev.fifo_overflows} new")
        elif typ == C.T_TIMESYNC_REPLY:
            t1 = self.sync_pending.get((p.name, m.req_id))
            if t1 is not None and abs(m.t1 - int(t1 * 1e6)) <= 1:
                mid = (m.t2 + m.t3) // 2
                u = node.unwrap(mid & 0xFFFFFFFF)
                node.sync.exchange(t1, u, t_recv, hold_s=(m.t3 - m.t2) * US, unwrapped=True)
        elif typ == C.T_TIMESYNC_REQ:
            u = node.unwrap(m.t1 & 0xFFFFFFFF)
            node.oneway.one_way(u, t_recv, unwrapped=True)
            if self.on_reply is not None:
                t2 = int(t_recv * 1e6)
                t3 = int(self.clock() * 1e6)
                w = self.host_writer(nid)
                self.on_reply(p.name, w.timesync_reply(t3 & 0xFFFFFFFF, m.req_id, m.t1, t2, t3))
        elif typ in (C.T_ACK, C.T_NACK):
            ok = typ == C.T_ACK
            detail = "" if ok else NACK_ERRORS.get(m.error, f"error {m.error}")
            cmd = self.commands.answer(nid, m.cmd_seq, ok, detail)
            if not ok:
                self._event(t_recv, nid, "nack", f"cmd {m.cmd}: {detail}")
            elif cmd is None:
                self._event(t_recv, nid, "stray_ack", f"cmd {m.cmd}")
        elif typ == C.T_LOG:
            self.logs.append((t_recv, nid, m.level, m.text))
            if m.level >= C.LOG_WARN:
                self._event(t_recv, nid, "node_log", m.text)
        elif typ == C.T_HELLO:
            pass
        else:
            self.unknown += 1

    # -- host -> node -------------------------------------------------------------------------
    def host_writer(self, nid: int) -> WireWriter:
        w = self.host_writers.get(nid)
        if w is None:
            w = self.host_writers[nid] = WireWriter(nid)
        return w

    def sync_request(self, port: str, req_id: int, t1: float, node_id: int = C.NODE_BROADCAST) -> bytes:
        """Wire bytes of a time-sync request (remembered so the reply can be matched)."""
        with self._lock:
            self.sync_pending[(port, req_id)] = t1
            if len(self.sync_pending) > 256:
                for k in list(self.sync_pending)[:128]:
                    del self.sync_pending[k]
            t1_us = int(t1 * 1e6)
            return self.host_writer(node_id).timesync_request(t1_us & 0xFFFFFFFF, req_id, t1_us)

    # -- alignment ------------------------------------------------------------------------------
    def start_aligner(self, t0: float) -> None:
        """Align live from host time ``t0`` at the session rate (in C with the C path)."""
        if self._core is not None:
            self.aligner = livecore.CAligner(self._core, self.rate_hz, t0, max_wait_s=self.max_wait_s,
                                             deliver=self.on_aligned, latency=self.aligned_latency_ms.extend)
            return

        def emit(k, t_slot, row):
            now = self.clock()
            for item in row.values():
                if item is not None:
                    self.aligned_latency_ms.append((now - item[2]) * 1e3)
            if self.on_aligned is not None:
                self.on_aligned(k, t_slot, {n: (None if it is None else it[0][it[1]]) for n, it in row.items()})
        self.aligner = StreamAligner(self.rate_hz, t0, emit, max_wait_s=self.max_wait_s)

    def poll(self) -> None:
        """Emit overdue aligned rows and expire commands (call a few hundred times a second)."""
        with self._lock:
            if self.aligner is not None:
                self.aligner.poll(self.clock())
            if self.commands._pending:
                for c in self.commands.expire():
                    self._event(self.clock(), c.node_id, "timeout", f"{c.name} not answered")

    def finish(self) -> None:
        """Write node counters and clock fits to the store (end of recording)."""
        self.sync_lanes()
        with self._lock:
            for nid, n in self._nodes.items():
                n.sync.flush()
                n.oneway.flush()
                m = n.model()
                if self.writer is not None:
                    self.writer.node_stats(
                        nid, frames=n.tracker.frames, samples=n.samples, lost=n.tracker.lost,
                        duplicates=n.tracker.duplicates, reboots=n.tracker.reboots,
                        clock_offset_s=n.clock_offset_s, clock_drift_ppm=None if m is None else m.drift_ppm,
                        residual_us=None if m is None or m.residual_s != m.residual_s else m.residual_s * 1e6)
            if self.writer is not None:
                st = self.bad_frames()
                bad = sum(st.get(k, 0) for k in ("crc_errors", "cobs_errors", "truncated", "oversize", "bad_major",
                                                  "malformed"))
                if bad:
                    self.writer.event("bad_frames", self.clock(), detail=str(bad))

    def bad_frames(self, port: str | None = None) -> dict:
        """Decoder counters summed over ports (or of one port)."""
        out: dict[str, int] = {}
        chosen = [p for name, p in self.ports.items() if port is None or name == port]
        stats = [d.stats() for p in chosen for d in (p.decoder, p.live)]
        stats += [livecore.LiveCore.port_stats(p.core) for p in chosen if p.core is not None]
        for st in stats:
            for k, v in st.items():
                out[k] = out.get(k, 0) + v
        return out

    @property
    def aligned_rows(self) -> int:
        """Rows the live aligner emitted so far."""
        return 0 if self.aligner is None else self.aligner.emitted

    def lane_frames(self) -> int:
        """Sample batches judged by the C side (its lanes) so far; 0 without the C path."""
        self.sync_lanes()
        return sum(int(p.core.lane_frames) for p in self.port_list if p.core is not None)

    def aligned(self) -> Aligned:
        """Align everything kept (``keep_samples=True``) with the final clock models."""
        host, vals, resid = {}, {}, {}
        for nid in sorted(set(self.kept) | set(self.kept_mapped)):
            node = self._nodes[nid]
            node.sync.flush()
            node.oneway.flush()
            chunks = list(self.kept_mapped.get(nid, []))
            if self.kept.get(nid):
                chunks.append(self._map_parts(node, self.kept[nid]))
            host[nid] = np.concatenate([c[0] for c in chunks])
            vals[nid] = np.concatenate([c[1] for c in chunks])
            m = node.model()
            resid[nid] = float("nan") if m is None else m.residual_s
        return align(host, vals, self.rate_hz, clock_residual_s=resid)


def _lane_rows(recs: list, raw: bytes) -> Callable[[int], list]:
    """Store rows of C lane records, built later by the store's writer thread (batched there)."""
    def build(sid: int) -> list:
        return [(sid, r[2], r[3], r[4], r[14], C.T_SAMPLES, r[7], raw[r[9]:r[9] + r[10]]) for r in recs]
    return build


def process_trace(trace, pipeline: Pipeline | None = None, *, name: str | None = None) -> Pipeline:
    """Run a whole trace (all its RX chunks, with their receive times) through a pipeline."""
    from trackside.aggregator.traces import EVENT, RX, TX
    import json

    pl = pipeline or Pipeline(keep_samples=True)
    port = name or trace.port or str(trace.path)
    t0 = trace.t0
    run_data: list[bytes] = []
    run_t: list[float] = []

    def flush() -> None:
        if run_data:
            ends = np.cumsum([len(d) for d in run_data])
            pl.feed_chunks(port, b"".join(run_data), ends, np.asarray(run_t))
            run_data.clear()
            run_t.clear()

    from tsproto.decoder import StreamDecoder

    txdec = StreamDecoder()
    for tag, t_ns, payload in trace.records:
        if tag == TX:
            for m in txdec.feed(payload):
                if m.type == C.T_TIMESYNC_REQ:
                    pl.sync_pending[(port, m.req_id)] = m.t1 * 1e-6
        elif tag == RX:
            run_data.append(payload)
            run_t.append(t0 + t_ns * 1e-9)
        elif tag == EVENT:
            flush()
            ev = json.loads(payload).get("event")
            if ev in ("open", "close"):
                pl.port_event(port, ev, t0 + t_ns * 1e-9)
    flush()
    return pl


def aligned_from_store(store, sid: int) -> dict[str, np.ndarray]:
    """Re-run a stored session's raw frames (with their receive times) through the pipeline and
    align all nodes at the session rate: ``aligned_t`` (K,), ``aligned_node<N>`` (K, 13) float32
    with NaN where a node has no sample (never filled in), ``aligned_valid_node<N>`` (K,) and
    ``align_error_us_node<N>`` (sample-to-slot RMS + clock fit residual). Clocks are fitted from
    the frames' receive times (lower envelope); time-sync requests are not stored."""
    info = store.session(sid)
    rows = list(store.frames(sid))
    if not rows:
        return {}
    raws = [bytes(r[6]) for r in rows]
    ends = np.cumsum([len(r) for r in raws])
    times = np.array([r[3] for r in rows])
    pl = Pipeline(rate_hz=info.rate_hz, keep_samples=True)
    pl.feed_chunks("store", b"".join(raws), ends, times)
    if not pl.kept and not pl.kept_mapped:
        return {}
    al = pl.aligned()
    out: dict[str, np.ndarray] = {"aligned_t": al.times}
    for nid in al.values:
        out[f"aligned_node{nid}"] = al.values[nid].astype(np.float32)
        out[f"aligned_valid_node{nid}"] = al.valid[nid]
        out[f"align_error_us_node{nid}"] = np.array(al.error_s[nid] * 1e6)
    return out


class Aggregator:
    """Live recording: one reader thread for all serial ports feeding a :class:`Pipeline` in the
    same thread, time-sync requests every ``sync_interval_s``, commands with acks and timeouts,
    and the session store (its own writer thread)."""

    def __init__(self, ports: Sequence[str], *, writer: FrameWriter | None = None, rate_hz: float = 200.0,
                 baudrate: int = 921600, sync_interval_s: float = 0.5, on_aligned: Callable | None = None,
                 trace_dir=None, max_wait_s: float = 0.015, clock: Callable[[], float] = time.time,
                 align_live: bool = True, tick_s: float = 0.003):
        self.clock = clock
        self.pipeline = Pipeline(writer, rate_hz=rate_hz, on_aligned=on_aligned, max_wait_s=max_wait_s,
                                 clock=clock, on_reply=self._send)
        self.sync_interval_s = sync_interval_s
        self.ports = list(dict.fromkeys(ports))
        self.traces: dict = {}
        self._req = 0
        self._align_live = align_live
        self._next_sync = 0.0
        for port in self.ports:
            if trace_dir is not None:
                from pathlib import Path

                from trackside.aggregator.traces import TraceWriter
                safe = port.replace("/", "_").replace(":", "_").strip("_")
                self.traces[port] = TraceWriter(Path(trace_dir) / f"{safe}.tstrace", port=port, baudrate=baudrate)
        # without traces to keep, the bytes are read and decoded in C (Pipeline.wait_fds: Python
        # runs only when there is work; read_fds: a Python tick)
        c_path = not self.traces
        self.reader = MultiPortReader(self.ports, self._on_bytes, on_state=self._on_state, on_idle=self._on_idle,
                                      baudrate=baudrate, min_period=tick_s, clock=clock,
                                      read_fds=self.pipeline.read_fds if c_path else None,
                                      wait_fds=self.pipeline.wait_fds if c_path else None)

    def _on_bytes(self, port: str, data: bytes, t: float) -> None:
        tw = self.traces.get(port)
        if tw is not None:
            tw.rx(data, int((t - tw.t0) * 1e9))
        self.pipeline.push(port, data, t)

    def _on_state(self, port: str, state: str, t: float, detail: str) -> None:
        tw = self.traces.get(port)
        if tw is not None and state in ("open", "close"):
            tw.event(state, int((t - tw.t0) * 1e9), detail=detail)
        self.pipeline.push_event(port, state, t, detail)
        if state == "open":
            # whatever a node said before we listened (its boot hello) is gone: ask again
            with self.pipeline._lock:
                data, seq = self.pipeline.host_writer(C.NODE_BROADCAST).command(
                    int(self.clock() * 1e6) & 0xFFFFFFFF, C.CMD_HELLO, ())
                self.pipeline.commands.sent(-1, seq, "hello", 2.0)
            self._send(port, data)

    def _on_idle(self, now: float) -> None:
        if self.pipeline._inbox:
            self.pipeline.process_pending()
        self.pipeline.poll()
        if self.sync_interval_s and now >= self._next_sync:
            self._next_sync = now + self.sync_interval_s
            for port in self.ports:
                if self.reader.is_open(port):
                    self._req = (self._req + 1) & 0xFFFF
                    t1 = self.clock()
                    self._send(port, self.pipeline.sync_request(port, self._req, t1))

    def _send(self, port: str, data: bytes) -> bool:
        tw = self.traces.get(port)
        if tw is not None:
            tw.tx(data, int((self.clock() - tw.t0) * 1e9))
        return self.reader.write(port, data)

    def start(self) -> "Aggregator":
        # what exists now lives as long as the recording: keep the cyclic GC from rescanning it
        # (the live path allocates a few thousand small objects a second, each gen-0 run is cheap)
        gc.freeze()
        if self._align_live:
            self.pipeline.start_aligner(self.clock())
        self.reader.start()
        return self

    def command(self, node_id: int, name: str, *args: int, timeout: float = 1.0,
                port: str | None = None) -> PendingCommand:
        """Send a command (``start``, ``stop``, ``rate`` HZ, ``identify`` S, ``calibrate`` MS, ...)
        to a node; returns the pending command (``.done`` is set on ack, nack or timeout).
        ``port``: where to send it if the node has not been heard yet."""
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
        pl = self.pipeline
        node = pl.nodes.get(node_id)
        if node is None and port is None and len(self.ports) == 1:
            port = self.ports[0]
        if node is None and port is None:
            raise ValueError(f"node {node_id} not seen on any port (say which port)")
        target = port or node.port
        with pl._lock:
            data, seq = pl.host_writer(node_id).command(int(self.clock() * 1e6) & 0xFFFFFFFF, COMMANDS[name], tuple(args))
            cmd = pl.commands.sent(node_id, seq, name, timeout)
        if not self._send(target, data):
            cmd.detail = "port not open"
            cmd.done.set()
        return cmd

    def stop(self) -> None:
        self.reader.stop()
        self.pipeline.process_pending()
        self.pipeline.poll()
        self.pipeline.finish()
        for tw in self.traces.values():
            tw.close()


__all__ = ["Pipeline", "Aggregator", "NodeState", "PortState", "process_trace", "aligned_from_store", "COMMANDS"]
