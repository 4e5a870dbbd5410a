"""Export of a session from the session store (``trackside export SESSION`` with a session id).

The stored frames are decoded and aligned exactly as the demo does
(:func:`trackside.demo.pipeline.load_session`), then calibrated and exported with the demo's
protocol: the athlete stands still for the first ``stand_s`` seconds, then moves; the running
heading comes from the legs' swing axis.
"""

from __future__ import annotations

import os
from pathlib import Path

from trackside.demo.pipeline import DemoConfig, DemoError, export_session, load_session


def export_stored_session(db: str | os.PathLike, sid: int, out: str | os.PathLike, *, stand_s: float = 2.0,
                          blend_s: float = 1.0, plots: bool = True, height_m: float = 1.80) -> dict:
    """Decode, align, calibrate and export stored session ``sid`` of ``db`` to ``out``."""
    from trackside.aggregator.store import SessionStore, StoreError
    from trackside.kinematics.skeleton import Skeleton

    db = Path(db)
    if not db.exists():
        raise DemoError(f"no session database at {db}")
    with SessionStore(db) as st:
        try:
            info = st.session(sid)
        except StoreError as exc:
            raise DemoError(str(exc)) from None
    sess = load_session(db, sid, info.rate_hz)
    seconds = float(sess["time_s"][-1] - sess["time_s"][0]) if len(sess["time_s"]) else 0.0
    cfg = DemoConfig(seconds=seconds, out=out, db=db, rate_hz=int(round(info.rate_hz)), stand_s=stand_s,
                     blend_s=blend_s, plots=plots, extra={"source": f"session {sid} of {db}"})
    return export_session(sess, cfg, Skeleton.from_height(height_m))
