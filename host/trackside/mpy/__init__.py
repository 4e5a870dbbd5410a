"""Run MicroPython code under the official WebAssembly port (Node.js).

This is the test bench of the firmware: the same sources that go onto an ESP32 run here under
the real MicroPython interpreter, with simulated hardware modules on ``sys.path``.

    >>> res = run("print(1 + 1)")
    >>> res.stdout
    b'2\\n'
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

RUNNER = Path(__file__).with_name("runner.mjs")
REPO = Path(__file__).resolve().parents[3]
SHARED_PKG = REPO / "shared" / "tsproto"
FIRMWARE_DIR = REPO / "firmware"


class MicroPythonUnavailable(RuntimeError):
    """Node.js or the npm MicroPython runtime is missing (run tools/setup)."""


class MicroPythonError(RuntimeError):
    """Code run under MicroPython raised an uncaught exception."""

    def __init__(self, stderr: str, stdout: bytes):
        super().__init__(stderr.strip() or "MicroPython exited with an error")
        self.stderr = stderr
        self.stdout = stdout


@dataclass
class MpResult:
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


def firmware_libs() -> list[tuple[Path, str]]:
    """Host directories copied into the interpreter's file system, as on a flashed node."""
    return [(SHARED_PKG, "/lib/tsproto"), (FIRMWARE_DIR / "tsfw", "/lib/tsfw")]


def node_binary() -> str:
    node = shutil.which("node")
    if not node:
        raise MicroPythonUnavailable("Node.js not found: install node >= 18, then run tools/setup")
    if not (REPO / "node_modules" / "@micropython").exists() and not os.environ.get("TRACKSIDE_MPY_MODULE"):
        raise MicroPythonUnavailable("npm MicroPython runtime missing: run `npm ci` (tools/setup) in " + str(REPO))
    return node


def command(
    code: str | None = None,
    *,
    script: Path | str | None = None,
    libs: Iterable[tuple[Path | str, str]] | None = None,
    files: Iterable[tuple[Path | str, str]] = (),
    heap: int = 4 << 20,
    argv: Sequence[str] = (),
) -> list[str]:
    """The argv that runs ``code`` (or ``script``) under MicroPython with ``libs`` installed."""
    cmd = [node_binary(), str(RUNNER), "--heap", str(heap)]
    for src, dest in firmware_libs() if libs is None else libs:
        cmd += ["--lib", f"{src}:{dest}"]
    for src, dest in files:
        cmd += ["--file", f"{src}:{dest}"]
    if script is not None:
        cmd += ["--run", str(script)]
    elif code is not None:
        cmd += ["--code", code]
    else:
        raise ValueError("give code or script")
    if argv:
        cmd += ["--argv", json.dumps(list(argv))]
    return cmd


def run(
    code: str | None = None,
    *,
    script: Path | str | None = None,
    libs: Iterable[tuple[Path | str, str]] | None = None,
    files: Iterable[tuple[Path | str, str]] = (),
    stdin: bytes = b"",
    timeout: float = 300.0,
    heap: int = 4 << 20,
    argv: Sequence[str] = (),
    check: bool = True,
) -> MpResult:
    """Run code under MicroPython and wait; raise MicroPythonError on an uncaught exception."""
    cmd = command(code, script=script, libs=libs, files=files, heap=heap, argv=argv)
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, cwd=REPO)
    res = MpResult(proc.returncode, proc.stdout, proc.stderr.decode("utf-8", "replace"))
    if check and proc.returncode != 0:
        raise MicroPythonError(res.stderr, res.stdout)
    return res


def popen(
    code: str | None = None,
    *,
    script: Path | str | None = None,
    libs: Iterable[tuple[Path | str, str]] | None = None,
    files: Iterable[tuple[Path | str, str]] = (),
    heap: int = 4 << 20,
    argv: Sequence[str] = (),
    stdin: int | None = None,
    stdout: int | None = None,
    **kwargs,
) -> subprocess.Popen:
    """Start code under MicroPython without waiting (virtual nodes, live links).

    For ``hostio.read_byte()`` to poll without blocking, pass a non-blocking read end as stdin
    (``os.set_blocking(fd, False)``).
    """
    cmd = command(code, script=script, libs=libs, files=files, heap=heap, argv=argv)
    return subprocess.Popen(cmd, stdin=stdin, stdout=stdout, cwd=REPO, **kwargs)
