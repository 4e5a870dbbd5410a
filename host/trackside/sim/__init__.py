"""Simulated athletes and motion sources with known truth (for tests, benches and the demo).

- :mod:`trackside.sim.athlete`: kinematic jogging/sprinting athlete, :class:`Motion` base with
  ideal IMU signals for any segment-mounted sensor.
- :mod:`trackside.sim.bvh_motion`: the same outputs driven by a BVH clip (e.g. CMU running).
"""
