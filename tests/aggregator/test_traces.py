"""Trace files (format, truncation) and replay through pseudo-terminals (bit-exact, unplug)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import serial

from trackside.aggregator.replay import Replayer
from trackside.aggregator.traces import EVENT, RX, TX, TraceError, TraceWriter, read_trace, write_trace


def _chunks(seed: int, n: int) -> list[bytes]:
    rng = random.Random(seed)
    return [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(n)]


def test_writer_reader_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "a.tstrace"
    chunks = _chunks(1, 50) + [bytes(70000)]  # a long read is split into records
    with TraceWriter(p, port="/dev/ttyUSB0", baudrate=921600, meta={"note": "x"}) as tw:
        tw.event("open")
        for i, c in enumerate(chunks):
            tw.rx(c, t_ns=i * 1000)
        tw.tx(b"\x01cmd")
    tr = read_trace(p)
    assert not tr.truncated and tr.port == "/dev/ttyUSB0" and tr.meta["note"] == "x"
    assert tr.rx_bytes() == b"".join(chunks)
    assert tr.records[0][0] == EVENT and tr.records[-1][0] == TX
    data, ends, times = tr.rx_chunks()
    assert data == b"".join(chunks) and ends[-1] == len(data) and len(ends) == len(times)


def test_truncated_and_corrupt_tail(tmp_path: Path) -> None:
    chunks = _chunks(2, 20)
    p = write_trace(tmp_path / "b.tstrace", [(RX, i, c) for i, c in enumerate(chunks)])
    full = p.read_bytes()
    for cut in range(1, 60, 7):
        q = tmp_path / f"cut{cut}.tstrace"
        q.write_bytes(full[:-cut])
        tr = read_trace(q)
        assert tr.truncated
        got = tr.rx_bytes()
        assert b"".join(chunks).startswith(got) and len(tr.records) == 19
    bad = bytearray(full)
    bad[-10] ^= 0xFF  # corrupt the last record's payload: CRC catches it
    q = tmp_path / "bad.tstrace"
    q.write_bytes(bytes(bad))
    assert len(read_trace(q).records) == 19
    for junk in (b"", b"garbage" * 10, full[:10]):
        q.write_bytes(junk)
        with pytest.raises(TraceError):
            read_trace(q)


def _read_all(path: str, stop: threading.Event, out: list, opens: list) -> None:
    """A pyserial reader that survives unplugging: reopen the (symlinked) port and go on."""
    while not stop.is_set():
        try:
            s = serial.Serial(path, 921600, timeout=0.05)
        except (serial.SerialException, OSError):
            time.sleep(0.02)
            continue
        opens.append(time.monotonic())
        try:
            while not stop.is_set():
                b = s.read(4096)
                if b:
                    out.append(b)
        except (serial.SerialException, OSError):
            pass
        finally:
            s.close()


@pytest.mark.parametrize("speed", [None, 50.0])
def test_replay_bit_exact_with_replug(tmp_path: Path, speed: float | None) -> None:
    a = _chunks(3, 120)
    b = _chunks(4, 80)
    recs_a = [(RX, i * 2_000_000, c) for i, c in enumerate(a[:60])]
    recs_a += [(EVENT, 121_000_000, b'{"event": "close"}'), (EVENT, 130_000_000, b'{"event": "open"}')]
    recs_a += [(RX, 131_000_000 + i * 2_000_000, c) for i, c in enumerate(a[60:])]
    ta = write_trace(tmp_path / "a.tstrace", recs_a, t0=1000.0)
    tb = write_trace(tmp_path / "b.tstrace", [(RX, i * 3_000_000, c) for i, c in enumerate(b)], t0=1000.5)
    outs: list[list] = [[], []]
    opens: list[list] = [[], []]
    stop = threading.Event()
    with Replayer([ta, tb], speed=speed, link_dir=tmp_path / "ports") as rp:
        threads = [threading.Thread(target=_read_all, args=(p, stop, o, op), daemon=True)
                   for p, o, op in zip(rp.paths, outs, opens)]
        for t in threads:
            t.start()
        rp.start()
        assert rp.join(timeout=60)
        stop.set()
        for t in threads:
            t.join(5)
    assert b"".join(outs[0]) == b"".join(a)
    assert b"".join(outs[1]) == b"".join(b)
    assert len(opens[0]) >= 2 and len(opens[1]) == 1  # the unplug was seen and survived


def test_replay_rejects_bad_speed(tmp_path: Path) -> None:
    p = write_trace(tmp_path / "a.tstrace", [(RX, 0, b"x")])
    with pytest.raises(ValueError):
        Replayer([p], speed=0)
