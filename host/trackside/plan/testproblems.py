"""Mixed-variable engineering problems with known optima, for tests and benchmarks.

Each problem is a :class:`Problem` with ``variables``, vectorised ``objective(X)`` and
``constraints(X)`` (feasible where every entry <= 0) and the best known value ``f_best``.
Pressure vessel and coil spring are the two problems the solver defaults were tuned on;
gear train, speed reducer and the categorical ``material_beam`` problem are kept apart to check
that the tuning holds on problems it has not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from trackside.plan.aco import Categorical, Ordinal, Real

__all__ = ["Problem", "pressure_vessel", "coil_spring", "gear_train", "speed_reducer", "material_beam",
           "PROBLEMS", "is_success"]


@dataclass
class Problem:
    """A benchmark problem: minimise ``objective`` subject to ``constraints <= 0``."""

    name: str
    variables: list
    objective: Callable[[np.ndarray], np.ndarray]
    constraints: Callable[[np.ndarray], np.ndarray] | None
    f_best: float
    x_best: tuple
    ctol: float = 0.0
    tuned_on: bool = False


def is_success(problem: Problem, fun: float, feasible: bool, rtol: float = 1e-4) -> bool:
    """Feasible and within ``rtol`` (relative; absolute 1e-12 near zero) of the best known value."""
    return bool(feasible) and fun - problem.f_best <= rtol * abs(problem.f_best) + 1e-12


def pressure_vessel() -> Problem:
    """Pressure vessel (Sandgren 1990), ACO_MV "case D": shell and head thicknesses in steps of
    0.0625 in, radius and length continuous in [10, 200].  Best known 6059.714335 at
    (0.8125, 0.4375, 42.098446, 176.636596)."""
    steps = 0.0625 * np.arange(1, 100)

    def f(X):
        ts, th, r, l_ = X.T
        return 0.6224 * ts * r * l_ + 1.7781 * th * r**2 + 3.1661 * ts**2 * l_ + 19.84 * ts**2 * r

    def g(X):
        ts, th, r, l_ = X.T
        return np.column_stack([
            -ts + 0.0193 * r,
            -th + 0.00954 * r,
            (-math.pi * r**2 * l_ - 4.0 / 3.0 * math.pi * r**3 + 1296000.0) / 1296000.0,
            l_ - 240.0,
        ])

    return Problem("pressure vessel", [Ordinal(steps), Ordinal(steps), Real(10, 200), Real(10, 200)], f, g,
                   6059.714335, (0.8125, 0.4375, 42.098446, 176.636596), tuned_on=True)


WIRE_SIZES = (0.009, 0.0095, 0.0104, 0.0118, 0.0128, 0.0132, 0.014, 0.015, 0.0162, 0.0173, 0.018, 0.020,
              0.023, 0.025, 0.028, 0.032, 0.035, 0.041, 0.047, 0.054, 0.063, 0.072, 0.080, 0.092, 0.105,
              0.120, 0.135, 0.148, 0.162, 0.177, 0.192, 0.207, 0.225, 0.244, 0.263, 0.283, 0.307, 0.331,
              0.362, 0.394, 0.4375, 0.500)


def coil_spring() -> Problem:
    """Coil spring (Sandgren 1990): number of coils N (integer 1..70), coil diameter D
    (continuous [0.6, 3]), wire diameter d from the 42 standard sizes.  Best known 2.65856 at
    (9, 1.223041, 0.283); two constraints are active there (one identically, hence ``ctol``)."""
    fmax, s, lmax, dmin, dmax, fp, spm, sw, G = 1000.0, 189000.0, 14.0, 0.2, 3.0, 300.0, 6.0, 1.25, 11.5e6

    def f(X):
        n, D, d = X.T
        return math.pi**2 * D * d**2 * (n + 2.0) / 4.0

    def g(X):
        n, D, d = X.T
        c = D / d
        cf = (4.0 * c - 1.0) / (4.0 * c - 4.0) + 0.615 * d / D
        K = G * d**4 / (8.0 * n * D**3)
        sp = fp / K
        lf = fmax / K + 1.05 * (n + 2.0) * d
        return np.column_stack([
            (8.0 * cf * fmax * D / (math.pi * d**3) - s) / s,
            (lf - lmax) / lmax,
            dmin - d,
            D + d - dmax,
            3.0 - c,
            sp - spm,
            sp + (fmax - fp) / K + 1.05 * (n + 2.0) * d - lf,
            sw - (fmax - fp) / K,
        ])

    return Problem("coil spring", [Ordinal(np.arange(1, 71)), Real(0.6, 3.0), Ordinal(WIRE_SIZES)], f, g,
                   2.65856, (9, 1.223041, 0.283), ctol=1e-9, tuned_on=True)


def gear_train() -> Problem:
    """Gear train (Sandgren 1990): four tooth counts 12..60, ratio as close to 1/6.931 as
    possible.  Best 2.700857e-12 (e.g. 16, 19, 43, 49).  Unconstrained, all ordinal."""
    teeth = np.arange(12, 61)

    def f(X):
        a, b, c, d = X.T
        return (1.0 / 6.931 - a * b / (c * d)) ** 2

    return Problem("gear train", [Ordinal(teeth)] * 4, f, None, 2.700857e-12, (16, 19, 43, 49))


def speed_reducer() -> Problem:
    """Speed reducer (Golinski), with the number of pinion teeth x3 an integer 17..28 and
    x5 in [7.3, 8.3].  Best 2994.4710661 at (3.5, 0.7, 17, 7.3, 7.71532, 3.35021, 5.28665)."""

    def f(X):
        x1, x2, x3, x4, x5, x6, x7 = X.T
        return (0.7854 * x1 * x2**2 * (3.3333 * x3**2 + 14.9334 * x3 - 43.0934)
                - 1.508 * x1 * (x6**2 + x7**2) + 7.4777 * (x6**3 + x7**3) + 0.7854 * (x4 * x6**2 + x5 * x7**2))

    def g(X):
        x1, x2, x3, x4, x5, x6, x7 = X.T
        return np.column_stack([
            27.0 / (x1 * x2**2 * x3) - 1.0,
            397.5 / (x1 * x2**2 * x3**2) - 1.0,
            1.93 * x4**3 / (x2 * x3 * x6**4) - 1.0,
            1.93 * x5**3 / (x2 * x3 * x7**4) - 1.0,
            np.sqrt((745.0 * x4 / (x2 * x3)) ** 2 + 16.9e6) / (110.0 * x6**3) - 1.0,
            np.sqrt((745.0 * x5 / (x2 * x3)) ** 2 + 157.5e6) / (85.0 * x7**3) - 1.0,
            x2 * x3 / 40.0 - 1.0,
            5.0 * x2 / x1 - 1.0,
            x1 / (12.0 * x2) - 1.0,
            (1.5 * x6 + 1.9) / x4 - 1.0,
            (1.1 * x7 + 1.9) / x5 - 1.0,
        ])

    variables = [Real(2.6, 3.6), Real(0.7, 0.8), Ordinal(np.arange(17, 29)), Real(7.3, 8.3), Real(7.3, 8.3),
                 Real(2.9, 3.9), Real(5.0, 5.5)]
    return Problem("speed reducer", variables, f, g, 2994.4710661,
                   (3.5, 0.7, 17, 7.3, 7.71532, 3.35021, 5.28665))


# material: (density kg/m^3, yield MPa, cost per kg): unordered, hence categorical
_MATERIALS = np.array([[7850.0, 250.0, 1.0], [2700.0, 95.0, 3.2], [4430.0, 880.0, 22.0],
                       [7900.0, 520.0, 4.5], [1800.0, 600.0, 35.0]])


def material_beam() -> Problem:
    """Cheapest rectangular cantilever carrying 10 kN at 1 m: material categorical (5 unordered
    choices), width b in [0.01, 0.2] m, height h from 40 stock sizes 0.01..0.4 m; bending stress
    <= yield / 1.5 and h <= 4 b.  The optimum is found by enumeration (see ``_beam_best``)."""
    heights = np.round(np.linspace(0.01, 0.4, 40), 4)

    def f(X):
        mat, b, h = X.T
        props = _MATERIALS[mat.astype(int)]
        return props[:, 0] * b * h * 1.0 * props[:, 2]

    def g(X):
        mat, b, h = X.T
        props = _MATERIALS[mat.astype(int)]
        stress = 6.0 * 10e3 * 1.0 / (b * h**2) / 1e6
        return np.column_stack([stress / (props[:, 1] / 1.5) - 1.0, (h - 4.0 * b) / 0.4])

    fb, xb = _beam_best(heights)
    return Problem("material beam", [Categorical(range(5)), Real(0.01, 0.2), Ordinal(heights)], f, g, fb, xb)


def _beam_best(heights: np.ndarray) -> tuple[float, tuple]:
    # For a material and height, cost grows with b: the least feasible b is the optimum.
    best = (math.inf, ())
    for m, (rho, sy, cost) in enumerate(_MATERIALS):
        for h in heights:
            b = max(6.0 * 10e3 / (h**2 * sy * 1e6 / 1.5), h / 4.0, 0.01)
            if b <= 0.2:
                val = rho * b * h * cost
                if val < best[0]:
                    best = (val, (m, b, h))
    return best


PROBLEMS = {
    "pressure_vessel": pressure_vessel,
    "coil_spring": coil_spring,
    "gear_train": gear_train,
    "speed_reducer": speed_reducer,
    "material_beam": material_beam,
}
