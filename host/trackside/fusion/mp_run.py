# MicroPython script (run under the wasm port by trackside.fusion.device.run_counts_micropython):
# the firmware filter over int16 counts from a file, hot loop under micropython.heap_lock().
# argv: data.bin rate_hz acc_lsb_g gyr_lsb_dps mag_ut_lsb pystone_loops
# stdout: one text line "n us_total pystones_per_s heap_locked" then n*4 int16 (w x y z) bytes.
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
b2 = mb[9:]
o2 = mo[4:]
locked = 0
t0 = now_us()
micropython.heap_lock()
try:
    f.update_block(b2, n - 1, o2)   # the hot loop: any allocation raises MemoryError
    locked = 1
finally:
    micropython.heap_unlock()
t1 = now_us()
stones = 0.0
if loops > 0:
    from pystone_mp import pystones
    pystones(loops)              # warm-up
    stones = pystones(loops)[1]
sys.stdout.write("%d %d %.1f %d\n" % (n, t1 - t0, stones, locked))
sys.stdout.buffer.write(out)
