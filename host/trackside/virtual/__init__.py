"""Virtual hardware for running the firmware without a board.

``board/`` holds MicroPython-compatible simulated modules (``machine``, ``board``, ``chips``,
``espnow``, ``network``) that are copied to ``/lib`` of the WebAssembly interpreter;
``motion`` (CPython, numpy) makes the sensor streams the chip models play back.
"""

from __future__ import annotations

from pathlib import Path

BOARD_DIR = Path(__file__).with_name("board")


def board_libs() -> list[tuple[Path, str]]:
    """``libs=`` for ``trackside.mpy.run``: firmware + shared packages and the simulated board."""
    from trackside.mpy import firmware_libs

    return firmware_libs() + [(BOARD_DIR, "/lib")]


def add_board_to_path() -> None:
    """Make the simulated board modules importable from CPython (``import board, machine``)."""
    import sys

    p = str(BOARD_DIR)
    if p not in sys.path:
        sys.path.insert(0, p)
