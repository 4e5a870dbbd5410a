"""Build hook for the C core of ``trackside.plan`` (cffi, API mode).

All metadata lives in pyproject.toml; this file only adds the cffi extension so that
``pip install .`` and ``pip install -e .`` compile ``trackside.plan._core``.  A missing C
compiler (or missing Python headers) stops the build with a message saying what to install.
"""

from setuptools import setup
from setuptools.command.build_ext import build_ext

try:  # setuptools >= 60 vendors distutils; both spellings name the same classes
    from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError
except ImportError:  # pragma: no cover - old setuptools
    from distutils.errors import (  # type: ignore[no-redef]
        CCompilerError, CompileError, DistutilsExecError as ExecError, DistutilsPlatformError as PlatformError,
        LinkError,
    )

_HINT = (
    "trackside: building the C core of trackside.plan (host/trackside/plan/acocore.c, via cffi) failed.\n"
    "It needs a C compiler and the Python development headers, e.g.\n"
    "  Debian/Ubuntu: apt-get install build-essential python3-dev\n"
    "  Fedora:        dnf install gcc python3-devel\n"
    "  macOS:         xcode-select --install\n"
    "  Windows:       Microsoft C++ Build Tools\n"
    "then rerun the install.  Underlying error: {err}"
)


class BuildExtClearErrors(build_ext):
    """build_ext that turns compiler failures into one actionable message."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, CompileError, ExecError, LinkError, PlatformError, OSError) as err:
            raise SystemExit(_HINT.format(err=err)) from err


setup(
    cmdclass={"build_ext": BuildExtClearErrors},
    cffi_modules=["host/trackside/plan/_build_core.py:ffibuilder",
                  "host/trackside/aggregator/_build_livecore.py:ffibuilder"],
)
