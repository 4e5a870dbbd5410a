"""IMU drivers against the register-level chip models, under the real MicroPython interpreter.

One interpreter run executes every scenario (each on a freshly reset simulated board) and prints
JSON; the tests below check it against what the host-side motion model predicts, bit for bit:
WHO_AM_I detection of each chip and of a missing one, FIFO contents in the common frame, exact
sample counts, per-sample timestamps against the model's true sample times, oscillator drift,
FIFO overflow, I2C errors counted and retried, and zero allocation in the drain loop
(``micropython.heap_lock``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from trackside import mpy, virtual
from trackside.virtual import motion

pytestmark = pytest.mark.wasm

# chip name -> (model name for board.make_chip, stream rate = the driver's ODR for rate_hz=200)
CHIPS = {
    "mpu9250": ("mpu9250", 200.0, "MPU-9250"),
    "mpu6500": ("mpu6500", 200.0, "MPU-6500"),
    "icm20948": ("icm20948", 1125 / 6, "ICM-20948"),
    "lsm303agr": ("lsm303agr", 200.0, "LSM303AGR"),
    "lsm303dlhc": ("lsm303dlhc", 200.0, "LSM303DLHC"),
}
ACC_G, GYRO_DPS = 8, 2000
N_SAMPLES = 300

SCENARIOS = r"""
import sys, json, board, machine, micropython
from array import array
from tsfw import clock, drivers

cfg = json.loads(sys.argv[1])
clock.use(board.clock)
OUT = array('h', bytes(2 * 9 * 32))
TS = array('i', bytes(4 * 32))


def cursor_of(chip):
    return chip.accel._cursor if hasattr(chip, 'accel') else chip._cursor


def sampler_of(chip):
    return chip.accel if hasattr(chip, 'accel') else chip


def setup(c):
    board.reset()
    kw = {'stream': c['stream']}
    if c.get('ppm'):
        kw['odr_error_ppm'] = c['ppm']
    chip = board.make_chip(c['model'], **kw)
    board.install(chip)
    for a in c.get('detach', ()):
        board.bus(0).detach(a)
    i2c = machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21), freq=400000)
    drv = drivers.detect(i2c, rate_hz=200, acc_range_g=%(acc)d, gyro_range_dps=%(gyro)d)
    return chip, i2c, drv


def drain(drv, data, stamps):
    while True:
        n = drv.fifo_read(OUT, 32, TS)
        if n == 0:
            return
        data.extend(OUT[:9 * n])
        stamps.extend(TS[:n])


def locked_loop(drv, steps, iters):
    # the firmware's sampling loop: time passes, the FIFO is drained; nothing may allocate
    adv = board.clock.advance
    got = 0
    err = 0
    micropython.heap_lock()
    try:
        for i in range(iters):
            adv(steps[i %% 4])
            got += drv.fifo_read(OUT, 32, TS)
    except MemoryError:
        err = 1
    finally:
        micropython.heap_unlock()
    return got, err


def stream_case(c):
    chip, i2c, drv = setup(c)
    r = {'chip': drv.chip, 'has_mag': drv.has_mag, 'rate_hz': drv.rate_hz,
         'period_us': drv.period_us, 'acc': list(drv.acc_lsb_per_g),
         'gyro': list(drv.gyro_lsb_per_dps) if drv.gyro_lsb_per_dps else None}
    s = sampler_of(chip)
    r['r0'] = cursor_of(chip).row
    s0 = s.samples
    data = []
    stamps = []
    steps = c['steps']
    i = 0
    while len(stamps) < c['n']:
        board.clock.advance(steps[i %% len(steps)])
        i += 1
        n = drv.fifo_read(OUT, 32, TS)
        data.extend(OUT[:9 * n])
        stamps.extend(TS[:n])
    drain(drv, data, stamps)
    r['produced'] = s.samples - s0
    r['data'] = data
    r['ts'] = stamps
    r['true_last'] = (s._t - (s._per >> 8)) & ((1 << 30) - 1)
    r['last_ts'] = drv.last_ts
    r['stats'] = drv.stats()
    if not c.get('extra'):
        return r
    # I2C errors: two failures are retried inside one call ...
    bus = board.bus(0)
    e0 = drv.i2c_errors
    bus.fail(2)
    board.clock.advance(20000)
    r['retry_n'] = drv.fifo_read(OUT, 32, TS)
    r['retry_errors'] = drv.i2c_errors - e0
    # ... more than `retries` failures raise OSError, and the next call works again
    e0 = drv.i2c_errors
    bus.fail(3)
    board.clock.advance(20000)
    try:
        drv.fifo_read(OUT, 32, TS)
        r['raised'] = None
    except OSError as e:
        r['raised'] = e.args[0]
    r['raise_errors'] = drv.i2c_errors - e0
    r['after_raise_n'] = drv.fifo_read(OUT, 32, TS)
    # overflow: nobody reads for 1 s
    o0 = drv.overflows
    d0 = s.fifo_dropped
    board.clock.advance(1000000)
    r['ovf_n'] = drv.fifo_read(OUT, 32, TS)
    r['ovf_count'] = drv.overflows - o0
    r['ovf_dropped'] = s.fifo_dropped - d0
    drain(drv, [], [])
    board.clock.advance(50000)
    r['after_ovf_n'] = drv.fifo_read(OUT, 32, TS)
    r['after_ovf_count'] = drv.overflows - o0
    # zero allocation in the drain loop, with an I2C fault retried inside it
    bus.fail(1)
    e0 = drv.i2c_errors
    r['locked'] = locked_loop(drv, c['steps'], 60)
    r['locked_errors'] = drv.i2c_errors - e0
    return r


def misc_cases():
    r = {}
    board.reset()
    i2c = machine.I2C(0)
    r['empty'] = [drivers.detect(i2c) is None, drivers.last_error, drivers.probe(i2c)]
    board.reset()
    board.install(board.make_chip('mpu9250'))
    board.bus(0).fail_every(1)
    r['dead_bus'] = [drivers.detect(i2c) is None, drivers.last_error]
    board.reset()
    board.install(board.make_chip('mpu9250'))
    from tsfw.drivers.mpu9250 import MPU9250
    try:
        MPU9250(i2c, 0x69)
        r['wrong_addr'] = None
    except OSError as e:
        r['wrong_addr'] = str(e)
    try:
        drivers.detect(i2c, rate_hz=5)
        r['bad_rate'] = None
    except ValueError as e:
        r['bad_rate'] = str(e)
    drv = drivers.detect(i2c)
    drv.configure(333.3, 4, 500)  # a float rate (e.g. from JSON) is fine: nearest divider
    r['float_rate'] = [drv.rate_hz, list(drv.acc_lsb_per_g), list(drv.gyro_lsb_per_dps)]
    try:
        drv.configure(200, 3, 2000)
        r['bad_range'] = None
    except ValueError as e:
        r['bad_range'] = str(e)
    # unplugged mid-run: OSError after the retries, then it comes back
    board.bus(0).detach(0x68)
    e0 = drv.i2c_errors
    try:
        drv.fifo_read(OUT, 32, TS)
        r['unplugged'] = None
    except OSError as e:
        r['unplugged'] = e.args[0]
    r['unplugged_errors'] = drv.i2c_errors - e0
    # slowest rate, fullest FIFO (MPU-6500: 42 packets = 4.2 s at 10 Hz): still allocation-free
    board.reset()
    board.install(board.make_chip('mpu6500'))
    slow = drivers.detect(i2c, rate_hz=10)
    board.clock.advance(4150000)
    r['slow'] = [slow.rate_hz, slow.period_us] + list(locked_loop(slow, (0, 0, 0, 0), 2))
    # a chip that answers with an unsupported WHO_AM_I (an MPU-6050 says 0x68): named, not used
    board.reset()
    chip = board.make_chip('mpu9250')
    chip.regs[0x75] = 0x68
    board.install(chip)
    r['unsupported'] = [drivers.detect(i2c) is None, drivers.last_error]
    return r


res = {}
for c in cfg['cases']:
    try:
        res[c['name']] = stream_case(c)
    except Exception as e:
        sys.print_exception(e)
        res[c['name']] = {'error': repr(e)}
res['misc'] = misc_cases()
print(json.dumps(res))
""" % {"acc": ACC_G, "gyro": GYRO_DPS}


def _stream(tmp, key, seed):
    model, fs, _ = CHIPS[key]
    m = motion.random_motion(4.0, fs, seed=seed, max_rate_dps=300, lin_acc_mps2=3.0)
    # noise makes every row distinct; the field is kept noise-free (the magnetometer runs at
    # its own 100 Hz, so only a constant field can be compared sample by sample)
    m = motion.Motion(m.fs, m.quat, m.gyro_rads, m.acc_mps2, np.tile(m.mag_ut[0], (m.n, 1)))
    m = m.with_errors(seed=seed, acc_noise_mg=5, gyro_noise_dps=0.5, mag_noise_ut=0.0)
    rows = motion.chip_stream(m, model)
    path = motion.write_stream(tmp / f"{key}.tsms", rows, fs)
    return rows, path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drv")
    cases, files, rows = [], [], {}
    steps = [7000, 13000, 29000, 3000, 110000]  # 110 ms: a GC pause or radio burst
    for i, key in enumerate(CHIPS):
        r, path = _stream(tmp, key, seed=10 + i)
        rows[key] = r
        dest = f"/data/{key}.tsms"
        files.append((path, dest))
        cases.append({"name": key, "model": CHIPS[key][0], "stream": dest, "n": N_SAMPLES,
                      "steps": steps, "extra": True})
    # an MPU whose oscillator runs 0.25 % fast, for 15 s: drift estimate and timestamp truth
    cases.append({"name": "drift", "model": "mpu9250", "stream": "/data/mpu9250.tsms",
                  "n": 3000, "steps": steps, "ppm": 2500})
    # an MPU-9250 whose AK8963 does not answer: accel + gyro only
    cases.append({"name": "no_ak", "model": "mpu9250", "stream": "/data/mpu9250.tsms",
                  "n": 100, "steps": steps, "detach": [0x0C]})
    res = mpy.run(SCENARIOS, libs=virtual.board_libs(), files=files,
                  argv=[json.dumps({"cases": cases})], timeout=240)
    return json.loads(res.stdout), rows


def _case(runs, name):
    out, _ = runs
    r = out[name]
    assert "error" not in r, r.get("error")
    return r


@pytest.mark.parametrize("key", list(CHIPS))
def test_detected_by_who_am_i(runs, key):
    r = _case(runs, key)
    assert r["chip"] == CHIPS[key][2]
    assert r["has_mag"] is (key != "mpu6500")
    assert r["rate_hz"] == round(CHIPS[key][1])


@pytest.mark.parametrize("key", list(CHIPS))
def test_fifo_samples_exact_in_common_frame(runs, key):
    r = _case(runs, key)
    rows = runs[1][key]
    data = np.array(r["data"], dtype=np.int64).reshape(-1, 9)
    n = len(data)
    assert n >= N_SAMPLES
    assert n == r["produced"], "every sample the chip produced is delivered exactly once"
    idx = (r["r0"] + np.arange(n)) % len(rows)
    exp = motion.expected_output(rows[idx], CHIPS[key][0], ACC_G, GYRO_DPS).astype(np.int64)
    np.testing.assert_array_equal(data[:, :6], exp[:, :6])
    if key == "mpu6500":
        assert not data[:, 6:].any()
        return
    # magnetometer: at most the first few samples precede its first measurement
    valid = np.flatnonzero(data[:, 6:].any(axis=1))
    assert valid[0] <= 4
    np.testing.assert_array_equal(data[valid[0]:, 6:], exp[valid[0]:, 6:])
    assert np.abs(exp[0, 6:]).max() > 50  # the field is really there (not a trivial zero)


def test_scales(runs):
    assert _case(runs, "mpu9250")["acc"] == [4096, 1]
    assert _case(runs, "mpu9250")["gyro"] == [131, 8]
    assert _case(runs, "lsm303agr")["acc"] == [4000, 1]
    assert _case(runs, "lsm303agr")["gyro"] is None


@pytest.mark.parametrize("key", list(CHIPS))
def test_timestamps_follow_sensor_clock(runs, key):
    r = _case(runs, key)
    ts = np.array(r["ts"], dtype=np.int64)
    per = r["period_us"]
    d = np.diff(ts)
    assert np.all(np.abs(d - per) <= per / 16 + 2), (d.min(), d.max(), per)
    assert abs(r["last_ts"] - r["true_last"]) <= per
    assert r["stats"]["resyncs"] == 0
    # every stamp within one period of the model's true sample time (true period: nominal ODR)
    true_per = 1e6 / CHIPS[key][1]
    true = r["true_last"] - (len(ts) - 1 - np.arange(len(ts))) * true_per
    assert np.abs(ts - true).max() <= per


def test_oscillator_drift_estimated(runs):
    r = _case(runs, "drift")
    ts = np.array(r["ts"], dtype=np.int64)
    per = r["period_us"]
    assert abs(r["stats"]["drift_ppm"] - 2500) < 600, r["stats"]
    assert abs(r["last_ts"] - r["true_last"]) <= per
    true = r["true_last"] - (len(ts) - 1 - np.arange(len(ts))) * per * (1 - 2500e-6)
    assert np.abs(ts - true).max() <= per
    # late spacing reflects the fast clock: mean period ~ 0.25 % short
    late = np.diff(ts[-1000:]).mean()
    assert abs(late / per - (1 - 2500e-6)) < 6e-4, late


@pytest.mark.parametrize("key", list(CHIPS))
def test_i2c_errors_counted_and_retried(runs, key):
    r = _case(runs, key)
    assert r["retry_errors"] == 2 and r["retry_n"] > 0
    assert r["raised"] == 116 and r["raise_errors"] == 3
    assert r["after_raise_n"] > 0


@pytest.mark.parametrize("key", list(CHIPS))
def test_fifo_overflow_detected(runs, key):
    r = _case(runs, key)
    assert r["ovf_count"] == 1 and r["ovf_dropped"] > 0
    if key.startswith("lsm303"):
        assert r["ovf_n"] == 32      # stream mode keeps the newest 32
    else:
        assert r["ovf_n"] == 0       # packets dropped: FIFO reset
    assert 8 <= r["after_ovf_n"] <= 11  # 50 ms at ~200 Hz, counted normally again
    assert r["after_ovf_count"] == 1


@pytest.mark.parametrize("key", list(CHIPS))
def test_drain_loop_allocates_nothing(runs, key):
    r = _case(runs, key)
    got, err = r["locked"]
    assert err == 0, "fifo_read allocated under heap_lock"
    assert got > 100
    assert r["locked_errors"] == 1  # the injected fault was retried inside the locked loop


def test_missing_chip_reported_not_raised(runs):
    m = runs[0]["misc"]
    assert m["empty"][0] is True and "no IMU" in m["empty"][1] and m["empty"][2] == []
    assert m["dead_bus"][0] is True and m["dead_bus"][1]
    assert "0x69" in m["wrong_addr"]
    assert "rate_hz" in m["bad_rate"]
    assert "acc_range_g" in m["bad_range"]
    assert m["unplugged"] == 19 and m["unplugged_errors"] == 3
    assert m["float_rate"] == [333, [8192, 1], [131, 2]]
    assert m["slow"] == [10, 100000, 41, 0]
    assert m["unsupported"] == [True, "unsupported chip at 0x68 (WHO_AM_I 0x68)"]


def test_mpu_without_magnetometer_still_samples(runs):
    r = _case(runs, "no_ak")
    rows = runs[1]["mpu9250"]
    assert r["has_mag"] is False
    data = np.array(r["data"], dtype=np.int64).reshape(-1, 9)
    idx = (r["r0"] + np.arange(len(data))) % len(rows)
    exp = motion.expected_output(rows[idx], "mpu9250", ACC_G, GYRO_DPS)
    np.testing.assert_array_equal(data[:, :6], exp[:, :6])
    assert not data[:, 6:].any()


def test_virtual_node_from_board_json(tmp_path):
    """Unmodified firmware on a virtual node: /board.json alone sets up chips and clock."""
    rows = motion.chip_stream(motion.static(2.0, 100.0), "lsm303agr")
    stream = motion.write_stream(tmp_path / "l.tsms", rows, 100.0)
    cfg = tmp_path / "board.json"
    cfg.write_text(json.dumps({"start_us": 5000, "i2c": {"0": [
        {"chip": "lsm303agr", "stream": "/data/l.tsms", "odr_error_ppm": -1000}]}}))
    code = (
        "import machine\n"
        "from array import array\n"
        "from tsfw import clock, drivers\n"
        "imu = drivers.detect(machine.I2C(0), rate_hz=100)\n"
        "out = array('h', bytes(2 * 9 * 32))\n"
        "clock.sleep_us(200000)\n"          # virtual time: the firmware's own sleep
        "n = imu.fifo_read(out, 32)\n"
        "import json\n"
        "print(json.dumps([imu.chip, n, list(out[:9]), clock.ticks_us()]))\n")
    res = mpy.run(code, libs=virtual.board_libs(), files=[(stream, "/data/l.tsms"), (cfg, "/board.json")])
    chip, n, first, now = json.loads(res.text)
    assert chip == "LSM303AGR" and 19 <= n <= 21      # 200 ms at 100 Hz (0.1 % slow)
    assert first == [0, 0, 4000, 0, 0, 0] + list(rows[0, 6:9])  # flat, +-8 g: 4000 LSB/g
    assert now > 205000                                # started at 5 ms, slept 200 ms
