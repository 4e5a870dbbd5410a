# Framing: COBS + 0x00 delimiter, CRC-32, the common 9-byte header, and FrameWriter.
# Runs on MicroPython (firmware, gateway) and CPython (host). These helpers allocate; the
# per-sample path is tsproto.batch.SampleBatcher, which frames in place.
import struct

try:
    from binascii import crc32 as _crc32
except ImportError:  # pragma: no cover - every supported port has binascii.crc32
    from zlib import crc32 as _crc32

from tsproto.consts import (
    CRC_INIT,
    HEADER_LEN,
    MAX_PAYLOAD,
    MIN_PAYLOAD,
    VERSION,
)

from tsproto.messages import Ack, Command, Hello, Log, Nack, Status, TimeSyncReply, TimeSyncRequest

_HDR = "<BBBHI"


def crc(data: bytes, value: int = CRC_INIT) -> int:
    """CRC-32 of the protocol (zlib CRC-32 started as if a 0x00 byte preceded ``data``)."""
    return _crc32(data, value) & 0xFFFFFFFF


def cobs_encode(data: bytes) -> bytearray:
    """COBS-encode ``data`` (any length); returns a bytearray without the 0x00 delimiter."""
    n = len(data)
    out = bytearray(n + n // 254 + 2)
    code_pos = 0
    o = 1
    code = 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code_pos = o
            o += 1
            code = 1
        else:
            out[o] = b
            o += 1
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code_pos = o
                o += 1
                code = 1
    out[code_pos] = code
    return out[:o]


def cobs_decode(data: bytes) -> bytearray:
    """Decode one COBS block sequence (no delimiter inside); raises ValueError when malformed."""
    n = len(data)
    if b"\x00" in data:
        raise ValueError("zero byte inside COBS frame")
    out = bytearray()
    i = 0
    while i < n:
        code = data[i]
        end = i + code
        if end > n:
            raise ValueError("COBS block runs past the frame end")
        out += data[i + 1 : end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return out


def payload(mtype, node_id, seq, t_us, body=b"", version=VERSION):
    """Header + body + CRC (before COBS). ``t_us`` is taken modulo 2**32."""
    p = bytearray(HEADER_LEN + len(body) + 4)
    struct.pack_into(_HDR, p, 0, version, mtype, node_id & 0xFF, seq & 0xFFFF, t_us & 0xFFFFFFFF)
    p[HEADER_LEN : HEADER_LEN + len(body)] = body
    struct.pack_into("<I", p, len(p) - 4, crc(memoryview(p)[: len(p) - 4]))
    return p


def wire(p):
    """Wire bytes of a payload: COBS + 0x00 delimiter."""
    out = cobs_encode(p)
    out.append(0)
    return bytes(out)


def parse_header(p):
    """(version, type, node_id, seq, t_us) of a CRC-checked payload."""
    return struct.unpack_from(_HDR, p, 0)


def check_payload(p: bytes) -> bool:
    """True when the payload is long enough and its CRC matches."""
    n = len(p)
    if n < MIN_PAYLOAD:
        return False
    return crc(memoryview(p)[: n - 4]) == struct.unpack_from("<I", p, n - 4)[0]


class FrameWriter:
    """Per-node frame factory: one 16-bit sequence counter shared by all message types.

    ``w = FrameWriter(node_id)``; ``w.frame(mtype, t_us, body)`` returns complete wire bytes
    (COBS + delimiter). The typed encoders (hello, status, ...) are in tsproto.messages and are
    also bound here as methods. ``SampleBatcher`` takes the same writer so sample batches and
    other messages share the sequence.
    """

    def __init__(self, node_id: int):
        if not 0 <= node_id <= 0xFF:
            raise ValueError("node_id must be 0..255")
        self.node_id = node_id
        self.seq = 0

    def next_seq(self) -> int:
        s = self.seq
        self.seq = (s + 1) & 0xFFFF
        return s

    def frame(self, mtype: int, t_us: int, body: bytes = b"", version: int = VERSION) -> bytes:
        """Wire bytes of one message with the next sequence number."""
        if HEADER_LEN + len(body) + 4 > MAX_PAYLOAD:
            raise ValueError("message body too long for one frame")
        return wire(payload(mtype, self.node_id, self.next_seq(), t_us, body, version))

    def encode(self, msg, t_us: int) -> bytes:
        """Wire bytes of a Message object (its header fields are ignored)."""
        try:
            body = msg.body()
        except Exception as e:  # struct.error (CPython), TypeError, ...: name the message
            raise ValueError("cannot encode %s %r: %s" % (type(msg).__name__, msg.fields(), e))
        return self.frame(msg.TYPE, t_us, body)

    # Typed encoders: keyword arguments are the FIELDS of the message class.
    def hello(self, t_us, rate_hz, accel_range_g, gyro_range_dps, mag_range_ut, mode, calib_id, fw_version, chip):
        return self.encode(
            Hello(rate_hz=rate_hz, accel_range_g=accel_range_g, gyro_range_dps=gyro_range_dps,
                  mag_range_ut=mag_range_ut, mode=mode, calib_id=calib_id, fw_version=fw_version, chip=chip),
            t_us,
        )

    def status(self, t_us, battery_mv, temp_c100, fifo_overflows, loop_overruns, i2c_errors, free_mem, uptime_s):
        return self.encode(
            Status(battery_mv=battery_mv, temp_c100=temp_c100, fifo_overflows=fifo_overflows,
                   loop_overruns=loop_overruns, i2c_errors=i2c_errors, free_mem=free_mem, uptime_s=uptime_s),
            t_us,
        )

    def timesync_request(self, t_us, req_id, t1):
        return self.encode(TimeSyncRequest(req_id=req_id, t1=t1), t_us)

    def timesync_reply(self, t_us, req_id, t1, t2, t3):
        return self.encode(TimeSyncReply(req_id=req_id, t1=t1, t2=t2, t3=t3), t_us)

    def command(self, t_us, cmd, args=()):
        """Command frame; returns (wire bytes, seq) -- the seq is what ACK/NACK refer to."""
        seq = self.seq
        return self.encode(Command(cmd=cmd, args=args), t_us), seq

    def ack(self, t_us, cmd_seq, cmd):
        return self.encode(Ack(cmd_seq=cmd_seq, cmd=cmd), t_us)

    def nack(self, t_us, cmd_seq, cmd, error):
        return self.encode(Nack(cmd_seq=cmd_seq, cmd=cmd, error=error), t_us)

    def log(self, t_us, level, text):
        return self.encode(Log(level=level, text=text), t_us)
