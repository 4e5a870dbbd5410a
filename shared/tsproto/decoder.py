# Stream decoder: bytes in (any chunking, any garbage), messages out. Never raises on bad
# input: every problem is counted and the decoder resynchronises on the next 0x00 delimiter.
# Pure Python; runs on MicroPython (gateway node) and CPython (host).
import struct

from tsproto.consts import HEADER_LEN, MIN_PAYLOAD, VERSION_MAJOR, VERSION_MINOR
from tsproto.frame import check_payload, cobs_decode, crc
from tsproto.messages import TYPES, Unknown
import tsproto.batch  # noqa: F401  (registers T_SAMPLES in TYPES)

_COUNTERS = (
    "frames",  # messages delivered
    "crc_errors",  # COBS fine, CRC wrong
    "cobs_errors",  # malformed COBS block structure
    "truncated",  # shorter than header + CRC
    "oversize",  # longer than max_frame between delimiters
    "bad_major",  # CRC fine, other major version: skipped
    "newer_minor",  # CRC fine, newer minor: known prefix parsed, rest ignored
    "unknown_type",  # CRC fine, type not known to this version: skipped
    "malformed",  # CRC fine but body inconsistent (too short, reserved codes): skipped
    "bytes_discarded",  # bytes not belonging to a CRC-valid frame
    "recovered",  # intact frames found at the end of a bad chunk (their delimiter-side start lost)
)


class StreamDecoder:
    """Incremental decoder of the Trackside byte stream.

    dec = StreamDecoder(); msgs = dec.feed(chunk)  # list of Message objects
    Counters are attributes (see ``stats()``). ``keep_unknown=True`` also returns frames of
    unknown types as ``tsproto.messages.Unknown`` (raw_type, body).
    """

    def __init__(self, max_frame: int = 2048, keep_unknown: bool = False):
        self.max_frame = max_frame
        self.keep_unknown = keep_unknown
        self._pending = bytearray()
        for k in _COUNTERS:
            setattr(self, k, 0)

    def stats(self) -> dict:
        """All counters as a dict."""
        d = {}
        for k in _COUNTERS:
            d[k] = getattr(self, k)
        return d

    def feed(self, data: bytes) -> list:
        """Decode as much as possible; returns the list of complete messages (maybe empty)."""
        out = []
        pend = self._pending
        pend.extend(data)
        start = 0
        while True:
            i = pend.find(b"\x00", start)
            if i < 0:
                break
            if i > start:
                self._frame(pend[start:i], out)
            start = i + 1
        if start:
            pend = pend[start:]
        if len(pend) > self.max_frame:
            # no delimiter in sight: drop what cannot be a frame, keep looking
            self.oversize += 1
            self.bytes_discarded += len(pend)
            pend = bytearray()
        self._pending = pend
        return out

    def close(self) -> None:
        """End of stream: count bytes of an unfinished frame as discarded."""
        self.bytes_discarded += len(self._pending)
        self._pending = bytearray()

    def _frame(self, chunk, out):
        n = len(chunk)
        if n > self.max_frame:
            self.oversize += 1
            self.bytes_discarded += n + 1
            return
        try:
            p = cobs_decode(chunk)
        except ValueError:
            self.cobs_errors += 1
            p = None
        m = False if p is None else decode_payload(p, self)
        if m is False:
            # Bad frame. If its delimiter was lost (cut frame, reset node, glued garbage), an
            # intact frame may end this chunk: look for it.
            r = recover_tail(chunk, self)
            if r is None:
                self.bytes_discarded += n + 1
                return
            s, m = r
            self.bytes_discarded += s
            self.recovered += 1
        if m is not None:
            self.frames += 1
            out.append(m)


def recover_tail(chunk: bytes, counters=None):
    """Find an intact frame at the end of a bad chunk: (start, message or None) or None.

    Tries every start from the front: a candidate must be a COBS block chain ending exactly at
    the chunk end, then pass the CRC (the first, i.e. longest, such suffix wins). Only runs on
    chunks that failed, so it costs nothing on a clean link. ``counters`` get the usual
    bad_major / newer_minor / unknown_type / malformed counts of the recovered frame.
    """
    n = len(chunk)
    last = n - MIN_PAYLOAD - 1  # a frame needs a code byte + MIN_PAYLOAD bytes
    for s in range(1, last + 1):
        q = s
        while q < n:
            q += chunk[q]  # no zeros in a chunk: every step advances
        if q != n:
            continue
        try:
            p = cobs_decode(chunk[s:])
        except ValueError:
            continue
        if not check_payload(p):
            continue
        return s, decode_payload(p, counters)
    return None


def decode_payload(p: bytes, counters=None):
    """Message of one COBS-decoded payload; None when skipped, False when invalid.

    ``counters``: an object with the StreamDecoder counter attributes (or None).
    """
    n = len(p)
    if n < MIN_PAYLOAD:
        if counters is not None:
            counters.truncated += 1
        return False
    mv = memoryview(p)
    if crc(mv[: n - 4]) != struct.unpack_from("<I", p, n - 4)[0]:
        if counters is not None:
            counters.crc_errors += 1
        return False
    ver, mtype, node, seq, t_us = struct.unpack_from("<BBBHI", p, 0)
    if ver >> 4 != VERSION_MAJOR:
        if counters is not None:
            counters.bad_major += 1
        return None
    if (ver & 15) > VERSION_MINOR and counters is not None:
        counters.newer_minor += 1
    cls = TYPES.get(mtype)
    if cls is None:
        if counters is not None:
            counters.unknown_type += 1
        if counters is None or not counters.keep_unknown:
            return None
        cls = Unknown
    m = cls(ver, node, seq, t_us)
    body = mv[HEADER_LEN : n - 4]
    try:
        if cls is Unknown:
            m.raw_type = mtype
        m.parse(body)
    except (ValueError, IndexError, TypeError, KeyError, UnicodeError, struct.error if hasattr(struct, "error") else ValueError):
        if counters is not None:
            counters.malformed += 1
        return None
    return m


def decode_frame(wire_bytes: bytes):
    """Decode exactly one wire frame (with or without the trailing 0x00); raises ValueError."""
    b = bytes(wire_bytes)
    if b.endswith(b"\x00"):
        b = b[:-1]
    if b"\x00" in b:
        raise ValueError("more than one frame")
    dec = StreamDecoder(keep_unknown=True)
    msgs = dec.feed(b + b"\x00")
    if len(msgs) != 1:
        raise ValueError("not a valid frame: %r" % (dec.stats(),))
    return msgs[0]
