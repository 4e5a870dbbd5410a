"""Live BVH stream over TCP on localhost: one BVH motion frame per text line.

Like the BVH broadcast of commercial suits: clients connect to ``127.0.0.1:port`` and receive
each frame as a line of space-separated numbers (same channels as the file writer) terminated
by ``\\n``. With ``send_header=True`` a newly connected client first receives the HIERARCHY
text (ending with the ``Frame Time`` line), so it can parse frames without a separate file.

Example::

    with BvhStreamServer(port=7001, header=bvh_header(skeleton, 1/200)) as srv:
        for frame in frames:
            srv.send_frame(frame)
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

import numpy as np

from trackside.bvh.writer import format_frames

__all__ = ["BvhStreamServer", "read_stream_lines"]


class BvhStreamServer:
    """TCP server (localhost only) broadcasting BVH frames to every connected client.

    A slow or vanished client is dropped (send timeout ``send_timeout_s``); it never blocks
    the recording for longer than that.
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", header: str | None = None,
                 send_header: bool = False, precision: int = 4, send_timeout_s: float = 0.5) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the BVH stream only listens on localhost")
        if send_header and not header:
            raise ValueError("send_header needs the header text")
        self._srv = socket.create_server((host, int(port)))
        self._srv.settimeout(0.2)
        self.port = self._srv.getsockname()[1]
        self.header = header
        self.send_header = send_header
        self.precision = precision
        self.timeout = send_timeout_s
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="bvh-stream-accept", daemon=True)
        self._thread.start()
        self.frames_sent = 0

    @property
    def n_clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                break
            conn.settimeout(self.timeout)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                if self.send_header and self.header:
                    conn.sendall(self.header.encode("ascii"))
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._clients.append(conn)

    def send_frame(self, values) -> int:
        """Broadcast one frame; returns the number of clients it reached."""
        line = format_frames(np.asarray(values, float).reshape(1, -1), self.precision)
        return self.send_line(line)

    def send_line(self, line: bytes) -> int:
        with self._lock:
            clients = list(self._clients)
        dead = []
        ok = 0
        for c in clients:
            try:
                c.sendall(line)
                ok += 1
            except OSError:
                dead.append(c)
        if dead:
            with self._lock:
                for c in dead:
                    if c in self._clients:
                        self._clients.remove(c)
                    c.close()
        self.frames_sent += 1
        return ok

    def play(self, frames: np.ndarray, fs: float, realtime: bool = True) -> int:
        """Broadcast recorded frames (N x channels) at the session rate (or as fast as possible).

        Returns the number of frames sent. Pacing uses a monotonic clock, so it does not drift.
        """
        if not (fs > 0):
            raise ValueError(f"fs must be positive, got {fs!r}")
        frames = np.asarray(frames, float)
        t0 = time.monotonic()
        for k, f in enumerate(frames):
            if realtime:
                delay = t0 + k / fs - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self.send_frame(f)
        return len(frames)

    def wait_for_clients(self, n: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until ``n`` clients are connected (or the timeout passes)."""
        ev = threading.Event()
        for _ in range(int(timeout_s / 0.01)):
            if self.n_clients >= n:
                return True
            ev.wait(0.01)
        return self.n_clients >= n

    def close(self) -> None:
        self._stop.set()
        try:
            self._srv.close()
        finally:
            self._thread.join(timeout=2)
            with self._lock:
                for c in self._clients:
                    c.close()
                self._clients = []

    def __enter__(self) -> "BvhStreamServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_stream_lines(port: int, n_lines: int, host: str = "127.0.0.1", timeout_s: float = 5.0) -> list[str]:
    """Connect and read ``n_lines`` text lines (a minimal client, for tests and tools)."""
    sel = selectors.DefaultSelector()
    lines: list[str] = []
    buf = b""
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        sel.register(s, selectors.EVENT_READ)
        while len(lines) < n_lines:
            if not sel.select(timeout_s):
                raise TimeoutError(f"stream: got {len(lines)} of {n_lines} lines")
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            *done, buf = buf.split(b"\n")
            lines += [d.decode("ascii") for d in done]
    return lines[:n_lines]
