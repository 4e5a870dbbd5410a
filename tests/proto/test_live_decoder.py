"""tsproto.fast.LiveDecoder (the aggregator's live path) gives exactly what the reference
StreamDecoder gives, messages and counters, on clean, chunked and corrupted streams."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsproto import SampleBatch, StreamDecoder
from tsproto.fast import LiveDecoder, _fast_batch

from .streams import encode, motion
from .test_fast import _mixed_stream, _mixed_stream_cached


def _run(cls, chunks):
    dec = cls()
    msgs = []
    for c in chunks:
        msgs += dec.feed(c)
    dec.close()
    return msgs, dec.stats()


def _same(chunks):
    ref, ref_stats = _run(StreamDecoder, chunks)
    got, got_stats = _run(LiveDecoder, chunks)
    assert got == ref
    for a, b in zip(got, ref):
        if isinstance(b, SampleBatch):
            assert (a.samples, a.times, a.flags, a.period_us, a.version) == (b.samples, b.times, b.flags,
                                                                              b.period_us, b.version)
    assert got_stats == ref_stats
    return sum(len(m.samples) for m in ref if isinstance(m, SampleBatch))


def test_clean_stream_and_shortcut_taken():
    frames = _mixed_stream(1)
    assert _same([b"".join(frames)]) == 600
    # the shortcut really decodes the sample frames (not only the reference fallback)
    fast = [f for f in frames if _fast_batch(f[:-1]) is not None]
    assert len(fast) > 10


def test_chunked_frame_by_frame_and_random():
    data = b"".join(_mixed_stream(2))
    rnd = random.Random(3)
    chunks, k = [], 0
    while k < len(data):
        c = rnd.randrange(1, 300)
        chunks.append(data[k:k + c])
        k += c
    assert _same(chunks) == 600
    assert _same(list(_mixed_stream(3))) == 600


@pytest.mark.parametrize("spf", [1, 2, 7, 255])
@pytest.mark.parametrize("raw", [False, True])
def test_extremes(spf, raw):
    rows = [[(-32768 if (k + i) % 2 else 32767) for i in range(13)] for k in range(60)]
    rows += [[(k * 9973 * (i + 1)) % 65536 - 32768 for i in range(13)] for k in range(60)]
    rows += motion(80, seed=spf, raw=raw)
    assert _same([b"".join(encode(rows, spf=spf, raw=raw))]) == 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), nops=st.integers(1, 30))
def test_corrupted_streams(seed, nops):
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
            del data[p:p + rnd.randrange(1, 40)]
        else:
            data[p] = 0
    _same([bytes(data)])


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=2000))
def test_random_bytes(data):
    _same([data])


def test_valid_crc_odd_bodies_fall_back_identically():
    from tsproto.consts import T_SAMPLES, VERSION
    from tsproto.frame import payload, wire

    first = bytes(26)
    bodies = [
        b"",                                             # batch header truncated
        b"\x88\x13\x00\x00",                             # n = 0
        b"\x88\x13\x00\x01" + first[:10],                # first sample truncated
        b"\x88\x13\x00\x02" + first + b"\x03",           # reserved group code
        b"\x88\x13\x01\x02" + first[:18] + b"\x40\x01",  # quaternion group in a raw batch
        b"\x88\x13\x00\x02" + first + b"\x02\x01",       # coded sample truncated
        b"\x88\x13\x00\x02" + first + b"\x15\x81\x7f\x80\x90\x91\x92\x93\x94\x95",
        b"\x88\x13\x00\x02" + first + b"\x00" + b"trailing",
    ]
    frames = [wire(payload(T_SAMPLES, 5, k, 1000 * k, b)) for k, b in enumerate(bodies)]
    frames.append(wire(payload(T_SAMPLES, 5, 99, 0, bodies[-2], version=VERSION + 1)))  # newer minor
    assert _same([b"".join(frames)]) >= 2
    assert _same(frames) >= 2


def test_frame_method_matches_feed():
    frames = _mixed_stream(5)
    dec = LiveDecoder()
    got = []
    for f in frames:
        dec.frame(f[:-1], got)
    ref, ref_stats = _run(StreamDecoder, [b"".join(frames)])
    assert got == ref and dec.stats() == ref_stats
