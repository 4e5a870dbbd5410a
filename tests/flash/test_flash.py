"""`trackside flash` against a virtual board: the wasm MicroPython REPL served over a socket,
driven by the real mpremote, with hashes read back and the deployed image imported on the board."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trackside.flash import REPO, build_image, read_hashes
from trackside.mpy import node_binary


@pytest.fixture()
def virtual_board(tmp_path):
    dump = tmp_path / "board"
    proc = subprocess.Popen(
        [node_binary(), str(REPO / "host/trackside/flash/virtual_board.mjs"), "--port", "0", "--dump", str(dump)],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    line = proc.stdout.readline()
    assert line.startswith("LISTENING"), line
    yield f"socket://127.0.0.1:{int(line.split()[1])}", dump
    proc.terminate()
    proc.wait(timeout=20)


def _mpremote(port, *args):
    return subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                          capture_output=True, text=True, timeout=120)


def test_flash_deploys_verifies_and_image_imports(virtual_board, tmp_path):
    port, dump = virtual_board
    build = tmp_path / "image"
    cli = subprocess.run(
        [sys.executable, "-m", "trackside", "flash", port, "--node-id", "7", "--segment", "left_shank",
         "--set", "rate_hz=100", "--build-dir", str(build), "--no-reset"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "verified by sha256" in cli.stdout
    # The config on the board is the one asked for, validated by the firmware's rules.
    cat = _mpremote(port, "fs", "cat", ":/config.json")
    cfg = json.loads(cat.stdout)
    assert (cfg["node_id"], cfg["segment"], cfg["rate_hz"]) == (7, "left_shank", 100)
    # The compiled modules load on the board (bytecode .mpy from mpy-cross).
    res = _mpremote(port, "exec", "import tsfw.config as c; cfg, log = c.load('/config.json'); print(cfg['node_id'])")
    assert res.returncode == 0 and res.stdout.strip().endswith("7"), res.stdout + res.stderr
    # Every deployed file hashes the same on the board as on the host.
    files = sorted(p for p in build.rglob("*") if p.is_file())
    remotes = ["/" + p.relative_to(build).as_posix() for p in files]
    hashes = read_hashes(port, remotes)
    import hashlib
    assert hashes == {r: hashlib.sha256(p.read_bytes()).hexdigest() for r, p in zip(remotes, files)}


def test_flash_rejects_bad_config_and_unreachable_port(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "trackside", "flash", "socket://127.0.0.1:9", "--node-id", "999",
                          "--segment", "left_shank"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert bad.returncode == 2 and "node_id" in bad.stderr
    down = subprocess.run([sys.executable, "-m", "trackside", "flash", "socket://127.0.0.1:9", "--node-id", "3",
                           "--segment", "left_shank", "--timeout", "5"], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert down.returncode == 1 and "mpremote failed" in down.stdout


def test_image_contains_every_module(tmp_path):
    files = build_image(tmp_path / "img", node_id=1, segment="pelvis")
    remotes = {f.remote for f in files}
    for pkg in ("firmware/tsfw", "shared/tsproto"):
        for src in (REPO / pkg).rglob("*.py"):
            rel = src.relative_to((REPO / pkg).parent).with_suffix(".mpy").as_posix()
            assert "/lib/" + rel in remotes
    assert "/config.json" in remotes
