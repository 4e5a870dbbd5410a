"""Replay serial traces through pseudo-terminals, so the aggregator's pyserial path reads them as
it reads hardware.

Each trace gets a pty in raw mode; its stable path is a symlink (``link_dir/<name>``) that follows
the pty across simulated unplug/replug (a ``close`` event closes the pty, ``open`` makes a new
one). Bytes are written exactly as recorded; writes block when the reader lags, so nothing is
dropped even as fast as possible. Before a pty is closed the replayer waits until the reader has
drained it, which makes replays bit-exact.

    >>> rp = Replayer(["a.tstrace", "b.tstrace"], speed=None)   # doctest: +SKIP
    >>> rp.start(); print(rp.paths); rp.join()                  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import select
import struct
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Callable, Sequence

from trackside.aggregator.traces import EVENT, RX, Trace, read_trace


class PtyPort:
    """A pseudo-terminal pair standing in for a serial port, reachable at a stable ``link``."""

    def __init__(self, link: Path):
        self.link = Path(link)
        self.master = -1
        self.slave_name = ""
        self.open()

    @property
    def path(self) -> str:
        return str(self.link)

    def open(self) -> None:
        """Plug in: a fresh pty, the link pointed at it atomically."""
        self.master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: bytes pass unchanged
        # Mark the line speed with B50: a reader that configures the port (pyserial does, then
        # flushes its input) changes it, which tells wait_reader() when writing is safe.
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = termios.B50
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.slave_name = os.ttyname(slave)
        # The slave is not held open: then the master polls POLLHUP until a reader opens it,
        # which is how connected() knows someone is listening.
        os.close(slave)
        os.set_blocking(self.master, False)
        tmp = self.link.with_name(self.link.name + ".new")
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.link)

    def connected(self) -> bool:
        """True while a reader has the port open."""
        if self.master < 0:
            return False
        p = select.poll()
        p.register(self.master, select.POLLOUT)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def configured(self) -> bool:
        """True once the reader has set its own line settings (speed no longer the B50 mark)."""
        try:
            return termios.tcgetattr(self.master)[4] != termios.B50
        except termios.error:
            return False

    def wait_reader(self, stop: threading.Event, timeout: float | None, settle: float) -> bool:
        """Wait for a reader to open and configure the port, then ``settle`` seconds: pyserial
        flushes the input queue right after configuring, so bytes written in that instant would
        be lost. A reader that never configures the port gets ``3 * settle``."""
        end = None if timeout is None else time.monotonic() + timeout
        since = None
        while True:
            now = time.monotonic()
            if self.connected():
                since = since or now
                if self.configured() or now - since >= 3 * settle:
                    break
            else:
                since = None
            if stop.is_set() or (end is not None and now > end):
                return False
            time.sleep(0.005)
        return not stop.wait(settle)

    def pending(self) -> int:
        """Bytes written but not yet read by the other side."""
        if self.master < 0:
            return 0
        try:
            fd = os.open(self.slave_name, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            return 0
        try:
            buf = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
        finally:
            os.close(fd)
        return struct.unpack("i", buf)[0]

    def write(self, data: bytes, stop: threading.Event) -> bool:
        """Write all of ``data`` (blocking while the pty is full); False if stopped first."""
        mv = memoryview(data)
        while mv:
            if stop.is_set():
                return False
            try:
                n = os.write(self.master, mv)
                mv = mv[n:]
            except BlockingIOError:
                select.select([], [self.master], [], 0.05)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                raise
        return True

    def drain(self, stop: threading.Event, timeout: float | None = None, quiet: float = 0.2) -> bool:
        """Wait until the reader has taken every byte (or ``timeout``); True if drained.

        The reader's queue must stay empty for ``quiet`` seconds: the kernel moves bytes from the
        pty's internal buffer into that queue a moment after the reader makes room."""
        end = None if timeout is None else time.monotonic() + timeout
        empty_since = None
        while True:
            now = time.monotonic()
            if self.pending() > 0:
                empty_since = None
            elif empty_since is None:
                empty_since = now
            elif now - empty_since >= quiet:
                return True
            if stop.is_set() or (end is not None and now > end):
                return False
            time.sleep(0.002)

    def close(self) -> None:
        """Unplug: the reader's next read fails like a removed USB adapter."""
        # the device node disappears with the cable: a reader retrying the path must not reach
        # whatever pty the kernel hands out next under the old number
        try:
            self.link.unlink()
        except FileNotFoundError:
            pass
        if self.master >= 0:
            try:
                os.close(self.master)
            except OSError:
                pass
        self.master = -1


class Replayer:
    """Feed traces into ptys, in real time (``speed=1``), scaled (``speed=k``) or as fast as
    possible (``speed=None``). Traces recorded together keep their relative timing (by ``t0``)."""

    def __init__(self, traces: Sequence[Path | str | Trace], *, speed: float | None = 1.0,
                 link_dir: Path | str | None = None, names: Sequence[str] | None = None,
                 drain_timeout: float | None = 30.0, replug_delay: float = 0.2,
                 wait_reader: float | None = 30.0, settle: float = 0.05,
                 progress: Callable[[int, int], None] | None = None):
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 (or None for as fast as possible), got {speed}")
        self.traces = [t if isinstance(t, Trace) else read_trace(t) for t in traces]
        if not self.traces:
            raise ValueError("no traces to replay")
        self.speed = speed
        self._tmp = None
        if link_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="trackside-replay-")
            link_dir = self._tmp.name
        self.link_dir = Path(link_dir)
        self.link_dir.mkdir(parents=True, exist_ok=True)
        names = list(names) if names else [f"tsreplay{i}" for i in range(len(self.traces))]
        self.ports = [PtyPort(self.link_dir / n) for n in names]
        self.drain_timeout = drain_timeout
        self.replug_delay = replug_delay
        self.wait_reader = wait_reader
        self.settle = settle
        self.progress = progress
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.bytes_sent = [0] * len(self.traces)
        self.total_bytes = sum(sum(len(p) for tag, _, p in t.records if tag == RX) for t in self.traces)
        self.errors: list[BaseException] = []

    @property
    def paths(self) -> list[str]:
        """Stable port paths (symlinks) to open with pyserial."""
        return [p.path for p in self.ports]

    def start(self) -> "Replayer":
        base = min(t.t0 for t in self.traces)
        self._start_mono = time.monotonic()
        self.start_wall = time.time()       # trace time 0 (of the earliest trace) in host time
        for i, (tr, port) in enumerate(zip(self.traces, self.ports)):
            th = threading.Thread(target=self._feed, args=(i, tr, port, tr.t0 - base),
                                  name=f"trackside-replay-{i}", daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def _sleep_until(self, t_trace: float) -> bool:
        if self.speed is None:
            return not self._stop.is_set()
        due = self._start_mono + t_trace / self.speed
        delay = due - time.monotonic()
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    def _feed(self, i: int, tr: Trace, port: PtyPort, offset: float) -> None:
        try:
            plugged = True
            listening = False
            for tag, t_ns, payload in tr.records:
                if not self._sleep_until(offset + t_ns / 1e9):
                    return
                if tag == RX:
                    if not plugged:
                        continue  # bytes while unplugged cannot arrive (should not be recorded)
                    if not listening and self.wait_reader is not None:
                        if not port.wait_reader(self._stop, self.wait_reader, self.settle):
                            return
                        listening = True
                    if not port.write(payload, self._stop):
                        return
                    self.bytes_sent[i] += len(payload)
                    if self.progress:
                        self.progress(sum(self.bytes_sent), self.total_bytes)
                elif tag == EVENT:
                    ev = json.loads(payload).get("event")
                    if ev == "close" and plugged:
                        port.drain(self._stop, self.drain_timeout)
                        port.close()
                        plugged = False
                        if self.speed is None:
                            self._stop.wait(self.replug_delay)  # let the reader see the unplug
                    elif ev == "open" and not plugged:
                        port.open()
                        plugged = True
                        listening = False
            if plugged:
                port.drain(self._stop, self.drain_timeout)
        except BaseException as exc:  # surfaced by join()
            self.errors.append(exc)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every trace to be fed and drained; True if all finished."""
        end = None if timeout is None else time.monotonic() + timeout
        for th in self._threads:
            th.join(None if end is None else max(0.0, end - time.monotonic()))
        if self.errors:
            raise RuntimeError(f"replay failed: {self.errors[0]}") from self.errors[0]
        return not any(th.is_alive() for th in self._threads)

    def stop(self) -> None:
        """Stop feeding and close (unplug) every pty."""
        self._stop.set()
        for th in self._threads:
            th.join(2.0)
        for p in self.ports:
            p.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Replayer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
