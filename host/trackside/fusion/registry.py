"""Orientation filters by name, for ``trackside fusion run`` and the benchmarks.

A filter is a callable ``f(rec: Recording, **options) -> np.ndarray`` returning an Nx4 array of
unit quaternions (w, x, y, z), sensor-to-earth, earth frame ENU, one row per input sample.
Every filter receives the keyword options the caller has (the CLI passes ``chip=``); a filter
that has no use for an option must still accept it (declare ``**options``).

Built-in filters are imported lazily (``_BUILTIN``: name -> "module:function") so that listing
names costs nothing. Other modules register theirs with :func:`register_filter`; the modules in
``_PLUGIN_MODULES`` are imported on first use so that their ``register_filter`` calls run::

    # in trackside/fusion/host.py
    from trackside.fusion.registry import register_filter
    register_filter("host", run_host, "host float EKF (9D)")
"""

from __future__ import annotations

import importlib
import warnings
from typing import Callable, Dict, Tuple

import numpy as np

from trackside.fusion.metrics import Recording

FilterFunc = Callable[..., np.ndarray]

# name -> ("module:function", one-line description)
_BUILTIN: Dict[str, Tuple[str, str]] = {
    "device": ("trackside.fusion.device:run_device",
               "on-device fixed-point Kalman filter (firmware source run by CPython on chip counts)"),
    "reference": ("trackside.fusion.reference:run_reference",
                  "float reference of the device filter (same algorithm, float64, no quantisation)"),
    "vqf": ("trackside.fusion.device:run_vqf", "VQF 9D online (PyPI vqf), for comparison"),
}

# Modules that register filters when imported (host-side EKF, offline smoother).
_PLUGIN_MODULES = ("trackside.fusion.host", "trackside.fusion.offline")

_registered: Dict[str, Tuple[FilterFunc, str]] = {}
_plugins_loaded = False


def register_filter(name: str, func: FilterFunc, description: str = "") -> None:
    """Make ``func`` available as filter ``name`` (replaces an earlier registration)."""
    if not name or not isinstance(name, str):
        raise ValueError("filter name must be a non-empty string")
    if not callable(func):
        raise TypeError("filter must be callable")
    _registered[name] = (func, description)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for mod in _PLUGIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # that module not written yet
            if exc.name != mod:
                warnings.warn(f"filter module {mod} not loaded: {exc}", RuntimeWarning, stacklevel=2)
        except Exception as exc:  # a broken plugin must not take the other filters down
            warnings.warn(f"filter module {mod} not loaded: {exc!r}", RuntimeWarning, stacklevel=2)


def available_filters() -> Dict[str, str]:
    """Filter names -> one-line descriptions, sorted by name."""
    _load_plugins()
    names = {k: v[1] for k, v in _BUILTIN.items()}
    names.update({k: v[1] for k, v in _registered.items()})
    return dict(sorted(names.items()))


def get_filter(name: str) -> FilterFunc:
    """The filter callable registered as ``name``; ValueError naming the choices if unknown."""
    _load_plugins()
    if name in _registered:
        return _registered[name][0]
    if name in _BUILTIN:
        modname, func = _BUILTIN[name][0].split(":")
        return getattr(importlib.import_module(modname), func)
    raise ValueError(f"unknown filter {name!r}; choose from {', '.join(available_filters())}")


def run_filter(name: str, rec: Recording, **options) -> np.ndarray:
    """Run filter ``name`` over ``rec`` and check the result is an Nx4 finite array."""
    quat = np.asarray(get_filter(name)(rec, **options), dtype=float)
    n = rec.gyr.shape[0]
    if quat.shape != (n, 4):
        raise RuntimeError(f"filter {name!r} returned shape {quat.shape}, expected ({n}, 4)")
    return quat
