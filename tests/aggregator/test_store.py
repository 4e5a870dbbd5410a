"""Session store: schema, durable frames (SIGKILL), recovery, export."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from trackside.aggregator.store import FrameWriter, SessionStore, StoreError


def test_schema_and_roundtrip(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with SessionStore(db) as st:
        sid = st.create_session(athlete="Ada", rate_hz=200, notes="400 m")
        st.add_node(sid, 3, port="/dev/ttyUSB0", fw="0.1")
        st.assign(sid, 3, "left_shank")
        cid = st.add_calibration(3, "gyro_bias", {"bias": [1, 2, 3]}, session_id=sid)
        with FrameWriter(db, sid) as w:
            for k in range(10):
                if k == 5:
                    continue  # a lost frame: recorded as a gap, not invented
                w.frame(3, k, k * 5000, 100.0 + k * 0.005, 1, bytes([k]) * 4, nsamples=1)
            w.gap(3, 5, 1, 100.02, 100.03, "seq")
            w.event("reboot", 100.04, node_id=3, detail="boot counter 2")
            w.node_stats(3, frames=9, lost=1)
        st.end_session(sid)
        info = st.session(sid)
        assert info.status == "closed" and info.athlete == "Ada" and info.frames == 9
        rows = list(st.frames(sid))
        assert [r[1] for r in rows] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
        assert rows[0][6] == b"\x00" * 4
        assert st.gaps(sid)[0]["seq_first"] == 5
        assert st.events(sid)[0]["kind"] == "reboot"
        assert st.assignments(sid) == {3: "left_shank"}
        assert st.calibrations(3)[0]["id"] == cid and st.calibrations(3)[0]["data"]["bias"] == [1, 2, 3]
        s = st.summary(sid)
        assert s["frames_stored"] == 9 and s["nodes"][0]["segment"] == "left_shank"
        with pytest.raises(StoreError):
            st.session(999)


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "x.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        SessionStore(bad)


def test_export_npz_csv(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with SessionStore(db) as st:
        sid = st.create_session(rate_hz=100)
        st.add_node(sid, 1)
        st.add_node(sid, 2)
        st.assign(sid, 2, "pelvis")
        with FrameWriter(db, sid) as w:
            for k in range(50):
                w.frame(1, k, k * 10000, k * 0.01, 1, b"\x01\x02")
                w.frame(2, k, k * 10000 + 7, k * 0.01 + 0.001, 1, b"\x03")
            w.gap(2, 50, 3, 0.49, 0.53)
        st.end_session(sid)

        def decode(raw: bytes) -> dict:
            return {"first": np.array([raw[0]])}

        p = st.export_npz(sid, tmp_path / "out" / "s.npz", decode=decode)
        z = np.load(p)
        assert z["node1_seq"].tolist() == list(range(50))
        assert np.all(z["node2_sample_first"] == 3)
        assert z["gaps"].shape == (1, 5) and z["gaps"][0, 2] == 3
        assert "2:pelvis" in z["segments"].tolist()
        c = st.export_csv(sid, tmp_path / "s.csv")
        rows = list(csv.reader(open(c)))
        assert len(rows) == 1 + 100 + 1
        assert rows[-1][5] == "gap:seq"


CHILD = r"""
import sys, time
from trackside.aggregator.store import SessionStore, FrameWriter
db = sys.argv[1]
st = SessionStore(db)
sid = st.create_session(athlete="K", rate_hz=1000)
st.add_node(sid, 7)
w = FrameWriter(db, sid, flush_interval=0.25)
k = 0
t0 = time.time()
while True:
    now = time.time()
    w.frame(7, k, k * 1000, now, 1, k.to_bytes(4, "little"))
    k += 1
    if k == 200:
        print("ready", flush=True)
    time.sleep(0.001)
"""


def test_sigkill_loses_at_most_one_second(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(1.2)
        t_kill = time.time()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with SessionStore(db) as st:
        (info,) = st.sessions()
        assert info.status == "interrupted"
        rows = list(st.frames(info.id))
        assert len(rows) > 200
        seqs = [r[1] for r in rows]
        assert seqs == list(range(len(seqs)))           # a clean prefix, nothing corrupt
        assert t_kill - rows[-1][3] <= 1.0                # at most 1 s of data lost
        assert info.ended == pytest.approx(rows[-1][3])
        # the session reopens and can be exported
        st.export_npz(info.id, tmp_path / "k.npz")
