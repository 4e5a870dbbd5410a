"""Serial trace files: the raw bytes of one port with host receive times (see ``docs/traces.md``).

A trace is a header followed by self-checking records; a file cut short (host killed, disk full)
reads up to its last complete record. Records hold received bytes (``RX``), bytes the host sent
(``TX``) and port events (``EVENT``: open, close) so that replays can reproduce unplugging.

    >>> with TraceWriter("run.tstrace", port="/dev/ttyUSB0") as tw:   # doctest: +SKIP
    ...     tw.rx(b"\\xa5...", t_ns=1_000_000)
    >>> tr = read_trace("run.tstrace")                               # doctest: +SKIP
    >>> tr.rx_bytes()                                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

MAGIC = b"TSTRACE\x01"
VERSION = 1
# magic, version, flags, t0 (UNIX s, float64), metadata length
_HEADER = struct.Struct("<8sHHdI")
# tag, flags, payload length, t_ns (since t0, monotonic clock)
_REC = struct.Struct("<BBHq")
_CRC = struct.Struct("<I")

RX = 0x52  # 'R' bytes received from the port
TX = 0x54  # 'T' bytes written to the port by the host
EVENT = 0x45  # 'E' JSON event: {"event": "open" | "close", ...}
TAGS = (RX, TX, EVENT)
MAX_PAYLOAD = 0xFFFF


class TraceError(Exception):
    """The file is not a Trackside trace (bad magic, version or header)."""


@dataclass
class Trace:
    """A trace read from disk. ``records`` are ``(tag, t_ns, payload)`` in file order."""

    path: Path
    t0: float
    meta: dict
    records: list[tuple[int, int, bytes]] = field(default_factory=list)
    truncated: bool = False      # the file ended inside a record (or a record failed its CRC)
    bytes_dropped: int = 0       # bytes after the last good record

    def rx_bytes(self) -> bytes:
        """All received bytes, concatenated."""
        return b"".join(p for tag, _, p in self.records if tag == RX)

    def rx_chunks(self) -> tuple[bytes, np.ndarray, np.ndarray]:
        """``(data, ends, t_ns)``: all RX bytes, the end offset of each chunk in ``data`` and its
        receive time, for vectorised decoding (a frame's time is that of the chunk holding its
        last byte)."""
        chunks = [(t, p) for tag, t, p in self.records if tag == RX]
        data = b"".join(p for _, p in chunks)
        ends = np.cumsum([len(p) for _, p in chunks], dtype=np.int64)
        times = np.array([t for t, _ in chunks], dtype=np.int64)
        return data, ends, times

    @property
    def duration_s(self) -> float:
        return self.records[-1][1] / 1e9 if self.records else 0.0

    @property
    def port(self) -> str:
        return str(self.meta.get("port", ""))


class TraceWriter:
    """Write a trace. Times are nanoseconds since the writer started, from ``time.monotonic_ns``
    unless given. ``flush_interval`` bounds what a killed recorder loses."""

    def __init__(self, path: Path | str, *, port: str = "", baudrate: int = 0, meta: dict | None = None,
                 flush_interval: float = 0.25):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self._m0 = time.monotonic_ns()
        info = {"port": port, "baudrate": baudrate, "tool": "trackside", "format": VERSION}
        info.update(meta or {})
        blob = json.dumps(info, sort_keys=True).encode()
        self._fh = open(self.path, "wb")
        self._fh.write(_HEADER.pack(MAGIC, VERSION, 0, self.t0, len(blob)) + blob)
        self._flush_ns = int(flush_interval * 1e9)
        self._last_flush = self._m0
        self.nbytes = 0

    def now_ns(self) -> int:
        return time.monotonic_ns() - self._m0

    def _record(self, tag: int, payload: bytes, t_ns: int | None) -> None:
        if t_ns is None:
            t_ns = self.now_ns()
        mv = memoryview(payload)
        # Long reads are split: a record holds at most 65535 bytes.
        for i in range(0, max(len(mv), 1), MAX_PAYLOAD):
            part = bytes(mv[i:i + MAX_PAYLOAD])
            head = _REC.pack(tag, 0, len(part), t_ns)
            crc = zlib.crc32(part, zlib.crc32(head))
            self._fh.write(head + part + _CRC.pack(crc))
        if tag == RX:
            self.nbytes += len(payload)
        now = time.monotonic_ns()
        if now - self._last_flush >= self._flush_ns:
            self._fh.flush()
            self._last_flush = now

    def rx(self, data: bytes, t_ns: int | None = None) -> None:
        """Bytes received from the port at ``t_ns``."""
        if data:
            self._record(RX, data, t_ns)

    def tx(self, data: bytes, t_ns: int | None = None) -> None:
        """Bytes the host wrote to the port."""
        if data:
            self._record(TX, data, t_ns)

    def event(self, name: str, t_ns: int | None = None, **info: object) -> None:
        """A port event: ``open`` or ``close`` (unplug)."""
        self._record(EVENT, json.dumps({"event": name, **info}, sort_keys=True).encode(), t_ns)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_records(buf: bytes, start: int = 0) -> Iterator[tuple[int, int, bytes, int]]:
    """``(tag, t_ns, payload, end_offset)`` for each good record from ``start``; stops at the first
    incomplete or corrupt record."""
    n = len(buf)
    pos = start
    rec_size = _REC.size
    while pos + rec_size + 4 <= n:
        tag, _flags, length, t_ns = _REC.unpack_from(buf, pos)
        end = pos + rec_size + length
        if tag not in TAGS or end + 4 > n:
            return
        (crc,) = _CRC.unpack_from(buf, end)
        if zlib.crc32(buf[pos + rec_size:end], zlib.crc32(buf[pos:pos + rec_size])) != crc:
            return
        yield tag, t_ns, bytes(buf[pos + rec_size:end]), end + 4
        pos = end + 4


def read_trace(path: Path | str) -> Trace:
    """Read a trace; a damaged tail is dropped and flagged (``truncated``), never raised."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read trace ({exc.strerror or exc})") from exc
    if len(buf) < _HEADER.size:
        raise TraceError(f"{path}: too short to be a Trackside trace")
    magic, version, _flags, t0, mlen = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise TraceError(f"{path}: not a Trackside trace (bad magic)")
    if version != VERSION:
        raise TraceError(f"{path}: trace format version {version} not supported (expected {VERSION})")
    start = _HEADER.size + mlen
    try:
        meta = json.loads(buf[_HEADER.size:start])
    except (ValueError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: damaged trace header") from exc
    tr = Trace(path=path, t0=t0, meta=meta)
    end = start
    for tag, t_ns, payload, end in iter_records(buf, start):
        tr.records.append((tag, t_ns, payload))
    tr.bytes_dropped = len(buf) - end
    tr.truncated = tr.bytes_dropped > 0
    return tr


def write_trace(path: Path | str, records: list[tuple[int, int, bytes]], *, t0: float = 0.0,
                meta: dict | None = None) -> Path:
    """Write ``records`` (tag, t_ns, payload) to a trace file in one go (fixtures, synthesis)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"tool": "trackside", "format": VERSION}
    info.update(meta or {})
    blob = json.dumps(info, sort_keys=True).encode()
    parts = [_HEADER.pack(MAGIC, VERSION, 0, t0, len(blob)), blob]
    for tag, t_ns, payload in records:
        if tag not in TAGS:
            raise ValueError(f"unknown record tag {tag}")
        mv = memoryview(payload)
        for i in range(0, max(len(mv), 1), MAX_PAYLOAD):
            part = bytes(mv[i:i + MAX_PAYLOAD])
            head = _REC.pack(tag, 0, len(part), int(t_ns))
            parts += [head, part, _CRC.pack(zlib.crc32(part, zlib.crc32(head)))]
    path.write_bytes(b"".join(parts))
    return path
