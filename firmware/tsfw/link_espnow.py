"""ESP-NOW link of a sensor node: frames to its gateway, commands from it, always encrypted.

Each wire frame (COBS + 0x00 delimiter, at most 250 bytes: see docs/protocol.md) travels as one
ESP-NOW message to the configured gateway, which forwards it unchanged to the host over USB.
The gateway is added as an encrypted peer with the configured LMK (after ``set_pmk``), so only
a board holding the same keys can talk to this node, and this node accepts commands only from
that peer::

    link = EspNowLink(cfg)           # cfg from tsfw.config (link "espnow", gateway_mac, pmk, lmk)
    link.write(frame_buf, n)
    n = link.poll()                  # a command frame in link.rx[0:n] (delimiter stripped), or 0

``esp`` may be passed in (tests with several simulated boards in one interpreter).
"""

from tsfw import config as _config

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

MSG_MAX = const(250)


class EspNowLink:
    """Node-side ESP-NOW link (see module docstring)."""

    name = "espnow"

    def __init__(self, cfg, esp=None):
        self.peer = _config.parse_mac(cfg["gateway_mac"])
        pmk = _config.parse_key(cfg["pmk"])
        lmk = _config.parse_key(cfg["lmk"])
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
        self.esp = esp
        esp.active(True)
        try:  # faster PHY rate: less airtime per message (not every build/port supports it)
            esp.config(rate=_config.ESPNOW_PHY_RATES[cfg["espnow_mbps"]])
        except (AttributeError, ValueError, OSError, TypeError):
            pass
        esp.set_pmk(pmk)
        try:
            esp.del_peer(self.peer)  # re-pairing after a soft reboot: fresh keys
        except OSError:
            pass
        esp.add_peer(self.peer, lmk, 0, 0, True)
        self.rx = bytearray(MSG_MAX)
        self._d = [None, bytearray(MSG_MAX)]
        self._views = {}       # frame length -> memoryview of the last tx buffer (no per-frame alloc)
        self._view_buf = None
        self.tx_errors = 0
        self.tx_frames = 0
        self.rx_foreign = 0    # messages from anyone but the gateway (ignored)
        self.rx_overflows = 0
        self.eof = False

    def close(self):
        try:
            self.esp.del_peer(self.peer)
        except OSError:
            pass

    def _view(self, buf, n):
        if buf is not self._view_buf:
            self._views = {}
            self._view_buf = buf
        mv = self._views.get(n)
        if mv is None:  # first frame of this length from this buffer
            mv = memoryview(buf)[0:n]
            self._views[n] = mv
        return mv

    def write(self, buf, n, sync=False):
        """Send ``buf[0:n]`` (one complete frame) to the gateway; False on a radio error."""
        if n > MSG_MAX:
            self.tx_errors += 1
            return False
        try:
            ok = self.esp.send(self.peer, self._view(buf, n), sync)
        except OSError:  # e.g. ESP_ERR_ESPNOW_NO_MEM: the radio queue is full
            self.tx_errors += 1
            return False
        if sync and not ok:
            self.tx_errors += 1
            return False
        self.tx_frames += 1
        return True

    def flush(self):
        pass

    def poll(self):
        """Length of a command frame from the gateway now in ``rx`` (delimiter stripped), or 0."""
        d = self._d
        esp = self.esp
        while esp.any():
            n = esp.recvinto(d, 0)
            if n <= 0:
                return 0
            if d[0] != self.peer:
                self.rx_foreign += 1
                continue
            src = d[1]
            if n and src[n - 1] == 0:
                n -= 1  # strip the frame delimiter
            if n > len(self.rx):
                self.rx_overflows += 1
                continue
            rx = self.rx
            for i in range(n):
                rx[i] = src[i]
            return n
        return 0
