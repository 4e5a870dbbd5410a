"""``trackside demo``: the whole chain (simulated athlete or BVH clip -> virtual nodes running the
real firmware -> aggregator -> session store -> kinematics export) with nothing plugged in.

See :mod:`trackside.demo.pipeline` for the steps and :func:`trackside.demo.pipeline.run_demo`.
"""

from trackside.demo.pipeline import ALL_SEGMENTS, LOWER_BODY, DemoConfig, DemoError, run_demo

__all__ = ["ALL_SEGMENTS", "LOWER_BODY", "DemoConfig", "DemoError", "run_demo"]
