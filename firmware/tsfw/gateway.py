"""ESP-NOW gateway node: paired sensor nodes <-> host over USB serial.

Radio -> host: every message from a PAIRED peer (added with its own LMK, so encrypted and
authenticated by ESP-NOW) is written to USB unchanged -- it already is a complete wire frame
(COBS + 0x00 delimiter, <= 250 bytes) carrying its node id. Messages from anyone else (an
unpaired board, or a board spoofing a paired MAC without the right key, which the radio already
drops) are counted and discarded, so a stranger's board beside the track cannot inject frames.

Host -> radio: command and time-sync frames from the host are routed by the node id in their
header to the MAC that node last sent from (learned from its frames); node id 0xFF (broadcast)
goes to every paired peer. Frames for a node not heard from yet are counted as unroutable.

    gw = Gateway(cfg)                # cfg["peers"] = [{"mac": ..., "lmk": ...}], pmk, channel
    while True:
        gw.step()

The gateway adds nothing to the frames (docs/protocol.md: the gateway is transparent).
"""

from tsfw import config as _config
from tsfw import clock

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from tsproto.consts import NODE_BROADCAST
except ImportError:  # pragma: no cover
    NODE_BROADCAST = 0xFF

MSG_MAX = const(250)
_RADIO_BUDGET = const(32)   # messages forwarded per step before looking at USB again


def frame_node_id(buf, n):
    """Node id of a COBS frame ``buf[0:n]``, or -1 if it cannot be read cheaply.

    The payload starts ver, type, node (all non-zero for valid frames), so when the first COBS
    block is longer than 3 bytes the node id is simply byte 3 of the encoded frame.
    """
    if n < 4 or buf[0] < 4:
        return -1
    return buf[3]


class Gateway:
    """Forwarding loop of the gateway node (see module docstring)."""

    def __init__(self, cfg, esp=None, usb=None):
        if esp is None:
            import network
            import espnow
            sta = network.WLAN(network.STA_IF)
            sta.active(True)
            try:
                sta.config(channel=cfg["channel"])
            except (OSError, ValueError):
                pass
            esp = espnow.ESPNow()
        if usb is None:
            from tsfw.link_usb import UsbLink
            usb = UsbLink()
        self.esp = esp
        self.usb = usb
        esp.active(True)
        try:  # faster PHY rate: less airtime per message (not every build/port supports it)
            esp.config(rate=_config.ESPNOW_PHY_RATES[cfg["espnow_mbps"]])
        except (AttributeError, ValueError, OSError, TypeError):
            pass
        if cfg["pmk"]:
            esp.set_pmk(_config.parse_key(cfg["pmk"]))
        self.peers = []
        for p in cfg["peers"]:
            mac = _config.parse_mac(p["mac"])
            try:
                esp.del_peer(mac)
            except OSError:
                pass
            esp.add_peer(mac, _config.parse_key(p["lmk"]), 0, 0, True)
            self.peers.append(mac)
        self.node_mac = {}          # node id -> peer MAC, learned from received frames
        self._d = [None, bytearray(MSG_MAX)]
        self._tx = bytearray(MSG_MAX)
        self._tx_views = [None] * (MSG_MAX + 1)
        self.forwarded = 0          # radio -> USB frames
        self.rejected = 0           # messages from unpaired senders
        self.malformed = 0          # messages that are not one delimited frame
        self.routed = 0             # USB -> radio frames
        self.unroutable = 0
        self.radio_errors = 0
        self.started_ms = clock.ticks_ms()

    def _is_peer(self, mac):
        for p in self.peers:
            if p == mac:
                return True
        return False

    def radio_to_usb(self):
        """Forward waiting radio messages from paired peers to USB; how many were forwarded."""
        esp = self.esp
        d = self._d
        count = 0
        for _ in range(_RADIO_BUDGET):
            if not esp.any():
                break
            n = esp.recvinto(d, 0)
            if n <= 0:
                break
            mac = d[0]
            if not self._is_peer(mac):
                self.rejected += 1
                continue
            buf = d[1]
            if buf[n - 1] != 0:
                self.malformed += 1  # not a delimited frame: would corrupt the next one on USB
                continue
            node = frame_node_id(buf, n)
            if node >= 0 and node != NODE_BROADCAST and self.node_mac.get(node) != mac:
                self.node_mac[node] = bytes(mac)
            self.usb.write(buf, n)
            self.forwarded += 1
            count += 1
        return count

    def _send(self, mac, n):
        mv = self._tx_views[n]
        if mv is None:
            mv = memoryview(self._tx)[0:n]
            self._tx_views[n] = mv
        try:
            self.esp.send(mac, mv, False)
            self.routed += 1
        except OSError:
            self.radio_errors += 1

    def usb_to_radio(self):
        """Route one complete host frame (if any) to its node(s); True if a frame was handled."""
        n = self.usb.poll()
        if n == 0:
            return False
        if n + 1 > MSG_MAX:
            self.unroutable += 1
            return True
        rx = self.usb.rx
        tx = self._tx
        for i in range(n):
            tx[i] = rx[i]
        tx[n] = 0  # the delimiter travels with the frame
        node = frame_node_id(tx, n)
        if node == NODE_BROADCAST:
            for mac in self.peers:
                self._send(mac, n + 1)
            return True
        mac = self.node_mac.get(node)
        if mac is None:
            self.unroutable += 1
            return True
        self._send(mac, n + 1)
        return True

    def step(self):
        """One pass: radio -> USB, then host frames -> radio."""
        self.radio_to_usb()
        while self.usb_to_radio():
            pass

    def run(self):
        """Forward forever (the gateway's main loop)."""
        while True:
            if not self.radio_to_usb() and not self.usb_to_radio():
                clock.sleep_us(200)  # idle: let the radio task run


def main(cfg):
    """Entry point (main.py with role "gateway"): forward forever."""
    Gateway(cfg).run()
