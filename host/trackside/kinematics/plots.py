"""PNG plots for exports: joint angles per stride and gait figures over the session."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["write_plots"]


def _strides(gait: dict, side: str) -> list[float]:
    steps = gait.get("steps") or []
    if gait.get("side") in ("left", "right"):  # one-foot result
        return [s["touchdown_s"] for s in steps] if gait["side"] == side else []
    return [s["touchdown_s"] for s in steps if s.get("side") == side]


def write_plots(out: Path, time_s: np.ndarray, angles: Mapping[str, np.ndarray], gait: dict) -> list[Path]:
    """Write ``angles_per_stride.png`` and ``gait_over_session.png``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    t = np.asarray(time_s, float) - float(time_s[0])
    names = ("hip_flexion", "knee_flexion", "ankle_dorsiflexion")
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 8), sharex=True, squeeze=False)
    grid = np.linspace(0, 100, 101)
    for j, side in enumerate(("left", "right")):
        tds = _strides(gait, side)
        for i, name in enumerate(names):
            ax = axes[i][j]
            a = np.asarray(angles[f"{side}_{name}"], float)
            curves = []
            pairs = [(t0, t1) for t0, t1 in zip(tds[:-1], tds[1:]) if t1 - t0 <= 3.0]
            for m, (t0, t1) in enumerate(pairs):
                c = np.interp(np.linspace(t0, t1, 101), t, a)
                curves.append(c)
                if m >= len(pairs) - 40:  # draw the last 40 strides, average all of them
                    ax.plot(grid, c, color="0.7", lw=0.6)
            if curves:
                ax.plot(grid, np.nanmean(curves, axis=0), color="C0" if side == "left" else "C3", lw=2)
                ax.set_xlabel("% stride (touchdown to touchdown)") if i == len(names) - 1 else None
            else:
                ax.plot(t, a, lw=0.8)
                ax.set_xlabel("time (s): no strides detected") if i == len(names) - 1 else None
            ax.set_title(f"{side} {name.replace('_', ' ')} (deg)", fontsize=9)
    fig.tight_layout()
    p = out / "angles_per_stride.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    paths.append(p)

    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    steps = gait.get("steps") or []
    for ax, key, label in zip(axes, ("contact_s", "step_length_m", "step_freq_hz"),
                              ("contact time (s)", "step length (m)", "step frequency (Hz)")):
        for side, col in (("left", "C0"), ("right", "C3")):
            pts = [(s["touchdown_s"], s[key]) for s in steps
                   if s.get(key) is not None and (s.get("side", gait.get("side")) == side)]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, y, "o-", ms=3, lw=0.8, color=col, label=side)
        ax.set_ylabel(label, fontsize=9)
        if ax.has_data():
            ax.legend(fontsize=8)
    axes[-1].set_xlabel("time (s)")
    if not steps:
        axes[0].set_title("no gait data: " + str(gait.get("reason", "")), fontsize=9)
    fig.tight_layout()
    p = out / "gait_over_session.png"
    fig.savefig(p, dpi=80)
    plt.close(fig)
    paths.append(p)
    return paths
