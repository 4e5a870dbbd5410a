"""Stream decoding: garbage, resynchronisation, truncation, chunking, versions, unknown types."""

import random
import struct

import tsproto
from tsproto import FrameWriter, StreamDecoder, cobs_decode, cobs_encode
from tsproto.frame import payload, wire

from .streams import encode, motion


def _frames():
    w = FrameWriter(7)
    out = encode(motion(200, seed=5), node_id=7, spf=10)
    out.append(w.hello(1, 200, 8, 2000, 4912, 1, 3, "1.0", "MPU9250"))
    out.append(w.status(2, 3900, 2500, 0, 0, 0, 50000, 1))
    return out


def test_byte_by_byte_equals_all_at_once():
    frames = _frames()
    data = b"".join(frames)
    a = StreamDecoder()
    whole = a.feed(data)
    b = StreamDecoder()
    pieces = []
    for i in range(len(data)):
        pieces += b.feed(data[i : i + 1])
    assert whole == pieces and len(whole) == len(frames)
    assert a.stats() == b.stats()


def test_garbage_between_and_before_frames_resyncs():
    # Garbage glued to the front of a frame (no 0x00 in between) hides the frame's start; the
    # decoder finds the intact frame at the end of the bad chunk (recover_tail).
    frames = _frames()
    good = StreamDecoder().feed(b"".join(frames))
    rnd = random.Random(3)
    data = bytearray(bytes(rnd.getrandbits(8) | 1 for _ in range(100)))  # starts mid-garbage
    glued = 0
    for f in frames:
        g = bytes(rnd.getrandbits(8) for _ in range(rnd.choice([0, 0, 1, 5, 40])))
        glued += bool(g) and not g.endswith(b"\x00")
        data += g + f
    dec = StreamDecoder()
    msgs = dec.feed(bytes(data))
    assert msgs == good and glued > 3
    assert dec.recovered >= glued and dec.bytes_discarded > 0 and dec.frames == len(msgs)


def test_frame_after_a_delimiter_always_survives_garbage():
    frames = _frames()
    rnd = random.Random(4)
    data = bytearray()
    for f in frames:
        data += bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 60))) + b"\x00"
        data += f
    dec = StreamDecoder()
    assert dec.feed(bytes(data)) == StreamDecoder().feed(b"".join(frames))


def test_truncated_frames_are_counted_and_next_frame_decodes():
    frames = _frames()
    dec = StreamDecoder()
    msgs = []
    for k, f in enumerate(frames):
        if k % 3 == 1:
            msgs += dec.feed(f[: len(f) // 2])  # lost tail and delimiter: glued to the next frame
        else:
            msgs += dec.feed(f)
    good = StreamDecoder().feed(b"".join(frames))
    # only the cut frames are lost; the frame after each is recovered from the merged chunk
    assert msgs == [m for k, m in enumerate(good) if k % 3 != 1]
    n_cut = sum(1 for k in range(len(frames)) if k % 3 == 1)
    assert dec.crc_errors + dec.cobs_errors + dec.truncated == n_cut
    assert dec.recovered == n_cut - (len(frames) % 3 == 2)  # a cut last frame has no follower


def test_recovery_after_node_reset_mid_frame():
    # a node resets half-way through a frame and starts again with hello + samples
    frames = _frames()
    w = FrameWriter(7)
    hello = w.hello(0, 200, 8, 2000, 4912, 1, 3, "1.0", "MPU9250")
    data = frames[0] + frames[1][:37] + hello + b"".join(frames[2:])
    msgs = StreamDecoder().feed(data)
    assert msgs[1].fields() == StreamDecoder().feed(hello)[0].fields()
    assert len(msgs) == len(frames)


def test_short_payloads_count_as_truncated():
    dec = StreamDecoder()
    assert dec.feed(bytes(cobs_encode(b"\x10\x01\x02")) + b"\x00") == []
    assert dec.truncated == 1 and dec.bytes_discarded == 5


def test_single_bit_flips_never_pass():
    f = _frames()[0]
    good = StreamDecoder().feed(f)
    for i in range(len(f) - 1):
        for bit in range(8):
            g = bytearray(f)
            g[i] ^= 1 << bit
            dec = StreamDecoder()
            msgs = dec.feed(bytes(g) + b"\x00")
            assert msgs == [] or msgs == good  # a flip into 0x00 may leave the tail as garbage
            assert msgs == [] or i >= 0


def test_newer_minor_parses_known_prefix_and_skips_trailing_fields():
    w = FrameWriter(2)
    h = tsproto.Hello(rate_hz=100, accel_range_g=4, gyro_range_dps=500, mag_range_ut=4912, mode=0,
                      calib_id=1, fw_version="2", chip="ICM")
    body = h.body() + b"\x99new-field"
    frame = w.frame(tsproto.T_HELLO, 5, body, version=(1 << 4) | 7)
    dec = StreamDecoder()
    (m,) = dec.feed(frame)
    assert m.fields() == h.fields() and m.version == 0x17 and dec.newer_minor == 1
    # samples too: bytes after the n coded samples are ignored
    f = encode(motion(10, seed=1), spf=10)[0]
    p = bytearray(cobs_decode(f[:-1]))
    p = p[:-4] + b"\x01\x02\x03"
    p[0] = 0x13
    frame2 = wire(payload(p[1], p[2], 0, 1000, bytes(p[9:])))
    q = cobs_decode(frame2[:-1])
    frame2 = wire(payload(q[1], q[2], 0, 1000, bytes(q[9:-4]), version=0x13))
    (m2,) = dec.feed(frame2)
    assert m2.samples == motion(10, seed=1) and dec.newer_minor == 2


def test_other_major_and_unknown_type_are_skipped_not_fatal():
    w = FrameWriter(2)
    frames = [
        w.frame(tsproto.T_LOG, 0, b"\x14\x02hi", version=0x20),  # major 2
        w.frame(0x7F, 0, b"whatever"),  # unknown type
        w.log(0, 20, "ok"),
    ]
    dec = StreamDecoder()
    msgs = dec.feed(b"".join(frames))
    assert [m.text for m in msgs] == ["ok"]
    assert dec.bad_major == 1 and dec.unknown_type == 1 and dec.bytes_discarded == 0
    keep = StreamDecoder(keep_unknown=True).feed(frames[1])
    assert keep[0].raw_type == 0x7F and keep[0].body == b"whatever"


def test_valid_crc_but_inconsistent_body_is_malformed_not_an_exception():
    w = FrameWriter(2)
    bad = [
        w.frame(tsproto.T_SAMPLES, 0, b"\x88\x13\x00\x05" + b"\x01" * 26),  # 5 samples, 1 present
        w.frame(tsproto.T_SAMPLES, 0, b"\x88\x13\x00\x02" + b"\x01" * 26 + b"\xff"),  # code 3
        w.frame(tsproto.T_SAMPLES, 0, b"\x88\x13\x00\x00"),  # empty
        w.frame(tsproto.T_SAMPLES, 0, b"\x88\x13\x01\x02" + b"\x01" * 18 + b"\x45"),  # quat in raw
        w.frame(tsproto.T_STATUS, 0, b"\x01\x02"),
        w.frame(tsproto.T_HELLO, 0, b"\x00" * 12 + b"\x05ab"),
        w.frame(tsproto.T_COMMAND, 0, b""),
        w.frame(tsproto.T_COMMAND, 0, bytes([tsproto.CMD_SET_RATE])),
        w.frame(tsproto.T_LOG, 0, b"\x14\x02\xff\xfe"),  # invalid UTF-8 is not malformed
    ]
    dec = StreamDecoder()
    msgs = dec.feed(b"".join(bad))
    assert dec.malformed == 8 and len(msgs) == 1 and msgs[0].text == "??"


def test_long_garbage_without_delimiter_is_bounded():
    dec = StreamDecoder(max_frame=512)
    assert dec.feed(b"\x01" * 5000) == []
    assert len(dec._pending) <= 512 and dec.oversize >= 1
    f = _frames()[0]
    assert len(dec.feed(b"\x00" + f)) == 1


def test_crc_error_counted():
    f = bytearray(_frames()[0])
    f[20] = f[20] ^ 0x01 if f[20] ^ 0x01 else 0x03
    dec = StreamDecoder()
    assert dec.feed(bytes(f)) == []
    assert dec.crc_errors + dec.cobs_errors == 1


def test_header_fields_and_struct():
    f = _frames()[0]
    p = cobs_decode(f[:-1])
    ver, typ, node, seq, t = struct.unpack_from("<BBBHI", p)
    assert (ver, typ, node, seq, t) == (0x10, tsproto.T_SAMPLES, 7, 0, 1000)
