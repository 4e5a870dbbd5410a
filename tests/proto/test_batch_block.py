"""SampleBatcher.add_block (the node's per-drain path): the same wire bytes as add(), frame
times past 2**30 us and across tick wraps without boxed ints, no allocation under heap_lock."""

import pytest

from tsproto import SampleBatcher

from .streams import motion

mpy = pytest.importorskip("trackside.mpy")

# Runs unchanged on CPython and MicroPython: rows (wire order) fed in blocks of varying size
# through add_block with tick times modulo 2**30; heap locked around every add_block call.
BLOCK = """
from array import array
from tsproto import SampleBatcher
try:
    import micropython
    lock = micropython.heap_lock
    unlock = micropython.heap_unlock
except (ImportError, AttributeError):
    lock = unlock = lambda: None


def by_blocks(rows, raw, sizes, tick0, wraps0, spf, maxp, gap_at):
    enc = SampleBatcher(3, spf, 5000, raw=raw, max_payload=maxp)
    a = array('h', [0] * (9 * 40))
    q = array('h', [0] * (4 * 40))
    ts = array('i', [0] * 40)
    out = []
    fails = 0
    k = 0
    bi = 0
    while k < len(rows):
        if bi == gap_at and enc.mark_gap():
            out.append(bytes(enc.frame()))
        n = min(sizes[bi % len(sizes)], len(rows) - k)
        bi += 1
        for i in range(n):
            r = rows[k + i]
            for v in range(3):
                a[9 * i + v] = r[3 + v]
                a[9 * i + 3 + v] = r[v]
                a[9 * i + 6 + v] = r[6 + v]
            if not raw:
                for v in range(4):
                    q[4 * i + v] = r[9 + v]
            ts[i] = (tick0 + (k + i) * 5000) % (1 << 30)
        w = (wraps0 + (tick0 + k * 5000) // (1 << 30)) % 4
        i = 0
        while True:
            lock()
            try:
                try:
                    ready = enc.add_block(a, q, i, n, ts, ts[0], w)
                except MemoryError:
                    ready = None
            finally:
                unlock()
            if ready is None:
                fails += 1
                break
            if not ready:
                break
            out.append(bytes(enc.frame()))
            i = enc.pos
        k += n
    if enc.flush():
        out.append(bytes(enc.frame()))
    return out, fails
"""


def _by_add(rows, raw, tick0, wraps0, spf, maxp, gap_at, sizes):
    enc = SampleBatcher(3, spf, 5000, raw=raw, max_payload=maxp)
    out = []
    k = 0
    bi = 0
    while k < len(rows):
        if bi == gap_at and enc.mark_gap():
            out.append(bytes(enc.frame()))
        n = min(sizes[bi % len(sizes)], len(rows) - k)
        bi += 1
        for i in range(n):
            t = ((wraps0 << 30) + tick0 + (k + i) * 5000) % (1 << 32)
            if enc.add(t, rows[k + i]):
                out.append(bytes(enc.frame()))
        k += n
    if enc.flush():
        out.append(bytes(enc.frame()))
    return out


# (raw, tick0, wraps0, spf, max_payload): tick wrap inside the run, frames past 2**31 and the
# 2**32 wrap of the wire time, small payloads (frames closed early: carried samples)
CASES = [
    (False, (1 << 30) - 400 * 5000, 0, 16, 248),
    (True, (1 << 30) - 123456, 3, 16, 248),
    (False, 777, 2, 20, 64),
    (True, (1 << 30) - 50 * 5000, 1, 255, 100),
]
SIZES = [8, 1, 13, 32, 3, 0, 8]


@pytest.mark.parametrize("case", CASES)
def test_add_block_same_bytes_as_add_cpython(case):
    raw, tick0, wraps0, spf, maxp = case
    rows = motion(600, seed=4, raw=raw)
    ns = {}
    exec(BLOCK, ns)
    got, fails = ns["by_blocks"](rows, raw, SIZES, tick0, wraps0, spf, maxp, 5)
    want = _by_add(rows, raw, tick0, wraps0, spf, maxp, 5, SIZES)
    assert fails == 0
    assert len(want) > 30
    assert got == want


def test_add_block_bad_block_is_a_value_error():
    enc = SampleBatcher(3, 16, 5000)
    from array import array

    with pytest.raises(ValueError, match="add_block"):
        enc.add_block(array("h", [0] * 9), array("h", [0] * 4), 0, 2, array("i", [0, 0]), 0, 0)
    # the encoder still works afterwards, and flags the lost frame
    rows = motion(40, seed=1)
    frames = [bytes(enc.frame()) for r in rows if enc.add(1000, r)]
    assert frames


@pytest.mark.wasm
def test_add_block_same_bytes_and_no_allocation_under_micropython():
    cases = CASES[:3]
    code = BLOCK + "\nimport sys\nrows = %r\n" % ([motion(300, seed=4, raw=c[0]) for c in cases],)
    code += "for (raw, tick0, wraps0, spf, maxp), rs in zip(%r, rows):\n" % (cases,)
    code += "    out, fails = by_blocks(rs, raw, %r, tick0, wraps0, spf, maxp, 5)\n" % (SIZES,)
    code += "    print(fails, len(out), b''.join(out).hex())\n"
    try:
        res = mpy.run(code, heap=1 << 21)
    except mpy.MicroPythonUnavailable as e:  # pragma: no cover
        pytest.skip(str(e))
    lines = res.stdout.decode().split("\n")
    for (raw, tick0, wraps0, spf, maxp), line in zip(cases, lines):
        fails, n, hexed = line.split()
        want = _by_add(motion(300, seed=4, raw=raw), raw, tick0, wraps0, spf, maxp, 5, SIZES)
        assert fails == "0"  # no MemoryError inside any add_block call
        assert int(n) == len(want)
        assert bytes.fromhex(hexed) == b"".join(want)
