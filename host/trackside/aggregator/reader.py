"""Serial side of the aggregator: port discovery, reader threads that survive unplugging, per-node
sequence checks, and command/ack bookkeeping. Protocol-independent: bytes go to a callback.

    >>> ports = discover_ports()                                 # ESP32 USB bridges plugged in
    >>> r = PortReader("/dev/ttyUSB0", on_bytes=print)           # doctest: +SKIP
    >>> r.start()                                                # doctest: +SKIP
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import serial
from serial.tools import list_ports

# USB VID:PID of the bridges found on ESP32 boards (None = any product of that vendor).
ESP32_USB_IDS: dict[tuple[int, int | None], str] = {
    (0x10C4, 0xEA60): "CP210x",
    (0x1A86, 0x7523): "CH340",
    (0x1A86, 0x55D4): "CH9102",
    (0x303A, None): "ESP32 native USB (S2/S3/C3)",
}


@dataclass
class FoundPort:
    device: str
    vid: int
    pid: int
    bridge: str
    serial_number: str = ""
    description: str = ""


def match_usb_id(vid: int | None, pid: int | None) -> str | None:
    """The bridge name for a VID/PID pair, or None if it is not an ESP32 bridge."""
    if vid is None:
        return None
    return ESP32_USB_IDS.get((vid, pid)) or ESP32_USB_IDS.get((vid, None))


def discover_ports(comports: Callable[[], list] | None = None) -> list[FoundPort]:
    """Serial ports that look like ESP32 boards (by USB VID/PID), sorted by device name."""
    found = []
    for p in (comports or list_ports.comports)():
        bridge = match_usb_id(getattr(p, "vid", None), getattr(p, "pid", None))
        if bridge:
            found.append(FoundPort(p.device, p.vid, p.pid, bridge, p.serial_number or "", p.description or ""))
    return sorted(found, key=lambda f: f.device)


class PortReader(threading.Thread):
    """Reads one serial port (path or pyserial URL) forever; reopens it after an unplug.

    ``on_bytes(data, t_host)`` gets every chunk with its host receive time (``clock()``);
    ``on_state(state, t_host, detail)`` gets ``open``, ``close`` (unplug) and ``error``.
    """

    def __init__(self, port: str, on_bytes: Callable[[bytes, float], None], *,
                 on_state: Callable[[str, float, str], None] | None = None, baudrate: int = 921600,
                 retry_s: float = 0.05, read_timeout: float = 0.01, clock: Callable[[], float] = time.time,
                 reconnect: bool = True):
        super().__init__(name=f"trackside-port-{port}", daemon=True)
        self.port = port
        self.on_bytes = on_bytes
        self.on_state = on_state or (lambda *a: None)
        self.baudrate = baudrate
        self.retry_s = retry_s
        self.read_timeout = read_timeout
        self.clock = clock
        self.reconnect = reconnect
        self._ser: serial.SerialBase | None = None
        self._halt = threading.Event()
        self._wlock = threading.Lock()
        self.opened = threading.Event()
        self.opens = 0
        self.unplugs = 0
        self.bytes_in = 0
        self.last_error = ""

    def _open(self) -> serial.SerialBase:
        return serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.read_timeout)

    def run(self) -> None:
        announced_missing = False
        while not self._halt.is_set():
            try:
                ser = self._open()
            except (serial.SerialException, OSError, ValueError) as exc:
                if not announced_missing:
                    self.last_error = str(exc)
                    self.on_state("error", self.clock(), str(exc))
                    announced_missing = True
                if not self.reconnect:
                    return
                self._halt.wait(self.retry_s)
                continue
            announced_missing = False
            self._ser = ser
            self.opens += 1
            self.on_state("open", self.clock(), "")
            self.opened.set()
            try:
                while not self._halt.is_set():
                    n = ser.in_waiting
                    data = ser.read(n if n > 0 else 1)
                    if data:
                        self.bytes_in += len(data)
                        self.on_bytes(data, self.clock())
            except (serial.SerialException, OSError, TypeError) as exc:
                # pyserial raises on EIO / hang-up: the cable was pulled (or the pty closed)
                if not self._halt.is_set():
                    announced_missing = True  # while unplugged, a missing device is expected
                    self.unplugs += 1
                    self.last_error = str(exc)
                    self.on_state("close", self.clock(), str(exc))
            finally:
                self._ser = None
                self.opened.clear()
                try:
                    ser.close()
                except Exception:  # closing a vanished device may fail: nothing to do
                    pass
            if not self.reconnect:
                return
            self._halt.wait(self.retry_s)

    def write(self, data: bytes) -> bool:
        """Send bytes to the node; False if the port is not open right now."""
        ser = self._ser
        if ser is None:
            return False
        with self._wlock:
            try:
                ser.write(data)
                return True
            except (serial.SerialException, OSError):
                return False

    def stop(self, timeout: float = 2.0) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout)


@dataclass
class SeqVerdict:
    """What :meth:`NodeTracker.check` decided about one frame."""

    accept: bool
    missing: int = 0            # frames lost just before this one (a gap to record)
    seq_first_missing: int | None = None
    duplicate: bool = False
    late: bool = False          # older than the newest frame: its slot was declared lost
    reboot: bool = False


_ACCEPT = SeqVerdict(True)   # the common verdict (next frame in sequence), shared: read-only


@dataclass
class NodeTracker:
    """Sequence bookkeeping for one node: gaps, duplicates, late frames and reboots.

    Sequence numbers count frames modulo ``seq_period``. A reboot shows as a new boot id (when
    the protocol carries one) or as the node clock jumping back by more than ``reboot_jump_us``.
    """

    seq_period: int = 1 << 16
    reboot_jump_us: int = 1_000_000
    last_seq: int | None = None
    last_t_node: int | None = None
    last_t_host: float | None = None
    boot_id: int | None = None
    frames: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0
    reboots: int = 0
    _recent: set = field(default_factory=set)

    def check(self, seq: int, t_node_us: int | None = None, boot_id: int | None = None,
              clock_period: int = 1 << 32, t_host: float | None = None) -> SeqVerdict:
        """Judge one frame. With ``t_host`` (receive time), a node clock that moved differently
        from the host clock by more than ``reboot_jump_us`` (either way) also means a restart."""
        reboot = False
        if boot_id is not None and self.boot_id is not None and boot_id != self.boot_id:
            reboot = True
        elif (t_node_us is not None and self.last_t_node is not None):
            step = (t_node_us - self.last_t_node) % clock_period
            if step >= clock_period // 2:
                step -= clock_period
            if step < -self.reboot_jump_us:
                reboot = True       # the clock restarted below where it was
            elif t_host is not None and self.last_t_host is not None:
                # ... or it restarted and now reads far ahead of the host's elapsed time (a
                # stalled read delays frames; it never moves the node clock forward)
                if step - (t_host - self.last_t_host) * 1e6 > self.reboot_jump_us:
                    reboot = True
        if boot_id is not None:
            self.boot_id = boot_id
        if reboot or self.last_seq is None:
            if reboot:
                self.reboots += 1
            self.last_seq = seq
            self.last_t_node = t_node_us
            self.last_t_host = t_host
            self._recent = {seq}
            self.frames += 1
            return SeqVerdict(True, reboot=reboot)
        d = (seq - self.last_seq) % self.seq_period
        if d == 0 or seq in self._recent:
            self.duplicates += 1
            return SeqVerdict(False, duplicate=True)
        if d >= self.seq_period // 2:
            self.late += 1
            return SeqVerdict(False, late=True)
        missing = d - 1
        first = (self.last_seq + 1) % self.seq_period if missing else None
        self.lost += missing
        self.last_seq = seq
        if t_node_us is not None:
            self.last_t_node = t_node_us
            self.last_t_host = t_host
        self._recent.add(seq)
        if len(self._recent) > 64:  # keep a short memory for duplicates from gateway retries
            self._recent = {s for s in self._recent if (self.last_seq - s) % self.seq_period < 32}
        self.frames += 1
        return SeqVerdict(True, missing=missing, seq_first_missing=first) if missing else _ACCEPT

    @property
    def loss_pct(self) -> float:
        total = self.frames + self.lost
        return 100.0 * self.lost / total if total else 0.0


@dataclass
class PendingCommand:
    node_id: int
    request_id: int
    name: str
    sent: float
    deadline: float
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool | None = None       # True ack, False nack, None timed out / pending
    detail: str = ""
    answers: int = 0             # broadcast commands: how many nodes answered


class CommandTracker:
    """Matches acks/nacks to the commands sent; commands not answered in time time out."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], PendingCommand] = {}
        self._next = 1
        self.timeouts = 0
        self.nacks = 0
        self.acks = 0
        self.stray = 0

    def next_id(self) -> int:
        with self._lock:
            rid = self._next
            self._next = (self._next % 0xFFFF) + 1
            return rid

    def sent(self, node_id: int, request_id: int, name: str, timeout: float) -> PendingCommand:
        now = self.clock()
        cmd = PendingCommand(node_id, request_id, name, now, now + timeout)
        with self._lock:
            self._pending[(node_id, request_id)] = cmd
        return cmd

    def answer(self, node_id: int, request_id: int, ok: bool, detail: str = "") -> PendingCommand | None:
        """An ack (ok) or nack arrived; returns the command or None if nobody asked."""
        with self._lock:
            cmd = self._pending.pop((node_id, request_id), None)
            if cmd is None:
                # broadcast commands (node_id -1) stay pending until their deadline: many answer
                cmd = self._pending.get((-1, request_id))
                if cmd is not None and cmd.ok is not None:
                    cmd.answers += 1
                    return cmd
        if cmd is None:
            self.stray += 1
            return None
        cmd.answers += 1
        cmd.ok = ok
        cmd.detail = detail
        if ok:
            self.acks += 1
        else:
            self.nacks += 1
        cmd.done.set()
        return cmd

    def expire(self) -> list[PendingCommand]:
        """Commands past their deadline (removed, marked timed out)."""
        now = self.clock()
        with self._lock:
            late = [k for k, c in self._pending.items() if c.deadline <= now]
            out = [self._pending.pop(k) for k in late]
        out = [c for c in out if c.answers == 0]   # an answered broadcast just ends
        for c in out:
            c.detail = "timeout"
            c.done.set()
        self.timeouts += len(out)
        return out


class MultiPortReader(threading.Thread):
    """Reads many serial ports in ONE thread with ``select`` (17 ports at 200 Hz cost far less CPU
    than 17 threads waking per frame); reopens unplugged ports.

    ``on_bytes(port, data, t_host)``, ``on_state(port, state, t_host, detail)`` as PortReader;
    ``on_idle(now)`` runs in the same thread after each batch of reads (processing, timers).
    Reads are batched: after a wake-up the thread reads every ready port, then waits at least
    ``min_period`` before the next wake-up (latency vs CPU). ``read_fds(fds, t)`` (fd -> port),
    if given, reads and processes the ready ports itself (the pipeline's C path) and returns the
    ``(port, why)`` whose read failed, or None to leave reading to this thread. ``wait_fds(fds,
    min_period, max_block)`` likewise, but it also does the waiting (returning at least every
    ``max_block`` s); preferred when given."""

    def __init__(self, ports: list[str], on_bytes: Callable[[str, bytes, float], None], *,
                 on_state: Callable[[str, str, float, str], None] | None = None,
                 on_idle: Callable[[float], None] | None = None, baudrate: int = 921600,
                 retry_s: float = 0.05, min_period: float = 0.003, clock: Callable[[], float] = time.time,
                 read_fds: Callable[[dict[int, str], float], list[tuple[str, str]] | None] | None = None,
                 wait_fds: Callable[[dict[int, str], float, float], list[tuple[str, str]] | None] | None = None,
                 max_block: float = 0.05):
        super().__init__(name="trackside-ports", daemon=True)
        self.ports = list(ports)
        self.on_bytes = on_bytes
        self.on_state = on_state or (lambda *a: None)
        self.on_idle = on_idle or (lambda now: None)
        self.baudrate = baudrate
        self.retry_s = retry_s
        self.min_period = min_period
        self.clock = clock
        self.read_fds = read_fds
        self.wait_fds = wait_fds
        self.max_block = max_block
        self._ser: dict[str, serial.SerialBase] = {}
        self._next_try: dict[str, float] = {p: 0.0 for p in self.ports}
        self._announced: set[str] = set()
        self._halt = threading.Event()
        self._wlock = threading.Lock()
        self.unplugs = {p: 0 for p in self.ports}
        self.bytes_in = {p: 0 for p in self.ports}
        self._fds: dict[int, str] | None = None
        self._fd_list: list[int] = []

    def is_open(self, port: str) -> bool:
        return port in self._ser

    def write(self, port: str, data: bytes) -> bool:
        ser = self._ser.get(port)
        if ser is None:
            return False
        with self._wlock:
            try:
                ser.write(data)
                return True
            except (serial.SerialException, OSError):
                return False

    def _try_open(self, port: str, now: float) -> None:
        try:
            ser = serial.serial_for_url(port, baudrate=self.baudrate, timeout=0)
            ser.fileno()
        except (serial.SerialException, OSError, ValueError, AttributeError) as exc:
            if port not in self._announced:
                self._announced.add(port)
                self.on_state(port, "error", now, str(exc))
            self._next_try[port] = now + self.retry_s
            return
        self._announced.discard(port)
        self._ser[port] = ser
        self._fds = None
        self.on_state(port, "open", self.clock(), "")

    def _drop(self, port: str, detail: str) -> None:
        ser = self._ser.pop(port, None)
        self._fds = None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # the device is gone: nothing to close cleanly
                pass
        self.unplugs[port] += 1
        self._announced.add(port)   # while unplugged, a missing device is expected
        now = self.clock()
        self._next_try[port] = now + self.retry_s
        self.on_state(port, "close", now, detail)

    def _after_c_read(self, failed: list[tuple[str, str]] | None) -> bool:
        """After read_fds / wait_fds: drop the ports whose read failed, run on_idle; False when
        the hook is not available (None)."""
        if failed is None:
            return False
        for port, why in failed:
            self._drop(port, why)
        self.on_idle(self.clock())
        return True

    def run(self) -> None:
        import os
        import select

        last = 0.0
        while not self._halt.is_set():
            now = self.clock()
            if len(self._ser) < len(self.ports):
                for port in self.ports:
                    if port not in self._ser and now >= self._next_try[port]:
                        self._try_open(port, now)
            if self._fds is None:   # rebuilt only when a port opens or drops
                self._fds = {ser.fileno(): port for port, ser in self._ser.items()}
                self._fd_list = list(self._fds)
            fds = self._fds
            if fds and self.wait_fds is not None:
                if self._after_c_read(self.wait_fds(fds, self.min_period, self.max_block)):
                    continue
                self.wait_fds = None        # not available: tick here from now on
            wait = max(0.0, self.min_period - (time.monotonic() - last))
            if wait:
                time.sleep(wait)    # < min_period: cheaper than Event.wait, stop() still prompt
            if fds and self.read_fds is not None:
                last = time.monotonic()
                if self._after_c_read(self.read_fds(fds, self.clock())):
                    continue
                self.read_fds = None        # not available: read here from now on
            try:
                ready = select.select(self._fd_list, [], [], 0.02)[0] if fds else []
            except (OSError, ValueError):
                ready = self._fd_list[:]    # a closed fd: the reads below find out which
            if not fds:
                self._halt.wait(self.retry_s)
            last = time.monotonic()
            t = self.clock()
            for fd in ready:
                port = fds[fd]
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                except OSError as exc:      # EIO: cable pulled / pty closed
                    self._drop(port, str(exc))
                    continue
                if not data:
                    self._drop(port, "end of file")
                    continue
                self.bytes_in[port] += len(data)
                self.on_bytes(port, data, t)
            self.on_idle(self.clock())
        for port in list(self._ser):
            try:
                self._ser.pop(port).close()
            except Exception:  # closing at shutdown: ignore a vanished device
                pass

    def stop(self, timeout: float = 2.0) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout)
