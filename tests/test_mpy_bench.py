"""The MicroPython WebAssembly test bench itself: real interpreter, binary-safe I/O, errors."""

import pytest

from trackside import mpy


def test_runs_real_micropython_binary_safe():
    res = mpy.run("import sys\nprint(sys.implementation.name)\nsys.stdout.buffer.write(bytes([0, 1, 255]))")
    assert res.stdout == b"micropython\n\x00\x01\xff"


def test_uncaught_exception_is_reported():
    with pytest.raises(mpy.MicroPythonError) as err:
        mpy.run("raise ValueError('boom')")
    assert "ValueError: boom" in err.value.stderr


def test_firmware_packages_importable():
    res = mpy.run("import tsproto, tsfw\nprint('ok')")
    assert res.stdout == b"ok\n"
