"""Hypothesis fuzzing of the stream decoder: corrupted streams never raise, nothing false comes
out, and the decoder is back in sync by the next intact frame."""

import functools
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsproto import FrameWriter, StreamDecoder

from .streams import encode, motion

int16 = st.integers(-32768, 32767)


@functools.lru_cache(maxsize=None)
def _stream(seed, n_rows, spf, raw):
    rows = motion(n_rows, seed=seed, raw=raw)
    frames = encode(rows, spf=spf, raw=raw)
    w = FrameWriter(9)
    w.seq = 500
    frames.insert(1, w.hello(5, 200, 8, 2000, 4912, 1, 3, "1.2", "MPU9250"))
    frames.append(w.status(6, 3700, 2100, 1, 2, 3, 4, 5))
    frames.append(w.log(7, 30, "end"))
    return tuple(frames)


corruption = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
    st.tuples(st.just("zero"), st.integers(0, 10**6), st.just(0)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 1000),
    spf=st.integers(1, 40),
    raw=st.booleans(),
    target=st.integers(0, 10**6),
    ops=st.lists(corruption, min_size=1, max_size=4),
    chunk=st.integers(1, 300),
)
def test_corrupted_stream_never_raises_and_resyncs(seed, spf, raw, target, ops, chunk):
    frames = list(_stream(seed % 16, 60, spf, raw))
    good = StreamDecoder().feed(b"".join(frames))
    assert len(good) == len(frames)
    i = target % len(frames)
    f = bytearray(frames[i])
    for kind, pos, arg in ops:  # all damage inside frame i (its delimiter included)
        p = pos % (len(f) + 1)
        if kind == "flip" and p < len(f):
            f[p] ^= 1 << arg
        elif kind == "insert":
            f[p:p] = arg
        elif kind == "delete":
            del f[p : p + arg]
        elif kind == "zero" and p < len(f):
            f[p] = 0
    data = b"".join(frames[:i]) + bytes(f) + b"".join(frames[i + 1 :])
    dec = StreamDecoder()
    out = []
    for k in range(0, len(data), chunk):
        out += dec.feed(data[k : k + chunk])
    dec.close()
    # nothing invented: every message is one that was sent (CRC-32 false accept ~2**-32)
    for m in out:
        assert m in good
    # every frame but the damaged one is decoded: the next one too, even when frame i's
    # delimiter was lost (it is then found at the end of the bad chunk)
    for m in good[:i] + good[i + 1 :]:
        assert m in out
    assert sum(dec.stats()[k] for k in ("frames",)) == len(out)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=3000), chunk=st.integers(1, 500))
def test_random_bytes_never_raise(data, chunk):
    dec = StreamDecoder()
    for k in range(0, len(data), chunk):
        dec.feed(data[k : k + chunk])
    dec.close()
    s = dec.stats()
    assert s["bytes_discarded"] <= len(data) + 1


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.lists(int16, min_size=13, max_size=13), min_size=1, max_size=120),
       spf=st.integers(1, 255))
def test_any_int16_rows_roundtrip(rows, spf):
    frames = encode(rows, spf=spf)
    msgs = StreamDecoder().feed(b"".join(frames))
    assert [r for m in msgs for r in m.samples] == rows


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_valid_crc_random_bodies_never_raise(seed):
    # frames with correct CRC but arbitrary bodies (a buggy or newer sender): counted, no raise
    rnd = random.Random(seed)
    w = FrameWriter(1)
    dec = StreamDecoder(keep_unknown=True)
    for _ in range(50):
        t = rnd.choice([1, 2, 3, 4, 5, 6, 7, 8, 0x10, 0x10, 0x10, rnd.randrange(256)])
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 200)))
        dec.feed(w.frame(t, 0, body, version=rnd.choice([0x10, 0x11, 0x1F])))
    s = dec.stats()
    assert s["frames"] + s["malformed"] == 50
