"""firmware/main.py as a device runs it: safe mode, and a crash that cannot turn into a fast
reboot loop (traceback kept in /crash.txt, 5 s pause, then reset)."""

from pathlib import Path

import pytest

from trackside import mpy
from trackside.virtual import board_libs

pytestmark = pytest.mark.wasm

MAIN = Path(mpy.FIRMWARE_DIR) / "main.py"

RUN_MAIN = r"""
import board, machine
from tsfw import clock
board.reset(1000)
clock.use(board.clock)
t0 = board.clock.elapsed_us()
try:
    exec(open('/main.py').read())
    print('main returned')
except board.Reset:
    print('reset after %d ms' % ((board.clock.elapsed_us() - t0) // 1000))
try:
    print(open('/crash.txt').read())
except OSError:
    print('no crash file')
"""


def test_crash_is_recorded_and_slowed_down(tmp_path):
    bad = tmp_path / "app.py"
    bad.write_text("def main(**kw):\n    raise RuntimeError('boom in the main loop')\n")
    res = mpy.run(RUN_MAIN, libs=board_libs(), files=[(MAIN, "/main.py"), (bad, "/lib/tsfw/app.py")])
    out = res.text
    assert "reset after 5" in out          # 5 s of (virtual) pause before machine.reset()
    assert "RuntimeError: boom in the main loop" in out


def test_safe_mode_skips_the_firmware(tmp_path):
    held = (
        # the board sim has no input injection: make BOOT (GPIO0) read low, as when held
        "_P = machine.Pin\n"
        "class HeldBoot(_P):\n"
        "    def value(self, v=None):\n"
        "        return 0 if v is None and self.id == 0 else _P.value(self, v)\n"
        "machine.Pin = HeldBoot\n"
    )
    code = RUN_MAIN.replace("t0 = board", held + "t0 = board")
    bad = tmp_path / "app.py"
    bad.write_text("def main(**kw):\n    raise RuntimeError('must not run')\n")
    res = mpy.run(code, libs=board_libs(), files=[(MAIN, "/main.py"), (bad, "/lib/tsfw/app.py")])
    assert res.text.splitlines()[:2] == ["main returned", "no crash file"]


def test_mpremote_interrupt_gives_the_repl_back(tmp_path):
    # a running node (default config, MPU-9250 model) gets mpremote's "\r\x03\x03\x01"
    cfg = tmp_path / "board.json"
    cfg.write_text('{"i2c": {"0": [{"chip": "mpu9250"}]}}')
    code = RUN_MAIN.replace("board.reset(1000)\n", "")
    res = mpy.run(code, libs=board_libs(), files=[(MAIN, "/main.py"), (cfg, "/board.json")],
                  stdin=b"\r\x03\x03\x01")
    tail = res.stdout.rsplit(b"\x00", 1)[-1].decode()
    assert tail.splitlines()[-2:] == ["main returned", "no crash file"]
