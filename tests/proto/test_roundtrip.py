"""Round trips of every message type and of sample batches (CPython)."""

import struct
import zlib

import pytest

import tsproto
from tsproto import (
    CMD_ARGS,
    FrameWriter,
    SampleBatch,
    SampleBatcher,
    StreamDecoder,
    cobs_decode,
    cobs_encode,
    decode_frame,
)
from tsproto.consts import CRC_INIT, ESPNOW_MAX, F_GAP

from .streams import encode, motion


def test_crc_definition():
    # CRC-32/ISO-HDLC over a virtual 0x00 byte + payload; check value of the standard CRC-32
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert CRC_INIT == zlib.crc32(b"\x00")
    assert tsproto.crc(b"abc") == zlib.crc32(b"\x00abc")


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", bytes(range(1, 255)), bytes(range(256)) * 3, b"\x01" * 600],
)
def test_cobs_roundtrip(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(enc) == data


def test_cobs_known_vectors():
    # vectors from the COBS paper / Wikipedia
    assert bytes(cobs_encode(b"\x00")) == b"\x01\x01"
    assert bytes(cobs_encode(b"\x11\x22\x00\x33")) == b"\x03\x11\x22\x02\x33"
    assert bytes(cobs_encode(b"\x11\x00\x00\x00")) == b"\x02\x11\x01\x01\x01"


def test_cobs_rejects_malformed():
    with pytest.raises(ValueError):
        cobs_decode(b"\x05\x01")  # block runs past the end
    with pytest.raises(ValueError):
        cobs_decode(b"\x02\x00")


def _all_messages(w):
    t = 123456
    return [
        (w.hello(t, 200, 8, 2000, 4912, 1, 0xDEADBEEF, "0.3.1", "MPU-9250"), tsproto.Hello,
         dict(rate_hz=200, accel_range_g=8, gyro_range_dps=2000, mag_range_ut=4912, mode=1,
              calib_id=0xDEADBEEF, fw_version="0.3.1", chip="MPU-9250")),
        (w.status(t, 3912, -523, 1, 2, 3, 81234, 99), tsproto.Status,
         dict(battery_mv=3912, temp_c100=-523, fifo_overflows=1, loop_overruns=2, i2c_errors=3,
              free_mem=81234, uptime_s=99)),
        (w.timesync_request(t, 7, 2**40 + 5), tsproto.TimeSyncRequest, dict(req_id=7, t1=2**40 + 5)),
        (w.timesync_reply(t, 7, 2**40 + 5, 2**50, 2**50 + 17), tsproto.TimeSyncReply,
         dict(req_id=7, t1=2**40 + 5, t2=2**50, t3=2**50 + 17)),
        (w.ack(t, 65535, tsproto.CMD_START), tsproto.Ack, dict(cmd_seq=65535, cmd=tsproto.CMD_START)),
        (w.nack(t, 12, tsproto.CMD_SET_RATE, tsproto.E_BAD_ARG), tsproto.Nack,
         dict(cmd_seq=12, cmd=tsproto.CMD_SET_RATE, error=tsproto.E_BAD_ARG)),
        (w.log(t, tsproto.LOG_WARN, "fifo overflow \u00e9"), tsproto.Log, dict(level=30, text="fifo overflow \u00e9")),
    ]


def test_every_message_roundtrip():
    w = FrameWriter(42)
    for k, (frame, cls, fields) in enumerate(_all_messages(w)):
        assert frame.endswith(b"\x00") and frame.count(0) == 1
        assert len(frame) <= ESPNOW_MAX
        m = decode_frame(frame)
        assert type(m) is cls
        assert (m.node_id, m.seq, m.t_us, m.version) == (42, k, 123456, tsproto.VERSION)
        assert m.fields() == fields


ARGS = {
    tsproto.CMD_SET_RATE: (200,),
    tsproto.CMD_SET_RANGES: (16, 2000),
    tsproto.CMD_SET_MODE: (tsproto.MODE_RAW,),
    tsproto.CMD_CALIB_GYRO: (3000,),
    tsproto.CMD_STORE_MAG_CAL: (77, 10, -20, 30, 16384, 0, 0, 0, 16384, 0, 0, 0, 16384),
    tsproto.CMD_IDENTIFY: (5,),
}


@pytest.mark.parametrize("cmd", sorted(CMD_ARGS))
def test_every_command_roundtrip(cmd):
    w = FrameWriter(tsproto.NODE_BROADCAST)
    w.seq = 65535
    frame, seq = w.command(99, cmd, ARGS.get(cmd, ()))
    assert seq == 65535 and w.seq == 0  # 16-bit wrap
    m = decode_frame(frame)
    assert isinstance(m, tsproto.Command) and m.seq == 65535
    assert m.cmd == cmd and m.args == ARGS.get(cmd, ())


def test_unknown_command_keeps_raw_args():
    w = FrameWriter(1)
    frame, _ = w.command(0, 0x7E, b"\x01\x02")
    m = decode_frame(frame)
    assert m.cmd == 0x7E and m.args == b"\x01\x02"


def test_log_text_is_cut_to_fit():
    w = FrameWriter(1)
    m = decode_frame(w.log(0, 20, "x" * 1000))
    assert m.text == "x" * 200


@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("spf", [1, 2, 16, 40, 255])
def test_sample_batches_roundtrip(raw, spf):
    rows = motion(700, seed=spf, raw=raw)
    frames = encode(rows, spf=spf, raw=raw)
    dec = StreamDecoder()
    msgs = dec.feed(b"".join(frames))
    assert dec.stats()["frames"] == len(frames) and dec.bytes_discarded == 0
    got, times = [], []
    for k, m in enumerate(msgs):
        assert isinstance(m, SampleBatch) and m.seq == k and m.raw == raw and not m.gap
        assert m.period_us == 5000 and len(m.samples) <= spf
        got += [r[:9] if raw else r for r in m.samples]
        times += m.times
        if raw:
            assert all(r[9:] == [0, 0, 0, 0] for r in m.samples)
    assert got == rows
    assert times == [1000 + 5000 * k for k in range(len(rows))]
    assert all(len(f) <= ESPNOW_MAX for f in frames)


def test_extreme_values_and_wraparound():
    # int16 extremes flip every sample: residuals far outside int16 must wrap losslessly
    rows = [[(-32768 if (k + i) % 2 else 32767) for i in range(13)] for k in range(50)]
    rows += [[(k * 9973 * (i + 1)) % 65536 - 32768 for i in range(13)] for k in range(50)]
    frames = encode(rows, spf=32)
    msgs = StreamDecoder().feed(b"".join(frames))
    assert [r for m in msgs for r in m.samples] == rows


def test_constant_signal_sizes():
    # still signal: int8 residuals (tag + 3 + 3 + 4 bytes), mag unchanged (0 bytes)
    rows = [[100] * 13] * 64
    frames = encode(rows, spf=64, max_payload=248)
    msgs = StreamDecoder().feed(b"".join(frames))
    for f, m in zip(frames, msgs):
        n = len(m.samples)
        assert len(f) == 2 + 9 + 4 + 4 + 26 + 11 * (n - 1)
        assert len(f) <= 248 + 2 and len(f) + 27 > 248 + 2 - 2 or m is msgs[-1]


def test_gap_flag_period_change_and_seq_shared_with_other_messages():
    w = FrameWriter(9)
    enc = SampleBatcher(w, 4, 5000)
    wire = []
    s = [1] * 13
    for k in range(6):
        if enc.add(k * 5000, s):
            wire.append(bytes(enc.frame()))
    wire.append(w.log(0, 20, "between"))  # seq shared with the batcher
    if enc.mark_gap():
        wire.append(bytes(enc.frame()))
    for k in range(4):
        if enc.add(10**6 + k * 5000, s):
            wire.append(bytes(enc.frame()))
    if enc.set_period(10000):
        wire.append(bytes(enc.frame()))
    enc.add(2**32 - 1, s)
    assert enc.flush()
    wire.append(bytes(enc.frame()))
    msgs = StreamDecoder().feed(b"".join(wire))
    assert [m.seq for m in msgs] == list(range(len(msgs)))
    kinds = [(type(m).__name__, getattr(m, "flags", None), len(getattr(m, "samples", []))) for m in msgs]
    assert kinds == [
        ("SampleBatch", 0, 4),
        ("Log", None, 0),
        ("SampleBatch", 0, 2),
        ("SampleBatch", F_GAP, 4),
        ("SampleBatch", 0, 1),
    ]
    assert msgs[-1].period_us == 10000 and msgs[-1].t_us == 2**32 - 1 and msgs[-1].times == [2**32 - 1]


def test_unfetched_frame_is_counted_as_dropped():
    enc = SampleBatcher(1, 2, 5000)
    for k in range(6):
        enc.add(k, [0] * 13)
    assert enc.dropped == 2


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError):
        FrameWriter(256)
    with pytest.raises(ValueError):
        SampleBatcher(1, 0, 5000)
    with pytest.raises(ValueError):
        SampleBatcher(1, 16, 0)
    with pytest.raises(ValueError):
        SampleBatcher(1, 16, 5000, max_payload=300)
    with pytest.raises(ValueError):
        FrameWriter(1).frame(1, 0, b"x" * 300)


def test_frame_layout_is_as_specified():
    w = FrameWriter(5)
    frame = w.frame(0x42, 0x01020304, b"\xaa\xbb")
    p = cobs_decode(frame[:-1])
    assert p[:9] == bytes([0x10, 0x42, 5, 0, 0, 4, 3, 2, 1])
    assert p[9:11] == b"\xaa\xbb"
    assert struct.unpack("<I", p[11:])[0] == zlib.crc32(bytes(p[:11]), CRC_INIT)


def test_bad_sample_raises_valueerror_and_encoder_recovers():
    w = FrameWriter(1)
    enc = SampleBatcher(w, 4, 5000)
    enc.add(0, [1] * 13)
    for bad in ([1] * 5, [1.5] * 13, None if False else [None] * 13):
        with pytest.raises(ValueError, match="13 int16"):
            enc.add(5000, bad)
    frames = []
    for k in range(4):
        if enc.add(10000 + k * 5000, [2] * 13):
            frames.append(bytes(enc.frame()))
    (m,) = StreamDecoder().feed(b"".join(frames))
    assert m.gap and m.samples == [[2] * 13] * 4 and m.t_us == 10000


def test_bad_message_fields_raise_valueerror():
    w = FrameWriter(1)
    with pytest.raises(ValueError, match="Hello"):
        w.hello(0, 70000, 8, 2000, 4912, 1, 0, "1", "x")
    with pytest.raises(ValueError, match="Command"):
        w.command(0, tsproto.CMD_SET_RATE, (1, 2))
    with pytest.raises(ValueError, match="Status"):
        w.status(0, None, 0, 0, 0, 0, 0, 0)
    assert w.seq == 0  # nothing was sent


def test_literal_tag_tables_match_their_definition():
    from tsproto.batch import _FMT, _SIZE, _fmt

    for t in range(256):
        assert _FMT[t] == _fmt(t, False)
        assert _SIZE[t] == (struct.calcsize(_FMT[t]) if _FMT[t] else 0)
        if t < 64:
            assert _fmt(t, True) == _FMT[t]  # raw batches share the table
        else:
            assert _fmt(t, True) is None
