"""App._process (calibration + batching of one FIFO drain) under the real MicroPython: the
calibrated values on the wire equal the reference formulas (gyro offset, magnetometer hard and
soft iron with the per-reading cache, int16 clamps), frame times stay right across the 2**30
tick wrap and the 2**32 wire wrap (tick times above 2**29 at first: no boxed intermediate),
and the only heap use is frame()'s boxed CRC-32."""

from __future__ import annotations

import pytest

from trackside import mpy
from tsproto import consts as C
from tsproto.decoder import StreamDecoder
from tsproto.frame import cobs_decode, parse_header

pytestmark = pytest.mark.wasm

OFF_DPS = [1.0, -0.5, 30.0]
BIAS = [120, -300, 45]
SOFT = [17000, -300, 200, 150, 15800, -100, 90, 60, 16600]
TICK0 = (1 << 30) - 40 * 5000  # the tick counter wraps during the run
WRAPS0 = 3                      # ... and so does the 32-bit wire time
SIZES = [8, 32, 1, 7, 32, 9, 16, 3, 32, 8, 8, 5]

SCRIPT = """
import gc, sys
from tsfw.app import App
from tsfw import config
from tsproto.batch import SampleBatcher
from tsproto.frame import FrameWriter


class Link:
    name = 'usb'

    def __init__(self):
        self.out = bytearray(40000)
        self.n = 0

    def write(self, f, n):
        o = self.out
        p = self.n
        for i in range(n):
            o[p + i] = f[i]
        self.n = p + n
        return True


def rows(n):
    out = []
    x = 7
    for k in range(n):
        r = []
        for i in range(9):
            x = (x * 1103 + 12345 + k) % 65521
            if i >= 6 and k % 2:
                r.append(out[-1][i])          # the magnetometer repeats at 100 Hz
            elif x % 31 == 0:
                r.append(32767 if x & 1 else -32768)  # clamps
            else:
                r.append(x % 8000 - 4000)
        out.append(r)
    return out


cfg = config.defaults()
config.update(cfg, {'calibration': {'gyro_offset_dps': @off@, 'mag_bias': @bias@, 'mag_soft_q14': @soft@}})
app = App(cfg=cfg, link=Link())
app.writer = FrameWriter(cfg['node_id'])
app._apply_calibration()
app.batcher = SampleBatcher(app.writer, 16, 5000, True)
app._t_wraps = @w0@
data = rows(@total@)
k = 0
alloc = 0
tick = @tick0@
boxes_from = 0
for n in @sizes@:
    for i in range(n):
        r = data[k + i]
        for v in range(9):
            app._raw[9 * i + v] = r[v]
        app._ts[i] = (tick + (k + i) * 5000) % (1 << 30)
    gc.collect()
    gc.disable()
    m0 = gc.mem_alloc()
    app._process(n)
    alloc += gc.mem_alloc() - m0
    gc.enable()
    k += n
boxes_to = app.writer.seq  # the flushed frame is not measured
if app.batcher.flush():
    app._write_frame()
print(list(app._goff))
print(alloc, boxes_from, boxes_to)
print(bytes(app.link.out[:app.link.n]).hex())
print(data)
"""


def _clamp(v: int) -> int:
    return max(-32768, min(32767, v))


def test_process_calibrates_times_and_allocates_only_crc_boxes():
    total = sum(SIZES)
    code = SCRIPT
    for k, v in {"off": OFF_DPS, "bias": BIAS, "soft": SOFT, "w0": WRAPS0, "total": total,
                 "tick0": TICK0, "sizes": SIZES}.items():
        code = code.replace("@%s@" % k, repr(v))
    try:
        res = mpy.run(code, heap=1 << 21)
    except mpy.MicroPythonUnavailable as e:  # pragma: no cover
        pytest.skip(str(e))
    lines = res.stdout.decode().strip().split("\n")
    goff = eval(lines[0])
    alloc, boxes_from, boxes_to = [int(x) for x in lines[1].split()]
    stream = bytes.fromhex(lines[2])
    data = eval(lines[3])
    assert goff == [round(o * 32768 / 2000) for o in OFF_DPS]
    want = []
    for r in data:
        g = [_clamp(r[3 + i] - goff[i]) for i in range(3)]
        m = [r[6 + i] - BIAS[i] for i in range(3)]
        m = [_clamp((SOFT[3 * i] * m[0] + SOFT[3 * i + 1] * m[1] + SOFT[3 * i + 2] * m[2] + 8192) >> 14)
             for i in range(3)]
        want.append(r[0:3] + g + m + [0, 0, 0, 0])
    msgs = StreamDecoder().feed(stream)
    batches = [x for x in msgs if x.type == C.T_SAMPLES]
    assert len(batches) >= 10
    got = [s for b in batches for s in b.samples]
    assert got == want
    times = [t for b in batches for t in b.times]
    assert times == [((WRAPS0 << 30) + TICK0 + k * 5000) % (1 << 32) for k in range(total)]
    # heap: frame() boxes the CRC-32 when >= 2**30 (32 bytes on this port); nothing else
    boxed = 0
    for chunk in stream.split(b"\x00"):
        if chunk:
            p = cobs_decode(chunk)
            h = parse_header(p)
            assert h[1] == C.T_SAMPLES
            if boxes_from <= h[3] < boxes_to:
                boxed += int.from_bytes(p[-4:], "little") >= 1 << 30
    assert alloc == 32 * boxed, (alloc, boxed)
