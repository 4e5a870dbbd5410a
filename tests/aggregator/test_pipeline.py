"""Pipeline on synthetic traces (real wire protocol): nothing lost or invented, one clock."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trackside.aggregator.core import Pipeline, aligned_from_store, process_trace
from trackside.aggregator.store import FrameWriter, SessionStore
from trackside.aggregator.synth import synth_session
from trackside.aggregator.traces import Trace


def _trace(tr: dict) -> Trace:
    return Trace(Path(tr["name"]), tr["t0"], {"port": tr["name"]}, tr["records"])


def _sample_times(pl: Pipeline, nid: int) -> np.ndarray:
    return pl.sample_times(nid)


def test_faults_counted_exactly_and_clock_mapped(tmp_path: Path) -> None:
    traces, truth = synth_session(nodes=3, seconds=8, seed=3, loss=0.02, dup=0.02, corrupt=0.01)
    db = tmp_path / "s.db"
    st = SessionStore(db)
    sid = st.create_session(rate_hz=200)
    with FrameWriter(db, sid) as w:
        pl = Pipeline(w, keep_samples=True)
        for tr in traces:
            process_trace(_trace(tr), pl)
        pl.finish()
    for nid, n in pl.nodes.items():
        t = truth[nid]
        assert n.tracker.lost == t.frames_dropped + t.frames_corrupted      # every loss is a gap
        assert n.tracker.duplicates == t.frames_duplicated                    # duplicates dropped
        assert n.samples == len(t.sample_host_t)                              # nothing invented
        err = np.abs(_sample_times(pl, nid) - np.array(t.sample_host_t))
        assert np.percentile(err, 99) < 0.002                                  # one clock within 2 ms
        assert abs(n.model().drift_ppm + t.drift * 1e6) < 3
    stats = {d["node_id"]: d for d in st.node_stats(sid)}
    assert stats[1]["lost"] == truth[1].frames_dropped + truth[1].frames_corrupted
    gaps = st.gaps(sid, 1)
    assert sum(g["missing"] for g in gaps) == stats[1]["lost"] and all(g["cause"] == "seq" for g in gaps)
    assert pl.bad_frames()["crc_errors"] + pl.bad_frames()["cobs_errors"] >= 1
    al = pl.aligned()
    for nid in truth:
        assert al.valid[nid].sum() == len(truth[nid].sample_host_t)         # aligned, none filled in
        assert al.error_s[nid] < 0.002
    # the same from what the store kept (raw frames + receive times), as `show --npz` exports it
    ex = aligned_from_store(st, sid)
    for nid in truth:
        assert ex[f"aligned_valid_node{nid}"].sum() == len(truth[nid].sample_host_t)
        assert np.isnan(ex[f"aligned_node{nid}"][~ex[f"aligned_valid_node{nid}"]]).all()
        assert ex[f"align_error_us_node{nid}"] < 2000
    st.close()


def test_reboot_and_unplug_give_gaps(tmp_path: Path) -> None:
    traces, truth = synth_session(nodes=2, seconds=6, seed=4, reboot_at=1003.0, unplug=(1001.5, 1002.0))
    db = tmp_path / "s.db"
    st = SessionStore(db)
    sid = st.create_session(rate_hz=200)
    with FrameWriter(db, sid) as w:
        pl = Pipeline(w, keep_samples=True)
        for tr in traces:
            process_trace(_trace(tr), pl)
        pl.finish()
    causes = [g["cause"] for g in st.gaps(sid, 1)]
    assert "unplug" in causes and "reboot" in causes
    kinds = [e["kind"] for e in st.events(sid)]
    assert "unplug" in kinds and "replug" in kinds and "reboot" in kinds
    for nid, n in pl.nodes.items():
        assert n.tracker.reboots == 1
        assert n.samples == len(truth[nid].sample_host_t)
        err = np.abs(_sample_times(pl, nid) - np.array(truth[nid].sample_host_t))
        late = np.array(truth[nid].sample_host_t) > 1004.0        # after the reboot, clock refitted
        assert np.percentile(err[late], 99) < 0.002
    st.close()


def test_gateway_many_nodes_one_port() -> None:
    traces, truth = synth_session(nodes=5, seconds=3, seed=5, gateway=True, loss=0.01)
    assert len(traces) == 1
    pl = process_trace(_trace(traces[0]), Pipeline(keep_samples=True))
    assert sorted(pl.nodes) == [1, 2, 3, 4, 5]
    for nid, n in pl.nodes.items():
        assert n.tracker.lost == truth[nid].frames_dropped
        assert n.samples == len(truth[nid].sample_host_t)
