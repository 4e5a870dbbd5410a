"""Session store: SQLite (WAL) with athletes, sessions, nodes, segment assignment, calibrations,
events, gaps and the raw frames of every session.

Durability: frames are appended by a :class:`FrameWriter` thread that commits at least every
``flush_interval`` seconds (0.25 s by default) in WAL mode with ``synchronous=NORMAL``. A committed
WAL transaction survives the death of the process (SIGKILL), so a killed host loses at most the
frames received since the last commit; SQLite's journal keeps the file readable. A session whose
writer died is marked ``interrupted`` the next time the store is opened.

    >>> store = SessionStore("/tmp/ts.db")                       # doctest: +SKIP
    >>> sid = store.create_session(athlete="Ada", rate_hz=200)   # doctest: +SKIP
    >>> with FrameWriter(store.path, sid) as w:                  # doctest: +SKIP
    ...     w.frame(node_id=3, seq=0, t_node_us=0, t_host=0.0, kind=1, raw=b"...")
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from trackside.aggregator.paths import default_db

SCHEMA_VERSION = 1
STALE_AFTER_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS athletes (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    info TEXT NOT NULL DEFAULT '{}',          -- JSON: birth year, sex, resting HR, ...
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    athlete_id INTEGER REFERENCES athletes(id),
    started REAL NOT NULL,                    -- host UNIX time
    ended REAL,
    rate_hz REAL NOT NULL,
    status TEXT NOT NULL,                     -- recording | closed | interrupted
    heartbeat REAL NOT NULL,                  -- last commit of the writer
    writer_pid INTEGER,
    notes TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS nodes (          -- every node ever seen
    node_id INTEGER PRIMARY KEY,
    hw TEXT NOT NULL DEFAULT '',
    fw TEXT NOT NULL DEFAULT '',
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS session_nodes (  -- a node in a session and its counters
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    node_id INTEGER NOT NULL REFERENCES nodes(node_id),
    port TEXT NOT NULL DEFAULT '',
    frames INTEGER NOT NULL DEFAULT 0,
    samples INTEGER NOT NULL DEFAULT 0,
    lost INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    reboots INTEGER NOT NULL DEFAULT 0,
    bad_frames INTEGER NOT NULL DEFAULT 0,
    clock_offset_s REAL,
    clock_drift_ppm REAL,
    residual_us REAL,
    PRIMARY KEY (session_id, node_id)
);
CREATE TABLE IF NOT EXISTS assignments (    -- node-to-segment assignment per session
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    node_id INTEGER NOT NULL,
    segment TEXT NOT NULL,
    PRIMARY KEY (session_id, node_id)
);
CREATE TABLE IF NOT EXISTS calibrations (
    id INTEGER PRIMARY KEY,
    node_id INTEGER NOT NULL,
    session_id INTEGER REFERENCES sessions(id),
    kind TEXT NOT NULL,                       -- gyro_bias | accel | mag | pose ...
    created REAL NOT NULL,
    data TEXT NOT NULL                        -- JSON
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    node_id INTEGER,
    t_host REAL NOT NULL,
    kind TEXT NOT NULL,                       -- reboot | unplug | replug | nack | timeout | warning ...
    detail TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    node_id INTEGER NOT NULL,
    seq_first INTEGER,                        -- first missing sequence number (NULL if unknown)
    missing INTEGER NOT NULL,                 -- frames missing (-1 if unknown, e.g. across a reboot)
    t_start REAL NOT NULL,                    -- host time of the last frame before the gap
    t_end REAL NOT NULL,                      -- host time of the first frame after it
    cause TEXT NOT NULL                       -- seq | unplug | reboot
);
CREATE TABLE IF NOT EXISTS frames (         -- raw frames exactly as received (CRC checked)
    session_id INTEGER NOT NULL,
    node_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    t_node_us INTEGER NOT NULL,
    t_host REAL NOT NULL,
    kind INTEGER NOT NULL,
    nsamples INTEGER NOT NULL,
    raw BLOB NOT NULL
);
-- by session only: appends stay at the end of the index (a (session, node) key costs ~30 % more
-- per live insert); queries read whole sessions
DROP INDEX IF EXISTS frames_by_session;
CREATE INDEX IF NOT EXISTS frames_of_session ON frames (session_id);
CREATE INDEX IF NOT EXISTS gaps_by_session ON gaps (session_id, node_id);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id);
"""


class StoreError(Exception):
    """A session or file the user named does not exist or cannot be read."""


@dataclass
class SessionInfo:
    """One row of ``sessions`` with its athlete's name and frame count."""

    id: int
    athlete: str | None
    started: float
    ended: float | None
    rate_hz: float
    status: str
    notes: str
    frames: int
    nodes: int

    @property
    def duration_s(self) -> float | None:
        return None if self.ended is None else max(0.0, self.ended - self.started)


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the database in WAL mode with ``synchronous=NORMAL`` (durable across process death)."""
    con = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    return con


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SessionStore:
    """The session database. Thread-confined: give each thread its own store (or a FrameWriter)."""

    def __init__(self, path: Path | str | None = None, *, recover: bool = True):
        self.path = Path(path) if path is not None else default_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = connect(self.path)
            with self.con:
                self.con.executescript(SCHEMA)
                self.con.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
                )
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a Trackside session database ({exc})") from exc
        if recover:
            self.recover()

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "SessionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- athletes, sessions, nodes ------------------------------------------------------------

    def athlete_id(self, name: str, *, create: bool = True, **info: Any) -> int:
        """The id of athlete ``name``, created (with ``info`` as JSON) if missing and ``create``."""
        row = self.con.execute("SELECT id FROM athletes WHERE name=?", (name,)).fetchone()
        if row:
            return int(row[0])
        if not create:
            raise StoreError(f"no athlete named {name!r}")
        with self.con:
            cur = self.con.execute(
                "INSERT INTO athletes (name, info, created) VALUES (?, ?, ?)",
                (name, json.dumps(info), time.time()),
            )
        return int(cur.lastrowid)

    def create_session(self, *, athlete: str | None = None, rate_hz: float = 200.0, notes: str = "",
                       started: float | None = None) -> int:
        """Start a session (status ``recording``) and return its id."""
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        aid = self.athlete_id(athlete) if athlete else None
        now = time.time() if started is None else started
        with self.con:
            cur = self.con.execute(
                "INSERT INTO sessions (athlete_id, started, rate_hz, status, heartbeat, writer_pid, notes)"
                " VALUES (?, ?, ?, 'recording', ?, ?, ?)",
                (aid, now, float(rate_hz), now, os.getpid(), notes),
            )
        return int(cur.lastrowid)

    def end_session(self, sid: int, *, status: str = "closed", ended: float | None = None) -> None:
        self.session(sid)
        with self.con:
            self.con.execute(
                "UPDATE sessions SET status=?, ended=COALESCE(?, ended, heartbeat) WHERE id=?",
                (status, ended if ended is not None else time.time(), sid),
            )

    def recover(self) -> list[int]:
        """Mark sessions whose writer process is gone as ``interrupted``; return their ids."""
        rows = self.con.execute(
            "SELECT id, writer_pid, heartbeat FROM sessions WHERE status='recording'"
        ).fetchall()
        now = time.time()
        # A live writer commits its heartbeat every flush_interval; a stale one has died even if
        # its pid was reused.
        dead = [sid for sid, pid, hb in rows if not _pid_alive(pid) or now - hb > STALE_AFTER_S]
        for sid in dead:
            last = self.con.execute(
                "SELECT MAX(t_host) FROM frames WHERE session_id=?", (sid,)
            ).fetchone()[0]
            with self.con:
                self.con.execute(
                    "UPDATE sessions SET status='interrupted', ended=COALESCE(?, heartbeat) WHERE id=?",
                    (last, sid),
                )
        return dead

    def sessions(self) -> list[SessionInfo]:
        """All sessions, oldest first."""
        return [self._info(r) for r in self.con.execute(self._SESSION_Q + " ORDER BY s.id").fetchall()]

    def session(self, sid: int) -> SessionInfo:
        """One session; :class:`StoreError` if there is none with that id."""
        row = self.con.execute(self._SESSION_Q + " WHERE s.id=?", (int(sid),)).fetchone()
        if row is None:
            raise StoreError(f"no session {sid} in {self.path}")
        return self._info(row)

    _SESSION_Q = (
        "SELECT s.id, a.name, s.started, s.ended, s.rate_hz, s.status, s.notes,"
        " (SELECT COALESCE(SUM(frames), 0) FROM session_nodes n WHERE n.session_id=s.id),"
        " (SELECT COUNT(*) FROM session_nodes n WHERE n.session_id=s.id)"
        " FROM sessions s LEFT JOIN athletes a ON a.id = s.athlete_id"
    )

    @staticmethod
    def _info(r: tuple) -> SessionInfo:
        return SessionInfo(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], int(r[7]), int(r[8]))

    def add_node(self, sid: int, node_id: int, *, port: str = "", hw: str = "", fw: str = "") -> None:
        """Register ``node_id`` (globally and in session ``sid``)."""
        now = time.time()
        with self.con:
            self.con.execute(
                "INSERT INTO nodes (node_id, hw, fw, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(node_id) DO UPDATE SET last_seen=excluded.last_seen,"
                " hw=CASE WHEN excluded.hw != '' THEN excluded.hw ELSE hw END,"
                " fw=CASE WHEN excluded.fw != '' THEN excluded.fw ELSE fw END",
                (node_id, hw, fw, now, now),
            )
            self.con.execute(
                "INSERT INTO session_nodes (session_id, node_id, port) VALUES (?, ?, ?)"
                " ON CONFLICT DO UPDATE SET port=CASE WHEN excluded.port != '' THEN excluded.port ELSE port END",
                (sid, node_id, port),
            )

    def assign(self, sid: int, node_id: int, segment: str) -> None:
        """Say which body segment node ``node_id`` is strapped to in session ``sid``."""
        with self.con:
            self.con.execute(
                "INSERT INTO assignments VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET segment=excluded.segment",
                (sid, node_id, segment),
            )

    def assignments(self, sid: int) -> dict[int, str]:
        return dict(self.con.execute(
            "SELECT node_id, segment FROM assignments WHERE session_id=? ORDER BY node_id", (sid,)))

    def add_calibration(self, node_id: int, kind: str, data: dict, *, session_id: int | None = None) -> int:
        with self.con:
            cur = self.con.execute(
                "INSERT INTO calibrations (node_id, session_id, kind, created, data) VALUES (?, ?, ?, ?, ?)",
                (node_id, session_id, kind, time.time(), json.dumps(data)),
            )
        return int(cur.lastrowid)

    def calibrations(self, node_id: int, kind: str | None = None) -> list[dict]:
        """Calibrations of a node, newest first."""
        q = "SELECT id, session_id, kind, created, data FROM calibrations WHERE node_id=?"
        args: list = [node_id]
        if kind:
            q += " AND kind=?"
            args.append(kind)
        return [dict(id=r[0], session_id=r[1], kind=r[2], created=r[3], data=json.loads(r[4]))
                for r in self.con.execute(q + " ORDER BY id DESC", args)]

    def add_event(self, sid: int, kind: str, t_host: float, *, node_id: int | None = None, detail: str = "") -> None:
        with self.con:
            self.con.execute(
                "INSERT INTO events (session_id, node_id, t_host, kind, detail) VALUES (?, ?, ?, ?, ?)",
                (sid, node_id, t_host, kind, detail),
            )

    # -- reading ------------------------------------------------------------------------------

    def node_stats(self, sid: int) -> list[dict]:
        cols = ["node_id", "port", "frames", "samples", "lost", "duplicates", "reboots", "bad_frames",
                "clock_offset_s", "clock_drift_ppm", "residual_us"]
        rows = self.con.execute(
            f"SELECT {', '.join(cols)} FROM session_nodes WHERE session_id=? ORDER BY node_id", (sid,))
        seg = self.assignments(sid)
        out = []
        for r in rows:
            d = dict(zip(cols, r))
            d["segment"] = seg.get(d["node_id"], "")
            out.append(d)
        return out

    def gaps(self, sid: int, node_id: int | None = None) -> list[dict]:
        q = "SELECT node_id, seq_first, missing, t_start, t_end, cause FROM gaps WHERE session_id=?"
        args: list = [sid]
        if node_id is not None:
            q += " AND node_id=?"
            args.append(node_id)
        cols = ["node_id", "seq_first", "missing", "t_start", "t_end", "cause"]
        return [dict(zip(cols, r)) for r in self.con.execute(q + " ORDER BY id", args)]

    def events(self, sid: int) -> list[dict]:
        cols = ["node_id", "t_host", "kind", "detail"]
        return [dict(zip(cols, r)) for r in self.con.execute(
            "SELECT node_id, t_host, kind, detail FROM events WHERE session_id=? ORDER BY id", (sid,))]

    def frames(self, sid: int, node_id: int | None = None) -> Iterator[tuple[int, int, int, float, int, int, bytes]]:
        """Raw frames in arrival order: ``(node_id, seq, t_node_us, t_host, kind, nsamples, raw)``."""
        q = "SELECT node_id, seq, t_node_us, t_host, kind, nsamples, raw FROM frames WHERE session_id=?"
        args: list = [sid]
        if node_id is not None:
            q += " AND node_id=?"
            args.append(node_id)
        yield from self.con.execute(q + " ORDER BY rowid", args)

    def frame_count(self, sid: int) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM frames WHERE session_id=?", (sid,)).fetchone()[0])

    def summary(self, sid: int) -> dict:
        """Everything ``trackside show`` prints, as plain data."""
        info = self.session(sid)
        t = self.con.execute(
            "SELECT MIN(t_host), MAX(t_host), COUNT(*) FROM frames WHERE session_id=?", (sid,)).fetchone()
        return {
            "session": info,
            "t_first": t[0],
            "t_last": t[1],
            "frames_stored": int(t[2]),
            "nodes": self.node_stats(sid),
            "gaps": self.gaps(sid),
            "events": self.events(sid),
        }

    # -- export -------------------------------------------------------------------------------

    def _samples(self, sid: int, decode: Callable[[bytes], dict[str, np.ndarray] | None] | None,
                 progress: Callable[[int, int], None] | None = None) -> dict[int, dict[str, np.ndarray]]:
        """Per node: frame-level columns, plus sample columns from ``decode`` (raw -> arrays)."""
        total = self.frame_count(sid)
        per: dict[int, dict[str, list]] = {}
        for i, (nid, seq, tn, th, kind, ns, raw) in enumerate(self.frames(sid)):
            d = per.setdefault(nid, {"seq": [], "t_node_us": [], "t_host": [], "kind": [], "fields": []})
            d["seq"].append(seq)
            d["t_node_us"].append(tn)
            d["t_host"].append(th)
            d["kind"].append(kind)
            d["fields"].append(decode(raw) if decode else None)
            if progress and (i & 4095) == 0:
                progress(i, total)
        if progress:
            progress(total, total)
        out: dict[int, dict[str, np.ndarray]] = {}
        for nid, d in per.items():
            cols = {
                "seq": np.asarray(d["seq"], np.int64),
                "t_node_us": np.asarray(d["t_node_us"], np.int64),
                "t_host": np.asarray(d["t_host"], np.float64),
                "kind": np.asarray(d["kind"], np.int32),
            }
            fields = [f for f in d["fields"] if f]
            if fields:
                # Sample-level columns: concatenate the samples of all frames that carry them.
                for key in fields[0]:
                    cols["sample_" + key] = np.concatenate([np.atleast_1d(f[key]) for f in fields
                                                            if key in f])
            out[nid] = cols
        return out

    def export_npz(self, sid: int, path: Path | str, *, decode: Callable | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   extra: dict[str, np.ndarray] | None = None) -> Path:
        """Write ``node<N>_<column>`` arrays, gaps and segment assignment to ``path`` (.npz),
        plus ``extra`` arrays (e.g. the aligned grid)."""
        info = self.session(sid)
        data: dict[str, np.ndarray] = {
            "session_id": np.array(sid), "rate_hz": np.array(info.rate_hz),
            "started": np.array(info.started),
        }
        for nid, cols in self._samples(sid, decode, progress).items():
            for key, arr in cols.items():
                data[f"node{nid}_{key}"] = arr
        gaps = self.gaps(sid)
        data["gaps"] = np.array([(g["node_id"], -1 if g["seq_first"] is None else g["seq_first"],
                                  g["missing"], g["t_start"], g["t_end"]) for g in gaps],
                                dtype=np.float64).reshape(-1, 5)
        seg = self.assignments(sid)
        data["segments"] = np.array([f"{k}:{v}" for k, v in seg.items()], dtype=str)
        data.update(extra or {})
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **data)
        return path

    def export_csv(self, sid: int, path: Path | str, *, decode: Callable | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Path:
        """One row per frame: node, segment, seq, node time, host time, kind, raw hex; gaps as rows
        with kind ``gap`` (never filled in)."""
        self.session(sid)
        seg = self.assignments(sid)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        total = self.frame_count(sid)
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["node_id", "segment", "seq", "t_node_us", "t_host", "kind", "nsamples", "raw_hex"])
            for i, (nid, seq, tn, th, kind, ns, raw) in enumerate(self.frames(sid)):
                w.writerow([nid, seg.get(nid, ""), seq, tn, f"{th:.6f}", kind, ns, bytes(raw).hex()])
                if progress and (i & 4095) == 0:
                    progress(i, total)
            for g in self.gaps(sid):
                w.writerow([g["node_id"], seg.get(g["node_id"], ""), g["seq_first"], "", f"{g['t_start']:.6f}",
                            "gap:" + g["cause"], g["missing"], ""])
        if progress:
            progress(total, total)
        return path


class FrameWriter:
    """Appends frames, gaps, events and node counters from any thread; a background thread
    commits them at least every ``flush_interval`` seconds (the durability bound)."""

    def __init__(self, db_path: Path | str, sid: int, *, flush_interval: float = 0.25):
        self.sid = sid
        self.flush_interval = float(flush_interval)
        self._con = connect(db_path)
        self._frames: deque = deque()
        self._ops: deque = deque()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.committed_frames = 0
        self._thread = threading.Thread(target=self._run, name=f"trackside-writer-{sid}", daemon=True)
        self._thread.start()

    def frame(self, node_id: int, seq: int, t_node_us: int, t_host: float, kind: int, raw: bytes,
              nsamples: int = 1) -> None:
        """Queue one raw frame (cheap: one deque append)."""
        self._frames.append((self.sid, node_id, seq, t_node_us, t_host, kind, nsamples, raw))

    def frames_deferred(self, build: Callable[[int], list]) -> None:
        """Queue many frames in one append: ``build(session_id)`` returns their rows
        ``(session_id, node_id, seq, t_node_us, t_host, kind, nsamples, raw)``, called by the
        writer thread (the live path's tick stays short; rows are built in batches)."""
        self._frames.append(build)

    def gap(self, node_id: int, seq_first: int | None, missing: int, t_start: float, t_end: float,
            cause: str = "seq") -> None:
        self._ops.append(("INSERT INTO gaps (session_id, node_id, seq_first, missing, t_start, t_end, cause)"
                          " VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (self.sid, node_id, seq_first, missing, t_start, t_end, cause)))

    def event(self, kind: str, t_host: float, node_id: int | None = None, detail: str = "") -> None:
        self._ops.append(("INSERT INTO events (session_id, node_id, t_host, kind, detail) VALUES (?, ?, ?, ?, ?)",
                          (self.sid, node_id, t_host, kind, detail)))

    def node(self, node_id: int, port: str = "", hw: str = "", fw: str = "") -> None:
        now = time.time()
        self._ops.append((
            "INSERT INTO nodes (node_id, hw, fw, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(node_id) DO UPDATE SET last_seen=excluded.last_seen,"
            " hw=CASE WHEN excluded.hw != '' THEN excluded.hw ELSE hw END,"
            " fw=CASE WHEN excluded.fw != '' THEN excluded.fw ELSE fw END",
            (node_id, hw, fw, now, now)))
        self._ops.append((
            "INSERT INTO session_nodes (session_id, node_id, port) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET port=CASE WHEN excluded.port != '' THEN excluded.port ELSE port END",
            (self.sid, node_id, port)))

    def node_stats(self, node_id: int, **counters: Any) -> None:
        """Update counters of ``session_nodes`` (frames, samples, lost, duplicates, reboots,
        bad_frames, clock_offset_s, clock_drift_ppm, residual_us)."""
        allowed = {"frames", "samples", "lost", "duplicates", "reboots", "bad_frames",
                   "clock_offset_s", "clock_drift_ppm", "residual_us"}
        bad = set(counters) - allowed
        if bad:
            raise ValueError(f"unknown node counters: {sorted(bad)}")
        sets = ", ".join(f"{k}=?" for k in counters)
        self._ops.append((f"UPDATE session_nodes SET {sets} WHERE session_id=? AND node_id=?",
                          (*counters.values(), self.sid, node_id)))

    def sql(self, statement: str, params: tuple = ()) -> None:
        self._ops.append((statement, params))

    def flush(self) -> None:
        """Commit what is queued now (from the calling thread's view: waits for the writer)."""
        done = threading.Event()
        self._ops.append((None, done))
        while not done.wait(0.05):
            if not self._thread.is_alive():
                break
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"session writer failed: {self._error}") from self._error

    def _commit(self) -> None:
        frames = []
        pop = self._frames.popleft
        try:
            while True:
                item = pop()
                if type(item) is tuple:
                    frames.append(item)
                else:
                    frames.extend(item(self.sid))
        except IndexError:
            pass
        waiters = []
        con = self._con
        with con:
            if frames:
                con.executemany(
                    "INSERT INTO frames (session_id, node_id, seq, t_node_us, t_host, kind, nsamples, raw)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", frames)
            while self._ops:
                stmt, params = self._ops.popleft()
                if stmt is None:
                    waiters.append(params)
                else:
                    con.execute(stmt, params)
            con.execute("UPDATE sessions SET heartbeat=? WHERE id=?", (time.time(), self.sid))
        self.committed_frames += len(frames)
        for w in waiters:
            w.set()

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.flush_interval):
                self._commit()
            self._commit()
        except BaseException as exc:  # reported to the caller by flush()/close()
            self._error = exc

    def close(self) -> None:
        """Commit everything and stop the thread."""
        self._stop.set()
        self._thread.join()
        self._con.close()
        self._raise()

    def __enter__(self) -> "FrameWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

