# Typed messages: body layouts, encoders and decoders (all but sample batches: tsproto.batch).
# Layouts are little-endian; every body is a fixed prefix followed by optional u8-length
# strings, so a newer minor version can append fields that older decoders skip.
import struct

from tsproto.consts import (
    CMD_ARGS,
    T_ACK,
    T_COMMAND,
    T_HELLO,
    T_LOG,
    T_NACK,
    T_STATUS,
    T_TIMESYNC_REPLY,
    T_TIMESYNC_REQ,
    VERSION,
)


class Message:
    """A decoded frame: header fields plus typed payload fields (see FIELDS of each subclass)."""

    TYPE = -1
    FIELDS = ()

    def __init__(self, version=VERSION, node_id=0, seq=0, t_us=0, **fields):
        self.type = self.TYPE
        self.version = version
        self.node_id = node_id
        self.seq = seq
        self.t_us = t_us
        for k in self.FIELDS:
            setattr(self, k, fields.get(k))

    def fields(self):
        """Payload fields as a dict (header fields excluded)."""
        d = {}
        for k in self.FIELDS:
            d[k] = getattr(self, k)
        return d

    def __eq__(self, other):
        return (
            type(self) is type(other)
            and self.node_id == other.node_id
            and self.seq == other.seq
            and self.t_us == other.t_us
            and self.fields() == other.fields()
        )

    def __repr__(self):
        return "%s(node=%d seq=%d t_us=%d %r)" % (
            type(self).__name__,
            self.node_id,
            self.seq,
            self.t_us,
            self.fields(),
        )


def _str8(b, o):
    """(text, next offset) of a u8-length UTF-8 string at b[o]; ValueError when truncated."""
    if o >= len(b):
        raise ValueError("string length missing")
    n = b[o]
    if o + 1 + n > len(b):
        raise ValueError("string runs past the body")
    raw = bytes(b[o + 1 : o + 1 + n])
    try:
        text = raw.decode("utf-8")
    except (UnicodeError, ValueError):  # never fatal: replace what is not ASCII
        text = "".join([chr(c) if c < 128 else "?" for c in raw])
    return text, o + 1 + n


def _enc_str8(s, limit=255):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    if len(b) > limit:
        b = b[:limit]
    return bytes((len(b),)) + b


def _need(body, n):
    if len(body) < n:
        raise ValueError("body too short")


class Hello(Message):
    """Identity: sent at boot and on CMD_HELLO."""

    TYPE = T_HELLO
    FIELDS = (
        "rate_hz",
        "accel_range_g",
        "gyro_range_dps",
        "mag_range_ut",
        "mode",
        "calib_id",
        "fw_version",
        "chip",
    )
    FMT = "<HBHHBI"  # 12 bytes, then str8 fw_version, str8 chip

    def body(self):
        return (
            struct.pack(
                self.FMT,
                self.rate_hz,
                self.accel_range_g,
                self.gyro_range_dps,
                self.mag_range_ut,
                self.mode,
                self.calib_id,
            )
            + _enc_str8(self.fw_version, 32)
            + _enc_str8(self.chip, 32)
        )

    def parse(self, b):
        _need(b, 12)
        (
            self.rate_hz,
            self.accel_range_g,
            self.gyro_range_dps,
            self.mag_range_ut,
            self.mode,
            self.calib_id,
        ) = struct.unpack_from(self.FMT, b, 0)
        self.fw_version, o = _str8(b, 12)
        self.chip, o = _str8(b, o)


class Status(Message):
    """Health counters; temperature in 0.01 degC, battery in mV, free heap in bytes."""

    TYPE = T_STATUS
    FIELDS = (
        "battery_mv",
        "temp_c100",
        "fifo_overflows",
        "loop_overruns",
        "i2c_errors",
        "free_mem",
        "uptime_s",
    )
    FMT = "<HhIIIII"  # 24 bytes

    def body(self):
        return struct.pack(
            self.FMT,
            self.battery_mv,
            self.temp_c100,
            self.fifo_overflows & 0xFFFFFFFF,
            self.loop_overruns & 0xFFFFFFFF,
            self.i2c_errors & 0xFFFFFFFF,
            self.free_mem,
            self.uptime_s,
        )

    def parse(self, b):
        _need(b, 24)
        (
            self.battery_mv,
            self.temp_c100,
            self.fifo_overflows,
            self.loop_overruns,
            self.i2c_errors,
            self.free_mem,
            self.uptime_s,
        ) = struct.unpack_from(self.FMT, b, 0)


class TimeSyncRequest(Message):
    """NTP-style request; either side may start. t1 = sender's clock (us) at sending."""

    TYPE = T_TIMESYNC_REQ
    FIELDS = ("req_id", "t1")
    FMT = "<HQ"

    def body(self):
        return struct.pack(self.FMT, self.req_id & 0xFFFF, self.t1)

    def parse(self, b):
        _need(b, 10)
        self.req_id, self.t1 = struct.unpack_from(self.FMT, b, 0)


class TimeSyncReply(Message):
    """Reply: t1 echoed, t2 = replier's receive time, t3 = replier's send time (us).

    The requester, with t4 = its receive time, gets offset = ((t2 - t1) + (t3 - t4)) / 2 and
    round trip = (t4 - t1) - (t3 - t2).
    """

    TYPE = T_TIMESYNC_REPLY
    FIELDS = ("req_id", "t1", "t2", "t3")
    FMT = "<HQQQ"

    def body(self):
        return struct.pack(self.FMT, self.req_id & 0xFFFF, self.t1, self.t2, self.t3)

    def parse(self, b):
        _need(b, 26)
        self.req_id, self.t1, self.t2, self.t3 = struct.unpack_from(self.FMT, b, 0)


class Command(Message):
    """Host -> node command: ``cmd`` (CMD_*) and ``args`` (tuple, layout CMD_ARGS[cmd]).

    Unknown commands decode with ``args`` = the raw argument bytes (the node NACKs them).
    """

    TYPE = T_COMMAND
    FIELDS = ("cmd", "args")

    def body(self):
        fmt = CMD_ARGS.get(self.cmd)
        if fmt is None:
            return bytes((self.cmd,)) + bytes(self.args or b"")
        return bytes((self.cmd,)) + (struct.pack(fmt, *self.args) if fmt else b"")

    def parse(self, b):
        _need(b, 1)
        self.cmd = b[0]
        fmt = CMD_ARGS.get(self.cmd)
        if fmt is None:
            self.args = bytes(b[1:])
        elif fmt:
            _need(b, 1 + struct.calcsize(fmt))
            self.args = tuple(struct.unpack_from(fmt, b, 1))
        else:
            self.args = ()


class Ack(Message):
    """Command accepted/done: seq of the command frame and its cmd code."""

    TYPE = T_ACK
    FIELDS = ("cmd_seq", "cmd")
    FMT = "<HB"

    def body(self):
        return struct.pack(self.FMT, self.cmd_seq & 0xFFFF, self.cmd)

    def parse(self, b):
        _need(b, 3)
        self.cmd_seq, self.cmd = struct.unpack_from(self.FMT, b, 0)


class Nack(Message):
    """Command refused: seq of the command frame, its cmd code and an E_* error code."""

    TYPE = T_NACK
    FIELDS = ("cmd_seq", "cmd", "error")
    FMT = "<HBB"

    def body(self):
        return struct.pack(self.FMT, self.cmd_seq & 0xFFFF, self.cmd, self.error)

    def parse(self, b):
        _need(b, 4)
        self.cmd_seq, self.cmd, self.error = struct.unpack_from(self.FMT, b, 0)


class Log(Message):
    """Log line: level (LOG_*) and UTF-8 text (at most 200 bytes; longer text is cut)."""

    TYPE = T_LOG
    FIELDS = ("level", "text")

    def body(self):
        return bytes((self.level & 0xFF,)) + _enc_str8(self.text, 200)

    def parse(self, b):
        _need(b, 2)
        self.level = b[0]
        self.text, o = _str8(b, 1)


class Unknown(Message):
    """A CRC-valid frame of a type this version does not know (skipped, counted)."""

    FIELDS = ("raw_type", "body")

    def parse(self, b):
        self.body = bytes(b)


# type code -> class, for the decoder (SampleBatch registers itself from tsproto.batch)
TYPES = {
    T_HELLO: Hello,
    T_STATUS: Status,
    T_TIMESYNC_REQ: TimeSyncRequest,
    T_TIMESYNC_REPLY: TimeSyncReply,
    T_COMMAND: Command,
    T_ACK: Ack,
    T_NACK: Nack,
    T_LOG: Log,
}
