"""Command line: bad input gives a clear message and exit code 2; replay -> session -> show/export;
hardware-in-the-loop runs on committed trace fixtures through ptys and pyserial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trackside.aggregator.store import SessionStore
from trackside.cli import main

FIX = Path(__file__).with_name("fixtures")


@pytest.mark.parametrize("argv, needle", [
    (["show", "abc"], "session id"),
    (["show", "42"], "no session 42"),
    (["record", "/dev/no-such-port"], "no such serial port"),
    (["record", "/dev/null", "--assign", "x=shank"], "node id must be an integer"),
    (["record", "/dev/null", "--assign", "3"], "NODE=SEGMENT"),
    (["trace", "record", "/dev/no-such-port", "x.tstrace"], "no such serial port"),
    (["replay", "/etc/hostname"], "Trackside trace"),
    (["replay", "/etc/passwd"], "Trackside trace"),
    (["replay", "/no/such/file.tstrace"], "cannot read trace"),
])
def test_bad_input(tmp_path: Path, capsys, argv: list, needle: str) -> None:
    rc = main(argv + ["--db", str(tmp_path / "t.db")] if argv[0] in ("show", "record", "replay") else argv)
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err


def test_argparse_errors_exit_nonzero(tmp_path: Path) -> None:
    for argv in (["record", "--rate", "-5"], ["replay", "x", "--speed", "0"], ["show"]):
        p = subprocess.run([sys.executable, "-m", "trackside", *argv], capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "error" in p.stderr and "Traceback" not in p.stderr


def test_not_a_database(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not sqlite at all" * 64)
    assert main(["sessions", "--db", str(bad)]) == 2
    assert "not a Trackside session database" in capsys.readouterr().err


def _expected(name: str) -> dict:
    return json.loads((FIX / "expected.json").read_text())[name]


@pytest.mark.parametrize("name, files", [
    ("faults", ["faults_node1.tstrace", "faults_node2.tstrace"]),
    ("gateway", ["gateway.tstrace"]),
])
def test_hil_replay_fixture_through_ptys(tmp_path: Path, capsys, name: str, files: list) -> None:
    """Recorded traces -> ptys -> pyserial readers -> pipeline -> store: the counts are exact."""
    db = tmp_path / "s.db"
    rc = main(["replay", *[str(FIX / f) for f in files], "--fast", "--no-live", "--db", str(db)])
    assert rc == 0
    exp = _expected(name)
    with SessionStore(db) as st:
        (s,) = st.sessions()
        stats = {str(n["node_id"]): n for n in st.node_stats(s.id)}
        assert sorted(stats) == sorted(exp)
        for nid, e in exp.items():
            assert stats[nid]["samples"] == e["samples"]
            assert stats[nid]["lost"] == e["lost"]
            assert stats[nid]["duplicates"] == e["dups"]
            assert stats[nid]["reboots"] == e["reboots"]
        if name == "faults":
            causes = {g["cause"] for g in st.gaps(s.id)}
            assert {"seq", "unplug", "reboot"} <= causes
            assert any(e["kind"] == "replug" for e in st.events(s.id))
    assert main(["sessions", "--db", str(db)]) == 0
    assert main(["show", "1", "--db", str(db), "--npz", str(tmp_path / "x.npz"), "--csv", str(tmp_path / "x.csv")]) == 0
    z = np.load(tmp_path / "x.npz")
    for nid, e in exp.items():
        assert z[f"node{nid}_sample_values"].shape == (e["samples"], 13)
        # aligned grid: NaN (not invented values) where a node has no sample. (A --fast replay
        # compresses receive times, so slots collide; see test_pipeline for exact counts.)
        valid = z[f"aligned_valid_node{nid}"]
        assert 0 < valid.sum() <= e["samples"] and np.isnan(z[f"aligned_node{nid}"][~valid]).all()
    out = capsys.readouterr().out
    assert "session 1" in out


def test_replay_twice_is_deterministic(tmp_path: Path) -> None:
    """Two replays of the same traces give identical stored frames (bytes, order per node)."""
    files = [str(FIX / "faults_node1.tstrace"), str(FIX / "faults_node2.tstrace")]
    frames = []
    for k in range(2):
        db = tmp_path / f"d{k}.db"
        assert main(["replay", *files, "--fast", "--no-live", "--db", str(db)]) == 0
        with SessionStore(db) as st:
            frames.append(sorted((r[0], r[1], r[2], bytes(r[6])) for r in st.frames(1)))
    assert len(frames[0]) > 200
    assert frames[0] == frames[1]


def test_hil_real_firmware_trace(tmp_path: Path) -> None:
    """A trace recorded from the real firmware (virtual node under wasm, `Aggregator(trace_dir=)`):
    replayed through a pty, every sample arrives, acks/nacks are matched, nothing is bad."""
    from tsproto import StreamDecoder

    from trackside.aggregator.core import Pipeline, process_trace
    from trackside.aggregator.traces import read_trace

    tr = read_trace(FIX / "vnode3_firmware.tstrace")
    ref = StreamDecoder().feed(tr.rx_bytes())                 # the protocol's reference decoder
    n_samples = sum(len(m.samples) for m in ref if m.type == 0x10)
    assert n_samples > 300
    db = tmp_path / "s.db"
    assert main(["replay", str(FIX / "vnode3_firmware.tstrace"), "--fast", "--no-live", "--db", str(db)]) == 0
    with SessionStore(db) as st:
        (n,) = st.node_stats(1)
        assert n["node_id"] == 3 and n["samples"] == n_samples and n["lost"] == 0 and n["duplicates"] == 0
        kinds = [e["kind"] for e in st.events(1)]
        assert "nack" in kinds and "bad_frames" not in kinds
    # offline, the recorded time-sync requests (TX) and replies (RX) give a synced clock
    pl = process_trace(tr, Pipeline(keep_samples=True))
    node = pl.nodes[3]
    assert node.sync.flush().npoints >= 2 and node.sync.model.residual_s < 0.002
    # acks/nacks answer commands of the original run: offline nobody asked, so all are stray
    assert pl.commands.stray == sum(1 for m in ref if m.type in (0x06, 0x07)) >= 2


def test_killed_recorder_loses_under_a_second(tmp_path: Path) -> None:
    """SIGKILL a real-time `trackside replay` (the record path) mid-session: the session reopens
    as interrupted, readable, with the data up to <= 1 s before the kill."""
    import os
    import signal
    import sqlite3
    import time

    db = tmp_path / "k.db"
    files = [str(FIX / "faults_node1.tstrace"), str(FIX / "faults_node2.tstrace")]
    proc = subprocess.Popen([sys.executable, "-m", "trackside", "replay", *files, "--no-live", "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.time()
        n = 0
        while time.time() - t0 < 60 and n < 150:       # wait until frames are being recorded
            time.sleep(0.1)
            try:
                with sqlite3.connect(db) as con:
                    n = con.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
            except sqlite3.Error:
                pass
        assert n >= 150
        time.sleep(0.5)
        t_kill = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with SessionStore(db) as st:
        (s,) = st.sessions()
        assert s.status == "interrupted"
        last = max(r[3] for r in st.frames(s.id))
        assert t_kill - last <= 1.0
    assert main(["show", str(s.id), "--db", str(db)]) == 0
