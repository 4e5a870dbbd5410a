"""Virtual sensor nodes: the real firmware under MicroPython (wasm) on a simulated board.

Each virtual node is one Node.js process running ``tsfw.app`` unchanged (config in its flash,
driver + chip register model + motion stream, fixed-point filter, wire protocol) and speaking
the real protocol on its USB port. The port is a pseudo-terminal by default, so the host opens
it like any serial port and cannot tell it from hardware::

    from trackside.virtual.node import start_virtual_node
    with start_virtual_node(3, "shank_l", motion=m) as node:   # m: trackside.virtual.motion.Motion
        ser = serial.Serial(node.port, 921600, timeout=0.1)    # node.port = "/dev/pts/N"
        data = ser.read(4096)                                  # hello, status, sample batches...

``pty=False`` gives plain pipes instead (``node.read(n)`` / ``node.write(b)``). A gateway variant
runs an ESP-NOW gateway and its nodes (each with its own simulated board: bus, chip, motion,
ESP-NOW radio paired with its own LMK) in one process, the gateway's USB on the port::

    with start_virtual_gateway([(1, "thigh_l", m1), (2, "shank_l", m2)]) as gw:
        ser = serial.Serial(gw.port, 921600)

``realtime=True`` runs the board clock on the wall clock (samples at the configured rate, idle
time really slept via ``Atomics.wait``, so many nodes do not burn CPU); ``realtime=False`` runs
virtual time as fast as the interpreter goes (tests, offline generation).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from trackside import mpy
from trackside.virtual import board_libs

CHIPS = ("mpu9250", "mpu6500", "icm20948", "lsm303agr")

# MicroPython side of a virtual node: board from /board.json (machine autoloads it), a clock
# source that really sleeps in real time, then the firmware's own main.
_REALTIME_CLOCK = r"""
import board
from tsfw import clock


class _WallSleep:
    # the board clock for time, JS Atomics.wait for idle (a busy-wait would burn a core per node)
    def __init__(self, c):
        self.c = c
        self.ticks_us = c.ticks_us
        self.ticks_ms = c.ticks_ms
        self._wait = None
        try:
            import js
            self._ia = js.Int32Array.new(js.SharedArrayBuffer.new(4))
            self._wait = js.Atomics.wait
        except Exception:
            pass

    def sleep_us(self, us):
        if self._wait is not None and us >= 1000:
            self._wait(self._ia, 0, 0, us // 1000)
        else:
            self.c.sleep_us(us)


def use_clock(realtime):
    clock.use(_WallSleep(board.clock) if realtime else board.clock)
"""

_NODE_MAIN = _REALTIME_CLOCK + r"""
import machine  # loads /board.json: chips, streams, ADC, clock mode
import json
P = json.load(open('/vnode.json'))
use_clock(P['realtime'])
# as a device does after reset: boot.py, then main.py (the firmware's own entry points)
exec(open('/boot.py').read())
exec(open('/main.py').read())
"""

_GATEWAY_MAIN = _REALTIME_CLOCK + r"""
import json
import network, espnow
import machine
P = json.load(open('/vgw.json'))
board.reset(1000, P['realtime'])
board.set_adc(35, 1950000)
use_clock(P['realtime'])
from tsfw import config
from tsfw.app import App
from tsfw.gateway import Gateway
from tsfw.link_espnow import EspNowLink
network.WLAN(network.STA_IF).active(True)
gw = Gateway(P['gateway_cfg'], esp=espnow.ESPNow(mac=config.parse_mac(P['gateway_mac'])))
apps = []
for k, n in enumerate(P['nodes']):
    board.install(board.make_chip(n['chip'], stream=n['stream']), bus_id=k)
    cfg = config.defaults()
    config.update(cfg, n['config'])
    link = EspNowLink(cfg, esp=espnow.ESPNow(mac=config.parse_mac(n['mac'])))
    i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21))
    i2c._bus = board.bus(k)  # every simulated node has a board (and a bus 0) of its own
    apps.append(App(config_path='/node%d.json' % cfg['node_id'], cfg=cfg, link=link, i2c=i2c))
for a in apps:
    a.boot()
while True:
    for a in apps:
        a.step()
    gw.step()
    clock.sleep_us(1000)
"""

@dataclass
class VirtualNode:
    """A running virtual node (or gateway): its process and its serial port.

    ``port``: path of the pseudo-terminal's slave side ("/dev/pts/N") to open with pyserial, or
    None with ``pty=False`` (then use ``read``/``write``, pipes to the process).
    """

    node_ids: tuple[int, ...]
    proc: subprocess.Popen
    port: str | None
    workdir: Path
    _master: int | None = None
    _slave: int | None = None
    _rfd: int | None = None
    _wfd: int | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def node_id(self) -> int:
        return self.node_ids[0]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def read(self, n: int = 65536) -> bytes:
        """Bytes the node wrote so far (pipe mode; non-blocking: b"" when none)."""
        if self._rfd is None:
            raise RuntimeError("pty mode: open node.port with pyserial instead")
        try:
            return os.read(self._rfd, n)
        except BlockingIOError:
            return b""

    def write(self, data: bytes) -> None:
        """Send bytes to the node's USB port (pipe mode)."""
        if self._wfd is None:
            raise RuntimeError("pty mode: open node.port with pyserial instead")
        os.write(self._wfd, data)

    def stderr(self) -> str:
        """The interpreter's error output so far (a crash traceback, if any)."""
        p = self.workdir / "stderr.txt"
        return p.read_text(errors="replace") if p.exists() else ""

    def close(self) -> None:
        """Stop the node and release its port and files."""
        if self._closed:
            return
        self._closed = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._master, self._slave, self._rfd, self._wfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "VirtualNode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stream(workdir: Path, name: str, motion, chip: str) -> Path:
    """The chip's .tsms stream for ``motion`` (a Motion, a .tsms path, or None = lying still)."""
    from trackside.virtual import motion as mo

    out = workdir / name
    if motion is None:
        motion = mo.static(10.0, 200.0).with_errors(seed=0)
    if isinstance(motion, dict):  # an IMU dict, e.g. trackside.sim.athlete Motion.imu(segment)
        motion = motion_from_imu(motion)
    if isinstance(motion, (str, Path)):
        src = Path(motion)
        if not src.is_file():
            raise ValueError(f"motion stream {src} does not exist")
        mo.read_stream(src)  # validates the header
        shutil.copyfile(src, out)
        return out
    if not isinstance(motion, mo.Motion):
        raise TypeError("motion must be a trackside.virtual.motion.Motion, an IMU dict, a .tsms path or None")
    mo.stream_file(out, motion, chip)
    return out


def motion_from_imu(imu: dict):
    """A ``trackside.virtual.motion.Motion`` from an IMU dict with ``fs`` (Hz), ``quat`` (N x 4,
    w x y z sensor-to-earth ENU), ``gyr`` (rad/s), ``acc`` (m/s^2 specific force), ``mag`` (uT),
    all in the sensor frame -- what ``trackside.sim.athlete.Motion.imu(segment)`` returns."""
    import numpy as np
    from trackside.virtual import motion as mo

    missing = [k for k in ("fs", "quat", "gyr", "acc", "mag") if k not in imu]
    if missing:
        raise ValueError(f"IMU dict lacks {', '.join(missing)}")
    arrs = [np.asarray(imu[k], float) for k in ("quat", "gyr", "acc", "mag")]
    n = len(arrs[0])
    if n < 1 or arrs[0].shape != (n, 4) or any(a.shape != (n, 3) for a in arrs[1:]):
        raise ValueError("IMU dict arrays must be quat (N, 4) and gyr/acc/mag (N, 3)")
    if not float(imu["fs"]) > 0:
        raise ValueError(f"bad sample rate {imu['fs']!r}")
    return mo.Motion(float(imu["fs"]), *arrs)


def _check_node(node_id: int, segment: str, chip: str) -> None:
    from tsfw import config

    config.validate_value("node_id", node_id)
    config.validate_value("segment", segment)
    if chip not in CHIPS:
        raise ValueError(f"chip must be one of {', '.join(CHIPS)}, got {chip!r}")


def _spawn(workdir: Path, code: str, files: list[tuple[Path, str]], pty: bool, node_ids: tuple[int, ...],
           heap: int) -> VirtualNode:
    err = open(workdir / "stderr.txt", "wb")
    if pty:
        master, slave = os.openpty()
        tty.setraw(slave)      # binary: no echo, no CR/LF translation, no signals
        tty.setraw(master)
        os.set_blocking(master, False)  # hostio.read_byte() polls without blocking
        proc = mpy.popen(code, libs=board_libs(), files=files, heap=heap, stdin=master, stdout=master,
                         stderr=err, start_new_session=True)
        err.close()
        return VirtualNode(node_ids, proc, os.ttyname(slave), workdir, _master=master, _slave=slave)
    to_node_r, to_node_w = os.pipe()
    from_node_r, from_node_w = os.pipe()
    os.set_blocking(to_node_r, False)
    proc = mpy.popen(code, libs=board_libs(), files=files, heap=heap, stdin=to_node_r, stdout=from_node_w,
                     stderr=err, start_new_session=True)
    err.close()
    os.close(to_node_r)
    os.close(from_node_w)
    os.set_blocking(from_node_r, False)
    return VirtualNode(node_ids, proc, None, workdir, _rfd=from_node_r, _wfd=to_node_w)


def start_virtual_node(node_id: int, segment: str, motion=None, chip: str = "mpu9250",
                       realtime: bool = True, *, pty: bool = True, rate_hz: int = 200,
                       mode: str = "fused", config: dict | None = None, vbat_mv: int = 3900,
                       heap: int = 512 * 1024) -> VirtualNode:
    """Start one virtual node; returns its handle (close() it, or use it as a context manager).

    ``motion``: a ``trackside.virtual.motion.Motion`` (sampled truth, looped), an IMU dict (see
    ``motion_from_imu``; e.g. from the simulated athlete), a ``.tsms`` file, or None (lying still). ``config``: extra ``/config.json`` keys (validated like on the node).
    ValueError/TypeError on bad arguments; the process starts only if they are valid.
    """
    from tsfw import config as fwconfig

    _check_node(node_id, segment, chip)
    cfg = fwconfig.defaults()
    fwconfig.update(cfg, dict({"node_id": node_id, "segment": segment, "rate_hz": rate_hz, "mode": mode},
                              **(config or {})))
    workdir = Path(tempfile.mkdtemp(prefix=f"trackside-vnode{node_id}-"))
    try:
        stream = _stream(workdir, "m.tsms", motion, chip)
        (workdir / "config.json").write_text(json.dumps(cfg))
        (workdir / "board.json").write_text(json.dumps({
            "realtime": bool(realtime), "start_us": 1000,
            "unique_id": "240ac4%06x" % node_id,
            "adc_uv": {str(cfg["pins"]["vbat"]): int(vbat_mv * 1000 / cfg["vbat_divider"])},
            "i2c": {"0": [{"chip": chip, "stream": "/data/m.tsms"}]},
        }))
        (workdir / "vnode.json").write_text(json.dumps({"realtime": bool(realtime)}))
        files = [(stream, "/data/m.tsms"), (workdir / "config.json", "/config.json"),
                 (mpy.FIRMWARE_DIR / "boot.py", "/boot.py"), (mpy.FIRMWARE_DIR / "main.py", "/main.py"),
                 (workdir / "board.json", "/board.json"), (workdir / "vnode.json", "/vnode.json")]
        return _spawn(workdir, _NODE_MAIN, files, pty, (node_id,), heap)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def start_virtual_gateway(nodes: Sequence[tuple[int, str, object]] | Iterable[tuple[int, str, object]],
                          chip: str = "mpu9250", realtime: bool = True, *, pty: bool = True,
                          rate_hz: int = 200, mode: str = "fused", channel: int = 1,
                          heap: int = 2 << 20) -> VirtualNode:
    """Start an ESP-NOW gateway with its nodes in one process; the gateway's USB is the port.

    ``nodes``: (node_id, segment, motion) per node (motion as in ``start_virtual_node``). Each
    node gets its own MAC, a random LMK shared only with the gateway, and the session's PMK.
    """
    nodes = list(nodes)
    if not 1 <= len(nodes) <= 6:
        raise ValueError("a gateway pairs 1..6 nodes (ESP-NOW allows 6 encrypted peers)")
    ids = [n[0] for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError(f"node ids must be unique, got {ids}")
    from tsfw import config as fwconfig

    pmk = secrets.token_hex(16)
    gw_mac = "02:54:53:00:00:fe"
    workdir = Path(tempfile.mkdtemp(prefix="trackside-vgw-"))
    try:
        spec, peers, files = [], [], []
        for k, (node_id, segment, motion) in enumerate(nodes):
            _check_node(node_id, segment, chip)
            mac = "02:54:53:00:00:%02x" % node_id
            lmk = secrets.token_hex(16)
            stream = _stream(workdir, f"m{node_id}.tsms", motion, chip)
            files.append((stream, f"/data/m{node_id}.tsms"))
            ncfg = {"node_id": node_id, "segment": segment, "rate_hz": rate_hz, "mode": mode,
                    "link": "espnow", "gateway_mac": gw_mac, "pmk": pmk, "lmk": lmk, "channel": channel}
            probe = fwconfig.defaults()
            fwconfig.update(probe, ncfg)  # validate here, with a host-side traceback
            spec.append({"chip": chip, "stream": f"/data/m{node_id}.tsms", "mac": mac, "config": ncfg})
            peers.append({"mac": mac, "lmk": lmk})
        gcfg = fwconfig.defaults()
        fwconfig.update(gcfg, {"role": "gateway", "pmk": pmk, "peers": peers, "channel": channel})
        (workdir / "vgw.json").write_text(json.dumps({
            "realtime": bool(realtime), "gateway_mac": gw_mac, "gateway_cfg": gcfg, "nodes": spec}))
        files.append((workdir / "vgw.json", "/vgw.json"))
        return _spawn(workdir, _GATEWAY_MAIN, files, pty, tuple(ids), heap)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
