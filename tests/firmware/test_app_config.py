"""Firmware configuration (tsfw.config) under the real MicroPython interpreter and CPython."""

import json

import pytest

from trackside import mpy

pytestmark = pytest.mark.wasm

LOAD = """
from tsfw import config
cfg, log = config.load('/config.json')
import json
print(json.dumps({'cfg': cfg, 'log': log}))
"""


def _load(tmp_path, content):
    files = []
    if content is not None:
        p = tmp_path / "config.json"
        p.write_bytes(content)
        files = [(p, "/config.json")]
    res = mpy.run(LOAD, files=files)
    return json.loads(res.stdout)


def test_missing_config_gives_defaults(tmp_path):
    out = _load(tmp_path, None)
    assert out["cfg"]["node_id"] == 1 and out["cfg"]["link"] == "usb"
    assert "missing" in out["log"][0]


def test_corrupt_config_gives_defaults_and_message(tmp_path):
    out = _load(tmp_path, b'{"node_id": 7, "rate_hz": \xff\xfe garbage')
    assert out["cfg"]["node_id"] == 1
    assert len(out["log"]) == 1 and "corrupt" in out["log"][0]


def test_good_config_and_per_key_fallback(tmp_path):
    cfg = {
        "node_id": 7, "segment": "shank_l", "rate_hz": 100, "mode": "raw",
        "gyro_range_dps": 999,                       # invalid: default kept, message names it
        "link": "espnow", "gateway_mac": "02:00:00:00:00:0b",
        "pmk": "00112233445566778899aabbccddeeff", "lmk": "ffeeddccbbaa99887766554433221100",
        "calibration": {"gyro_offset_dps": [0.5, -0.25, 1.0]},
    }
    out = _load(tmp_path, json.dumps(cfg).encode())
    c = out["cfg"]
    assert (c["node_id"], c["segment"], c["rate_hz"], c["mode"], c["link"]) == (7, "shank_l", 100, "raw", "espnow")
    assert c["gyro_range_dps"] == 2000
    assert c["calibration"]["gyro_offset_dps"] == [0.5, -0.25, 1.0]
    assert c["calibration"]["mag_soft_q14"][4] == 16384 and c["calibration"]["mag_bias"] == [0, 0, 0]
    assert len(out["log"]) == 1 and "gyro_range_dps" in out["log"][0]


def test_espnow_without_keys_falls_back_to_usb(tmp_path):
    out = _load(tmp_path, json.dumps({"link": "espnow", "gateway_mac": "02:00:00:00:00:0b"}).encode())
    assert out["cfg"]["link"] == "usb"
    assert "pmk" in out["log"][0] and "lmk" in out["log"][0]


def test_set_value_strict_and_save_roundtrip():
    code = """
from tsfw import config
cfg = config.defaults()
for key, value in (('rate_hz', 33), ('segment', 'Thigh L'), ('node_id', 0), ('nope', 1),
                   ('calibration', {'mag_soft_q14': [16384, 0, 0]})):
    try:
        config.set_value(cfg, key, value)
        print('accepted', key)
    except ValueError as e:
        print('refused', e)
config.set_value(cfg, 'rate_hz', 50)
config.save(cfg, '/c.json')
cfg2, log = config.load('/c.json')
print(cfg2 == cfg, log)
"""
    lines = mpy.run(code).text.splitlines()
    assert all(line.startswith("refused") for line in lines[:5]), lines
    assert lines[0].startswith("refused rate_hz:") and "25, 50, 100, 200, 400" in lines[0]
    assert "segment" in lines[1] and "node_id" in lines[2] and "unknown key" in lines[3]
    assert lines[5] == "True []"


def test_config_module_runs_under_cpython(tmp_path, monkeypatch):
    from tsfw import config

    p = tmp_path / "config.json"
    p.write_text("[1, 2]")
    cfg, log = config.load(str(p))
    assert cfg == config.defaults() and "not a JSON object" in log[0]
    with pytest.raises(ValueError, match="MAC"):
        config.parse_mac("02:00:00:00:00")
    assert config.format_mac(config.parse_mac("02-00-00-00-00-AB")) == "02:00:00:00:00:ab"
