#!/usr/bin/env python3
"""Cost of the IMU drivers' FIFO drain (``fifo_read``) under MicroPython 1.27 (WebAssembly).

For each driver: microseconds per sample of ``fifo_read`` (burst read + unpack into the common
frame + per-sample timestamps)

- "driver": the driver alone, against a stub I2C that answers the status/count registers and
  leaves the FIFO image in the driver's buffer (what the ESP32 CPU spends; the bus transfer
  itself is hardware time: ~22.5 us per byte at 400 kHz);
- "with model": against the register-level chip model of the simulated board (the model's
  sample generation and byte copying included: the cost of the simulation, not of the node);

at 24 samples per call (a GC pause or radio burst worth of backlog; 25 would fill the MPU's
FIFO, which the driver treats as an overflow) and 1 sample per call (the
per-call overhead), plus a heap_lock check. Pystone runs in the same interpreter, so the ESP32
estimate is ``wasm_us * pystones_here / 1802`` (published ESP32 figure at 160 MHz). Budget
(issue): <= 8 us wasm per sample for FIFO read + unpack.

    python3 tools/bench/bench_drivers.py [--reps 400]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "host"))

from trackside import mpy, virtual  # noqa: E402

CODE = r"""
import sys, json, board, machine, micropython
from array import array
from tsfw import clock, drivers
from pystone_mp import pystones
try:
    import hostio
    now_us = hostio.now_us
except ImportError:
    import time
    now_us = time.ticks_us

REPS = int(sys.argv[1])
clock.use(board.clock)
OUT = array('h', bytes(2 * 9 * 32))
TS = array('i', bytes(4 * 32))


class StubI2C:
    # answers a few registers from a dict; other reads leave the buffer (the FIFO image) as is
    def __init__(self, regs):
        self.regs = regs

    def readfrom_mem_into(self, addr, reg, buf):
        src = self.regs.get(reg)
        if src is not None:
            for i in range(len(buf)):
                buf[i] = src[i]

    def writeto_mem(self, addr, reg, buf):
        pass


def timed_model(drv, per_us, batch, reps):
    t = 0
    n = 0
    adv = board.clock.advance
    for _ in range(reps):
        adv(per_us * batch)
        t0 = now_us()
        n += drv.fifo_read(OUT, 32, TS)
        t += now_us() - t0
    return t / n


def timed_stub(drv, batch, reps):
    # best of 5 rounds: the machine may be shared, the minimum is the interpreter's cost
    best = 1e9
    for _ in range(5):
        t0 = now_us()
        n = 0
        for _ in range(reps // 5):
            n += drv.fifo_read(OUT, batch, TS)
        best = min(best, (now_us() - t0) / n)
    return best


def locked(drv, batch, reps):
    micropython.heap_lock()
    try:
        for _ in range(reps):
            drv.fifo_read(OUT, batch, TS)
        ok = 1
    except MemoryError:
        ok = 0
    finally:
        micropython.heap_unlock()
    return ok


res = {}
res['pystones_before'] = max(pystones(20000)[1] for _ in range(2))
for name in ('mpu9250', 'mpu6500', 'icm20948', 'lsm303agr', 'lsm303dlhc'):
    board.reset()
    board.install(board.make_chip(name))
    drv = drivers.detect(machine.I2C(0), rate_hz=200)
    per = drv.period_us
    r = {'chip': drv.chip}
    timed_model(drv, per, 24, 5)  # warm up
    r['model_24'] = timed_model(drv, per, 24, REPS // 4)
    r['model_1'] = timed_model(drv, per, 1, REPS)
    board.clock.advance(per * 24)
    drv.fifo_read(OUT, 32, TS)
    board.clock.advance(per * 24 + per // 2)
    pkt = drv._pkt
    if name.startswith('lsm303'):
        regs = {0x2F: bytes([24]), 0x67: bytes(8)}
    elif name == 'icm20948':
        regs = {0x1B: b'\x00', 0x70: bytes([(24 * pkt) >> 8, (24 * pkt) & 0xFF])}
    else:
        regs = {0x3A: b'\x00', 0x72: bytes([(24 * pkt) >> 8, (24 * pkt) & 0xFF])}
    drv.fifo_read(OUT, 32, TS)  # a real FIFO image stays in the driver's buffer
    drv._i2c = StubI2C(regs)
    drv.resync()
    timed_stub(drv, 24, 5)
    r['driver_24'] = timed_stub(drv, 24, REPS)
    r['driver_1'] = timed_stub(drv, 1, REPS * 4)
    r['noalloc'] = locked(drv, 24, 50)
    res[name] = r
# timestamps: 30 s of virtual time, a 0.15 % fast MPU-9250, reads at pseudo-random 1..40 ms
board.reset()
chip = board.install(board.make_chip('mpu9250', odr_error_ppm=1500))
drv = drivers.detect(machine.I2C(0), rate_hz=200)
stamps = []
x = 12345
while board.clock.elapsed_us() < 30000000:
    x = (x * 1103515245 + 12345) & 0x3FFFFFFF
    board.clock.advance(1000 + x % 39000)
    n = drv.fifo_read(OUT, 32, TS)
    stamps.extend(TS[:n])
while True:
    n = drv.fifo_read(OUT, 32, TS)
    if not n:
        break
    stamps.extend(TS[:n])
res['ts'] = {'stamps': stamps, 'true_last': (chip._t - (chip._per >> 8)) & ((1 << 30) - 1),
             'per_q': chip._per, 'drift_ppm': drv.drift_ppm, 'resyncs': drv.resyncs}
best = 0
for _ in range(3):
    best = max(best, pystones(20000)[1])
res['pystones'] = best
print(json.dumps(res))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=400, help="fifo_read calls per measurement")
    args = ap.parse_args()
    if args.reps < 8:
        ap.error("--reps must be >= 8")
    res = mpy.run(CODE, libs=virtual.board_libs(),
                  files=[(REPO / "tools/bench/pystone_mp.py", "/lib/pystone_mp.py")],
                  argv=[str(args.reps)], timeout=600)
    out = json.loads(res.stdout)
    st_after = out.pop("pystones")
    st_before = out.pop("pystones_before")
    st = (st_before + st_after) / 2  # the machine may be shared: average of before and after
    tsr = out.pop("ts")
    k = st / 1802.0
    print("== IMU driver fifo_read cost, MicroPython 1.27 wasm (us per sample) ==")
    print(f"pystone here {st:,.0f}/s (before {st_before:,.0f}, after {st_after:,.0f}) -> ESP32 estimate = "
          f"wasm x {k:.1f} (ESP32 1802 pystones/s)")
    print(f"{'chip':<10} {'driver@24':>10} {'driver@1':>9} {'ESP32@24':>9} {'model@24':>9} {'model@1':>8}  heap")
    for name, r in out.items():
        print(f"{r['chip']:<10} {r['driver_24']:>10.2f} {r['driver_1']:>9.2f} {r['driver_24'] * k:>9.0f} "
              f"{r['model_24']:>9.2f} {r['model_1']:>8.2f}  {'no alloc' if r['noalloc'] else 'ALLOCATES'}")
    import numpy as np
    ts = np.array(tsr["stamps"], dtype=np.float64)
    per = tsr["per_q"] / 256.0
    true = tsr["true_last"] - (len(ts) - 1 - np.arange(len(ts))) * per
    err = ts - true
    print(f"\n== timestamps: MPU-9250 at 200 Hz, oscillator +1500 ppm, 30 s virtual, reads every 1-40 ms ==")
    print(f"{len(ts)} samples; error vs the model's true sample times: mean {err.mean():+.0f} us, "
          f"sd {err.std():.0f} us, max |err| {np.abs(err).max():.0f} us (period {per:.1f} us); "
          f"spacing {np.diff(ts).min():.0f}..{np.diff(ts).max():.0f} us; "
          f"drift estimate {tsr['drift_ppm']} ppm (true 1500); resyncs {tsr['resyncs']}")
    # the budget was set on an idle machine (~51,000 pystones/s in wasm): compare like with like
    norm = st / 51000.0
    worst = max(r["driver_24"] for r in out.values())
    print(f"budget: <= 8 us wasm per sample (FIFO read + unpack) at a 24-sample burst, on an idle "
          f"machine (~51,000 pystones/s); this run's speed is {norm:.2f}x that")
    print(f"worst driver@24: {worst:.2f} us measured = {worst * norm:.2f} us at 51,000 pystones/s -> "
          f"{'within' if worst * norm <= 8 else 'OVER'} budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
