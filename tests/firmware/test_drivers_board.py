"""Simulated board and chip register models under CPython (fast), plus the motion model.

The same modules run under MicroPython in test_drivers.py; here the register-level behaviour
the drivers rely on is checked directly: byte orders, auto-increment rules, banks, fuse ROM,
bypass gating, FIFO timing and overflow, fault injection, clock wrap, timers, pins and ADC.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from trackside import virtual
from trackside.virtual import motion

virtual.add_board_to_path()

import board  # noqa: E402
import machine  # noqa: E402
from chips.icm20948 import ICM20948  # noqa: E402
from chips.lsm303agr import LSM303AGR  # noqa: E402
from chips.mpu9250 import MPU9250  # noqa: E402


@pytest.fixture()
def i2c():
    board.reset()
    yield machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21))
    board.reset()


def rd(i2c, addr, reg, n=1):
    return i2c.readfrom_mem(addr, reg, n)


def wr(i2c, addr, reg, *vals):
    i2c.writeto_mem(addr, reg, bytes(vals))


def test_mpu_who_am_i_fifo_rate_and_byte_order(i2c, tmp_path):
    rows = np.zeros((4, 9), np.int32)
    rows[:, 0] = [1000, -2000, 3000, -4000]       # accel x, +-2 g units
    rows[:, 3] = [-131, 262, 0, 1]                 # gyro x, +-250 dps units
    path = motion.write_stream(tmp_path / "s.tsms", rows, 200.0)
    board.install(MPU9250(stream=str(path)))
    assert rd(i2c, 0x68, 0x75) == b"\x71"
    wr(i2c, 0x68, 0x1A, 0x41)        # FIFO_MODE=1, DLPF 1
    wr(i2c, 0x68, 0x19, 4)           # 1 kHz / 5 = 200 Hz
    wr(i2c, 0x68, 0x1C, 1 << 3)      # +-4 g: values halve
    wr(i2c, 0x68, 0x23, 0x48)        # gyro x + accel
    wr(i2c, 0x68, 0x6A, 0x44)        # FIFO enable + reset
    board.clock.advance(10000)       # two samples
    cnt = rd(i2c, 0x68, 0x72, 2)
    assert cnt[0] << 8 | cnt[1] == 2 * 8
    data = rd(i2c, 0x68, 0x74, 16)
    vals = np.frombuffer(data, ">i2").reshape(2, 4)
    assert vals[:, 0].tolist() == [500, -1000] and vals[:, 3].tolist() == [-131, 262]
    # not drained: the FIFO fills (512 // 8 = 64 packets) and flags overflow, whole packets kept
    board.clock.advance(1_000_000)
    assert rd(i2c, 0x68, 0x3A)[0] & 0x10
    cnt = rd(i2c, 0x68, 0x72, 2)
    assert cnt[0] << 8 | cnt[1] == 512
    assert rd(i2c, 0x68, 0x3A)[0] & 0x10 == 0  # cleared by the read
    wr(i2c, 0x68, 0x6B, 0x80)        # H_RESET: back to defaults
    assert rd(i2c, 0x68, 0x72, 2) == b"\x00\x00" and rd(i2c, 0x68, 0x19) == b"\x00"


def test_ak8963_bypass_fuse_rom_and_little_endian(i2c):
    mpu = MPU9250(asa=(200, 100, 128))
    board.install(mpu)
    with pytest.raises(OSError) as e:
        rd(i2c, 0x0C, 0x00)           # behind the MPU until bypass is on
    assert e.value.errno == board.ENODEV
    wr(i2c, 0x68, 0x37, 0x02)
    assert rd(i2c, 0x0C, 0x00) == b"\x48"
    assert rd(i2c, 0x0C, 0x10, 3) == b"\x00\x00\x00"    # ASA readable in fuse-ROM mode only
    wr(i2c, 0x0C, 0x0A, 0x0F)
    assert rd(i2c, 0x0C, 0x10, 3) == bytes([200, 100, 128])
    wr(i2c, 0x0C, 0x0A, 0x00)
    wr(i2c, 0x0C, 0x0A, 0x16)        # 16-bit, 100 Hz
    board.clock.advance(10000)
    st = rd(i2c, 0x0C, 0x02, 8)      # ST1, HXL..HZH, ST2
    assert st[0] & 1
    assert np.frombuffer(st[1:7], "<i2").tolist() == [100, 200, -300]   # default field, LE
    assert st[7] & 0x10              # BITM: 16-bit
    assert rd(i2c, 0x0C, 0x02)[0] & 1 == 0   # ST2 read ended the cycle


def test_icm20948_banks(i2c):
    board.install(ICM20948())
    assert rd(i2c, 0x68, 0x00) == b"\xea"
    assert rd(i2c, 0x68, 0x06) == b"\x41"        # asleep after reset
    wr(i2c, 0x68, 0x7F, 0x20)                    # bank 2
    wr(i2c, 0x68, 0x00, 9)                       # GYRO_SMPLRT_DIV
    assert rd(i2c, 0x68, 0x00) == b"\x09"        # bank 2 register, not WHO_AM_I
    assert rd(i2c, 0x68, 0x7F) == b"\x20"
    wr(i2c, 0x68, 0x7F, 0x00)
    assert rd(i2c, 0x68, 0x00) == b"\xea"
    wr(i2c, 0x68, 0x06, 0x01)                    # wake: 112.5 Hz
    wr(i2c, 0x68, 0x67, 0x10)                    # accel to FIFO
    wr(i2c, 0x68, 0x03, 0x40)
    board.clock.advance(100_000)
    cnt = rd(i2c, 0x68, 0x70, 2)
    assert (cnt[0] << 8 | cnt[1]) // 6 in (11, 12)


def test_lsm303agr_auto_increment_fifo_and_mag(i2c):
    board.install(LSM303AGR())
    assert rd(i2c, 0x19, 0x0F) == b"\x33" and rd(i2c, 0x1E, 0x4F) == b"\x40"
    wr(i2c, 0x19, 0x20, 0x57)                    # 100 Hz, XYZ
    wr(i2c, 0x19, 0x23, 0x08)                    # HR, +-2 g
    wr(i2c, 0x19, 0x24, 0x40)                    # FIFO enable
    wr(i2c, 0x19, 0x2E, 0x80)                    # stream mode
    board.clock.advance(50_500)                  # 5 samples
    assert rd(i2c, 0x19, 0x2F)[0] & 0x1F == 5
    # without the 0x80 bit a burst re-reads one register (and pops nothing past OUT_Z_H)
    assert rd(i2c, 0x19, 0x28, 2) == b"\x00\x00"
    burst = rd(i2c, 0x19, 0x28 | 0x80, 12)       # rolls back 0x2D -> 0x28: two samples
    assert np.frombuffer(burst, "<i2").tolist() == [0, 0, 16000, 0, 0, 16000]
    assert rd(i2c, 0x19, 0x2F)[0] & 0x1F == 3
    board.clock.advance(1_000_000)
    src = rd(i2c, 0x19, 0x2F)[0]
    assert src & 0x40                            # OVRN_FIFO
    wr(i2c, 0x1E, 0x60, 0x0C)                    # mag continuous 100 Hz
    board.clock.advance(10_000)
    m = rd(i2c, 0x1E, 0x67, 7)                   # status + data, address auto-increments
    assert m[0] & 0x08
    assert np.frombuffer(m[1:], "<i2").tolist() == [200, -100, -300]


def test_fault_injection_and_scan(i2c):
    board.install(MPU9250(), LSM303AGR())
    assert i2c.scan() == [0x19, 0x1E, 0x68]
    bus = board.bus(0)
    bus.fail(2, address=0x68)
    for _ in range(2):
        with pytest.raises(OSError) as e:
            rd(i2c, 0x68, 0x75)
        assert e.value.errno == board.ETIMEDOUT
    assert rd(i2c, 0x19, 0x0F) == b"\x33" and rd(i2c, 0x68, 0x75) == b"\x71"
    bus.fail_every(3)
    results = []
    for _ in range(9):
        try:
            rd(i2c, 0x19, 0x0F)
            results.append(1)
        except OSError:
            results.append(0)
    assert results == [1, 1, 0] * 3
    bus.fail_every(0)
    bus.detach(0x68)
    with pytest.raises(OSError):
        rd(i2c, 0x68, 0x75)
    with pytest.raises(ValueError):
        bus.fail(1, errno=999)


def test_clock_wraps_like_micropython_and_timers_fire():
    board.reset(start_us=(1 << 30) - 500)
    c = board.clock
    t0 = c.ticks_us()
    c.advance(1000)
    assert c.ticks_us() == 500 and board.ticks_diff(c.ticks_us(), t0) == 1000
    assert c.elapsed_us() == 1000
    fired = []
    t = machine.Timer(0)
    t.init(mode=machine.Timer.PERIODIC, period=10, callback=lambda tm: fired.append(c.elapsed_us()))
    c.advance(55_000)
    assert fired == [11_000, 21_000, 31_000, 41_000, 51_000]
    t.deinit()
    c.advance(50_000)
    assert len(fired) == 5
    with pytest.raises(ValueError):
        c.advance(-1)
    board.reset()


def test_realtime_clock_follows_wall_time():
    import time
    board.reset(realtime=True)
    t0 = board.clock.ticks_us()
    time.sleep(0.02)
    assert 15_000 <= board.ticks_diff(board.clock.ticks_us(), t0) < 2_000_000
    with pytest.raises(ValueError):
        board.clock.advance(10)
    board.reset()


def test_pins_adc_and_reset():
    board.reset()
    p = machine.Pin(2, machine.Pin.OUT)
    p.on()
    p.off()
    assert [e[1:] for e in board.pin_log] == [(2, 1), (2, 0)]
    board.set_adc(35, 1_950_000)
    adc = machine.ADC(machine.Pin(35))
    adc.atten(machine.ADC.ATTN_11DB)
    assert adc.read_uv() == 1_950_000
    assert adc.read_u16() == 1_950_000 * 65535 // 3_100_000
    with pytest.raises(board.Reset):
        machine.reset()
    with pytest.raises(ValueError):
        machine.I2C(7)
    with pytest.raises(ValueError):
        machine.freq(123)


def test_board_from_json_config(tmp_path):
    rows = motion.chip_stream(motion.static(1.0, 100.0), "lsm303agr")
    s = motion.write_stream(tmp_path / "l.tsms", rows, 100.0)
    cfg = tmp_path / "board.json"
    cfg.write_text('{"unique_id": "0a0b0c0d0e0f", "adc_uv": {"35": 2000000}, '
                   '"i2c": {"0": [{"chip": "lsm303agr", "stream": "%s", "odr_error_ppm": 100}]}}' % s)
    made = board.load(str(cfg))
    assert len(made) == 1 and machine.unique_id() == bytes.fromhex("0a0b0c0d0e0f")
    assert machine.I2C(0).scan() == [0x19, 0x1E]
    with pytest.raises(ValueError):
        board.make_chip("bmi270")
    board.reset()


# -- motion model -----------------------------------------------------------------------------

def test_static_pose_gravity_and_field():
    m = motion.static(0.5, 100.0)
    assert np.allclose(m.acc_mps2, [0, 0, motion.G])
    b = m.mag_ut[0]
    assert np.isclose(np.linalg.norm(b), 49.0)
    assert np.isclose(np.degrees(np.arctan2(-b[2], np.hypot(b[0], b[1]))), 67.0)
    assert b[1] > 0  # north is +y in ENU


def test_gyro_integration_reproduces_truth():
    m = motion.random_motion(3.0, 200.0, seed=3, max_rate_dps=400)
    r = Rotation.from_quat(np.roll(m.quat[0], -1))
    for k in range(m.n - 1):
        r = r * Rotation.from_rotvec(m.gyro_rads[k] / m.fs)
    last = Rotation.from_quat(np.roll(m.quat[-1], -1)) * Rotation.from_rotvec(m.gyro_rads[-1] * 0)
    assert np.degrees((r.inv() * last).magnitude()) < 1e-6
    # accelerometer = gravity (+ no linear acceleration) seen in the sensor frame
    assert np.allclose(np.linalg.norm(m.acc_mps2, axis=1), motion.G)


def test_chip_stream_axes_units_and_asa():
    m = motion.static(0.1, 100.0, q0=Rotation.from_euler("z", 30, degrees=True).as_quat()[[3, 0, 1, 2]])
    mag = m.mag_ut[0] / 0.15
    asa = (176, 177, 165)
    rows = motion.chip_stream(m, "mpu9250", asa)
    adj = (np.array(asa) + 128) / 256
    assert np.allclose(rows[0, 6:9], np.round([mag[1] / adj[0], mag[0] / adj[1], -mag[2] / adj[2]]))
    assert rows[0, 2] == 16384
    exp = motion.expected_output(rows, "mpu9250", 2, 250)
    assert np.all(np.abs(exp[0, 6:9] - mag) <= 2)   # driver output back in the sensor frame
    rows = motion.chip_stream(m, "icm20948")
    assert np.allclose(rows[0, 6:9], np.round([mag[0], -mag[1], -mag[2]]))
    rows = motion.chip_stream(m, "lsm303agr")
    assert rows[0, 2] == 16000 and not rows[:, 3:6].any()
    with pytest.raises(ValueError):
        motion.chip_stream(m, "bmi270")


def test_stream_file_roundtrip_and_errors(tmp_path):
    rows = np.arange(27, dtype=np.int32).reshape(3, 9)
    p = motion.write_stream(tmp_path / "a.tsms", rows, 187.5)
    back, rate = motion.read_stream(p)
    assert rate == 187.5 and np.array_equal(back, rows)
    p.write_bytes(p.read_bytes()[:-4])
    with pytest.raises(ValueError, match="truncated"):
        motion.read_stream(p)
    with pytest.raises(ValueError):
        motion.static(0, 100)
    noisy = motion.static(1.0, 100.0).with_errors(gyro_bias_dps=(1, 0, 0), seed=2)
    assert abs(np.degrees(noisy.gyro_rads[:, 0].mean()) - 1) < 0.02


def test_stream_resampled_to_the_chip_odr(i2c, tmp_path):
    """A 400 Hz stream played by a chip at 200 Hz: every second row."""
    rows = np.zeros((40, 9), np.int32)
    rows[:, 0] = np.arange(40) * 10
    path = motion.write_stream(tmp_path / "r.tsms", rows, 400.0)
    chip = MPU9250(stream=str(path))
    board.install(chip)
    wr(i2c, 0x68, 0x1A, 0x41)
    wr(i2c, 0x68, 0x19, 4)           # 200 Hz
    wr(i2c, 0x68, 0x23, 0x08)        # accel only
    wr(i2c, 0x68, 0x6A, 0x44)
    r0 = chip._cursor.row
    board.clock.advance(30_000)      # 6 samples
    vals = np.frombuffer(rd(i2c, 0x68, 0x74, 36), ">i2").reshape(6, 3)[:, 0]
    assert (vals == (r0 + 2 * np.arange(6)) % 40 * 10).all()


def test_driver_on_cpython_long_run_drift_windows(i2c):
    """The firmware driver also runs under CPython: 200 s of a 0.3 % slow oscillator at 50 Hz,
    read every 100 ms: the drift estimate survives its window restarts (~67 s each)."""
    from tsfw import clock
    from tsfw import drivers as drv_mod

    clock.use(board.clock)
    try:
        chip = MPU9250(odr_error_ppm=-3000)
        board.install(chip)
        drv = drv_mod.detect(i2c, rate_hz=50)
        from array import array
        out, ts = array("h", [0] * 9 * 32), array("i", [0] * 32)
        stamps = []
        while board.clock.elapsed_us() < 200_000_000:
            board.clock.advance(100_000)
            n = drv.fifo_read(out, 32, ts)
            stamps.extend(ts[:n])
        assert drv._windows >= 2 and drv.resyncs == 0 and drv.overflows == 0
        assert abs(drv.drift_ppm + 3000) < 150, drv.drift_ppm
        per = chip._per / 256
        true_last = (chip._t - (chip._per >> 8))
        # the samples still in the FIFO come after the last delivered one
        cnt = rd(i2c, 0x68, 0x72, 2)
        left = (cnt[0] << 8 | cnt[1]) // 20
        true = true_last - (left + len(stamps) - 1 - np.arange(len(stamps))) * per
        err = np.array(stamps) - true
        assert np.abs(err[len(err) // 2:]).max() < per / 2
    finally:
        clock.use(None)


def test_lsm303dlhc_magnetometer_xzy_big_endian(i2c, tmp_path):
    from chips.lsm303dlhc import LSM303DLHC

    rows = np.zeros((4, 9), np.int32)
    rows[:, 6:9] = [110, -220, 1100]       # 10, -20, 100 uT in X/Y-gain units (11 LSB/uT)
    path = motion.write_stream(tmp_path / "d.tsms", rows, 75.0)
    board.install(LSM303DLHC(stream=str(path)))
    assert rd(i2c, 0x1E, 0x0A, 3) == b"H43"
    assert rd(i2c, 0x19, 0x0F) == b"\x00"            # no accelerometer WHO_AM_I
    wr(i2c, 0x1E, 0x00, 0x18)                        # 75 Hz
    wr(i2c, 0x1E, 0x02, 0x00)                        # continuous
    board.clock.advance(20_000)
    assert rd(i2c, 0x1E, 0x09)[0] & 1
    raw = np.frombuffer(rd(i2c, 0x1E, 0x03, 6), ">i2").tolist()
    assert raw == [110, 1100 * 980 // 1100, -220]    # X, Z (Z gain 980), Y
    assert rd(i2c, 0x1E, 0x09)[0] & 1 == 0           # reading Y_L ended the cycle
    wr(i2c, 0x1E, 0x01, 0xE0)                        # GN=7: +-8.1 gauss, 230/205 LSB/gauss
    board.clock.advance(20_000)
    raw = np.frombuffer(rd(i2c, 0x1E, 0x03, 6), ">i2").tolist()
    assert raw == [110 * 230 // 1100, 1100 * 205 // 1100, -220 * 230 // 1100]


def test_full_fifo_counts_as_overflow_without_the_flag(i2c):
    """A chip that does not raise FIFO_OFLOW in stop-when-full mode: a full FIFO still counts."""
    from array import array

    from tsfw import clock
    from tsfw import drivers as drv_mod

    class QuietMPU(MPU9250):
        def _rd(self, reg):
            v = MPU9250._rd(self, reg)
            return v & ~0x10 if reg == 0x3A else v

    clock.use(board.clock)
    try:
        board.install(QuietMPU())
        drv = drv_mod.detect(i2c, rate_hz=200)
        out = array("h", [0] * 9 * 32)
        board.clock.advance(50_000)
        assert drv.fifo_read(out, 32) == 10 and drv.overflows == 0
        board.clock.advance(1_000_000)
        assert drv.fifo_read(out, 32) == 0 and drv.overflows == 1
        board.clock.advance(50_000)
        assert drv.fifo_read(out, 32) in (9, 10, 11) and drv.overflows == 1
    finally:
        clock.use(None)
