"""Register-level models of the IMU chips Trackside supports (simulated board)."""
