"""Node and gateway configuration, kept as JSON in flash (``/config.json``).

``load()`` never raises for a bad file: a missing file gives the defaults, a corrupt file gives
the defaults plus a log message, and each invalid value falls back to its default with a message
naming the key, so a typo in the file can never cause a crash loop. ``validate_value()`` is the
strict form used by commands (an invalid value is refused, nothing changes)::

    cfg, log = config.load("/config.json")
    for line in log: print(line)
    config.set_value(cfg, "rate_hz", 200)       # ValueError on a bad value
    config.save(cfg, "/config.json")            # written to a temp file, then renamed

Keys (defaults in DEFAULTS):

- ``role`` "node" (a sensor node) | "gateway" (ESP-NOW gateway: main.py runs tsfw.gateway)
- ``node_id`` 1..254, ``segment`` (lowercase letters, digits, ``_``; <= 15 chars)
- ``rate_hz`` one of RATES_HZ; ``acc_range_g`` one of ACC_RANGES_G; ``gyro_range_dps`` one of
  GYRO_RANGES_DPS; ``mode`` "raw" | "fused"; ``autostart`` stream from boot (else wait for
  the start command)
- ``link`` "usb" | "espnow"; ``gateway_mac`` "aa:bb:cc:dd:ee:ff"; ``channel`` 1..13;
  ``espnow_mbps`` PHY rate 1, 6 (default: 17 nodes need ~12 % airtime instead of ~67 % at
  1 Mbps, see protocol.md), 12, 24, 54;
  ``pmk``/``lmk`` 32 hex digits (16-byte keys). ESP-NOW needs a gateway MAC and both keys
  (frames are always encrypted); otherwise the link falls back to USB with a message.
- ``peers`` (gateway only): list of ``{"mac": ..., "lmk": ...}`` nodes allowed to send.
- ``calibration``: ``gyro_offset_dps`` [3] (subtracted from the gyro), ``mag_bias`` [3]
  magnetometer hard iron in counts of the common sensor frame, ``mag_soft_q14`` [9] soft-iron
  matrix row-major in Q14 (16384 = 1.0), applied as soft @ (m - bias); ``calib_id`` (u32, set by
  the host with the magnetometer calibration, reported in hello). Same units as the wire protocol.
- ``status_ms`` status period; ``pins``: ``sda``, ``scl``, ``led``, ``vbat`` (-1 = none);
  ``led_active_high``; ``vbat_divider`` (battery voltage / ADC pin voltage).
"""

import json

try:
    import os
except ImportError:  # pragma: no cover
    import uos as os

PATH = "/config.json"
VERSION = 1

RATES_HZ = (25, 50, 100, 200, 400)
ACC_RANGES_G = (2, 4, 8, 16)
GYRO_RANGES_DPS = (250, 500, 1000, 2000)
MODES = ("raw", "fused")
LINKS = ("usb", "espnow")
ROLES = ("node", "gateway")
# ESP-NOW PHY rate (Mbps) -> ESP-IDF wifi_phy_rate_t: 1 Mbps (long preamble) or 802.11g OFDM
ESPNOW_PHY_RATES = {1: 0x00, 6: 0x0B, 12: 0x0A, 24: 0x09, 54: 0x0C}
PIN_NAMES = ("sda", "scl", "led", "vbat")


Q14 = 16384
IDENTITY_Q14 = (Q14, 0, 0, 0, Q14, 0, 0, 0, Q14)


def default_calibration():
    """Calibration of an uncalibrated node: zero offsets, identity soft iron."""
    return {
        "gyro_offset_dps": [0.0, 0.0, 0.0],
        "mag_bias": [0, 0, 0],
        "mag_soft_q14": list(IDENTITY_Q14),
        "calib_id": 0,
    }


def defaults():
    """A fresh default configuration (a new dict each call: callers may mutate it)."""
    return {
        "version": VERSION,
        "role": "node",
        "node_id": 1,
        "segment": "unassigned",
        "rate_hz": 200,
        "acc_range_g": 16,
        "gyro_range_dps": 2000,
        "mode": "fused",
        "autostart": True,
        "link": "usb",
        "gateway_mac": "",
        "channel": 1,
        "espnow_mbps": 6,
        "pmk": "",
        "lmk": "",
        "peers": [],
        "calibration": default_calibration(),
        "status_ms": 1000,
        "pins": {"sda": 21, "scl": 22, "led": 2, "vbat": 35},
        "led_active_high": True,
        "vbat_divider": 2.0,
    }


DEFAULTS = defaults()


# --- value checks: each returns the cleaned value or raises ValueError naming the problem ---

def _int(v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("must be an integer, got %r" % (v,))
    if v < lo or v > hi:
        raise ValueError("must be in %d..%d, got %d" % (lo, hi, v))
    return v


def _num(v, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError("must be a number, got %r" % (v,))
    if v != v or v < lo or v > hi:  # v != v: NaN
        raise ValueError("must be in %s..%s, got %r" % (lo, hi, v))
    return float(v)


def _choice(v, options):
    if v not in options:
        raise ValueError("must be one of %s, got %r" % (", ".join(str(o) for o in options), v))
    return v


def _segment(v):
    if not isinstance(v, str) or not 1 <= len(v) <= 15:
        raise ValueError("must be a name of 1..15 characters, got %r" % (v,))
    for c in v:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_"):
            raise ValueError("may hold only a-z, 0-9 and _, got %r" % (v,))
    return v


def parse_mac(text):
    """``"aa:bb:cc:dd:ee:ff"`` (or ``-`` separated) -> 6 bytes; ValueError if malformed."""
    if isinstance(text, (bytes, bytearray)) and len(text) == 6:
        return bytes(text)
    if not isinstance(text, str):
        raise ValueError("MAC must be a string like aa:bb:cc:dd:ee:ff, got %r" % (text,))
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError("MAC must have 6 hex bytes, got %r" % (text,))
    out = bytearray(6)
    for i in range(6):
        p = parts[i]
        if len(p) != 2:
            raise ValueError("MAC must have 6 hex bytes, got %r" % (text,))
        try:
            out[i] = int(p, 16)
        except ValueError:
            raise ValueError("MAC has a non-hex byte %r" % (p,))
    return bytes(out)


def format_mac(mac):
    """6 bytes -> ``"aa:bb:cc:dd:ee:ff"``."""
    return ":".join("%02x" % b for b in mac)


def parse_key(text):
    """32 hex digits -> 16-byte ESP-NOW key; ValueError if malformed."""
    if not isinstance(text, str) or len(text) != 32:
        raise ValueError("key must be 32 hex digits (16 bytes)")
    out = bytearray(16)
    for i in range(16):
        try:
            out[i] = int(text[2 * i:2 * i + 2], 16)
        except ValueError:
            raise ValueError("key has a non-hex digit")
    return bytes(out)


def _mac_or_empty(v):
    if v == "":
        return v
    parse_mac(v)
    return v.lower().replace("-", ":")


def _key_or_empty(v):
    if v == "":
        return v
    parse_key(v)
    return v.lower()


def _vec3(v, lo, hi):
    if not isinstance(v, (list, tuple)) or len(v) != 3:
        raise ValueError("must be a list of 3 numbers, got %r" % (v,))
    return [_num(x, lo, hi) for x in v]


def _ints(v, count, lo, hi):
    if not isinstance(v, (list, tuple)) or len(v) != count:
        raise ValueError("must be a list of %d integers, got %r" % (count, v))
    return [_int(x, lo, hi) for x in v]


def _calibration(v):
    if not isinstance(v, dict):
        raise ValueError("must be an object")
    out = default_calibration()
    for k in v:
        if k == "gyro_offset_dps":
            out[k] = _vec3(v[k], -500.0, 500.0)
        elif k == "mag_bias":
            out[k] = _ints(v[k], 3, -32768, 32767)
        elif k == "mag_soft_q14":
            out[k] = _ints(v[k], 9, -32768, 32767)
        elif k == "calib_id":
            out[k] = _int(v[k], 0, 0xFFFFFFFF)
        else:
            raise ValueError("unknown calibration key %r" % (k,))
    return out


def _peers(v):
    if not isinstance(v, list) or len(v) > 6:  # ESP-NOW: at most 6 encrypted peers
        raise ValueError("must be a list of at most 6 {mac, lmk} objects")
    out = []
    for p in v:
        if not isinstance(p, dict) or "mac" not in p or "lmk" not in p:
            raise ValueError("each peer needs mac and lmk, got %r" % (p,))
        parse_mac(p["mac"])
        parse_key(p["lmk"])
        out.append({"mac": p["mac"].lower().replace("-", ":"), "lmk": p["lmk"].lower()})
    return out


def _pins(v):
    if not isinstance(v, dict):
        raise ValueError("must be an object")
    out = dict(DEFAULTS["pins"])
    for k in v:
        if k not in PIN_NAMES:
            raise ValueError("unknown pin %r (known: %s)" % (k, ", ".join(PIN_NAMES)))
        out[k] = _int(v[k], -1, 48)
    return out


def _bool(v):
    if not isinstance(v, bool):
        raise ValueError("must be true or false, got %r" % (v,))
    return v


_CHECKS = {
    "version": lambda v: _int(v, 1, VERSION),
    "role": lambda v: _choice(v, ROLES),
    "node_id": lambda v: _int(v, 1, 254),
    "segment": _segment,
    "rate_hz": lambda v: _choice(v, RATES_HZ),
    "acc_range_g": lambda v: _choice(v, ACC_RANGES_G),
    "gyro_range_dps": lambda v: _choice(v, GYRO_RANGES_DPS),
    "mode": lambda v: _choice(v, MODES),
    "autostart": _bool,
    "link": lambda v: _choice(v, LINKS),
    "gateway_mac": _mac_or_empty,
    "channel": lambda v: _int(v, 1, 13),
    "espnow_mbps": lambda v: _choice(v, tuple(ESPNOW_PHY_RATES)),
    "pmk": _key_or_empty,
    "lmk": _key_or_empty,
    "peers": _peers,
    "calibration": _calibration,
    "status_ms": lambda v: _int(v, 100, 60000),
    "pins": _pins,
    "led_active_high": _bool,
    "vbat_divider": lambda v: _num(v, 1.0, 20.0),
}


def validate_value(key, value):
    """The cleaned value for ``key``; ValueError ("key: reason") if unknown or invalid."""
    check = _CHECKS.get(key)
    if check is None:
        raise ValueError("%s: unknown key" % key)
    try:
        return check(value)
    except (ValueError, TypeError) as e:
        raise ValueError("%s: %s" % (key, e))


def link_problem(cfg):
    """Why the configured link cannot be used (a message), or None if it can."""
    if cfg["link"] == "espnow":
        missing = [k for k in ("gateway_mac", "pmk", "lmk") if not cfg[k]]
        if missing:
            return "link espnow needs " + ", ".join(missing)
    return None


def validate(raw):
    """(clean config, list of messages): unknown/invalid keys are dropped to their defaults."""
    cfg = defaults()
    log = []
    if not isinstance(raw, dict):
        log.append("config: not a JSON object, using defaults")
        return cfg, log
    for key in raw:
        try:
            cfg[key] = validate_value(key, raw[key])
        except ValueError as e:
            log.append("config: %s (default %r used)" % (e, cfg.get(key)))
    problem = link_problem(cfg)
    if problem:
        log.append("config: %s (falling back to usb)" % problem)
        cfg["link"] = "usb"
    return cfg, log


def load(path=PATH):
    """(config, messages) from ``path``; never raises for a missing or corrupt file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return defaults(), ["config: %s missing, using defaults" % path]
    try:
        raw = json.loads(data.decode())
    except Exception as e:  # any decode/parse failure: defaults, never a crash loop
        return defaults(), ["config: %s corrupt (%s), using defaults" % (path, e)]
    return validate(raw)


def set_value(cfg, key, value):
    """Validate and store one key in ``cfg``; ValueError and no change if invalid."""
    clean = validate_value(key, value)
    old = cfg[key]
    cfg[key] = clean
    problem = link_problem(cfg)
    if problem:
        cfg[key] = old
        raise ValueError(problem)
    return clean


def update(cfg, values):
    """Validate and store several keys at once (order-free: the link check runs last).

    ValueError and ``cfg`` unchanged if any value is invalid.
    """
    trial = dict(cfg)
    for key in values:
        trial[key] = validate_value(key, values[key])
    problem = link_problem(trial)
    if problem:
        raise ValueError(problem)
    for key in values:
        cfg[key] = trial[key]
    return cfg


def save(cfg, path=PATH):
    """Write ``cfg`` atomically enough for flash: temp file, then rename over the old one."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(cfg))
    try:
        os.remove(path)  # littlefs rename does not always replace
    except OSError:
        pass
    os.rename(tmp, path)
