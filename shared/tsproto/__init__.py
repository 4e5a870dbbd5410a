"""Trackside wire protocol (docs/protocol.md): one source for firmware (MicroPython) and host.

Firmware:  w = FrameWriter(node_id); enc = SampleBatcher(w, 16, 5000)
           if enc.add(t_us, s): send(enc.frame());  send(w.hello(...)), w.status(...), w.log(...)
Host:      dec = StreamDecoder(); for m in dec.feed(data): ...  (m.type, m.node_id, m.seq, m.t_us)

On MicroPython the names below are imported lazily on first use (module __getattr__), so a
node that only needs SampleBatcher + FrameWriter does not pay RAM for the decoder; importing
the submodules directly (``from tsproto.batch import SampleBatcher``) is the leanest.
"""
import sys

_WHERE = {
    "Ack": "messages",
    "Command": "messages",
    "Hello": "messages",
    "Log": "messages",
    "Message": "messages",
    "Nack": "messages",
    "Status": "messages",
    "TimeSyncReply": "messages",
    "TimeSyncRequest": "messages",
    "Unknown": "messages",
    "FrameWriter": "frame",
    "cobs_decode": "frame",
    "cobs_encode": "frame",
    "crc": "frame",
    "SampleBatch": "batch",
    "SampleBatcher": "batch",
    "parse_samples": "batch",
    "StreamDecoder": "decoder",
    "decode_frame": "decoder",
    "decode_payload": "decoder",
}

if sys.implementation.name == "micropython":

    _SUBMODULES = ("consts", "frame", "messages", "batch", "decoder")

    def __getattr__(name):
        if name in _SUBMODULES:  # `from tsproto import consts`
            v = __import__("tsproto." + name, None, None, ("VERSION",))
        else:
            m = __import__("tsproto." + _WHERE.get(name, "consts"), None, None, (name,))
            try:
                v = getattr(m, name)
            except AttributeError:
                raise AttributeError("tsproto has no " + name)
        globals()[name] = v
        return v

else:
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
