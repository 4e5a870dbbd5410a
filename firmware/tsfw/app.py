"""The node firmware: boot, sampling loop, commands, status.

Boot: load ``/config.json`` (defaults on any problem, never a crash loop), open the link (USB,
or ESP-NOW to the gateway), detect the sensor, send hello, then loop::

    drain FIFO -> calibrate + filter each sample -> sample batcher -> link write
    between drains: poll the link for commands and time-sync requests,
    every ~1 s a status message, LED pattern update.

The per-sample path (``_drain``) allocates nothing: buffers, the sample array and the filter
state are created once (proved under ``micropython.heap_lock()`` by tests/firmware/test_app*).
A missing or failing sensor is reported in hello (chip "none"), in status and by the LED
(error code 2); the node keeps serving commands and retries detection every few seconds.

    app = App()           # or App(config_path=..., link=..., i2c=..., sensor=...) in tests
    app.boot()
    app.run()             # forever (main.py); app.step() runs one iteration
"""

import gc
import sys
from array import array

from tsfw import clock
from tsfw import config as _config
from tsfw import commands
from tsfw.battery import Battery
from tsfw.led import Led, error_pattern, ERR_SENSOR_MISSING, ERR_SENSOR_IO, ERR_CONFIG, ERR_LINK

import tsproto.consts as C
from tsproto.frame import FrameWriter, cobs_decode
from tsproto.batch import SampleBatcher
from tsproto.decoder import decode_payload
import tsproto.messages as M

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

FW_VERSION = "0.1.0"
MAX_DRAIN = const(32)          # samples per FIFO read (buffer size)
SAMPLES_PER_FRAME = const(16)  # 80 ms at 200 Hz; the batcher closes early if a frame is full
_DETECT_RETRY_MS = const(5000)
_TEMP_UNKNOWN = const(-32768)
_I16_MAX = const(32767)
_I16_MIN = const(-32768)
_STILL_COUNTS = const(400)     # gyro calibration: max spread (counts) per axis while "still"
_HALF_TICKS = const(1 << 29)
_NO_MAG = const(-40000)  # no int16 reading equals it: "no corrected magnetometer value cached"
_IO_FAILS_LOST = const(50)     # consecutive failed FIFO reads before the sensor counts as gone


class App:
    """One sensor node (see module docstring). Arguments override what boot() would create."""

    def __init__(self, config_path=_config.PATH, link=None, i2c=None, sensor=None,
                 esp=None, cfg=None):
        self.config_path = config_path
        self.link = link
        self.i2c = i2c
        self.sensor = sensor
        self._esp = esp
        self.cfg = cfg
        self.booted = False
        self.streaming = False
        self.reboot_requested = False
        self.sensor_error = ""
        self.filter = None
        self.fifo_overflows = 0
        self.loop_overruns = 0
        self.frames_sent = 0
        self.link_errors = 0
        self.link_ok = True          # ESP-NOW: did the gateway ack the last status?
        self.samples = 0
        self._ov_seen = 0
        self._raw = array("h", bytes(2 * 9 * MAX_DRAIN))
        self._fin = array("h", bytes(2 * 9 * MAX_DRAIN))   # filter input, gyro first
        self._qout = array("h", bytes(2 * 4 * MAX_DRAIN))  # filter output, Q14 w x y z
        self._ts = array("i", bytes(4 * MAX_DRAIN))        # sample times from the driver (ticks_us)
        self._io_fails = 0
        self._i2c_lost = 0       # I2C errors of sensor instances given up on
        self._rate_hz = 0
        self._mag_wait = False
        self._goff = array("i", [0, 0, 0])      # gyro offsets in counts
        self._mbias = array("i", [0, 0, 0])     # magnetometer hard iron, counts
        self._msoft = array("i", _config.IDENTITY_Q14)
        self._msoft_on = False
        self._mprev = array("i", [_NO_MAG, _NO_MAG, _NO_MAG])  # last raw mag reading corrected
        self._mcorr = array("i", [0, 0, 0])                    # ... and its corrected value
        self._mag_cal = False
        self._cal_n = 0          # gyro calibration: samples still wanted (0 = not running)
        self._cal_sum = array("i", [0, 0, 0])
        self._cal_min = array("i", [0, 0, 0])
        self._cal_max = array("i", [0, 0, 0])
        self._cal_got = 0
        self._cal_done = False
        self._pending = None     # (seq, cmd) of a command answered later
        self._t_wraps = 0        # ticks_us wraps seen: node time on the wire is 32-bit
        self._t_last = -1        # newest tick value extended so far (-1: none yet)
        self._drained = False
        self._in_frame = 0
        self._last_drain = 0
        self._drain_us = 20000
        self._period_us = 5000
        self._next_status = 0
        self._next_detect = 0
        self._boot_ms = 0
        self._log_backlog = []

    # ------------------------------------------------------------------ boot
    def boot(self):
        """Config, link, sensor, hello. Never raises for a bad config or a missing sensor."""
        log = []
        if self.cfg is None:
            self.cfg, log = _config.load(self.config_path)
        cfg = self.cfg
        self._boot_ms = clock.ticks_ms()
        pins = cfg["pins"]
        self.led = Led(pins["led"], cfg["led_active_high"])
        self.battery = Battery(pins["vbat"], cfg["vbat_divider"])
        if self.link is None:
            self.link = self._open_link(cfg, log)
        self.writer = FrameWriter(cfg["node_id"])
        self._apply_calibration()
        for line in log:
            self._log_backlog.append(line)
        if self._log_backlog:
            self.led.show(error_pattern(ERR_CONFIG), 4000)
        self._setup_sensor()
        self.booted = True
        self.send_hello()
        for line in self._log_backlog:
            self.log(C.LOG_WARN, line)
        self._log_backlog = []
        if cfg["autostart"] and self.sensor is not None:
            self.start()
        now = clock.ticks_ms()
        self._next_status = clock.ticks_add(now, cfg["status_ms"])
        self._next_detect = clock.ticks_add(now, _DETECT_RETRY_MS)
        self.send_status()

    def _open_link(self, cfg, log):
        if cfg["link"] == "espnow":
            try:
                from tsfw.link_espnow import EspNowLink
                return EspNowLink(cfg, self._esp)
            except Exception as e:  # radio missing/broken: USB keeps the node reachable
                log.append("espnow link failed (%s), using usb" % (e,))
        from tsfw.link_usb import UsbLink
        return UsbLink()

    def _make_i2c(self):
        import machine
        pins = self.cfg["pins"]
        return machine.I2C(0, scl=machine.Pin(pins["scl"]), sda=machine.Pin(pins["sda"]), freq=400000)

    def _setup_sensor(self):
        """Detect and configure the sensor; on failure keep running without one."""
        cfg = self.cfg
        try:
            if self.sensor is None:
                if self.i2c is None:
                    self.i2c = self._make_i2c()
                from tsfw import drivers
                self.sensor = drivers.detect(self.i2c, rate_hz=cfg["rate_hz"])
                if self.sensor is None:
                    self.sensor_error = drivers.last_error or "no sensor answered on I2C"
            if self.sensor is not None:
                self._configure_sensor()
                self.sensor_error = ""
        except Exception as e:  # a failing sensor must never stop the node
            self.sensor = None
            self.sensor_error = "sensor setup failed: %s" % (e,)
        if self.sensor is None:
            self.led.error(ERR_SENSOR_MISSING)
            self._log_backlog.append(self.sensor_error)
            return False
        self._io_fails = 0
        self.led.ok()
        return True

    def _configure_sensor(self):
        """Apply rate/ranges/mode to the sensor, filter and batcher (ValueError if refused)."""
        cfg = self.cfg
        self.sensor.configure(cfg["rate_hz"], cfg["acc_range_g"], cfg["gyro_range_dps"])
        self._ov_seen = self.sensor.overflows
        rate = getattr(self.sensor, "rate_hz", 0) or cfg["rate_hz"]  # the chip's nearest ODR
        self._rate_hz = rate
        self._period_us = getattr(self.sensor, "period_us", 0) or 1000000 // rate
        # drain about every 8 samples (40 ms at 200 Hz): bursts amortise the per-read overhead,
        # and the smallest FIFO (MPU-9250: 25 samples = 125 ms) keeps a 3x margin
        fifo = getattr(self.sensor, "FIFO_SAMPLES", 25)
        self._drain_us = min(40000, 8 * self._period_us, fifo * self._period_us // 3)
        self._apply_calibration()
        self._make_filter()
        # wait for a magnetometer reading before starting the filter (chips with a mag)
        self._mag_wait = self.filter is not None and bool(getattr(self.sensor, "has_mag", False))
        self.batcher = SampleBatcher(self.writer, SAMPLES_PER_FRAME, self._period_us,
                                     cfg["mode"] == "raw" or self.filter is None)
        self._in_frame = 0
        self._drained = False

    def _make_filter(self):
        self.filter = None
        if self.cfg["mode"] != "fused":
            return
        s = self.sensor
        try:
            from tsfw.fusion import FixedKalman
            acc = s.acc_lsb_per_g[0] // s.acc_lsb_per_g[1]
            g = s.gyro_lsb_per_dps if s.has_gyro else None
            gyr = g[0] / g[1] if g else 0
            m = s.mag_ut_per_lsb if getattr(s, "has_mag", True) else None
            mag = m[0] / m[1] if m else 0
            self.filter = FixedKalman(self._rate_hz, acc, gyr, mag)
        except Exception as e:  # no filter for this chip/rate: still useful as a raw node
            self.filter = None
            self._log_backlog.append("filter unavailable (%s): raw mode" % (e,))

    def _apply_calibration(self):
        cal = self.cfg["calibration"]
        g = cal["gyro_offset_dps"]
        lsb = self._gyro_lsb_per_dps()
        for i in range(3):
            self._goff[i] = int(round(g[i] * lsb))
            self._mbias[i] = cal["mag_bias"][i]
        soft = cal["mag_soft_q14"]
        for i in range(9):
            self._msoft[i] = soft[i]
        self._msoft_on = tuple(soft) != _config.IDENTITY_Q14
        for i in range(3):
            self._mprev[i] = _NO_MAG  # recompute the cached correction
        self._mag_cal = self._msoft_on or self._mbias[0] != 0 or self._mbias[1] != 0 or self._mbias[2] != 0

    def _gyro_lsb_per_dps(self):
        s = self.sensor
        g = getattr(s, "gyro_lsb_per_dps", None) if s is not None else None
        if g:
            return g[0] / g[1]
        return 32768 / self.cfg["gyro_range_dps"]

    # ------------------------------------------------------------------ loop
    def run(self):
        """Serve forever (until a reboot command)."""
        while not self.reboot_requested:
            self.step()
            self.idle()
        self.link.flush()
        self.reboot()

    def idle(self):
        """Sleep until the next drain is due (the radio/USB tasks run meanwhile)."""
        if self.streaming:
            wait = self._drain_us - clock.ticks_diff(clock.ticks_us(), self._last_drain)
            if wait > 2000:
                wait = 2000  # stay responsive to commands
        else:
            wait = 2000
        if wait > 0:
            clock.sleep_us(wait)

    def step(self):
        """One loop iteration: drain when due, serve the link, status, LED."""
        now = clock.ticks_us()
        if self.streaming and clock.ticks_diff(now, self._last_drain) >= self._drain_us:
            self.drain(now)
            if self._cal_done:
                self._finish_gyro_calibration()
        self.serve()
        ms = clock.ticks_ms()
        if clock.ticks_diff(ms, self._next_status) >= 0:
            self._next_status = clock.ticks_add(ms, self.cfg["status_ms"])
            self.send_status()
        if self.sensor is None and clock.ticks_diff(ms, self._next_detect) >= 0:
            self._next_detect = clock.ticks_add(ms, _DETECT_RETRY_MS)
            self._retry_sensor()
        self.led.update(ms)

    def serve(self):
        """Handle every complete frame waiting on the link."""
        link = self.link
        n = link.poll()
        while n:
            self._handle_frame(link.rx, n)
            n = link.poll()

    def drain(self, now):
        """Read the FIFO and process every sample (allocation-free)."""
        drv = self.sensor
        gap = drv.overflows != self._ov_seen
        elapsed = clock.ticks_diff(now, self._last_drain)
        if self._drained and elapsed > 3 * self._drain_us:
            self.loop_overruns += 1  # the loop came late: samples may have been at risk
        self._last_drain = now
        try:
            n = drv.fifo_read(self._raw, MAX_DRAIN, self._ts)
        except OSError:  # retried by the driver already: count, report, carry on
            self._io_fails += 1
            if self._io_fails >= _IO_FAILS_LOST:
                self._sensor_lost()
            return 0
        self._io_fails = 0
        if drv.overflows != self._ov_seen:
            gap = True
        if gap:
            self.fifo_overflows += drv.overflows - self._ov_seen
            self._ov_seen = drv.overflows
            if self.batcher.mark_gap():
                self._write_frame()
            self._in_frame = 0
            self._drained = False
        if n <= 0:
            return 0
        self._drained = True
        self._process(n)
        return n

    def _sensor_lost(self):
        self.stop()
        self.sensor_error = "sensor stopped answering (%d I2C errors)" % self.sensor.i2c_errors
        self._i2c_lost += self.sensor.i2c_errors  # keep the status counter monotonic
        self.sensor = None
        self.led.error(ERR_SENSOR_IO)
        self.log(C.LOG_ERROR, self.sensor_error)
        self.send_hello()

    def _process(self, n):
        """Calibrate, filter and batch ``n`` samples from ``_raw`` (allocation-free).

        Pass 1 writes calibrated counts in the filter's order (gx gy gz ax ay az mx my mz) into
        ``_fin``; the filter then runs over the whole block at once (its state stays in locals);
        the batcher then reads ``_fin``/``_qout`` in place (add_block: one call per frame, no
        per-sample copy). The gyro offset and clamps run only when an offset is set or a gyro
        calibration runs; the magnetometer correction only when a calibration is set, and
        only for samples whose raw reading changed (the AK8963 runs at 100 Hz: every other
        sample repeats the last reading, whose corrected value is kept).
        """
        raw = self._raw
        fin = self._fin
        gox = self._goff[0]
        goy = self._goff[1]
        goz = self._goff[2]
        mag_cal = self._mag_cal
        cal = self._cal_n
        end = 9 * n
        j = 0
        if cal or gox or goy or goz or mag_cal:
            mp = self._mprev
            mc = self._mcorr
            pmx = mp[0]
            pmy = mp[1]
            pmz = mp[2]
            while j < end:
                gx = raw[j + 3]
                gy = raw[j + 4]
                gz = raw[j + 5]
                if cal:
                    self._cal_add(gx, gy, gz)
                    cal = self._cal_n
                gx -= gox
                gy -= goy
                gz -= goz
                # int16 on the wire: clamp what the offset pushed past the range (one test per
                # value: (v + 32768) has bits above 15 set only when v is out of range)
                if (gx + 32768) & -65536:
                    gx = _I16_MAX if gx > 0 else _I16_MIN
                if (gy + 32768) & -65536:
                    gy = _I16_MAX if gy > 0 else _I16_MIN
                if (gz + 32768) & -65536:
                    gz = _I16_MAX if gz > 0 else _I16_MIN
                fin[j] = gx
                fin[j + 1] = gy
                fin[j + 2] = gz
                fin[j + 3] = raw[j]
                fin[j + 4] = raw[j + 1]
                fin[j + 5] = raw[j + 2]
                if mag_cal:
                    mx = raw[j + 6]
                    my = raw[j + 7]
                    mz = raw[j + 8]
                    if mx != pmx or my != pmy or mz != pmz:
                        pmx = mx
                        pmy = my
                        pmz = mz
                        self._mag_correct(j)
                    else:  # same reading as the previous sample: same corrected value
                        fin[j + 6] = mc[0]
                        fin[j + 7] = mc[1]
                        fin[j + 8] = mc[2]
                else:
                    fin[j + 6] = raw[j + 6]
                    fin[j + 7] = raw[j + 7]
                    fin[j + 8] = raw[j + 8]
                j += 9
            mp[0] = pmx
            mp[1] = pmy
            mp[2] = pmz
        else:  # no calibration to apply: a plain reorder, gyro first
            while j < end:
                fin[j] = raw[j + 3]
                fin[j + 1] = raw[j + 4]
                fin[j + 2] = raw[j + 5]
                fin[j + 3] = raw[j]
                fin[j + 4] = raw[j + 1]
                fin[j + 5] = raw[j + 2]
                fin[j + 6] = raw[j + 6]
                fin[j + 7] = raw[j + 7]
                fin[j + 8] = raw[j + 8]
                j += 9
        batcher = self.batcher
        qo = self._qout
        if self.filter is not None and not batcher.raw:
            if self._mag_wait:
                self._filter_first(n)
            else:
                self.filter.update_block(fin, n, qo)
        ts = self._ts
        # 32-bit node time: the wrap count of the block's first tick (small ints only; the
        # batcher forms frame times from it as two 16-bit halves), then the newest tick
        t0 = ts[0]
        w = self._wraps(t0)
        self._wraps(ts[n - 1])
        i = 0
        while batcher.add_block(fin, qo, i, n, ts, t0, w):
            self._write_frame()
            i = batcher.pos
        self.samples += n

    def _mag_correct(self, j):
        """Hard- and soft-iron correction of sample ``j`` (raw -> fin, kept in _mcorr), int16."""
        raw = self._raw
        fin = self._fin
        mb = self._mbias
        mx = raw[j + 6] - mb[0]
        my = raw[j + 7] - mb[1]
        mz = raw[j + 8] - mb[2]
        if self._msoft_on:
            ms = self._msoft
            x = (ms[0] * mx + ms[1] * my + ms[2] * mz + 8192) >> 14
            y = (ms[3] * mx + ms[4] * my + ms[5] * mz + 8192) >> 14
            mz = (ms[6] * mx + ms[7] * my + ms[8] * mz + 8192) >> 14
            mx = x
            my = y
        if (mx + 32768) & -65536:
            mx = _I16_MAX if mx > 0 else _I16_MIN
        if (my + 32768) & -65536:
            my = _I16_MAX if my > 0 else _I16_MIN
        if (mz + 32768) & -65536:
            mz = _I16_MAX if mz > 0 else _I16_MIN
        fin[j + 6] = mx
        fin[j + 7] = my
        fin[j + 8] = mz
        mc = self._mcorr
        mc[0] = mx
        mc[1] = my
        mc[2] = mz

    def _filter_first(self, n):
        """Start the filter on the first sample with a magnetometer reading.

        The first FIFO packets after enabling carry an all-zero magnetometer (the chip's I2C
        master has not read the AK8963 yet); starting the filter's TRIAD on them would give it
        a wrong heading and magnetic reference. Until then the quaternion is sent as 0 0 0 0
        ("no orientation yet"). Runs once after each (re)start: may allocate.
        """
        fin = self._fin
        qo = self._qout
        k = 0
        while k < n and fin[9 * k + 6] == 0 and fin[9 * k + 7] == 0 and fin[9 * k + 8] == 0:
            k += 1
        for i in range(4 * k):
            qo[i] = 0
        if k == n:
            return
        self._mag_wait = False
        if k == 0:
            self.filter.update_block(fin, n, qo)
            return
        rest = fin[9 * k:9 * n]
        out = array("h", bytes(8 * (n - k)))
        self.filter.update_block(rest, n - k, out)
        for i in range(4 * (n - k)):
            qo[4 * k + i] = out[i]

    def _wraps(self, t):
        """Count (mod 4) of 2**30 tick wraps for tick value ``t`` (ticks_us wraps at 2**30; the
        wire time is 32-bit: (wraps << 30) | t).

        Calls come in near time order (sample times lag "now" by a few ms), so a jump back by
        more than half the tick period is a wrap, a jump forward by as much is a time from
        before the last wrap.
        """
        last = self._t_last
        w = self._t_wraps
        if last < 0:  # first time stamp since boot
            self._t_last = t
            return w
        # differences only: last + _HALF_TICKS would pass 2**30 (a boxed int) once last > 2**29
        if last - t > _HALF_TICKS:
            w = (w + 1) & 3
            self._t_wraps = w
            self._t_last = t
        elif t - last > _HALF_TICKS:
            w = (w - 1) & 3  # older than the last wrap: do not move the reference
        elif t > last:
            self._t_last = t
        return w

    def _time32(self, t):
        """32-bit node time of tick value ``t`` (see _wraps)."""
        w = self._wraps(t)
        if w == 0:
            return t
        return (w << 30) | t  # >= 2**30: a boxed int

    def _write_frame(self):
        """Send the batcher's completed frame; returns its sample count."""
        f = self.batcher.frame()
        if self.link.write(f, len(f)):
            self.frames_sent += 1
        else:
            self.link_errors += 1
        self._in_frame = 0
        return f[13]

    # ------------------------------------------------------------------ gyro calibration
    def _cal_add(self, gx, gy, gz):
        s = self._cal_sum
        lo = self._cal_min
        hi = self._cal_max
        if self._cal_got == 0:
            lo[0] = hi[0] = gx
            lo[1] = hi[1] = gy
            lo[2] = hi[2] = gz
        s[0] += gx
        s[1] += gy
        s[2] += gz
        if gx < lo[0]:
            lo[0] = gx
        elif gx > hi[0]:
            hi[0] = gx
        if gy < lo[1]:
            lo[1] = gy
        elif gy > hi[1]:
            hi[1] = gy
        if gz < lo[2]:
            lo[2] = gz
        elif gz > hi[2]:
            hi[2] = gz
        self._cal_got += 1
        self._cal_n -= 1
        if self._cal_n == 0:
            self._cal_done = True

    def start_gyro_calibration(self, duration_ms):
        """Average the gyro over ``duration_ms`` of still samples (answered when done)."""
        if self.sensor is None:
            raise commands.CommandError(C.E_BAD_STATE, "no sensor")
        if not getattr(self.sensor, "has_gyro", True):
            raise commands.CommandError(C.E_UNSUPPORTED, "this sensor has no gyro")
        if self._cal_n or self._pending is not None:
            raise commands.CommandError(C.E_BUSY, "calibration already running")
        if not 100 <= duration_ms <= 30000:
            raise commands.CommandError(C.E_BAD_ARG, "calibration duration must be 100..30000 ms")
        n = duration_ms * self.cfg["rate_hz"] // 1000
        self._cal_sum[0] = self._cal_sum[1] = self._cal_sum[2] = 0
        self._cal_got = 0
        self._cal_done = False
        self._cal_n = n if n > 0 else 1
        if not self.streaming:
            self.start()

    def _finish_gyro_calibration(self):
        seq, cmd = self._pending
        self._pending = None
        self._cal_done = False
        n = self._cal_got
        spread = 0
        for i in range(3):
            d = self._cal_max[i] - self._cal_min[i]
            if d > spread:
                spread = d
        if n == 0 or spread > _STILL_COUNTS:
            self.send_nack(seq, cmd, C.E_FAILED)
            self.log(C.LOG_WARN, "gyro calibration: node moved (spread %d counts), keep it still" % spread)
            return
        lsb = self._gyro_lsb_per_dps()
        off = [self._cal_sum[i] / n / lsb for i in range(3)]
        try:
            _config.set_value(self.cfg, "calibration", _merge(self.cfg["calibration"], {"gyro_offset_dps": off}))
            _config.save(self.cfg, self.config_path)
        except (OSError, ValueError) as e:
            self.send_nack(seq, cmd, C.E_FAILED)
            self.log(C.LOG_ERROR, "gyro calibration not stored: %s" % (e,))
            return
        self._apply_calibration()
        self.send_ack(seq, cmd)
        self.log(C.LOG_INFO, "gyro offsets %.3f %.3f %.3f dps from %d samples" % (off[0], off[1], off[2], n))

    def pending_cmd(self, seq, cmd):
        self._pending = (seq, cmd)

    # ------------------------------------------------------------------ commands
    def start(self):
        if self.sensor is None:
            raise commands.CommandError(C.E_BAD_STATE, "no sensor: %s" % self.sensor_error)
        if not self.streaming:
            self.sensor.reset_fifo()  # stale samples from before the start are not sent
            self._ov_seen = self.sensor.overflows
            self._drained = False
            self._in_frame = 0
            self._last_drain = clock.ticks_us()
        self.streaming = True

    def stop(self):
        if self.streaming and self.sensor is not None and self.batcher.flush():
            self._write_frame()
        self.streaming = False

    def set_value(self, key, value):
        """Change one config key (validated, and tried on the sensor), store it, re-apply."""
        old = dict(self.cfg)
        _config.set_value(self.cfg, key, value)
        self._reconfigure(old)

    def set_ranges(self, acc_g, gyro_dps):
        old = dict(self.cfg)
        _config.update(self.cfg, {"acc_range_g": acc_g, "gyro_range_dps": gyro_dps})
        self._reconfigure(old)

    def _reconfigure(self, old):
        """Apply the changed config; if the sensor refuses it, restore ``old`` and re-raise."""
        was = self.streaming
        self.stop()
        if self.sensor is not None:
            try:
                self._configure_sensor()
            except ValueError:
                self.cfg.clear()
                self.cfg.update(old)
                self._configure_sensor()
                if was:
                    self.start()
                raise
        try:
            _config.save(self.cfg, self.config_path)
        except OSError as e:
            self.log(C.LOG_WARN, "config not saved: %s" % (e,))
        if was and self.sensor is not None:
            self.start()
        self.send_hello()

    def store_mag_calibration(self, calib_id, bias, soft):
        cal = _merge(self.cfg["calibration"], {"mag_bias": bias, "mag_soft_q14": soft, "calib_id": calib_id})
        _config.set_value(self.cfg, "calibration", cal)
        _config.save(self.cfg, self.config_path)
        self._apply_calibration()
        self.send_hello()

    def request_reboot(self):
        self.reboot_requested = True

    def reboot(self):
        try:
            import machine
            machine.reset()
        except ImportError:
            sys.exit(0)

    # ------------------------------------------------------------------ messages
    def _handle_frame(self, buf, n):
        try:
            p = cobs_decode(memoryview(buf)[0:n])
        except ValueError:
            return
        m = decode_payload(p)
        if not m:
            return
        if m.node_id != self.cfg["node_id"] and m.node_id != C.NODE_BROADCAST:
            return  # another node's command (USB hubs echo nothing, but gateways broadcast)
        if m.type == C.T_COMMAND:
            commands.handle(self, m)
        elif m.type == C.T_TIMESYNC_REQ:
            self._timesync_reply(m)

    def now32(self):
        """Node time in µs as the 32-bit wire value (extends ticks_us)."""
        return self._time32(clock.ticks_us())

    def _timesync_reply(self, m):
        t2 = self.now32()
        r = M.TimeSyncReply(node_id=self.cfg["node_id"], req_id=m.req_id, t1=m.t1, t2=t2, t3=0)
        r.t3 = self.now32()
        self._send(C.T_TIMESYNC_REPLY, r.t3, r.body())

    def _send(self, mtype, t_us, body):
        f = self.writer.frame(mtype, t_us, body)
        if not self.link.write(f, len(f)):
            self.link_errors += 1

    def send_ack(self, seq, cmd):
        self._send(C.T_ACK, self.now32(), M.Ack(cmd_seq=seq, cmd=cmd).body())

    def send_nack(self, seq, cmd, error):
        self._send(C.T_NACK, self.now32(), M.Nack(cmd_seq=seq, cmd=cmd, error=error).body())

    def log(self, level, text):
        """A log line to the host (and to nowhere else: stdout is the link)."""
        if not self.booted:
            self._log_backlog.append(text)
            return
        self._send(C.T_LOG, self.now32(), M.Log(level=level, text=text).body())

    def send_hello(self):
        cfg = self.cfg
        s = self.sensor
        chip = s.chip if s is not None else "none"
        # AK8963/AK09916 +-4912 uT, LSM303AGR +-4915 uT (49.152 gauss); 0 = no magnetometer
        mag_range = 0
        if s is not None and getattr(s, "has_mag", False):
            mag_range = getattr(s, "mag_range_ut", 4915 if "LSM303" in s.chip else 4912)
        mode = C.MODE_FUSED if (self.filter is not None and cfg["mode"] == "fused") else C.MODE_RAW
        # what the chip really runs at (nearest ODR, its ranges); gyro range 0 = no gyro
        rate = self._rate_hz if s is not None and self._rate_hz else cfg["rate_hz"]
        acc_range = getattr(s, "acc_range_g", cfg["acc_range_g"]) if s is not None else cfg["acc_range_g"]
        gyro_range = cfg["gyro_range_dps"]
        if s is not None and not getattr(s, "has_gyro", True):
            gyro_range = 0
        h = M.Hello(rate_hz=rate, accel_range_g=acc_range,
                    gyro_range_dps=gyro_range, mag_range_ut=mag_range, mode=mode,
                    calib_id=cfg["calibration"]["calib_id"], fw_version=FW_VERSION, chip=chip)
        self._send(C.T_HELLO, self.now32(), h.body())

    def status_fields(self):
        s = self.sensor
        i2c_errors = self._i2c_lost + (s.i2c_errors if s is not None else 0)
        temp = _TEMP_UNKNOWN
        if s is not None and hasattr(s, "temperature_c100"):
            try:
                temp = s.temperature_c100()
            except OSError:
                pass
        return dict(
            battery_mv=self.battery.read_mv(), temp_c100=temp,
            fifo_overflows=self.fifo_overflows, loop_overruns=self.loop_overruns,
            i2c_errors=i2c_errors, free_mem=gc.mem_free() if hasattr(gc, "mem_free") else 0,
            uptime_s=clock.ticks_diff(clock.ticks_ms(), self._boot_ms) // 1000,
        )

    def send_status(self):
        st = M.Status(**self.status_fields())
        f = self.writer.frame(C.T_STATUS, self.now32(), st.body())
        if self.link.name == "espnow":
            # the status goes out acknowledged: no MAC-layer ack = the gateway is not there
            ok = self.link.write(f, len(f), True)
            if ok != self.link_ok:
                self.link_ok = ok
                if not ok:
                    self.led.error(ERR_LINK)
                elif self.sensor is not None:
                    self.led.ok()
        elif not self.link.write(f, len(f)):
            self.link_errors += 1
        if self.sensor is None:
            self.log(C.LOG_ERROR, self.sensor_error or "no sensor")

    def _retry_sensor(self):
        self.sensor = None
        if self._setup_sensor():
            self.log(C.LOG_INFO, "sensor found: %s" % self.sensor.chip)
            self.send_hello()
            if self.cfg["autostart"]:
                self.start()


def _merge(d, extra):
    out = dict(d)
    for k in extra:
        out[k] = extra[k]
    return out


def main(config_path=_config.PATH, cfg=None, log=None):
    """Entry point of main.py: boot and serve until a reboot command."""
    app = App(config_path, cfg=cfg)
    if log:
        app._log_backlog.extend(log)
    app.boot()
    app.run()
