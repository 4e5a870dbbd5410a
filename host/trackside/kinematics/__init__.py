"""Skeleton, calibration, joint angles, gait and session outputs.

Modules: :mod:`~trackside.kinematics.skeleton`, :mod:`~trackside.kinematics.calibration`,
:mod:`~trackside.kinematics.joints`, :mod:`~trackside.kinematics.gait`,
:mod:`~trackside.kinematics.export` (``export_outputs``, ``segments_from_nodes``),
:mod:`~trackside.kinematics.cli` (``trackside gait``, ``trackside export``).
"""
