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

RECORD = np.dtype([("port", "<i4"), ("kind", "<i4"), ("node", "<i4"), ("seq", "<i4"), ("t_us", "<u4"),
                   ("period_us", "<i4"), ("flags", "<i4"), ("n", "<i4"), ("row", "<i4"), ("raw_off", "<i4"),
                   ("raw_len", "<i4"), ("version", "<i4"), ("t_host", "<f8"), ("u_first", "<i8")])


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

    def reader(self, fds: list[int], ports: list) -> "FdReader":
        """A reader of these fds, each feeding its C port (see :meth:`FdReader.read`)."""
        return FdReader(self, fds, ports)

    def take(self) -> tuple[list, np.ndarray, bytes]:
        """The records so far (tuples in :data:`RECORD` order), a copy of their sample rows and
        of their raw frame bytes; the output is then empty."""
        out = self.out
        n = out.n_records
        if not n:
            return [], self._rows_np[:0], b""
        recs = self._rec_np[:n].tolist()
        rows = self._rows_np[:out.n_rows].copy()
        raw = self._raw_buf[:out.raw_len]
        out.n_records = out.n_rows = out.raw_len = 0
        return recs, rows, raw

    def arm(self, node: int, port: int, last_seq: int, last_t_node: int, last_t_host: float, unwrap_raw: int,
            unwrap_last: int, reboot_jump_us: int) -> None:
        lane = self.lanes[node]
        lane.port = port
        lane.last_seq = last_seq
        lane.last_t_node = last_t_node
        lane.last_t_host = last_t_host
        lane.unwrap_raw = unwrap_raw
        lane.unwrap_last = unwrap_last
        lane.reboot_jump_us = reboot_jump_us
        lane.armed = 1

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
    """Reads a fixed set of file descriptors in C (``poll`` without waiting + ``read``), feeding
    each one's C port: one call per tick for all ports."""

    def __init__(self, core: LiveCore, fds: list[int], ports: list):
        self.core = core
        self.n = len(fds)
        self._fds = ffi.new("int32_t[]", list(fds) or [0])
        self._ports = ffi.new("lc_port *[]", list(ports) or [ffi.NULL])
        self._keep = list(ports)
        self._status = ffi.new("int32_t[]", max(self.n, 1))
        self._status_np = np.frombuffer(ffi.buffer(self._status), np.int32)[:self.n]

    def read(self, t_host: float) -> int:
        """One pass over the fds; returns 1 when it stopped early (output full: take, call again),
        0 when done, -2 when not supported here."""
        return lib.lc_read(self._fds, self._ports, self.n, t_host, self.core.out, self._status)

    def failed(self) -> list[tuple[int, int]]:
        """``(i, status)`` of the fds whose last read failed (-1 end of file, else errno)."""
        st = self._status_np
        if not st.any():
            return []
        return [(int(i), int(st[i])) for i in np.flatnonzero(st)]
