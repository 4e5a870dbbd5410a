"""Reader pieces: VID/PID discovery, sequence bookkeeping, command acks, unplug-surviving reader."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from trackside.aggregator.reader import CommandTracker, NodeTracker, PortReader, discover_ports, match_usb_id
from trackside.aggregator.replay import Replayer
from trackside.aggregator.traces import EVENT, RX, write_trace


def test_discovery_by_vid_pid() -> None:
    ports = [
        SimpleNamespace(device="/dev/ttyUSB1", vid=0x1A86, pid=0x7523, serial_number="a", description="CH340"),
        SimpleNamespace(device="/dev/ttyACM0", vid=0x303A, pid=0x1001, serial_number=None, description="S3"),
        SimpleNamespace(device="/dev/ttyUSB0", vid=0x10C4, pid=0xEA60, serial_number="b", description="CP2102"),
        SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, serial_number=None, description="n/a"),
        SimpleNamespace(device="/dev/ttyACM1", vid=0x2341, pid=0x0043, serial_number=None, description="Arduino"),
        SimpleNamespace(device="/dev/ttyUSB2", vid=0x1A86, pid=0x55D4, serial_number=None, description="CH9102"),
    ]
    found = discover_ports(lambda: ports)
    assert [f.device for f in found] == ["/dev/ttyACM0", "/dev/ttyUSB0", "/dev/ttyUSB1", "/dev/ttyUSB2"]
    assert match_usb_id(0x1A86, 0x0001) is None and match_usb_id(0x303A, 0x4001)
    discover_ports()  # the real system: must not raise whatever is plugged in


def test_seq_gaps_duplicates_reboot() -> None:
    t = NodeTracker(seq_period=256)
    v = [t.check(s, 9_000_000 + k * 5000) for k, s in enumerate((250, 251, 252, 252, 255, 0, 1))]
    assert [x.accept for x in v] == [True, True, True, False, True, True, True]
    assert v[3].duplicate and v[4].missing == 2 and v[4].seq_first_missing == 253
    assert t.lost == 2 and t.duplicates == 1
    assert not t.check(200, 9_010_000).accept  # late / out-of-order
    r = t.check(0, 1000)                     # node clock went back 1.3 s: rebooted
    assert r.accept and r.reboot and t.reboots == 1 and r.missing == 0
    assert t.check(1, 6000).accept and t.lost == 2
    b = NodeTracker()
    b.check(10, boot_id=1)
    assert b.check(0, boot_id=2).reboot


def test_command_tracker() -> None:
    now = [0.0]
    ct = CommandTracker(clock=lambda: now[0])
    a = ct.sent(3, ct.next_id(), "start", 0.5)
    b = ct.sent(4, ct.next_id(), "rate", 0.5)
    assert ct.answer(3, a.request_id, True).ok is True
    assert ct.answer(4, 999, True) is None and ct.stray == 1
    now[0] = 1.0
    assert ct.expire() == [b] and b.ok is None and b.done.is_set() and ct.timeouts == 1
    c = ct.sent(4, ct.next_id(), "calibrate", 0.5)
    assert ct.answer(4, c.request_id, False, "busy").ok is False and ct.nacks == 1


def test_port_reader_survives_unplug(tmp_path: Path) -> None:
    recs = [(RX, i * 1_000_000, bytes([i]) * 10) for i in range(30)]
    recs += [(EVENT, 31_000_000, b'{"event": "close"}'), (EVENT, 40_000_000, b'{"event": "open"}')]
    recs += [(RX, 41_000_000 + i * 1_000_000, bytes([100 + i]) * 10) for i in range(30)]
    tr = write_trace(tmp_path / "t.tstrace", recs)
    got: list[bytes] = []
    states: list[str] = []
    with Replayer([tr], speed=None, link_dir=tmp_path / "p") as rp:
        r = PortReader(rp.paths[0], lambda d, t: got.append(d), on_state=lambda s, t, d: states.append(s))
        r.start()
        rp.start()
        assert rp.join(30)
        r.stop()
    assert b"".join(got) == b"".join(p for tag, _, p in recs if tag == RX)
    assert states[:3] == ["open", "close", "open"] and r.unplugs == 1


def test_port_reader_missing_port() -> None:
    states: list[tuple] = []
    r = PortReader("/dev/does-not-exist-ts", lambda d, t: None,
                   on_state=lambda s, t, d: states.append((s, d)), reconnect=False)
    r.start()
    r.join(5)
    assert states and states[0][0] == "error"


def test_broadcast_command_answered_by_many() -> None:
    now = [0.0]
    ct = CommandTracker(clock=lambda: now[0])
    b = ct.sent(-1, 7, "hello", 1.0)
    assert ct.answer(3, 7, True) is b and ct.answer(4, 7, True) is b and b.answers == 2 and b.ok
    now[0] = 2.0
    assert ct.expire() == [] and ct.timeouts == 0 and ct.stray == 0
    silent = ct.sent(-1, 8, "hello", 1.0)
    now[0] = 4.0
    assert ct.expire() == [silent] and silent.detail == "timeout"
