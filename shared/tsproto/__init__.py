"""Trackside wire protocol (docs/protocol.md): one source for firmware (MicroPython) and host.

Firmware:  w = FrameWriter(node_id); enc = SampleBatcher(w, 16, 5000)
           if enc.add(t_us, s): send(enc.frame());  send(w.hello(...)), w.status(...), w.log(...)
Host:      dec = StreamDecoder(); for m in dec.feed(data): ...  (m.type, m.node_id, m.seq, m.t_us)
"""
from tsproto.consts import *  # noqa: F401,F403
from tsproto.messages import (  # noqa: F401
    Ack,
    Command,
    Hello,
    Log,
    Message,
    Nack,
    Status,
    TimeSyncReply,
    TimeSyncRequest,
    Unknown,
)
from tsproto.frame import FrameWriter, cobs_decode, cobs_encode, crc  # noqa: F401
from tsproto.batch import SampleBatch, SampleBatcher, parse_samples  # noqa: F401
from tsproto.decoder import StreamDecoder, decode_frame, decode_payload  # noqa: F401
