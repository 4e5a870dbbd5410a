"""The numpy fast path gives exactly what the reference StreamDecoder gives, counters included,
on clean and corrupted streams."""

import functools
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsproto import FrameWriter, SampleBatch, StreamDecoder
from tsproto.fast import FastDecoder, decode

from .streams import encode, motion


def _reference(data, chunks=None):
    dec = StreamDecoder()
    msgs = []
    for c in chunks or [data]:
        msgs += dec.feed(c)
    dec.close()
    rows, times, nodes, seqs, flags, others = [], [], [], [], [], []
    for m in msgs:
        if isinstance(m, SampleBatch):
            rows += m.samples
            times += m.times
            nodes += [m.node_id] * len(m.samples)
            seqs += [m.seq] * len(m.samples)
            flags += [m.flags] * len(m.samples)
        else:
            others.append(m)
    return rows, times, nodes, seqs, flags, others, dec.stats()


def _check_same(data, chunks=None):
    rows, times, nodes, seqs, flags, others, stats = _reference(data, chunks)
    if chunks is None:
        res = decode(data)
        got_stats = res.stats
        parts = [res]
    else:
        fd = FastDecoder()
        parts = [fd.feed(c) for c in chunks]
        fd.close()
        got_stats = fd.stats()
    values = np.concatenate([p.values for p in parts]) if parts else np.zeros((0, 13))
    assert values.tolist() == rows
    assert np.concatenate([p.t_us for p in parts]).tolist() == times
    assert np.concatenate([p.node_id for p in parts]).tolist() == nodes
    assert np.concatenate([p.seq for p in parts]).tolist() == seqs
    assert np.concatenate([p.flags for p in parts]).tolist() == flags
    assert [m for p in parts for m in p.messages] == others
    assert got_stats == stats
    return len(rows)


@functools.lru_cache(maxsize=None)
def _mixed_stream_cached(seed):
    return tuple(_mixed_stream(seed))


def _mixed_stream(seed):
    frames = []
    for k, (raw, spf) in enumerate([(False, 16), (True, 30), (False, 1), (False, 255)]):
        frames += encode(motion(150, seed=seed + k, raw=raw), node_id=k + 1, spf=spf, raw=raw)
    w = FrameWriter(7)
    frames.insert(3, w.hello(1, 200, 8, 2000, 4912, 1, 3, "1.0", "MPU9250"))
    frames.insert(9, w.log(2, 20, "hello"))
    frames.append(w.status(3, 3900, 2500, 0, 0, 0, 50000, 1))
    return frames


def test_clean_stream_identical():
    data = b"".join(_mixed_stream(1))
    assert _check_same(data) == 600


def test_chunked_identical():
    data = b"".join(_mixed_stream(2))
    rnd = random.Random(5)
    chunks, k = [], 0
    while k < len(data):
        c = rnd.randrange(1, 700)
        chunks.append(data[k : k + c])
        k += c
    assert _check_same(data, chunks) == 600


def test_frame_fields():
    frames = encode([[k % 5 + i for i in range(13)] for k in range(25)], node_id=9, spf=10)
    res = decode(b"".join(frames))
    assert res.frame_n.tolist() == [10, 10, 5]
    assert res.frame_seq.tolist() == [0, 1, 2] and set(res.frame_node.tolist()) == {9}
    assert res.frame_t_us.tolist() == [1000, 51000, 101000]
    assert res.frame_period_us.tolist() == [5000] * 3
    assert res.frame.tolist() == [0] * 10 + [1] * 10 + [2] * 5


def test_long_multiblock_frames_use_reference_path():
    w = FrameWriter(1)
    body = bytes(range(1, 256)) * 3  # > 254 bytes without zeros: multi-block COBS
    from tsproto.frame import payload, wire

    data = wire(payload(0x08, 1, 0, 0, b"\x14" + bytes([200]) + b"a" * 200)) + wire(payload(0x7E, 1, 1, 0, body))
    data += w.log(0, 20, "x")
    _check_same(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), nops=st.integers(1, 30))
def test_corrupted_streams_identical(seed, nops):
    rnd = random.Random(seed)
    data = bytearray(b"".join(_mixed_stream_cached(seed % 8)))
    for _ in range(nops):
        p = rnd.randrange(len(data))
        op = rnd.random()
        if op < 0.4:
            data[p] ^= 1 << rnd.randrange(8)
        elif op < 0.6:
            data[p:p] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 20)))
        elif op < 0.8:
            del data[p : p + rnd.randrange(1, 40)]
        else:
            data[p] = 0
    _check_same(bytes(data))


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes_identical(data):
    _check_same(data)


@pytest.mark.parametrize("spf", [1, 7, 255])
def test_extremes_identical(spf):
    rows = [[(-32768 if (k + i) % 2 else 32767) for i in range(13)] for k in range(60)]
    rows += [[(k * 9973 * (i + 1)) % 65536 - 32768 for i in range(13)] for k in range(60)]
    assert _check_same(b"".join(encode(rows, spf=spf))) == 120


def test_frame_and_message_end_positions():
    frames = _mixed_stream(4)
    data = b"".join(frames)
    ends = []
    pos = -1
    for f in frames:
        pos += len(f)
        ends.append(pos)
    fd = FastDecoder()
    r1 = fd.feed(data[:1000])
    r2 = fd.feed(data[1000:])
    got = [e for e in r1.frame_end.tolist()] + [1000 + e for e in r2.frame_end.tolist()]
    got += r1.message_end + [1000 + e for e in r2.message_end]
    assert sorted(got) == ends
    for r, off in ((r1, 0), (r2, 1000)):
        for e in r.frame_end.tolist() + r.message_end:
            assert data[off + e] == 0
