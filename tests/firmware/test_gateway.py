"""ESP-NOW gateway under the real MicroPython interpreter: a node's frames reach the host through
the gateway unchanged, host commands reach the node, and a stranger's board cannot inject frames.

One interpreter hosts the gateway (USB = this process's stdout/stdin), a sensor node on ESP-NOW
and two strangers; the simulated ``espnow`` module models pairing and LMK encryption.
"""

from pathlib import Path

import pytest

from trackside import mpy
from tsproto import consts as C
from tsproto.decoder import StreamDecoder
from tsproto.frame import FrameWriter
from tsproto.messages import Command

pytestmark = pytest.mark.wasm

BOARD = Path(mpy.REPO) / "host" / "trackside" / "virtual" / "board"
FIX = Path(__file__).with_name("fixtures_app")

SCRIPT = r"""
import espnow, network
from tsfw import clock, config
clock.use(clock.ManualClock(1000))
from fakeimu import FakeIMU
from tsfw.app import App
from tsfw.gateway import Gateway
from tsfw.link_espnow import EspNowLink
from tsproto.frame import FrameWriter
import tsproto.consts as C
import tsproto.messages as M

GW = b'\x02\x00\x00\x00\x00\x0b'
NODE = b'\x02\x00\x00\x00\x00\x0a'
PMK = '00112233445566778899aabbccddeeff'
LMK = 'a1a2a3a4a5a6a7a8a9aaabacadaeafb0'
network.WLAN(network.STA_IF).active(True)

ncfg = config.defaults()
config.update(ncfg, {'node_id': 7, 'segment': 'shank_l', 'link': 'espnow', 'pmk': PMK, 'lmk': LMK,
                     'gateway_mac': config.format_mac(GW), 'mode': 'raw'})
gcfg = config.defaults()
config.update(gcfg, {'role': 'gateway', 'pmk': PMK,
                     'peers': [{'mac': config.format_mac(NODE), 'lmk': LMK}]})

gw = Gateway(gcfg, esp=espnow.ESPNow(mac=GW))
node_link = EspNowLink(ncfg, esp=espnow.ESPNow(mac=NODE))
app = App(cfg=ncfg, link=node_link, sensor=FakeIMU(), config_path='/n.json')
app.boot()

def evil_frames():
    w = FrameWriter(7)   # claims to be node 7
    return [w.frame(C.T_LOG, 0, M.Log(level=40, text='INJECTED').body()) for _ in range(3)]

# stranger 1: not paired with the gateway (plain frames)
s1 = espnow.ESPNow(mac=b'\x02\x00\x00\x00\x00\x66')
s1.active(True)
s1.add_peer(GW)
# stranger 2: spoofs the node's MAC, but does not know the LMK
s2 = espnow.ESPNow(mac=NODE)
s2.set_pmk(config.parse_key(PMK))
s2.add_peer(GW, b'wrong-key-123456', 0, 0, True)
s2._active = True   # transmit only (the real node keeps its receive slot in the air)
s3 = espnow.ESPNow(mac=NODE)   # spoofed MAC, unencrypted
s3.add_peer(GW)
s3._active = True

mc = clock.source()
for i in range(120):          # 0.6 s of node time
    app.step()
    gw.step()
    if i == 40:
        for f in evil_frames():
            s1.send(GW, f)
            s2.send(GW, f)
            s3.send(GW, f)
    mc.advance(5000)
app.stop()
gw.step()
ok_before = app.link_ok
gw.esp.active(False)          # the gateway goes away: the next status gets no ack
for i in range(300):
    app.step()
    mc.advance(5000)
import sys
print('\nSTATS', gw.forwarded, gw.rejected, gw.routed, gw.unroutable, gw.esp.stats()[4],
      int(ok_before), int(app.link_ok), file=sys.stderr)
"""


def _commands() -> bytes:
    w = FrameWriter(C.NODE_HOST)
    w.node_id = 7
    out = w.frame(C.T_COMMAND, 0, Command(cmd=C.CMD_IDENTIFY, args=(2,)).body())
    out += w.frame(C.T_COMMAND, 0, Command(cmd=C.CMD_SET_RATE, args=(333,)).body())
    w.node_id = 9  # nobody: unroutable
    out += w.frame(C.T_COMMAND, 0, Command(cmd=C.CMD_STOP, args=()).body())
    return out


def test_gateway_forwards_node_frames_and_rejects_strangers():
    files = [(FIX / "fakeimu.py", "/lib/fakeimu.py")]
    libs = mpy.firmware_libs() + [(BOARD, "/lib")]
    res = mpy.run(SCRIPT, libs=libs, files=files, stdin=_commands(), check=False)
    assert res.returncode == 0, res.stderr
    dec = StreamDecoder()
    msgs = dec.feed(res.stdout)
    assert dec.stats()["crc_errors"] == 0 and dec.stats()["bytes_discarded"] == 0
    assert {m.node_id for m in msgs} == {7}
    kinds = [type(m).__name__ for m in msgs]
    assert kinds[0] == "Hello" and "Status" in kinds
    batches = [m for m in msgs if m.type == C.T_SAMPLES]
    nsamples = sum(len(b.samples) for b in batches)
    assert 100 <= nsamples <= 125, nsamples        # 0.6 s at 200 Hz, nothing lost or invented
    seqs = [m.seq for m in msgs]
    assert seqs == list(range(len(seqs)))          # forwarded in order, none dropped
    # no injected frame got through
    assert not any(getattr(m, "text", "") == "INJECTED" for m in msgs)
    # commands were routed to the node and answered through the gateway
    acks = [m for m in msgs if m.type == C.T_ACK]
    nacks = [m for m in msgs if m.type == C.T_NACK]
    assert [a.cmd for a in acks] == [C.CMD_IDENTIFY]
    assert [(n.cmd, n.error) for n in nacks] == [(C.CMD_SET_RATE, C.E_BAD_ARG)]
    stats = res.stderr.split("STATS")[1].split()
    forwarded, rejected, routed, unroutable, radio_dropped, ok_before, ok_after = map(int, stats)
    assert (ok_before, ok_after) == (1, 0)   # the node noticed the gateway is gone (LED code 4)
    assert forwarded == len(msgs)
    assert rejected == 3        # the unpaired stranger: delivered by the radio, refused by the gateway
    assert radio_dropped == 6   # spoofed MAC with a wrong LMK or unencrypted: dropped by the radio
    assert routed == 2 and unroutable == 1
