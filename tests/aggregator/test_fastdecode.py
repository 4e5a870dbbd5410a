"""The vectorised decoder gives exactly what the reference tsproto.StreamDecoder gives."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsproto import SampleBatcher, StreamDecoder
from tsproto.frame import FrameWriter
from tsproto.messages import Status
from trackside.aggregator.fastdecode import decode_stream


def _stream(seed: int, nodes: int = 3, n: int = 300) -> bytes:
    rng = random.Random(seed)
    parts = []
    for node in range(nodes):
        w = FrameWriter(node + 1)
        for raw in (False, True):
            enc = SampleBatcher(w, samples_per_frame=rng.randint(1, 16), period_us=rng.choice([2500, 5000]), raw=raw)
            v = [0] * 13
            t = rng.randrange(1 << 32)
            for _ in range(n):
                big = rng.random() < 0.3
                v = [max(-32768, min(32767, x + (rng.randint(-3000, 3000) if big else rng.randint(-2, 2)))) for x in v]
                if rng.random() < 0.01:
                    v = [rng.randint(-32768, 32767) for _ in v]
                if enc.add(t & 0xFFFFFFFF, v[:9] if raw else v):
                    parts.append(bytes(enc.frame()))
                t += 5000
                if rng.random() < 0.02:
                    if enc.mark_gap():
                        parts.append(bytes(enc.frame()))
                if rng.random() < 0.01:
                    parts.append(w.frame(Status.TYPE, t & 0xFFFFFFFF, Status(battery_mv=3900, temp_c100=2500,
                                 fifo_overflows=1, loop_overruns=0, i2c_errors=0, free_mem=1000, uptime_s=5).body()))
            if enc.flush():
                parts.append(bytes(enc.frame()))
    return b"".join(parts)


def _compare(data: bytes) -> None:
    ref = StreamDecoder().feed(data)
    d = decode_stream(data)
    rs = [m for m in ref if m.type == 0x10]
    assert len(rs) == len(d.frame_end)
    for i, m in enumerate(rs):
        assert (m.node_id, m.seq, m.t_us, m.flags, m.period_us) == (
            d.frame_node[i], d.frame_seq[i], d.frame_t_us[i], d.frame_flags[i], d.frame_period[i])
        assert d.values[d.frame == i].tolist() == m.samples
        assert d.t_node_us[d.frame == i].tolist() == m.times
    others = [m for m in ref if m.type != 0x10]
    assert [m for _, m in d.messages] == others


def test_matches_reference_clean() -> None:
    for seed in range(4):
        data = _stream(seed)
        _compare(data)
        d = decode_stream(data)
        assert d.stats["crc_errors"] == 0 and d.consumed == len(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10), flips=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)),
                                              max_size=40),
       cut=st.integers(0, 200), junk=st.binary(max_size=300))
def test_matches_reference_corrupted(seed: int, flips: list, cut: int, junk: bytes) -> None:
    data = bytearray(_stream(seed, nodes=1, n=80))
    for pos, val in flips:
        data[pos % len(data)] = val
    pos = cut * 7 % len(data)
    data = bytes(data[:pos]) + junk + bytes(data[pos:])
    _compare(data)


def test_partial_tail_and_empty() -> None:
    data = _stream(1, nodes=1, n=50)
    d = decode_stream(data[:-5])
    assert d.consumed < len(data) - 5 and data[d.consumed - 1] == 0
    e = decode_stream(b"")
    assert e.values.shape == (0, 13) and e.consumed == 0
    z = decode_stream(b"\x00\x00\x00")
    assert len(z.frame_end) == 0 and z.consumed == 3
    assert np.all(decode_stream(data).values == decode_stream(bytearray(data)).values)
