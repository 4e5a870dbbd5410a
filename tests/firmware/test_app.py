"""The node firmware (tsfw.app) on the simulated board under the real MicroPython interpreter.

Each test boots the real firmware (config from the simulated flash, MPU-9250 register model on a
simulated I2C bus, USB link = the interpreter's stdin/stdout) and runs it in virtual time; the
host side decodes what the node wrote with ``tsproto`` like the aggregator does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trackside import mpy
from trackside.virtual import board_libs
from tsproto import consts as C
from tsproto.decoder import StreamDecoder
from tsproto.frame import FrameWriter, cobs_decode, parse_header
from tsproto.messages import Command, TimeSyncRequest

pytestmark = pytest.mark.wasm

FIX = Path(__file__).with_name("fixtures_app")
# A still, level node: stream units of the MPU-9250 model (accel 1/16384 g, gyro 1/131 dps,
# AK8963 counts in its own axes); field ~(20, 0, -45) uT in the MPU frame.
STILL = [200000, [[0, 0, 16384, 0, 0, 0, 0, 133, 300]]]
# the same with a gyro bias of (1.0, -0.5, 0.25) deg/s: 131 LSB per deg/s in stream units
BIASED = [200000, [[0, 0, 16384, 131, -66, 33, 0, 133, 300]]]


def run_node(tmp_path: Path, scenario: dict, config: bytes | None, stdin: bytes = b""):
    """Run fixtures_app/sim_node.py; (decoded messages, decoder stats, result dict)."""
    sc = tmp_path / "scenario.json"
    sc.write_text(json.dumps(scenario))
    files = [(sc, "/scenario.json")]
    if config is not None:
        cf = tmp_path / "config.json"
        cf.write_bytes(config)
        files.append((cf, "/config.json"))
    res = mpy.run(None, script=FIX / "sim_node.py", libs=board_libs(), files=files, stdin=stdin,
                  heap=256 * 1024, check=False)  # about what an ESP32 without PSRAM has free
    assert res.returncode == 0, res.stderr[-3000:]
    dec = StreamDecoder()
    msgs = dec.feed(res.stdout)
    result = json.loads(res.stderr.split("RESULT ", 1)[1])
    result["_stdout"] = res.stdout
    return msgs, dec.stats(), result


def frame_crcs(stream: bytes) -> dict[int, int]:
    """seq -> CRC-32 of every frame in a node's output."""
    out = {}
    for chunk in stream.split(b"\x00"):
        if chunk:
            p = cobs_decode(chunk)
            out[parse_header(p)[3]] = int.from_bytes(p[-4:], "little")
    return out


def of(msgs, t):
    return [m for m in msgs if m.type == t]


def host_frames(node_id: int, *msgs) -> bytes:
    w = FrameWriter(C.NODE_HOST)
    w.node_id = node_id
    return b"".join(w.frame(t, 0, body) for t, body in msgs)


def test_frames_decode_and_commands_are_acked_or_nacked(tmp_path):
    cfg = json.dumps({"node_id": 4, "segment": "thigh_r", "rate_hz": 200}).encode()
    stdin = host_frames(
        4,
        (C.T_TIMESYNC_REQ, TimeSyncRequest(req_id=77, t1=123456789).body()),
        (C.T_COMMAND, Command(cmd=C.CMD_HELLO, args=()).body()),
    ) + host_frames(5, (C.T_COMMAND, Command(cmd=C.CMD_REBOOT, args=()).body()))  # not for us
    scenario = {
        "chip": "mpu9250", "seconds": 4.0, "stream": BIASED,
        "commands": [
            [1.0, C.CMD_IDENTIFY, [2]],
            [1.2, C.CMD_SET_RATE, [333]],                 # not a supported rate
            [1.3, 0x7F, []],                               # unknown command
            [1.4, C.CMD_SET_RANGES, [3, 2000]],            # 3 g is no range
            [1.5, C.CMD_CALIB_GYRO, [500]],                # the model lies still: succeeds
            [2.5, C.CMD_SET_MODE, [C.MODE_RAW]],
            [3.0, C.CMD_SET_RATE, [100]],
            [3.5, C.CMD_STORE_MAG_CAL, [42, 10, 20, 30, 8192, 0, 0, 0, 8192, 0, 0, 0, 8192]],
        ],
    }
    msgs, stats, res = run_node(tmp_path, scenario, cfg, stdin)
    assert stats["crc_errors"] == stats["malformed"] == stats["bytes_discarded"] == 0
    assert {m.node_id for m in msgs} == {4}
    assert [m.seq for m in msgs] == list(range(len(msgs)))  # one sequence across all types

    hellos = of(msgs, C.T_HELLO)
    assert hellos[0].chip == "MPU-9250" and hellos[0].rate_hz == 200 and hellos[0].mode == C.MODE_FUSED
    assert len(hellos) >= 4  # boot, CMD_HELLO, after the mode and rate changes
    assert hellos[-1].rate_hz == 100 and hellos[-1].mode == C.MODE_RAW and hellos[-1].calib_id == 42

    (reply,) = of(msgs, C.T_TIMESYNC_REPLY)
    assert reply.req_id == 77 and reply.t1 == 123456789 and reply.t2 <= reply.t3

    acks = {(a.cmd_seq, a.cmd) for a in of(msgs, C.T_ACK)}
    nacks = {(n.cmd_seq, n.cmd, n.error) for n in of(msgs, C.T_NACK)}
    assert acks == {(0, C.CMD_IDENTIFY), (4, C.CMD_CALIB_GYRO), (5, C.CMD_SET_MODE), (6, C.CMD_SET_RATE),
                    (7, C.CMD_STORE_MAG_CAL), (1, C.CMD_HELLO)}  # the last one came over USB (stdin), seq of its own writer
    assert nacks == {(1, C.CMD_SET_RATE, C.E_BAD_ARG), (2, 0x7F, C.E_UNKNOWN_CMD),
                     (3, C.CMD_SET_RANGES, C.E_BAD_ARG)}
    assert res["led_changes"] > 20  # identify: fast blinking for 2 s
    assert res["cfg"]["rate_hz"] == 100 and res["cfg"]["mode"] == "raw"
    # gyro calibration: the bias measured (2000 dps range: 16.375 LSB per deg/s, so the counts
    # are 16, -9, 4 -> 0.977, -0.550, 0.244 deg/s), stored, and subtracted from then on
    off = res["cfg"]["calibration"]["gyro_offset_dps"]
    assert off == pytest.approx([16 / 16.375, -9 / 16.375, 4 / 16.375], abs=1e-6)

    batches = of(msgs, C.T_SAMPLES)
    fused = [b for b in batches if not b.raw]
    raw = [b for b in batches if b.raw]
    assert fused and raw and all(b.period_us == 5000 for b in fused)
    assert raw[-1].period_us == 10000
    n = sum(len(b.samples) for b in batches)
    assert n == res["samples"]          # every sample read from the FIFO reached the host
    assert 500 <= n <= 800              # ~2.5 s at 200 Hz + ~1 s at 100 Hz, minus restarts
    # the flat, still model: 1 g on z (16 g range: 2048 counts/g), the quaternion normalised
    s = fused[-1].samples[-1]
    assert abs(s[2] - 2048) < 20 and abs(s[0]) < 20 and abs(s[1]) < 20
    assert fused[0].samples[0][3:6] == [16, -9, 4] and s[3:6] == [0, 0, 0]
    # magnetometer calibration: soft iron 0.5 x identity after a (10, 20, 30) hard-iron bias
    m0, m1 = s[6:9], raw[-1].samples[-1][6:9]
    assert m1 == [(v - b + 1) // 2 for v, b in zip(m0, (10, 20, 30))]
    qn = sum(v * v for v in s[9:13]) ** 0.5
    assert abs(qn - 16384) < 50
    statuses = of(msgs, C.T_STATUS)
    assert len(statuses) >= 3 and statuses[-1].battery_mv == 3900  # 1.95 V at the pin, 1:2 divider
    assert all(st.fifo_overflows == 0 and st.i2c_errors == 0 for st in statuses)


def test_fifo_overflow_is_reported_and_loop_allocates_nothing_per_sample(tmp_path):
    scenario = {"chip": "mpu9250", "seconds": 4.0, "alloc": True, "stall_at": 2.0, "stall_ms": 400}
    msgs, stats, res = run_node(tmp_path, scenario, None)
    raw_out = res.pop("_stdout")
    batches = of(msgs, C.T_SAMPLES)
    assert sum(g.gap for g in batches) == 1                      # one batch flagged F_GAP
    statuses = of(msgs, C.T_STATUS)
    assert statuses[-1].fifo_overflows == 1 and res["fifo_overflows"] == 1
    assert statuses[-1].loop_overruns >= 1                       # the 400 ms stall
    # Allocation of the sampling loop (FIFO read from the chip model + calibration + filter +
    # batching + USB write), measured with the GC off over > 400 samples. The only heap use is
    # tsproto's frame() boxing the frame's CRC-32 when it is >= 2**30 (a 32-bit int is 2 GC
    # blocks = 32 bytes on this 32-bit port), i.e. per frame, never per sample: the measured
    # bytes must be exactly 32 x the frames whose CRC needed a box.
    assert res["alloc_samples"] > 400 and res["alloc_frames"] > 20
    seqs = {q for a, b in res["alloc_seqs"] for q in range(a, b)}
    boxed = sum(1 for seq, crc in frame_crcs(raw_out).items() if seq in seqs and crc >= 1 << 30)
    assert len(seqs) == res["alloc_frames"]
    assert res["alloc_bytes"] == 32 * boxed, (res["alloc_bytes"], boxed)


def test_corrupt_config_boots_with_defaults_and_says_so(tmp_path):
    msgs, stats, res = run_node(tmp_path, {"chip": "mpu9250", "seconds": 1.5}, b'{"node_id": 9, \xff')
    assert {m.node_id for m in msgs} == {1}                      # default node id
    logs = [m.text for m in of(msgs, C.T_LOG)]
    assert any("corrupt" in t for t in logs), logs
    assert of(msgs, C.T_SAMPLES) and res["streaming"] is False   # streamed until stopped


def test_missing_sensor_reported_without_crash_then_found(tmp_path):
    # no config file, no chip until t = 2 s: hello says "none", status and log say why, the LED
    # blinks error code 2; the node keeps serving and picks the chip up at the next retry (5 s)
    scenario = {"chip": "mpu9250", "install_at": 2.0, "seconds": 7.0,
                "commands": [[1.0, C.CMD_START, []], [1.1, C.CMD_CALIB_GYRO, [500]]]}
    msgs, stats, res = run_node(tmp_path, scenario, None)
    hellos = of(msgs, C.T_HELLO)
    assert hellos[0].chip == "none" and hellos[-1].chip == "MPU-9250"
    logs = [m.text for m in of(msgs, C.T_LOG)]
    assert any("missing, using defaults" in t for t in logs)
    assert any("no IMU found" in t for t in logs), logs
    assert any("sensor found" in t for t in logs)
    nacks = [(n.cmd, n.error) for n in of(msgs, C.T_NACK)]
    assert nacks == [(C.CMD_START, C.E_BAD_STATE), (C.CMD_CALIB_GYRO, C.E_BAD_STATE)]
    assert len(of(msgs, C.T_STATUS)) >= 5
    assert res["led_changes"] > 6
    batches = of(msgs, C.T_SAMPLES)
    assert batches and batches[0].t_us > 5_000_000   # samples only once the chip was found


def test_flaky_i2c_is_counted_not_fatal(tmp_path):
    msgs, stats, res = run_node(tmp_path, {"chip": "mpu9250", "seconds": 2.5, "i2c_fail_every": 9}, None)
    statuses = of(msgs, C.T_STATUS)
    assert statuses[-1].i2c_errors > 10
    n = sum(len(b.samples) for b in of(msgs, C.T_SAMPLES))
    assert n > 300 and n == res["samples"]


def test_sensor_unplugged_midway_is_reported_and_found_again(tmp_path):
    scenario = {"chip": "mpu9250", "stream": STILL, "seconds": 9.0, "detach_at": 1.0, "reattach_at": 3.0}
    msgs, stats, res = run_node(tmp_path, scenario, None)
    hellos = of(msgs, C.T_HELLO)
    assert [h.chip for h in hellos] == ["MPU-9250", "none", "MPU-9250"]
    logs = [m.text for m in of(msgs, C.T_LOG)]
    assert any("sensor stopped answering" in t for t in logs), logs
    assert any("sensor found" in t for t in logs), logs
    statuses = of(msgs, C.T_STATUS)
    assert max(st.i2c_errors for st in statuses) >= 50
    batches = of(msgs, C.T_SAMPLES)
    assert batches[0].t_us < 1_000_000 and batches[-1].t_us > 5_000_000   # streaming again


@pytest.mark.parametrize("chip,name", [("icm20948", "ICM-20948"), ("lsm303agr", "LSM303AGR")])
def test_other_chips_stream_and_gyroless_refuses_gyro_calibration(tmp_path, chip, name):
    scenario = {"chip": chip, "seconds": 1.5, "commands": [[1.0, C.CMD_CALIB_GYRO, [300]]]}
    msgs, stats, res = run_node(tmp_path, scenario, None)
    (hello,) = of(msgs, C.T_HELLO)
    assert hello.chip == name and hello.mode == C.MODE_FUSED and hello.mag_range_ut > 0
    batches = of(msgs, C.T_SAMPLES)
    assert sum(len(b.samples) for b in batches) == res["samples"] > 150
    q = batches[-1].samples[-1][9:13]
    assert abs(sum(v * v for v in q) ** 0.5 - 16384) < 50
    if chip == "lsm303agr":   # accelerometer + magnetometer only
        assert hello.gyro_range_dps == 0
        assert [(n.cmd, n.error) for n in of(msgs, C.T_NACK)] == [(C.CMD_CALIB_GYRO, C.E_UNSUPPORTED)]
    else:
        assert [a.cmd for a in of(msgs, C.T_ACK)] == [C.CMD_CALIB_GYRO]
