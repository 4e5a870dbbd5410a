"""The live hot path in C (``livecore.c`` via cffi): frames split, sample batches decoded and the
clean frames of each node checked in C, one call per read chunk.

Per frame the C side emits one record: ``LANE`` (a sample batch that continues its node's
sequence and clock exactly as :meth:`NodeTracker.check` would accept it, already unwrapped),
``BATCH`` (an intact sample batch for Python to judge) or ``OTHER`` (any other frame: its bytes
for the reference decoder). A node's lane is armed by the pipeline with the state of its
:class:`~trackside.aggregator.reader.NodeTracker` and disarmed by the C side on the first frame
of that node it does not accept itself, so the Python state stays the one truth.

``AVAILABLE`` is False when the extension was not built; the pipeline then decodes in Python.
"""

from __future__ import annotations

import os
import struct

import numpy as np

try:
    from trackside.aggregator._livecore import ffi, lib
    AVAILABLE = True
except ImportError:  # not built (source checkout without the C step): pure-Python path
    ffi = lib = None
    AVAILABLE = False

LANE, BATCH, OTHER = 1, 2, 3
MAX_FRAME = 2048
NV = 13
LAT = 64                 # LC_LAT
_COLS = 64               # LCA_COLS
SEQ_PERIOD = 1 << 16
CLOCK_PERIOD = 1 << 32

RECORD = np.dtype([("port", "<i4"), ("kind", "<i4"), ("node", "<i4"), ("seq", "<i4"), ("t_us", "<u4"),
                   ("period_us", "<i4"), ("flags", "<i4"), ("n", "<i4"), ("row", "<i4"), ("raw_off", "<i4"),
                   ("raw_len", "<i4"), ("mtype", "<i4"), ("version", "<i4"), ("end", "<i4"), ("t_host", "<f8"), ("u_first", "<i8"),
                   ("c0", "<f8"), ("c1", "<f8")])


RECORD_STRUCT = struct.Struct("<4iI9idq2d")       # the same layout, for struct.iter_unpack
assert RECORD_STRUCT.size == RECORD.itemsize


class SampleRows:
    """The sample rows of one :meth:`LiveCore.take` (int16 x 13 each, as bytes): row ``i`` as an
    array on demand (most rows are only ever counted, never looked at, in a live session)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def __getitem__(self, i: int) -> np.ndarray:
        return np.frombuffer(self.data, np.int16, NV, i * 2 * NV)

    def __len__(self) -> int:
        return len(self.data) // (2 * NV)

    def array(self) -> np.ndarray:
        """All rows, (N, 13) int16 (read-only view)."""
        return np.frombuffer(self.data, np.int16).reshape(-1, NV)


class LiveCore:
    """Output buffers, ports and node lanes of the C live path (one per pipeline, not thread-safe:
    the pipeline calls it under its lock)."""

    def __init__(self, max_records: int = 4096, max_rows: int = 32768, raw_cap: int = 1 << 20):
        if not AVAILABLE:
            raise RuntimeError("trackside.aggregator._livecore is not built (pip install -e . builds it)")
        if ffi.sizeof("lc_record") != RECORD.itemsize:
            raise RuntimeError("lc_record layout differs from RECORD")
        self._records = ffi.new("lc_record[]", max_records)
        self._samples = ffi.new("int16_t[]", max_rows * NV)
        self._raw = ffi.new("uint8_t[]", raw_cap)
        self.lanes = ffi.new("lc_lane[256]")
        out = self.out = ffi.new("lc_out *")
        out.records, out.max_records = self._records, max_records
        out.samples, out.max_rows = self._samples, max_rows
        out.raw, out.raw_cap = self._raw, raw_cap
        out.lanes = self.lanes
        self._rec_np = np.frombuffer(ffi.buffer(self._records), RECORD)
        self._rows_np = np.frombuffer(ffi.buffer(self._samples), np.int16).reshape(max_rows, NV)
        self._raw_buf = ffi.buffer(self._raw)
        self._rec_buf = ffi.buffer(self._records)
        self._rows_buf = ffi.buffer(self._samples)
        self._unpack = RECORD_STRUCT.iter_unpack     # tuples straight from the bytes (no numpy)
        self._feed = lib.lc_feed

    def new_port(self, index: int):
        """C state of one port (its unfinished frame and counters)."""
        p = ffi.new("lc_port *")
        p.index = index
        return p

    def feed(self, port, data: bytes, t_host: float) -> int:
        """Frames of ``data`` appended to the output; returns the bytes consumed (fewer than
        ``len(data)`` only when the output is full: :meth:`take`, then feed the rest)."""
        return self._feed(port, data, len(data), t_host, self.out)

    def wait_params(self):
        """A fresh ``lc_wait_params`` (see :meth:`FdReader.wait`)."""
        return ffi.new("lc_wait_params *")

    def reader(self, fds: list[int], ports: list) -> "FdReader":
        """A reader of these fds, each feeding its C port (see :meth:`FdReader.read`)."""
        return FdReader(self, fds, ports)

    def take(self) -> tuple[list, SampleRows, bytes]:
        """The records so far (tuples in :data:`RECORD` order), a copy of their sample rows and of
        their raw frame bytes; the output is then empty."""
        out = self.out
        n = out.n_records
        if not n:
            return [], SampleRows(b""), b""
        recs = list(self._unpack(self._rec_buf[:n * RECORD.itemsize]))
        rows = SampleRows(self._rows_buf[:out.n_rows * 2 * NV])
        raw = self._raw_buf[:out.raw_len]
        out.n_records = out.n_rows = out.raw_len = 0
        return recs, rows, raw

    def arm(self, node, port: int) -> bool:
        """Hand a node's clean frames to the C side, starting from its Python state
        (a :class:`~trackside.aggregator.core.NodeState`); False when its state does not allow
        the clean case (no frame yet, unplugged, a remembered seq "ahead" of the last)."""
        tr, un, ow = node.tracker, node.unwrap, node.oneway
        if (node.unplugged_at is not None or tr.last_seq is None or tr.last_t_node is None
                or tr.last_t_host is None or un.last_raw is None or tr.seq_period != SEQ_PERIOD
                or un.period != CLOCK_PERIOD):
            return False
        last = tr.last_seq
        if any((last - s) % SEQ_PERIOD >= SEQ_PERIOD // 2 for s in tr._recent):
            return False                    # check() might call the next frame a duplicate
        lane = self.lanes[node.node_id]
        lane.port = port
        lane.last_seq = last
        lane.last_t_node = tr.last_t_node
        lane.last_t_host = tr.last_t_host
        lane.reboot_jump_us = tr.reboot_jump_us
        lane.unwrap_raw = un.last_raw
        lane.unwrap_last = un.last
        lane.has_win = ow._win_start is not None
        lane.win_start = ow._win_start if ow._win_start is not None else 0.0
        lane.window_s = ow.window_s
        best = ow._best
        lane.has_best = best is not None
        if best is not None:
            lane.best_cost, lane.best_u, lane.best_host = best
        lane.provisional = node.provisional
        lane.model = node.model() is not None
        lane.c0, lane.c1 = node.linear()
        lane.frames = lane.samples = lane.n_lat = 0
        lane.armed = 1
        return True

    def sync(self, node) -> None:
        """Bring a node's Python state up to what its lane accepted since it was armed (or last
        synced): tracker, unwrapper, clock window, provisional offset, counters, latencies."""
        lane = self.lanes[node.node_id]
        f = lane.frames
        if not f:
            return
        tr = node.tracker
        last = lane.last_seq
        rec = tr._recent
        for s in range(last - f + 1, last + 1):     # check()'s memory of recent seqs, replayed
            s %= SEQ_PERIOD
            rec.add(s)
            if len(rec) > 64:
                rec = {x for x in rec if (s - x) % SEQ_PERIOD < 32}
        tr._recent = rec
        tr.last_seq = last
        tr.last_t_node = lane.last_t_node
        tr.last_t_host = node.last_t_host = lane.last_t_host
        tr.frames += f
        un = node.unwrap
        un.last_raw = lane.unwrap_raw
        un.last = lane.unwrap_last
        ow = node.oneway
        ow._win_start = lane.win_start if lane.has_win else None
        ow._best = (lane.best_cost, int(lane.best_u), lane.best_host) if lane.has_best else None
        node.provisional = lane.provisional
        node.samples += lane.samples
        node.rate_window.append((lane.last_t_host, int(lane.samples)))
        k = lane.n_lat
        lat = lane.lat_ms
        node.latency_ms.extend(lat[i % LAT] for i in range(max(0, k - LAT), k))
        lane.frames = lane.samples = lane.n_lat = 0

    def disarm(self, node: int) -> None:
        self.lanes[node].armed = 0

    def disarm_port(self, port: int) -> None:
        lib.lc_disarm_port(self.out, port)

    @staticmethod
    def reset_port(port) -> None:
        """Forget an unfinished frame (the cable was pulled)."""
        port.tail_len = 0

    @staticmethod
    def port_stats(port) -> dict:
        """Decoder counters of the C side, named as :meth:`tsproto.decoder.StreamDecoder.stats`."""
        return {"frames": int(port.fast_frames), "oversize": int(port.oversize),
                "bytes_discarded": int(port.bytes_discarded)}


class FdReader:
    """Reads a fixed set of file descriptors in C (``epoll``/``poll`` without waiting + ``read``),
    feeding each one's C port: one call per tick for all ports."""

    def __init__(self, core: LiveCore, fds: list[int], ports: list):
        self.core = core
        self.n = len(fds)
        self._fds = ffi.new("int32_t[]", list(fds) or [0])
        self._ports = ffi.new("lc_port *[]", list(ports) or [ffi.NULL])
        self._keep = list(ports)
        self._status = ffi.new("int32_t[]", max(self.n, 1))
        self._status_np = np.frombuffer(ffi.buffer(self._status), np.int32)[:self.n]
        self._ep = lib.lc_epoll_new(self._fds, self.n) if self.n else -1
        self._t_read = ffi.new("double *")

    def close(self) -> None:
        """Release the epoll set (the fds themselves belong to their serial ports)."""
        if self._ep >= 0:
            os.close(self._ep)
            self._ep = -1

    def __del__(self) -> None:
        self.close()

    def read(self, t_host: float) -> int:
        """One pass over the fds: ``(failed reads << 1) | more`` (more: it stopped early, the
        output is full: take, call again), -2 when not supported here."""
        return lib.lc_read(self._ep, self._fds, self._ports, self.n, t_host, self.core.out, self._status)

    def wait(self, params) -> tuple[int, float]:
        """:c:func:`lc_wait` with these ``lc_wait_params``: ``(lc_read's result, host time of the
        last read)``; the GIL is released meanwhile."""
        r = lib.lc_wait(self._ep, self._fds, self._ports, self.n, self.core.out, self._status, params, self._t_read)
        return r, self._t_read[0]

    def failed(self) -> list[tuple[int, int]]:
        """``(i, status)`` of the fds whose read failed since the last call (-1 end of file, else
        errno); clears them."""
        st = self._status_np
        out = [(int(i), int(st[i])) for i in np.flatnonzero(st)]
        st[:] = 0
        return out


class CAligner:
    """:class:`~trackside.aggregator.clock.StreamAligner` in C (same slots, same rules, tested
    equal), fed by the lanes directly; the pipeline adds the other samples with :meth:`add`.
    Emitted rows wait in C until :meth:`poll` (or :meth:`take`) hands them to ``deliver(k, t_slot,
    {node: int16 row or None})`` and their samples' latencies (ms) to ``latency(list)``."""

    def __init__(self, core: LiveCore, rate: float, t0: float, *, max_wait_s: float = 0.05, stale_s: float = 0.2,
                 deliver=None, latency=None):
        self.a = ffi.new("lca *")
        lib.lca_init(self.a, float(rate), float(t0), float(max_wait_s), float(stale_s))
        core.out.aligner = self.a
        self.rate, self.t0, self.max_wait_s, self.stale_s = float(rate), float(t0), max_wait_s, stale_s
        self.deliver = deliver
        self.latency = latency
        a = self.a
        self._lat = np.frombuffer(ffi.buffer(a.lat_ms), np.float64)
        self._has = np.frombuffer(ffi.buffer(a.row_has), np.uint8).reshape(-1, _COLS)
        self._v = np.frombuffer(ffi.buffer(a.row_v), np.int16).reshape(-1, _COLS, NV)
        self._one = ffi.new("int16_t[]", NV)

    def add(self, node: int, t_host: float, value) -> None:
        """One sample: ``value = (rows, index, t_recv)`` as the pipeline passes it."""
        rows, i, t_recv = value
        row = rows[i]
        buf = self._one
        for c, x in enumerate(row if len(row) == NV else list(row) + [0] * (NV - len(row))):
            buf[c] = int(x)
        lib.lca_add(self.a, node, t_host, buf, t_recv)

    def poll(self, now: float) -> int:
        """Emit the rows due at ``now`` and hand over every emitted row; returns how many."""
        lib.lca_poll(self.a, now)
        return self.take()

    def take(self) -> int:
        a = self.a
        nr = a.n_rows
        if not nr:
            return 0
        if self.latency is not None:
            self.latency(self._lat[:a.n_lat].tolist())
        if self.deliver is not None:
            nc = a.n_cols
            nodes = [a.node_of[c] for c in range(nc)]
            has = self._has[:nr, :nc].tolist()
            vals = self._v[:nr, :nc].copy()
            for r in range(nr):
                hr, vr = has[r], vals[r]
                self.deliver(int(a.row_k[r]), float(a.row_t[r]),
                             {node: (vr[c] if hr[c] else None) for c, node in enumerate(nodes[:a.row_cols[r]])})
        a.n_rows = 0
        a.n_lat = 0
        return nr

    @property
    def next_k(self) -> int:
        return int(self.a.next_k)

    @property
    def late(self) -> int:
        return int(self.a.late)

    @property
    def ahead(self) -> int:
        """Samples too far ahead of the next slot to hold (dropped from the live rows)."""
        return int(self.a.ahead)

    @property
    def undelivered(self) -> int:
        """Rows emitted beyond the hand-over buffer in one poll (a backlog after a clock jump):
        counted, not delivered one by one."""
        return int(self.a.undelivered)

    @property
    def emitted(self) -> int:
        return int(self.a.emitted)

    @property
    def latest(self) -> dict[int, int]:
        a = self.a
        return {int(a.node_of[c]): int(a.latest[c]) for c in range(a.n_cols)}


class CDecoder:
    """:class:`tsproto.fast.FastDecoder` with the same results and counters (tested equal), its
    intact sample batches decoded in C: the bulk path (whole traces, stored sessions). Frames the
    C side does not take go through the reference decoder, as in FastDecoder."""

    def __init__(self, max_frame: int = MAX_FRAME, keep_unknown: bool = False, scratch: "LiveCore | None" = None):
        """``scratch``: output buffers to share with other decoders used from the same thread
        (allocating and zeroing them per decoder costs more than decoding a trace)."""
        if not AVAILABLE:
            raise RuntimeError("trackside.aggregator._livecore is not built")
        if max_frame != MAX_FRAME:
            raise ValueError(f"the C decoder keeps frames up to {MAX_FRAME} bytes")
        from tsproto.decoder import StreamDecoder

        self.max_frame = max_frame
        self._ref = StreamDecoder(max_frame, keep_unknown)   # counters of the frames C passes on
        self._port = ffi.new("lc_port *")
        self._core: LiveCore | None = scratch

    def stats(self) -> dict:
        st = self._ref.stats()
        st["frames"] += int(self._port.fast_frames)
        st["oversize"] += int(self._port.oversize)
        st["bytes_discarded"] += int(self._port.bytes_discarded)
        return st

    def close(self) -> None:
        """End of stream: the unfinished tail counts as discarded."""
        self._port.bytes_discarded += self._port.tail_len
        self._port.tail_len = 0

    def feed(self, data: bytes):
        from tsproto.fast import Decoded, add_found

        data = bytes(data)
        res = Decoded()
        core = self._core
        if core is None:                    # reused: zeroing big buffers per call costs more than decoding
            core = self._core = LiveCore(max_records=16384, max_rows=1 << 17, raw_cap=1 << 21)
        parts, rows, found = [], [], []
        done, n = 0, len(data)
        while True:
            k = core.feed(self._port, data[done:] if done else data, 0.0)
            out = core.out
            nrec = out.n_records
            recs = np.frombuffer(ffi.buffer(core._records)[:nrec * RECORD.itemsize], RECORD).copy()
            recs["end"] += done
            batch = recs["kind"] == BATCH
            if batch.any():
                parts.append(recs[batch])
                rows.append(np.frombuffer(ffi.buffer(core._samples)[:out.n_rows * 2 * NV], np.int16).reshape(-1, NV))
            if not batch.all():
                raw = ffi.buffer(core._raw)[:out.raw_len]
                for off, ln, end in recs[~batch][["raw_off", "raw_len", "end"]].tolist():
                    msgs: list = []
                    self._ref._frame(raw[off:off + ln - 1], msgs)
                    found += [(end, m) for m in msgs]
            out.n_records = out.n_rows = out.raw_len = 0
            done += k
            if done >= n:
                break
        if parts:
            fb = parts[0] if len(parts) == 1 else np.concatenate(parts)
            nb = len(fb)
            cnt = fb["n"].astype(np.int64)
            res.values = rows[0] if len(rows) == 1 else np.concatenate(rows)
            res.frame_node = fb["node"].astype(np.uint8)
            res.frame_seq = fb["seq"].astype(np.uint16)
            res.frame_t_us = fb["t_us"].astype(np.int64)
            res.frame_period_us = fb["period_us"].astype(np.int64)
            res.frame_flags = fb["flags"].astype(np.uint8)
            res.frame_n = cnt
            res.frame_version = fb["version"].astype(np.uint8)
            res.frame_end = fb["end"].astype(np.int64)
            fidx = np.repeat(np.arange(nb, dtype=np.int64), cnt)
            k = np.arange(len(fidx), dtype=np.int64) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            res.t_us = (res.frame_t_us[fidx] + k * res.frame_period_us[fidx]) & 0xFFFFFFFF
            res.node_id = res.frame_node[fidx]
            res.seq = res.frame_seq[fidx]
            res.flags = res.frame_flags[fidx]
            res.frame = fidx
        add_found(res, found)
        res.stats = self.stats()
        return res

