# Sample batches: the per-sample hot path of the firmware (SampleBatcher, allocation-free after
# construction) and the reference decoder (parse_samples, pure Python, also runs on MicroPython).
#
# Body of a T_SAMPLES frame (docs/protocol.md section "Sample batch"):
#   period_us u16 | flags u8 | n u8 | first sample: V x u16 (value & 0xFFFF) ^ 0x8080
#   then n-1 coded samples: tag u8 | acc | gyr | [mag] | [quat]
# V = 13 (or 9 with F_RAW). tag = 2 bits per group: acc bits 0-1, gyr 2-3, mag 4-5, quat 6-7;
# group code 0 = all residuals zero (no bytes), 1 = residual + 128 as u8 each,
# 2 = (residual & 0xFFFF) ^ 0x8080 as u16 LE each, 3 = reserved (frame rejected).
# Residuals: acc, gyr, quat second order r = (v - p) - (p - pp); mag first order r = v - p
# (mag repeats at 100 Hz -> code 0). Arithmetic is modulo 2**16, values are int16.
import struct

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


from binascii import crc32

from tsproto.consts import (
    F_GAP,
    F_RAW,
    MAX_PAYLOAD,
    T_SAMPLES,
    VERSION,
)
from tsproto.frame import FrameWriter
from tsproto.messages import TYPES, Message

_BODY0 = const(14)  # buffer index of the first sample (1 COBS code byte + 9 header + 4 batch)
_HALF = const(1 << 29)  # add_block(): a tick time this far below t_ref has wrapped (2**30)


_PART3 = ("", "3B", "3H")
_PART4 = ("", "4B", "4H")


def _fmt(tag, raw):
    """struct format of a coded sample with this tag (None when the tag is invalid)."""
    a = tag & 3
    g = (tag >> 2) & 3
    m = (tag >> 4) & 3
    q = tag >> 6
    if a == 3 or g == 3 or m == 3 or q == 3 or (raw and q):
        return None
    # one % per string: building it with += retains ~8x the memory on MicroPython
    return "<B%s%s%s%s" % (_PART3[a], _PART3[g], _PART3[m], _PART4[q])


# Encoder lookup tables per tag: struct format and coded size (tag byte included); 0/None for
# invalid tags. Written out as literals (generated from _fmt, checked by tests/proto) so that
# on MicroPython they are constants of the .mpy instead of ~9 KB of heap strings. Raw batches
# use the same tables: their tags have quaternion code 0, whose formats carry no quaternion.
_FMT = (
    '<B', '<B3B', '<B3H', None, '<B3B', '<B3B3B', '<B3H3B', None,
    '<B3H', '<B3B3H', '<B3H3H', None, None, None, None, None,
    '<B3B', '<B3B3B', '<B3H3B', None, '<B3B3B', '<B3B3B3B', '<B3H3B3B', None,
    '<B3H3B', '<B3B3H3B', '<B3H3H3B', None, None, None, None, None,
    '<B3H', '<B3B3H', '<B3H3H', None, '<B3B3H', '<B3B3B3H', '<B3H3B3H', None,
    '<B3H3H', '<B3B3H3H', '<B3H3H3H', None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    '<B4B', '<B3B4B', '<B3H4B', None, '<B3B4B', '<B3B3B4B', '<B3H3B4B', None,
    '<B3H4B', '<B3B3H4B', '<B3H3H4B', None, None, None, None, None,
    '<B3B4B', '<B3B3B4B', '<B3H3B4B', None, '<B3B3B4B', '<B3B3B3B4B', '<B3H3B3B4B', None,
    '<B3H3B4B', '<B3B3H3B4B', '<B3H3H3B4B', None, None, None, None, None,
    '<B3H4B', '<B3B3H4B', '<B3H3H4B', None, '<B3B3H4B', '<B3B3B3H4B', '<B3H3B3H4B', None,
    '<B3H3H4B', '<B3B3H3H4B', '<B3H3H3H4B', None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    '<B4H', '<B3B4H', '<B3H4H', None, '<B3B4H', '<B3B3B4H', '<B3H3B4H', None,
    '<B3H4H', '<B3B3H4H', '<B3H3H4H', None, None, None, None, None,
    '<B3B4H', '<B3B3B4H', '<B3H3B4H', None, '<B3B3B4H', '<B3B3B3B4H', '<B3H3B3B4H', None,
    '<B3H3B4H', '<B3B3H3B4H', '<B3H3H3B4H', None, None, None, None, None,
    '<B3H4H', '<B3B3H4H', '<B3H3H4H', None, '<B3B3H4H', '<B3B3B3H4H', '<B3H3B3H4H', None,
    '<B3H3H4H', '<B3B3H3H4H', '<B3H3H3H4H', None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
    None, None, None, None, None, None, None, None,
)
_SIZE = (
    b'\x01\x04\x07\x00\x04\x07\n\x00\x07\n\r\x00\x00\x00\x00\x00\x04\x07\n\x00\x07\n\r\x00\n\r\x10\x00\x00\x00\x00\x00'
    b'\x07\n\r\x00\n\r\x10\x00\r\x10\x13\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
    b'\x05\x08\x0b\x00\x08\x0b\x0e\x00\x0b\x0e\x11\x00\x00\x00\x00\x00\x08\x0b\x0e\x00\x0b\x0e\x11\x00\x0e\x11\x14\x00\x00\x00\x00\x00'
    b'\x0b\x0e\x11\x00\x0e\x11\x14\x00\x11\x14\x17\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
    b'\t\x0c\x0f\x00\x0c\x0f\x12\x00\x0f\x12\x15\x00\x00\x00\x00\x00\x0c\x0f\x12\x00\x0f\x12\x15\x00\x12\x15\x18\x00\x00\x00\x00\x00'
    b'\x0f\x12\x15\x00\x12\x15\x18\x00\x15\x18\x1b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
    b'\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
    b'\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
)


class SampleBatcher:
    """Per-sample encoder of sample batches; allocation-free after construction.

    enc = SampleBatcher(writer_or_node_id, samples_per_frame=16, period_us=5000, raw=False)
    if enc.add(t_us, s):          # s: 13 ints (array('h') ideal), or 9 in raw mode
        uart.write(enc.frame())   # memoryview of the whole wire frame (COBS + 0x00)

    ``t_us`` is used only for the first sample of a frame (later ones are implicit:
    t_us + k * period_us). A frame is closed when it holds ``samples_per_frame`` samples or
    when the next sample does not fit in ``max_payload`` (default: one ESP-NOW message); that
    sample then opens the next frame, so the add() returning True may have handed in a sample
    of the next frame. The frame returned by frame() stays valid until the next add()/flush().
    Call flush() to close a partial frame, mark_gap() after lost samples (FIFO overflow).
    Values must be int16 (-32768..32767); 0 <= t_us < 2**32 (no arithmetic is done on it).
    """

    def __init__(self, writer, samples_per_frame=16, period_us=5000, raw=False, max_payload=MAX_PAYLOAD):
        if isinstance(writer, int):
            writer = FrameWriter(writer)
        if not 1 <= samples_per_frame <= 255:
            raise ValueError("samples_per_frame must be 1..255")
        if not 1 <= period_us <= 0xFFFF:
            raise ValueError("period_us must be 1..65535")
        if not 64 <= max_payload <= 253:
            raise ValueError("max_payload must be 64..253")
        self.writer = writer
        self.samples_per_frame = samples_per_frame
        self.period_us = period_us
        self.raw = bool(raw)
        self.max_payload = max_payload
        self._flags = 0
        self._t = 0
        self._len = 0
        self._o = 0
        self._n = 0
        self._todo = False
        self.dropped = 0  # frames completed but never fetched with frame()
        self.pos = 0  # add_block(): index of the next sample not yet taken from the block
        self._src = self._srcq = self._tsrc = None
        self._tref = self._tw = self._i = self._end = 0
        self._a1 = [0] * 9  # add(): the sample in block layout (a list: stores never allocate)
        self._q1 = [0] * 4
        self._buf = bytearray(max_payload + 2)
        mv = memoryview(self._buf)
        # Preallocated views: slicing a memoryview allocates, so keep one per length.
        self._views = [mv[:k] for k in range(max_payload + 3)]
        self._gen = self._run()
        self._send = self._gen.send
        next(self._gen)

    # -- public API -------------------------------------------------------------------------
    def add(self, t_us: int, s) -> bool:
        """Append one sample; True when a frame is complete (then call frame())."""
        self._t = t_us
        a = self._a1
        q = self._q1
        try:
            a[0] = s[3]
            a[1] = s[4]
            a[2] = s[5]
            a[3] = s[0]
            a[4] = s[1]
            a[5] = s[2]
            a[6] = s[6]
            a[7] = s[7]
            a[8] = s[8]
            if not self.raw:
                q[0] = s[9]
                q[1] = s[10]
                q[2] = s[11]
                q[3] = s[12]
            self._src = a
            self._srcq = q
            self._tsrc = None
            self._i = 0
            self._end = 1
            return self._send(1)
        except Exception as e:  # bad sample: the generator is gone -- restart it, say why
            self._restart()
            raise ValueError("SampleBatcher.add: s must hold %d int16 values (%r)" % (9 if self.raw else 13, e))

    def add_block(self, a, q, i: int, n: int, ts, t_ref: int, wraps: int) -> bool:
        """Append samples ``i`` .. ``n - 1`` of a block; True when a frame is complete.

        Block layout (the node's filter buffers, read in place, no per-sample copy):
        ``a[9k:9k+9]`` = gx gy gz ax ay az mx my mz of sample k, ``q[4k:4k+4]`` = qw qx qy qz
        (ignored in raw mode; may be None then). ``ts[k]``: the sample's tick time in us modulo
        2**30 (``ticks_us``); ``t_ref`` <= every ts[k] of the block (mod 2**30, e.g. ts[0]) and
        ``wraps`` its count of 2**30 wraps, so the 32-bit wire time is
        ``(wraps + (1 if ts[k] < t_ref - 2**29 else 0)) % 4 * 2**30 + ts[k]``: worked out for
        frame-opening samples only, as two 16-bit halves (no boxed int past 2**30 us).
        When True, send frame() and call again with ``i = self.pos`` (the next unread sample)
        until it returns False. Values must be int16 (array('h')). Allocation-free.
        """
        self._src = a
        self._srcq = q
        self._tsrc = ts
        self._tref = t_ref
        self._tw = wraps
        self._i = i
        self._end = n
        try:
            return self._send(1)
        except Exception as e:
            self._restart()
            raise ValueError("SampleBatcher.add_block: bad block (%r)" % (e,))

    def flush(self) -> bool:
        """Close the current partial frame; True when a frame is ready (then call frame())."""
        return self._send(None)

    def _restart(self):
        # The frame in progress is lost: the next one carries F_GAP.
        self._todo = False
        self._flags |= F_GAP
        self._gen = self._run()
        self._send = self._gen.send
        next(self._gen)

    def frame(self):
        """The completed frame: memoryview of the wire bytes inside the internal buffer.

        Adds sequence number, CRC and COBS here (not in add(), which never allocates). The one
        allocation of the encoder is here: binascii.crc32 returns a boxed int when the CRC is
        >= 2**30 (3 frames in 4) -- call frame() outside a heap_lock()ed section.
        """
        if self._todo:
            self._todo = False
            self._finish(self._o, self._n)
        return self._views[self._len]

    def mark_gap(self) -> bool:
        """Samples were lost: close the current frame (True if one is ready), flag the next."""
        r = self.flush()
        self._flags |= F_GAP
        return r

    def set_period(self, period_us: int) -> bool:
        """Change the sample period; closes the current frame (True if one is ready)."""
        if not 1 <= period_us <= 0xFFFF:
            raise ValueError("period_us must be 1..65535")
        r = self.flush()
        self.period_us = period_us
        return r

    def set_raw(self, raw: bool) -> bool:
        """Switch raw-only (9 values) / fused (13 values); closes the current frame."""
        r = self.flush()
        self.raw = bool(raw)
        return r

    # -- the hot path -------------------------------------------------------------------------
    def _finish(self, o, n):
        """Write n, seq, CRC, COBS and the delimiter in place; o = end of sample data."""
        buf = self._buf
        w = self.writer
        seq = w.seq
        w.seq = (seq + 1) & 0xFFFF
        buf[13] = n
        buf[4] = seq & 0xFF
        buf[5] = seq >> 8
        buf[0] = 0
        # binascii.crc32 is C code; it returns a boxed int when the CRC is >= 2**30 (see docs)
        struct.pack_into("<I", buf, o, crc32(self._views[o]))
        end = o + 4
        # COBS in place: payload is buf[1:end] (< 254 bytes, so one code byte suffices).
        # Each zero becomes the distance to the next zero (or to the end).
        last = 0
        i = buf.find(b"\x00", 1, end)
        while i >= 0:
            buf[last] = i - last
            last = i
            i = buf.find(b"\x00", i + 1, end)
        buf[last] = end - last
        buf[end] = 0
        self._len = end + 1

    def _run(self):
        # Generator: its locals (p* previous values, q* previous deltas, the block being read)
        # persist between calls at local-variable speed; add()/add_block() are one send(1)
        # (the block is in self._src ...), flush() is send(None). Unrolled on purpose.
        # b = 9 * sample index (into a), bq = 4 * sample index (into qa), end = 9 * block end.
        buf = self._buf
        pack = struct.pack_into
        fmts = _FMT
        sizes = _SIZE
        carry = False
        a = qa = ts = None
        b = bq = end = 0
        tref = tw = t = w = 0
        tobj = None  # time of the frame's first sample: the caller's int (add), or None: thi/tlo
        thi = tlo = 0
        p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = p8 = p9 = p10 = p11 = p12 = 0
        cmd = yield False
        while True:
            if cmd is None:
                end = b  # flush: the rest of an unfinished block is not coded
            else:
                a = self._src
                qa = self._srcq
                ts = self._tsrc
                b = 9 * self._i
                bq = 4 * self._i
                end = 9 * self._end
                if ts is not None:
                    tref = self._tref
                    tw = self._tw
            raw = self.raw
            if carry:
                # the sample that did not fit the last frame opens this one (values in p*)
                carry = False
            elif b < end:
                p0 = a[b + 3]
                p1 = a[b + 4]
                p2 = a[b + 5]
                p3 = a[b]
                p4 = a[b + 1]
                p5 = a[b + 2]
                p6 = a[b + 6]
                p7 = a[b + 7]
                p8 = a[b + 8]
                if not raw:
                    p9 = qa[bq]
                    p10 = qa[bq + 1]
                    p11 = qa[bq + 2]
                    p12 = qa[bq + 3]
                if ts is None:
                    tobj = self._t
                else:
                    tobj = None
                    t = ts[bq >> 2]
                    w = tw + 1 if t < tref - _HALF else tw
                    thi = ((w & 3) << 14) | (t >> 16)
                    tlo = t & 0xFFFF
                b += 9
                bq += 4
            else:
                self.pos = bq >> 2
                cmd = yield False
                continue
            # -- header and first sample (absolute values) -----------------------------------
            if self._todo:  # previous frame never fetched: it is overwritten
                self._todo = False
                self.dropped += 1
            flags = self._flags | (F_RAW if raw else 0)
            self._flags = 0
            if tobj is None:  # 32-bit time as two u16 halves: small ints only
                pack("<BBBHHHHBB", buf, 1, VERSION, T_SAMPLES, self.writer.node_id, 0, tlo, thi, self.period_us, flags, 0)
            else:
                pack("<BBBHIHBB", buf, 1, VERSION, T_SAMPLES, self.writer.node_id, 0, tobj, self.period_us, flags, 0)
            spf = self.samples_per_frame
            hard = self.max_payload - 3  # end of sample data: payload = buf[1:o + 4]
            n = 1
            if raw:
                pack("<9H", buf, _BODY0, (p0 & 0xFFFF) ^ 0x8080, (p1 & 0xFFFF) ^ 0x8080, (p2 & 0xFFFF) ^ 0x8080, (p3 & 0xFFFF) ^ 0x8080, (p4 & 0xFFFF) ^ 0x8080, (p5 & 0xFFFF) ^ 0x8080, (p6 & 0xFFFF) ^ 0x8080, (p7 & 0xFFFF) ^ 0x8080, (p8 & 0xFFFF) ^ 0x8080)
                o = _BODY0 + 18
                q0 = q1 = q2 = q3 = q4 = q5 = 0
                while n < spf:
                    if b >= end:
                        if cmd is None:
                            break
                        self.pos = bq >> 2
                        cmd = yield False
                        if cmd is None:
                            end = b
                            break
                        a = self._src
                        qa = self._srcq
                        ts = self._tsrc
                        b = 9 * self._i
                        bq = 4 * self._i
                        end = 9 * self._end
                        if ts is not None:
                            tref = self._tref
                            tw = self._tw
                        continue
                    v = a[b + 3]
                    d = v - p0
                    r0 = d - q0 + 128
                    p0 = v
                    q0 = d
                    v = a[b + 4]
                    d = v - p1
                    r1 = d - q1 + 128
                    p1 = v
                    q1 = d
                    v = a[b + 5]
                    d = v - p2
                    r2 = d - q2 + 128
                    p2 = v
                    q2 = d
                    v = a[b]
                    d = v - p3
                    r3 = d - q3 + 128
                    p3 = v
                    q3 = d
                    v = a[b + 1]
                    d = v - p4
                    r4 = d - q4 + 128
                    p4 = v
                    q4 = d
                    v = a[b + 2]
                    d = v - p5
                    r5 = d - q5 + 128
                    p5 = v
                    q5 = d
                    v = a[b + 6]
                    r6 = v - p6
                    p6 = v
                    v = a[b + 7]
                    r7 = v - p7
                    p7 = v
                    v = a[b + 8]
                    r8 = v - p8
                    p8 = v
                    if (r0 | r1 | r2) & -256:
                        r0 = ((r0 - 128) & 0xFFFF) ^ 0x8080
                        r1 = ((r1 - 128) & 0xFFFF) ^ 0x8080
                        r2 = ((r2 - 128) & 0xFFFF) ^ 0x8080
                        tag = 2
                    else:
                        tag = 1
                    if (r3 | r4 | r5) & -256:
                        r3 = ((r3 - 128) & 0xFFFF) ^ 0x8080
                        r4 = ((r4 - 128) & 0xFFFF) ^ 0x8080
                        r5 = ((r5 - 128) & 0xFFFF) ^ 0x8080
                        tag += 8
                    else:
                        tag += 4
                    m = r6 | r7 | r8
                    if m:
                        r6 += 128
                        r7 += 128
                        r8 += 128
                        if (r6 | r7 | r8) & -256:
                            r6 = ((r6 - 128) & 0xFFFF) ^ 0x8080
                            r7 = ((r7 - 128) & 0xFFFF) ^ 0x8080
                            r8 = ((r8 - 128) & 0xFFFF) ^ 0x8080
                            tag += 32
                        else:
                            tag += 16
                    sz = sizes[tag]
                    if o + sz > hard:  # does not fit: this sample opens the next frame (values are in p*)
                        carry = True
                        if ts is None:
                            tobj = self._t
                        else:
                            tobj = None
                            t = ts[bq >> 2]
                            w = tw + 1 if t < tref - _HALF else tw
                            thi = ((w & 3) << 14) | (t >> 16)
                            tlo = t & 0xFFFF
                        b += 9
                        bq += 4
                        break
                    if m:
                        pack(fmts[tag], buf, o, tag, r0, r1, r2, r3, r4, r5, r6, r7, r8)
                    else:
                        pack(fmts[tag], buf, o, tag, r0, r1, r2, r3, r4, r5)
                    o += sz
                    n += 1
                    b += 9
                    bq += 4
            else:
                pack("<13H", buf, _BODY0, (p0 & 0xFFFF) ^ 0x8080, (p1 & 0xFFFF) ^ 0x8080, (p2 & 0xFFFF) ^ 0x8080, (p3 & 0xFFFF) ^ 0x8080, (p4 & 0xFFFF) ^ 0x8080, (p5 & 0xFFFF) ^ 0x8080, (p6 & 0xFFFF) ^ 0x8080, (p7 & 0xFFFF) ^ 0x8080, (p8 & 0xFFFF) ^ 0x8080, (p9 & 0xFFFF) ^ 0x8080, (p10 & 0xFFFF) ^ 0x8080, (p11 & 0xFFFF) ^ 0x8080, (p12 & 0xFFFF) ^ 0x8080)
                o = _BODY0 + 26
                q0 = q1 = q2 = q3 = q4 = q5 = q9 = q10 = q11 = q12 = 0
                while n < spf:
                    if b >= end:
                        if cmd is None:
                            break
                        self.pos = bq >> 2
                        cmd = yield False
                        if cmd is None:
                            end = b
                            break
                        a = self._src
                        qa = self._srcq
                        ts = self._tsrc
                        b = 9 * self._i
                        bq = 4 * self._i
                        end = 9 * self._end
                        if ts is not None:
                            tref = self._tref
                            tw = self._tw
                        continue
                    v = a[b + 3]
                    d = v - p0
                    r0 = d - q0 + 128
                    p0 = v
                    q0 = d
                    v = a[b + 4]
                    d = v - p1
                    r1 = d - q1 + 128
                    p1 = v
                    q1 = d
                    v = a[b + 5]
                    d = v - p2
                    r2 = d - q2 + 128
                    p2 = v
                    q2 = d
                    v = a[b]
                    d = v - p3
                    r3 = d - q3 + 128
                    p3 = v
                    q3 = d
                    v = a[b + 1]
                    d = v - p4
                    r4 = d - q4 + 128
                    p4 = v
                    q4 = d
                    v = a[b + 2]
                    d = v - p5
                    r5 = d - q5 + 128
                    p5 = v
                    q5 = d
                    v = a[b + 6]
                    r6 = v - p6
                    p6 = v
                    v = a[b + 7]
                    r7 = v - p7
                    p7 = v
                    v = a[b + 8]
                    r8 = v - p8
                    p8 = v
                    v = qa[bq]
                    d = v - p9
                    r9 = d - q9 + 128
                    p9 = v
                    q9 = d
                    v = qa[bq + 1]
                    d = v - p10
                    r10 = d - q10 + 128
                    p10 = v
                    q10 = d
                    v = qa[bq + 2]
                    d = v - p11
                    r11 = d - q11 + 128
                    p11 = v
                    q11 = d
                    v = qa[bq + 3]
                    d = v - p12
                    r12 = d - q12 + 128
                    p12 = v
                    q12 = d
                    if (r0 | r1 | r2) & -256:
                        r0 = ((r0 - 128) & 0xFFFF) ^ 0x8080
                        r1 = ((r1 - 128) & 0xFFFF) ^ 0x8080
                        r2 = ((r2 - 128) & 0xFFFF) ^ 0x8080
                        tag = 2
                    else:
                        tag = 1
                    if (r3 | r4 | r5) & -256:
                        r3 = ((r3 - 128) & 0xFFFF) ^ 0x8080
                        r4 = ((r4 - 128) & 0xFFFF) ^ 0x8080
                        r5 = ((r5 - 128) & 0xFFFF) ^ 0x8080
                        tag += 8
                    else:
                        tag += 4
                    if (r9 | r10 | r11 | r12) & -256:
                        r9 = ((r9 - 128) & 0xFFFF) ^ 0x8080
                        r10 = ((r10 - 128) & 0xFFFF) ^ 0x8080
                        r11 = ((r11 - 128) & 0xFFFF) ^ 0x8080
                        r12 = ((r12 - 128) & 0xFFFF) ^ 0x8080
                        tag += 128
                    else:
                        tag += 64
                    m = r6 | r7 | r8
                    if m:
                        r6 += 128
                        r7 += 128
                        r8 += 128
                        if (r6 | r7 | r8) & -256:
                            r6 = ((r6 - 128) & 0xFFFF) ^ 0x8080
                            r7 = ((r7 - 128) & 0xFFFF) ^ 0x8080
                            r8 = ((r8 - 128) & 0xFFFF) ^ 0x8080
                            tag += 32
                        else:
                            tag += 16
                    sz = sizes[tag]
                    if o + sz > hard:  # does not fit: this sample opens the next frame (values are in p*)
                        carry = True
                        if ts is None:
                            tobj = self._t
                        else:
                            tobj = None
                            t = ts[bq >> 2]
                            w = tw + 1 if t < tref - _HALF else tw
                            thi = ((w & 3) << 14) | (t >> 16)
                            tlo = t & 0xFFFF
                        b += 9
                        bq += 4
                        break
                    if m:
                        pack(fmts[tag], buf, o, tag, r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12)
                    else:
                        pack(fmts[tag], buf, o, tag, r0, r1, r2, r3, r4, r5, r9, r10, r11, r12)
                    o += sz
                    n += 1
                    b += 9
                    bq += 4
            self.pos = bq >> 2
            self._o = o
            self._n = n
            self._todo = True
            cmd = yield True


def _i16(x):
    return x - 0x10000 if x & 0x8000 else x


class SampleBatch(Message):
    """Decoded sample batch.

    ``samples``: list of per-sample lists of 13 ints (ax ay az gx gy gz mx my mz qw qx qy qz;
    in raw-only batches the quaternion is 0 0 0 0). ``times``: per-sample node time (us, mod
    2**32) = t_us + k * period_us. ``raw``/``gap``: the F_RAW / F_GAP flags.
    """

    TYPE = T_SAMPLES
    FIELDS = ("period_us", "flags", "samples")

    @property
    def raw(self):
        return bool(self.flags & F_RAW)

    @property
    def gap(self):
        return bool(self.flags & F_GAP)

    @property
    def times(self):
        t = self.t_us
        p = self.period_us
        return [(t + k * p) & 0xFFFFFFFF for k in range(len(self.samples))]

    def parse(self, b):
        self.period_us, self.flags, self.samples = parse_samples(b)


def parse_samples(b: bytes) -> tuple:
    """(period_us, flags, samples) of a sample-batch body; ValueError when malformed.

    Pure Python, runs on MicroPython (gateway) too. Trailing bytes after the n samples are
    ignored (room for newer minor versions).
    """
    nb = len(b)
    if nb < 4:
        raise ValueError("batch header truncated")
    period, flags, n = struct.unpack_from("<HBB", b, 0)
    if n == 0:
        raise ValueError("empty batch")
    raw = flags & F_RAW
    nv = 9 if raw else 13
    o = 4 + 2 * nv
    if o > nb:
        raise ValueError("first sample truncated")
    first = struct.unpack_from("<13H" if nv == 13 else "<9H", b, 4)
    p = [_i16(x ^ 0x8080) for x in first]
    q = [0] * nv
    out = [p + [0, 0, 0, 0] if raw else p]
    groups = ((0, 0, 3, 2), (2, 3, 3, 2), (4, 6, 3, 1)) if raw else ((0, 0, 3, 2), (2, 3, 3, 2), (4, 6, 3, 1), (6, 9, 4, 2))
    for _ in range(n - 1):
        if o >= nb:
            raise ValueError("sample truncated")
        tag = b[o]
        o += 1
        if raw and tag >> 6:
            raise ValueError("quaternion group in a raw batch")
        cur = p[:]
        for sh, i0, cnt, order in groups:
            code = (tag >> sh) & 3
            if code == 3:
                raise ValueError("reserved group code")
            for i in range(i0, i0 + cnt):
                if code == 0:
                    r = 0
                elif code == 1:
                    if o >= nb:
                        raise ValueError("sample truncated")
                    r = b[o] - 128
                    o += 1
                else:
                    if o + 2 > nb:
                        raise ValueError("sample truncated")
                    r = _i16((b[o] | (b[o + 1] << 8)) ^ 0x8080)
                    o += 2
                if order == 2:
                    d = _i16((q[i] + r) & 0xFFFF)
                    q[i] = d
                else:
                    d = r
                cur[i] = _i16((p[i] + d) & 0xFFFF)
        p = cur
        out.append(p + [0, 0, 0, 0] if raw else p)
    return period, flags, out


TYPES[T_SAMPLES] = SampleBatch
