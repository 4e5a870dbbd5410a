"""Deterministic sample streams shared by the protocol tests (CPython side)."""

from __future__ import annotations

import math
import random

from tsproto import FrameWriter, SampleBatcher


def motion(n: int, seed: int = 1, raw: bool = False, jumps: bool = True) -> list[list[int]]:
    """n samples of plausible int16 IMU data (+ Q14 quaternion), with occasional big jumps."""
    rnd = random.Random(seed)
    rows = []
    for k in range(n):
        ph = 2 * math.pi * k / 140.0
        acc = [int(2000 * math.sin(ph + i) + rnd.gauss(0, 12)) for i in range(3)]
        gyr = [int(8000 * math.sin(2 * ph + i) + rnd.gauss(0, 2)) for i in range(3)]
        mag = [int(300 * math.cos(ph / 4 + i)) if k % 2 == 0 else None for i in range(3)]
        if k % 2 and rows:
            mag = rows[-1][6:9]
        elif k % 2:
            mag = [0, 0, 0]
        a = ph / 2
        q = [int(16384 * math.cos(a)), int(16384 * math.sin(a) * 0.6), int(16384 * math.sin(a) * 0.8), 0]
        row = acc + gyr + mag + q
        if jumps and rnd.random() < 0.03:
            row[rnd.randrange(13)] = rnd.choice([-32768, 32767, rnd.randint(-32768, 32767)])
        row = [max(-32768, min(32767, v)) for v in row]
        rows.append(row[:9] if raw else row)
    return rows


def encode(rows, node_id=3, spf=16, period_us=5000, t0=1000, raw=False, max_payload=248):
    """Wire frames (list of bytes) of rows through a SampleBatcher, flushed at the end."""
    w = FrameWriter(node_id)
    enc = SampleBatcher(w, spf, period_us, raw=raw, max_payload=max_payload)
    frames = []
    for k, r in enumerate(rows):
        if enc.add(t0 + k * period_us, r):
            frames.append(bytes(enc.frame()))
    if enc.flush():
        frames.append(bytes(enc.frame()))
    return frames
