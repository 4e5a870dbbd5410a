"""Trackside: ESP32 IMU nodes, motion capture and training plans for track and field."""

__version__ = "0.1.0"
