"""Where the aggregator keeps its data: ``$TRACKSIDE_HOME`` (default ``~/.trackside``)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The Trackside data directory (not created here)."""
    env = os.environ.get("TRACKSIDE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".trackside"


def default_db() -> Path:
    """The default session database, ``$TRACKSIDE_HOME/trackside.db``."""
    return home() / "trackside.db"
