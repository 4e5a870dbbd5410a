"""Simulated ``espnow`` module: ESP-NOW radios sharing one in-process "air".

MicroPython-compatible (runs under the WebAssembly port on a simulated board's ``/lib``, and
under CPython). It follows MicroPython's ``espnow.ESPNow`` API (``active``, ``config``,
``set_pmk``, ``add_peer``/``del_peer``/``get_peer``/``get_peers``, ``send``, ``recv``,
``irecv``, ``recvinto``, ``any``, ``stats``, ``peers_table``) and models what matters for
Trackside's security:

- a message is at most 250 bytes; ``send`` needs a registered peer (or the broadcast peer);
- a peer added with an LMK (``encrypt`` defaults to True when ``lmk`` is given) makes every
  frame to it encrypted with the key pair (PMK, LMK), as ESP-NOW's CCMP does;
- on receipt, an encrypted frame is kept only if the receiver has the sender registered as an
  encrypted peer with the same PMK and LMK (otherwise decryption/MIC fails: dropped, counted in
  ``stats()[4]``); an unencrypted frame from a sender the receiver registered as an encrypted
  peer is dropped too; an unencrypted frame from an unknown sender IS delivered (as on real
  radios) -- the application must check the sender (the Trackside gateway forwards only from
  its paired peers).

Simulation-only: ``ESPNow(mac=...)`` creates a radio with its own MAC so several boards can
share one process (plain ``ESPNow()`` returns this board's radio, MAC from
``network.WLAN(STA_IF)``); ``reset_air()`` forgets all radios. Receive queues are preallocated
rings, so ``send`` and ``recvinto`` allocate nothing. Timeouts do not wait: nothing else can
transmit while the single-threaded simulation is blocked, so an empty queue returns at once.
"""

import network

MAX_DATA_LEN = 250
KEY_LEN = 16
ETH_ALEN = 6
MAX_TOTAL_PEER_NUM = 20
MAX_ENCRYPT_PEER_NUM = 6
BROADCAST = b"\xff\xff\xff\xff\xff\xff"
_DEFAULT_PMK = b"PMK1234567890123"  # ESP-IDF's default primary master key
_RX_SLOTS = 16

_air = {}        # MAC bytes -> ESPNow radio in range
_default = [None]


def reset_air():
    """Simulation only: forget every radio (a fresh, empty field)."""
    _air.clear()
    _default[0] = None


def radios():
    """Simulation only: the MACs of radios currently in the air."""
    return list(_air.keys())


class ESPNow:
    """One ESP-NOW radio (see the module docstring for the model)."""

    def __new__(cls, mac=None):
        if mac is None and _default[0] is not None:
            return _default[0]  # ESPNow() is a singleton per board, as on the device
        return super().__new__(cls)

    def __init__(self, mac=None):
        if getattr(self, "_init", False):
            return
        self._init = True
        if mac is None:
            _default[0] = self
        self._own_mac = bytes(mac) if mac is not None else None
        self._active = False
        self._pmk = _DEFAULT_PMK
        self._peers = {}           # mac -> [lmk or None, channel, ifidx, encrypt]
        self.peers_table = {}      # mac -> [rssi, time_ms], as MicroPython keeps it
        # preallocated receive ring: slot payloads, lengths, sender MACs
        self._rx = [bytearray(MAX_DATA_LEN) for _ in range(_RX_SLOTS)]
        self._rx_len = [0] * _RX_SLOTS
        self._rx_mac = [b""] * _RX_SLOTS
        self._head = 0
        self._count = 0
        self._irecv = [None, bytearray(MAX_DATA_LEN)]
        self._tx = self._tx_resp = self._tx_fail = self._rx_pkts = self._rx_drop = 0
        self.timeout_ms = 300000
        self.rxbuf = 526

    # --- identity and state ---
    def mac(self):
        """Simulation only: this radio's MAC."""
        if self._own_mac is not None:
            return self._own_mac
        return network.mac_of(network.STA_IF)

    def active(self, flag=None):
        if flag is None:
            return self._active
        flag = bool(flag)
        if flag:
            if self._own_mac is None and not network.any_active():
                raise OSError("ESP_ERR_ESPNOW_IF: activate a network.WLAN interface first")
            _air[self.mac()] = self
        else:
            m = self.mac()
            if _air.get(m) is self:
                del _air[m]
            self._count = 0
        self._active = flag
        return None

    def config(self, *args, **kwargs):
        if args:
            if args[0] in ("timeout_ms", "rxbuf"):
                return getattr(self, args[0])
            if args[0] == "rate":
                return 0
            raise ValueError("unknown config param %r" % (args[0],))
        for k in kwargs:
            if k in ("timeout_ms", "rxbuf"):
                setattr(self, k, kwargs[k])
            elif k != "rate":
                raise ValueError("unknown config param %r" % (k,))
        return None

    def set_pmk(self, pmk):
        if len(pmk) != KEY_LEN:
            raise ValueError("ESP_ERR_ESPNOW_ARG: PMK must be 16 bytes")
        self._pmk = bytes(pmk)

    # --- peers ---
    def add_peer(self, mac, lmk=None, channel=0, ifidx=0, encrypt=None):
        mac = bytes(mac)
        if len(mac) != ETH_ALEN:
            raise ValueError("ESP_ERR_ESPNOW_ARG: MAC must be 6 bytes")
        if mac in self._peers:
            raise OSError("ESP_ERR_ESPNOW_EXIST")
        if lmk is not None:
            lmk = bytes(lmk)
            if len(lmk) != KEY_LEN:
                raise ValueError("ESP_ERR_ESPNOW_ARG: LMK must be 16 bytes")
        if encrypt is None:
            encrypt = lmk is not None
        if encrypt and lmk is None:
            raise ValueError("ESP_ERR_ESPNOW_ARG: encryption needs an LMK")
        if encrypt and mac == BROADCAST:
            raise ValueError("ESP_ERR_ESPNOW_ARG: broadcast cannot be encrypted")
        if len(self._peers) >= MAX_TOTAL_PEER_NUM:
            raise OSError("ESP_ERR_ESPNOW_FULL")
        if encrypt and sum(1 for p in self._peers.values() if p[3]) >= MAX_ENCRYPT_PEER_NUM:
            raise OSError("ESP_ERR_ESPNOW_FULL: at most 6 encrypted peers")
        self._peers[mac] = [lmk, channel, ifidx, bool(encrypt)]

    def del_peer(self, mac):
        mac = bytes(mac)
        if mac not in self._peers:
            raise OSError("ESP_ERR_ESPNOW_NOT_FOUND")
        del self._peers[mac]

    def get_peer(self, mac):
        mac = bytes(mac)
        p = self._peers.get(mac)
        if p is None:
            raise OSError("ESP_ERR_ESPNOW_NOT_FOUND")
        return (mac, p[0], p[1], p[2], p[3])

    def get_peers(self):
        return tuple((m, p[0], p[1], p[2], p[3]) for m, p in self._peers.items())

    def peer_count(self):
        n = len(self._peers)
        return (n, sum(1 for p in self._peers.values() if p[3]))

    # --- data ---
    def send(self, mac, msg=None, sync=True):
        """Send ``msg`` to ``mac`` (None = all peers); True if every receiver acked."""
        if msg is None:
            msg, mac = mac, None
        if not self._active:
            raise OSError("ESP_ERR_ESPNOW_NOT_INIT")
        n = len(msg)
        if n > MAX_DATA_LEN:
            raise ValueError("ESP_ERR_ESPNOW_ARG: message longer than 250 bytes")
        if mac is None:
            ok = True
            for m in self._peers:
                if not self._send1(m, msg, n):
                    ok = False
            return ok
        return self._send1(mac, msg, n)

    def _send1(self, mac, msg, n):
        peer = self._peers.get(mac)
        if peer is None:
            raise OSError("ESP_ERR_ESPNOW_NOT_FOUND: add_peer() first")
        self._tx += 1
        src = self.mac()
        key_lmk = peer[0] if peer[3] else None
        if mac == BROADCAST:
            for r in _air.values():
                if r is not self:
                    r._deliver(src, msg, n, None, None)
            self._tx_resp += 1
            return True
        r = _air.get(mac)
        if r is None:  # nobody in range: no MAC-layer ack
            self._tx_fail += 1
            return False
        r._deliver(src, msg, n, self._pmk if key_lmk is not None else None, key_lmk)
        self._tx_resp += 1  # the MAC layer acks before decryption, as on the device
        return True

    def _deliver(self, src, msg, n, pmk, lmk):
        peer = self._peers.get(src)
        if lmk is not None:
            # encrypted frame: needs the same PMK and this sender's LMK here
            if peer is None or not peer[3] or peer[0] != lmk or self._pmk != pmk:
                self._rx_drop += 1
                return
        elif peer is not None and peer[3]:
            self._rx_drop += 1  # plain frame claiming to be an encrypted peer
            return
        if self._count >= _RX_SLOTS:
            self._rx_drop += 1  # receive buffer full
            return
        i = (self._head + self._count) % _RX_SLOTS
        self._rx[i][0:n] = msg
        self._rx_len[i] = n
        # reuse the peer's own MAC object when registered (no allocation), like the device
        self._rx_mac[i] = src if peer is None else self._peer_key(src)
        self._count += 1
        self._rx_pkts += 1
        t = self.peers_table.get(src)
        if t is None:
            self.peers_table[src] = [-50, 0]

    def _peer_key(self, mac):
        for m in self._peers:
            if m == mac:
                return m
        return mac

    def any(self):
        return self._count > 0

    def recvinto(self, data, timeout_ms=None):
        """Fill ``data`` ([mac, bytearray(250)]) with the next message; its length, or 0.

        Allocation-free: the caller's 250-byte buffer is swapped with the ring slot (the device
        trims ``data[1]`` to the message length instead; use the returned length either way).
        """
        if self._count == 0:
            return 0
        i = self._head
        n = self._rx_len[i]
        buf = data[1]
        if len(buf) >= MAX_DATA_LEN:
            data[1] = self._rx[i]
            self._rx[i] = buf
        else:
            data[1] = bytearray(self._rx[i][0:n])
        data[0] = self._rx_mac[i]
        self._head = (i + 1) % _RX_SLOTS
        self._count -= 1
        return n

    def irecv(self, timeout_ms=None):
        """[mac, msg] in reused buffers, or (None, None) when nothing arrived."""
        d = self._irecv
        n = self.recvinto(d, timeout_ms)
        if n == 0:
            return (None, None)
        return [d[0], memoryview(d[1])[0:n]]

    def recv(self, timeout_ms=None):
        """[mac, msg] as new bytes objects, or (None, None) when nothing arrived."""
        m, msg = self.irecv(timeout_ms)
        if m is None:
            return (None, None)
        return [bytes(m), bytes(msg)]

    def stats(self):
        """(tx_pkts, tx_responses, tx_failures, rx_packets, rx_dropped)."""
        return (self._tx, self._tx_resp, self._tx_fail, self._rx_pkts, self._rx_drop)

    def __iter__(self):
        return self

    def __next__(self):
        return self.irecv()
