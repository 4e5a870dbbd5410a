"""Host aggregator: read many nodes, check and align their frames, record and replay them.

Modules:

- :mod:`~trackside.aggregator.store`: SQLite session store (athletes, sessions, nodes, segment
  assignment, calibrations, events, gaps) with raw frames appended durably; npz/CSV export.
- :mod:`~trackside.aggregator.traces`: raw serial trace files (bytes + host receive times).
- :mod:`~trackside.aggregator.replay`: feed traces back through pseudo-terminals.
- :mod:`~trackside.aggregator.clock`: node microsecond clock -> host time, alignment.
- :mod:`~trackside.aggregator.reader`: per-port pyserial readers, discovery, per-node checks.
- :mod:`~trackside.aggregator.cli`: ``record``, ``sessions``, ``show``, ``trace record``, ``replay``.
"""
