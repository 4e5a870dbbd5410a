#!/usr/bin/env python3
"""Benchmark (b): node cost per sample -- FIFO read + calibration + filter + framing + link write.

Runs the real firmware loop (``tsfw.app.App.drain``) under the MicroPython WebAssembly port on
the simulated board: an MPU-9250 register model plays a smooth random motion (motion.py), the
node drains its FIFO every 40 ms (8 samples at 200 Hz) in fused mode, batches and writes frames
to USB (stdout; the host counts the bytes). Pystone runs in the same interpreter, before,
between and after the timed rounds, so the ESP32 estimate uses this run's interpreter speed:

    ESP32 us = wasm us x (wasm pystones/s) / 1802      (ESP32 @160 MHz: 1,802 pystones/s)

The simulated I2C bus is Python code here but C + hardware on a device, so its time is measured
(a timing proxy around the bus) and taken out of the interpreter figure, as is the USB write
(one C call on a device, a byte-by-byte JS callback here); the I2C wire time at
400 kHz is reported beside it. Also printed: bytes per sample on the wire (framing included) and
heap bytes allocated per sample (GC off while timing; the only allocation is tsproto boxing a
frame's CRC-32 when >= 2**30).

    python3 tools/bench/bench_node_cost.py [--seconds 1] [--rounds 30] [--mode fused|raw] [--wraps 1]

Targets: <= 1.0 ms ESP32-estimated per 9-DoF sample (200 Hz with 80 % idle); 0 allocations per
sample.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "host"))
sys.path.insert(0, str(REPO / "shared"))

ESP32_PYSTONES = 1802.0

WASM = r"""
import gc, json, sys
import hostio
import board
from tsfw import clock
from pystone_mp import pystones

P = json.load(open('/bench.json'))
board.reset(1000)
board.set_adc(35, 1950000)
chip = board.install(board.make_chip('mpu9250', stream='/data/m.tsms'))
clock.use(board.clock)
import machine


class TimedBus:
    # wraps the simulated I2C bus: its Python time is simulation cost, C/hardware on a device
    def __init__(self, bus):
        self.bus = bus
        self.us = 0
        self.bytes = 0

    def readfrom_mem_into(self, addr, reg, buf):
        t = hostio.now_us()
        self.bus.readfrom_mem_into(addr, reg, buf)
        self.us += hostio.now_us() - t
        self.bytes += len(buf) + 2

    def readfrom_mem(self, addr, reg, n):
        return self.bus.readfrom_mem(addr, reg, n)

    def writeto_mem(self, addr, reg, buf):
        t = hostio.now_us()
        self.bus.writeto_mem(addr, reg, buf)
        self.us += hostio.now_us() - t
        self.bytes += len(buf) + 2

    def writeto(self, addr, buf, stop=True):
        return self.bus.writeto(addr, buf, stop)

    def readfrom_into(self, addr, buf, stop=True):
        return self.bus.readfrom_into(addr, buf, stop)

    def scan(self):
        return self.bus.scan()


bus = TimedBus(machine.I2C(0, scl=machine.Pin(22), sda=machine.Pin(21)))
from tsfw.app import App
from tsfw import config
cfg = config.defaults()
config.update(cfg, {'mode': P['mode'], 'rate_hz': P['rate'], 'status_ms': 60000})
from tsfw.link_usb import UsbLink


class TimedLink(UsbLink):
    # the USB write is C code on a device; under wasm stdout goes byte by byte through JS
    us = 0

    def write(self, buf, n):
        t = hostio.now_us()
        ok = UsbLink.write(self, buf, n)
        TimedLink.us += hostio.now_us() - t
        return ok


app = App(cfg=cfg, i2c=bus, link=TimedLink(), config_path='/c.json')
app.boot()
# uptime past 2**30 us (17.9 min) x wraps: node times on the wire are >= 2**30 (boxed ints
# on MicroPython unless the code keeps them in small halves)
app._t_wraps = P['wraps']
drain_us = app._drain_us
devs = [d for a, d in chip.devices()]
# component timers (one extra call layer per drain, not per sample)
T = [0, 0]
_read = app.sensor.fifo_read
_filt = app.filter.update_block if app.filter is not None else None


def timed_read(out, n, ts=None):
    t = hostio.now_us()
    r = _read(out, n, ts)
    T[0] += hostio.now_us() - t
    return r


def timed_filter(buf, n, out):
    t = hostio.now_us()
    _filt(buf, n, out)
    T[1] += hostio.now_us() - t


app.sensor.fifo_read = timed_read
if _filt is not None:
    app.filter.update_block = timed_filter


def run_round(n_drains):
    # timed drains; between them virtual time passes and the chip model catches up (untimed)
    tot = 0
    bus.us = 0
    TimedLink.us = 0
    T[0] = T[1] = 0
    s0 = app.samples
    m0 = gc.mem_alloc()
    for _ in range(n_drains):
        board.clock.advance(drain_us)
        now = clock.ticks_us()
        for d in devs:
            d.sync(now)
        t = hostio.now_us()
        app.drain(now)
        tot += hostio.now_us() - t
    return tot, bus.us + TimedLink.us, app.samples - s0, gc.mem_alloc() - m0, T[0] - bus.us, T[1]


def step_cost(n):
    # one idle loop iteration besides the drain: poll the link, status due?, LED
    t = hostio.now_us()
    for _ in range(n):
        app.serve()
        app.led.update(clock.ticks_ms())
    return (hostio.now_us() - t) / n


pystones(2000)          # warm up the interpreter
run_round(50)
rounds = []
# short chunks, each between two pystone runs: the machine's speed may change during the run
# (other processes), so every chunk is scaled by the interpreter speed measured around it
ps_prev = pystones(P['pystone_loops'])[1]
for r in range(P['rounds']):
    gc.collect()
    gc.disable()
    tot, sim, n, alloc, drv_us, filt_us = run_round(P['drains'])
    gc.enable()
    ps_next = pystones(P['pystone_loops'])[1]
    rounds.append({'us': tot, 'sim_bus_us': sim, 'samples': n, 'alloc': alloc,
                   'driver_us': drv_us, 'filter_us': filt_us,
                   'pystones': (ps_prev + ps_next) / 2, 'pystones_spread': abs(ps_prev - ps_next)})
    ps_prev = ps_next
idle_us = step_cost(2000)
app.stop()
print('\nBENCH ' + json.dumps({'rounds': rounds, 'idle_iter_us': idle_us, 'samples': app.samples,
                               'frames': app.frames_sent, 'bus_bytes': bus.bytes,
                               'chip': app.sensor.chip, 'rate': app._rate_hz}), file=sys.stderr)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="virtual seconds of motion per round")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--mode", choices=("fused", "raw"), default="fused")
    ap.add_argument("--rate", type=int, default=200, choices=(50, 100, 200, 400))
    ap.add_argument("--pystone-loops", type=int, default=3000)
    ap.add_argument("--wraps", type=int, default=0, choices=(0, 1, 2, 3),
                    help="simulate an uptime of this many 2**30 us tick wraps (node time >= 2**30)")
    args = ap.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        ap.error("--seconds must be > 0 and --rounds >= 1")

    from trackside import mpy
    from trackside.virtual import board_libs
    from trackside.virtual import motion as mo
    from tsproto import consts as C
    from tsproto.decoder import StreamDecoder

    drain_ms = 40
    drains = int(args.seconds * 1000 / drain_ms)
    total_s = args.seconds * args.rounds + 5
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m = mo.random_motion(total_s, args.rate, seed=11, max_rate_dps=400, lin_acc_mps2=8.0)
        mo.stream_file(tmp / "m.tsms", m.with_errors(seed=12), "mpu9250")
        (tmp / "bench.json").write_text(json.dumps({"mode": args.mode, "rate": args.rate, "rounds": args.rounds,
                                                    "drains": drains, "pystone_loops": args.pystone_loops,
                                                    "wraps": args.wraps}))
        files = [(tmp / "m.tsms", "/data/m.tsms"), (tmp / "bench.json", "/bench.json"),
                 (REPO / "tools" / "bench" / "pystone_mp.py", "/lib/pystone_mp.py")]
        res = mpy.run(WASM, libs=board_libs(), files=files, heap=1 << 20, timeout=1800)
    out = json.loads(res.stderr.split("BENCH ", 1)[1])
    dec = StreamDecoder()
    msgs = dec.feed(res.stdout)
    batches = [x for x in msgs if x.type == C.T_SAMPLES]
    n_wire = sum(len(b.samples) for b in batches)
    from tsproto.frame import cobs_decode, parse_header
    batch_bytes = 0
    for chunk in res.stdout.split(b"\x00"):
        if chunk and parse_header(cobs_decode(chunk))[1] == C.T_SAMPLES:
            batch_bytes += len(chunk) + 1

    import os
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"machine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"(other processes slow the rounds down unevenly: see the spread and the best-of line)")
    print(f"node cost under MicroPython 1.27 (wasm), {out['chip']} model at {out['rate']} Hz, mode {args.mode}, "
          f"FIFO drained every {drain_ms} ms; {args.rounds} rounds x {drains} drains; "
          f"uptime wraps {args.wraps} (node time {'>=' if args.wraps else '<'} 2**30 us)")
    print(f"{'round':>5} {'samples':>7} {'wasm us/smp':>11} {'sim I/O us':>10} {'node us/smp':>11} "
          f"{'pystones/s':>10} {'(spread)':>8} {'ESP32 est us/smp':>16} {'alloc B/smp':>11}")
    ests, nodes, allocs = [], [], []
    for i, r in enumerate(out["rounds"]):
        n = r["samples"]
        wasm = r["us"] / n
        node = (r["us"] - r["sim_bus_us"]) / n
        est = node * r["pystones"] / ESP32_PYSTONES
        ests.append(est)
        nodes.append(node)
        allocs.append(r["alloc"] / n)
        if len(out["rounds"]) > 12 and i % max(1, len(out["rounds"]) // 10):
            continue
        print(f"{i:>5} {n:>7} {wasm:>11.2f} {r['sim_bus_us'] / n:>10.2f} {node:>11.2f} {r['pystones']:>10.0f} "
              f"{r['pystones_spread']:>8.0f} {est:>16.0f} {r['alloc'] / n:>11.3f}")
    est_med = statistics.median(ests)
    def comp(key):
        return statistics.median(r[key] / r["samples"] * r["pystones"] / ESP32_PYSTONES for r in out["rounds"])
    drv_e, flt_e = comp("driver_us"), comp("filter_us")
    print(f"ESP32 estimate by part (medians): driver FIFO read (Python part) {drv_e:.0f} us, "
          f"filter {flt_e:.0f} us, calibration + batching + framing + write call {est_med - drv_e - flt_e:.0f} us")
    q = statistics.quantiles(ests, n=4) if len(ests) >= 4 else [min(ests), est_med, max(ests)]
    print(f"(rows: every round up to 12, else every {max(1, len(ests) // 10)}th)")
    print(f"node (interpreter) time, wasm: median {statistics.median(nodes):.2f} us/sample; "
          f"ESP32 estimate quartiles {q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} us over {len(ests)} rounds")
    per_frame_alloc = sum(r["alloc"] for r in out["rounds"]) / max(1, out["frames"])
    print(f"\nESP32-estimated interpreter time per sample (median of rounds): {est_med:.0f} us "
          f"(target <= 1000 us; budget at 200 Hz with 80% idle = 1000 us)")
    print(f"  with the notes' 2x safety margin: {2 * est_med:.0f} us")
    # Other processes only ever add time: the least-disturbed figures are the fastest round and
    # the fastest pystone run (as timeit takes the minimum).
    best_node = min(nodes)
    best_ps = max(r["pystones"] + r["pystones_spread"] / 2 for r in out["rounds"])
    print(f"best-of estimate: fastest round {best_node:.2f} us/sample wasm x fastest pystone "
          f"{best_ps:.0f}/s / 1802 = {best_node * best_ps / ESP32_PYSTONES:.0f} us")
    i2c_us = out["bus_bytes"] / max(1, out["samples"]) * 9 / 400e3 * 1e6
    print(f"I2C wire time at 400 kHz (blocking transfer on the device, not interpreter work): "
          f"{i2c_us:.0f} us/sample ({out['bus_bytes'] / max(1, out['samples']):.1f} bytes/sample incl. addressing)")
    print(f"idle loop iteration (link poll + LED), wasm: {out['idle_iter_us']:.2f} us")
    print(f"heap allocation while timing: {statistics.mean(allocs):.3f} bytes/sample "
          f"(tsproto frame(): a boxed CRC-32 in 3 of 4 frames; 0 per sample otherwise)")
    print(f"wire: {batch_bytes / max(1, n_wire):.2f} bytes/sample in sample-batch frames (framing included), "
          f"{n_wire} samples in {len(batches)} frames; decoder: {dec.stats()['crc_errors']} CRC errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
