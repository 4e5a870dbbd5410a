"""Simulated ``network`` module (WLAN interfaces only, as ESP-NOW needs them).

MicroPython-compatible: copied to ``/lib`` of a simulated board under the WebAssembly port, and
importable from CPython tests. No access point is ever reachable: ``connect()`` never succeeds,
which is all a node that talks ESP-NOW needs.

Simulation-only helpers: ``set_mac(mac)`` gives this board its station MAC (the AP MAC is the
station MAC + 1, as on an ESP32); ``reset()`` deactivates both interfaces.
"""

STA_IF = 0
AP_IF = 1

_mac = bytearray(b"\x02\x00\x00\x00\x00\x01")  # locally administered default
_active = [False, False]
_channel = [1]


def set_mac(mac):
    """Simulation only: set this board's station MAC (6 bytes)."""
    if len(mac) != 6:
        raise ValueError("MAC must be 6 bytes")
    _mac[:] = mac


def mac_of(interface):
    """This board's MAC of ``interface`` (STA_IF or AP_IF), as bytes."""
    m = bytearray(_mac)
    if interface == AP_IF:
        m[5] = (m[5] + 1) & 0xFF
    return bytes(m)


def reset():
    """Simulation only: both interfaces inactive, channel 1."""
    _active[0] = _active[1] = False
    _channel[0] = 1


def any_active():
    """Simulation only: is a WLAN interface up (ESP-NOW needs one)?"""
    return _active[0] or _active[1]


def channel():
    """Simulation only: the radio channel in use."""
    return _channel[0]


class WLAN:
    """A WLAN interface of the simulated board."""

    IF_STA = STA_IF
    IF_AP = AP_IF
    PM_NONE = 0
    PM_PERFORMANCE = 1
    PM_POWERSAVE = 2

    def __init__(self, interface=STA_IF):
        if interface not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface %r" % (interface,))
        self._if = interface

    def active(self, flag=None):
        if flag is None:
            return _active[self._if]
        _active[self._if] = bool(flag)
        return None

    def connect(self, ssid=None, key=None, **kwargs):
        if not _active[self._if]:
            raise OSError("Wifi Not Started")
        # nothing to connect to in the simulation

    def disconnect(self):
        if not _active[self._if]:
            raise OSError("Wifi Not Started")

    def isconnected(self):
        return False

    def status(self, param=None):
        if param == "rssi":
            return -50
        return 1000  # STAT_IDLE

    def scan(self):
        return []

    def ifconfig(self, *args):
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "0.0.0.0")

    def config(self, *args, **kwargs):
        if args:
            name = args[0]
            if name == "mac":
                return mac_of(self._if)
            if name == "channel":
                return _channel[0]
            if name in ("pm", "txpower", "protocol"):
                return 0
            raise ValueError("unknown config param %r" % (name,))
        for k in kwargs:
            v = kwargs[k]
            if k == "channel":
                if not 1 <= v <= 14:
                    raise ValueError("channel must be 1..14")
                _channel[0] = v
            elif k == "mac":
                set_mac(v)
            elif k in ("pm", "txpower", "protocol", "reconnects"):
                pass
            else:
                raise ValueError("unknown config param %r" % (k,))
        return None
