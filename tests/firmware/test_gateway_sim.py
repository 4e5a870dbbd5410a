"""The simulated espnow module and the gateway's routing, under CPython (fast, no interpreter)."""

from __future__ import annotations

import sys

import pytest

from trackside.virtual import BOARD_DIR

sys.path.insert(0, str(BOARD_DIR))
import espnow  # noqa: E402  (the simulated module)

from tsfw import config  # noqa: E402
from tsfw.gateway import Gateway, frame_node_id  # noqa: E402
from tsproto import consts as C  # noqa: E402
from tsproto.decoder import StreamDecoder  # noqa: E402
from tsproto.frame import FrameWriter  # noqa: E402
from tsproto.messages import Command, Log  # noqa: E402

K1 = b"0123456789abcdef"
K2 = b"fedcba9876543210"


def mac(i: int) -> bytes:
    return bytes([2, 0, 0, 0, 0, i])


@pytest.fixture(autouse=True)
def fresh_air():
    espnow.reset_air()
    yield
    espnow.reset_air()


def radio(i: int) -> espnow.ESPNow:
    r = espnow.ESPNow(mac=mac(i))
    r.active(True)
    return r


def test_encryption_and_pairing_rules():
    a, b, c = radio(1), radio(2), radio(3)
    a.add_peer(mac(2), K1)
    b.add_peer(mac(1), K1)
    c.add_peer(mac(2), K2)            # wrong key
    assert a.send(mac(2), b"ok") and c.send(mac(2), b"evil")   # both acked at the MAC layer
    assert b.recv() == [mac(1), b"ok"] and b.recv() == (None, None)
    assert b.stats()[4] == 1          # the wrong-key frame was dropped
    with pytest.raises(ValueError):
        a.send(mac(2), bytes(251))     # over 250 bytes
    with pytest.raises(OSError):
        a.send(mac(9), b"x")           # not a peer
    with pytest.raises(OSError):
        a.add_peer(mac(2), K1)         # already a peer
    with pytest.raises(ValueError):
        a.add_peer(espnow.BROADCAST, K1)  # broadcast cannot be encrypted
    for i in range(10, 15):
        a.add_peer(mac(i), K2)
    with pytest.raises(OSError, match="6 encrypted"):
        a.add_peer(mac(20), K2)        # the 7th encrypted peer
    assert a.peer_count() == (6, 6)


def test_recvinto_is_allocation_free_style_swap():
    a, b = radio(1), radio(2)
    a.add_peer(mac(2))
    a.send(mac(2), b"hello")
    buf = [None, bytearray(250)]
    assert b.recvinto(buf, 0) == 5 and bytes(buf[1][:5]) == b"hello" and buf[0] == mac(1)
    assert b.recvinto(buf, 0) == 0


class FakeUsb:
    """The gateway's USB side: frames from the host in, bytes to the host out."""

    def __init__(self, frames: list[bytes]):
        self.rx = bytearray(512)
        self._frames = [f.rstrip(b"\x00") for f in frames]
        self.out = bytearray()

    def poll(self) -> int:
        if not self._frames:
            return 0
        f = self._frames.pop(0)
        self.rx[: len(f)] = f
        return len(f)

    def write(self, buf, n) -> bool:
        self.out += bytes(buf[:n])
        return True


def test_gateway_routes_by_node_id_and_broadcasts():
    pmk = "00112233445566778899aabbccddeeff"
    gcfg = config.defaults()
    config.update(gcfg, {"role": "gateway", "pmk": pmk, "peers": [
        {"mac": config.format_mac(mac(1)), "lmk": K1.hex()}, {"mac": config.format_mac(mac(2)), "lmk": K2.hex()}]})
    host = FrameWriter(C.NODE_HOST)
    cmds = []
    for node in (5, 6, C.NODE_BROADCAST, 9):
        host.node_id = node
        cmds.append(host.frame(C.T_COMMAND, 0, Command(cmd=C.CMD_IDENTIFY, args=(1,)).body()))
    usb = FakeUsb(cmds)
    gw = Gateway(gcfg, esp=espnow.ESPNow(mac=mac(0xFE)), usb=usb)
    nodes = {}
    for i, (nid, key) in enumerate(((5, K1), (6, K2)), start=1):
        r = radio(i)
        r.set_pmk(bytes.fromhex(pmk))
        r.add_peer(mac(0xFE), key)
        w = FrameWriter(nid)
        r.send(mac(0xFE), w.frame(C.T_LOG, 0, Log(level=20, text="hi").body()))
        nodes[nid] = r
    gw.step()
    msgs = StreamDecoder().feed(bytes(usb.out))
    assert sorted(m.node_id for m in msgs) == [5, 6] and gw.node_mac == {5: mac(1), 6: mac(2)}
    got = {nid: [] for nid in nodes}
    for nid, r in nodes.items():
        m, msg = r.recv()
        while m is not None:
            got[nid].append(frame_node_id(msg, len(msg)))
            m, msg = r.recv()
    assert got == {5: [5, C.NODE_BROADCAST], 6: [6, C.NODE_BROADCAST]}
    assert gw.routed == 4 and gw.unroutable == 1   # node 9 never spoke: no route
