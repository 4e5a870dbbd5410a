"""Orientation estimation: the on-device fixed-point filter run on the host, host-side filters,
and the BROAD error metric used to benchmark them all."""
