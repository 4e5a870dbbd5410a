# MicroPython script (run under the wasm port by trackside.fusion.device.run_counts_micropython):
# the firmware filter over int16 counts from a file, hot loop under micropython.heap_lock().
# argv: data.bin rate_hz acc_lsb_g gyr_lsb_dps mag_ut_lsb pystone_loops
# stdout: one text line "n us_total pystones_per_s heap_locked best_us_per_sample line_us" then n*4
# int16 (w x y z) bytes.
import sys
import micropython
from array import array

from tsfw.fusion import FixedKalman

try:
    import hostio

    def now_us():
        return hostio.now_us()
except ImportError:
    import time

    def now_us():
        return time.ticks_us()

path = sys.argv[1]
rate, acc_lsb, gyr_lsb, mag_lsb = [float(a) for a in sys.argv[2:6]]
loops = int(sys.argv[6])
with open(path, "rb") as fh:
    buf = array("h", fh.read())
n = len(buf) // 9
out = array("h", bytes(8 * n))
f = FixedKalman(rate, acc_lsb, gyr_lsb, mag_lsb)
mb = memoryview(buf)
mo = memoryview(out)
f.update_block(mb, 1, mo)       # start-up (integer TRIAD) may allocate
# the rest in CHUNKS pieces (slices made before locking), each timed: on a loaded machine the
# fastest chunk is the least disturbed one; pystone likewise in short runs, best kept
CHUNKS = 10
step = (n - 1) // CHUNKS + 1
pieces = []
a = 1
while a < n:
    e = min(n, a + step)
    pieces.append((mb[9 * a:9 * e], mo[4 * a:4 * e], e - a))
    a = e
times = [0] * len(pieces)
locked = 1
for c in range(len(pieces)):
    b, o, m = pieces[c]
    t0 = now_us()                # (the clock call itself may allocate: outside the lock)
    micropython.heap_lock()
    try:
        f.update_block(b, m, o)  # any allocation here raises MemoryError
    except MemoryError:
        locked = 0
    finally:
        micropython.heap_unlock()
    times[c] = now_us() - t0
    if not locked:
        raise MemoryError("the filter allocated inside heap_lock")
best = min(times[c] / pieces[c][2] for c in range(len(pieces)))
total = sum(times)
# load-independent yardstick: the cost of one typical fixed-point line, same process
line = 1e9
if loops > 0:
    a = 12345
    b = 6789
    c = 1111
    d = 2222
    for _ in range(6):
        t0 = now_us()
        for i in range(5000):
            v = (a * b + c * d + 8192) >> 14
        t1 = now_us()
        for i in range(5000):
            pass
        t2 = now_us()
        line = min(line, ((t1 - t0) - (t2 - t1)) / 5000)
stones = 0.0
if loops > 0:
    from pystone_mp import pystones
    pystones(loops // 5)         # warm-up
    for _ in range(5):
        stones = max(stones, pystones(loops // 5)[1])
sys.stdout.write("%d %d %.1f %d %.3f %.4f\n" % (n, total, stones, locked, best, line if line < 1e9 else 0))
sys.stdout.buffer.write(out)
