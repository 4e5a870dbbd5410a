"""cffi (API mode) builder for ``trackside.plan._core``: the C core in acocore.c.

Used by ``setup.py`` (``cffi_modules``) so that ``pip install`` / ``pip install -e`` compile
it; can also be run by hand from the repository root: ``python host/trackside/plan/_build_core.py``.
"""

from __future__ import annotations

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _cdef() -> str:
    # The header is the single source of truth; strip what cdef does not parse.
    with open(os.path.join(HERE, "acocore.h")) as fh:
        text = fh.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return text + "\n#define ACO_REAL 0\n#define ACO_ORD 1\n#define ACO_CAT 2\n"


def _rel(path: str) -> str:
    # setuptools wants source paths relative to the setup.py directory (the cwd).
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "trackside.plan._core",
    '#include "acocore.h"',
    sources=[_rel(os.path.join(HERE, "acocore.c"))],
    include_dirs=[_rel(HERE)],
    libraries=[] if os.name == "nt" else ["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(HERE, "..", ".."), verbose=True)
