"""cffi (API mode) builder for ``trackside.aggregator._livecore``: the live hot path in livecore.c
(frame splitting, sample-batch decoding, sequence/clock lanes). Used by ``setup.py``; by hand:
``python host/trackside/aggregator/_build_livecore.py``."""

from __future__ import annotations

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _cdef() -> str:
    # The header is the single source of truth; cdef takes it without comments and includes,
    # with the #define constants it needs spelled as plain integers.
    with open(os.path.join(HERE, "livecore.h")) as fh:
        text = fh.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    for line in text.splitlines():
        m = re.match(r"#define\s+(\w+)\s+(\d+)\s*$", line.strip())
        if m:
            lines.append(f"#define {m.group(1)} {m.group(2)}")
        elif not line.startswith("#"):
            lines.append(line)
    return "\n".join(lines)


def _rel(path: str) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "trackside.aggregator._livecore",
    '#include "livecore.h"',
    sources=[_rel(os.path.join(HERE, "livecore.c"))],
    include_dirs=[_rel(HERE)],
    # no fused multiply-add: host times must equal the Python path's to the bit
    extra_compile_args=["/fp:precise"] if os.name == "nt" else ["-O2", "-ffp-contract=off"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(HERE, "..", ".."), verbose=True)
