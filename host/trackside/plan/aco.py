"""ACO_MV: ant colony optimisation for mixed-variable problems, with restarts.

Implements the algorithm of Liao, Socha, Montes de Oca, Stuetzle and Dorigo, "Ant colony
optimization for mixed-variable optimization problems", IEEE TEVC 18(4), 2014, which extends
ACO_R (Socha and Dorigo, "Ant colony optimization for continuous domains", EJOR 185, 2008):

* a solution archive of ``k`` solutions kept sorted best first; rank ``l`` (0-based) has weight
  ``omega_l = exp(-l^2 / (2 q^2 k^2)) / (q k sqrt(2 pi))``;
* each ant picks one guide solution with probability proportional to ``omega`` and, for every
  real and ordinal variable, samples a normal around the guide's value with
  ``sigma = xi * sum_e |s_e - s_guide| / (k - 1)`` (the archive's spread);
* ordinal variables are relaxed: sampled on their index scale and rounded to the nearest index;
* categorical variables are sampled from value weights ``omega_{j_l} / u_l + q / eta`` (``j_l``
  the best rank using value ``l``, ``u_l`` how many archive rows use it, ``eta`` how many values
  the archive does not use);
* values outside the bounds are clamped to them;
* constraints by feasibility-first ranking (Deb 2000: feasible before infeasible, feasible by
  objective, infeasible by total violation) or by a static penalty;
* restarts on stagnation: when the best solution has not improved by a relative ``restart_tol``
  for ``restart_iters`` iterations, the archive is re-drawn at random (keeping the best
  ``restart_keep`` rows);
* Trackside extension: before each restart a local probe (SLSQP on the real variables from the
  epoch's best and from its ordinal +-1 neighbours) and a last one near the end of the budget.

The archive upkeep, ranking and sampling run in C (``trackside.plan._core``, cffi API mode);
``backend="numpy"`` runs the same algorithm in numpy, drawing the same random numbers, so the
two give the same result to rounding.  Random numbers always come from
``numpy.random.default_rng(seed)``: the same seed gives the same result.

Example::

    >>> from trackside.plan.aco import minimize, Real, Ordinal
    >>> res = minimize(lambda X: (X[:, 0] - 1.3) ** 2 + X[:, 1], [Real(-5, 5), Ordinal([0, 1, 2])],
    ...                max_evals=2000, seed=1)
    >>> round(float(res.x[0]), 3), float(res.x[1])
    (1.3, 0.0)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = [
    "Real",
    "Ordinal",
    "Categorical",
    "OptimizeResult",
    "minimize",
    "core_available",
    "CoreUnavailableError",
]

REAL, ORD, CAT = 0, 1, 2


class Real:
    """A continuous variable in ``[lo, hi]``."""

    kind = REAL

    def __init__(self, lo: float, hi: float) -> None:
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
            raise ValueError(f"Real needs finite lo < hi, got lo={lo}, hi={hi}")
        self.lo, self.hi = lo, hi

    def __repr__(self) -> str:
        return f"Real({self.lo!r}, {self.hi!r})"


class _Discrete:
    kind = -1

    def __init__(self, values: Sequence[float]) -> None:
        try:
            vals = np.asarray(list(values), dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"{type(self).__name__} values must be numbers (X is a float array); "
                "map labels to numbers first"
            ) from None
        if vals.ndim != 1 or vals.size < 1:
            raise ValueError(f"{type(self).__name__} needs at least one value")
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"{type(self).__name__} values must be finite")
        if np.unique(vals).size != vals.size:
            raise ValueError(f"{type(self).__name__} values must be distinct")
        self.values = vals

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.values.tolist()!r})"


class Ordinal(_Discrete):
    """An ordered discrete variable: ``values`` in their natural order (sampled by index)."""

    kind = ORD


class Categorical(_Discrete):
    """An unordered discrete variable: one of ``values`` (no notion of nearness)."""

    kind = CAT


@dataclass
class OptimizeResult:
    """Outcome of :func:`minimize`.

    ``x`` holds variable values (not indices); ``history`` lists ``(nfev, fun, violation)``
    each time the best solution improved; ``violation`` is the sum of positive constraint
    values of ``x`` (0 when ``feasible``).
    """

    x: np.ndarray
    fun: float
    nfev: int
    feasible: bool
    history: list = field(default_factory=list)
    violation: float = 0.0
    nit: int = 0
    restarts: int = 0
    backend: str = "c"
    message: str = ""

    @property
    def success(self) -> bool:
        return self.feasible and math.isfinite(self.fun)


class CoreUnavailableError(ImportError):
    """The compiled C core is missing (the package was not built)."""


def _load_core():
    try:
        import importlib

        _core = importlib.import_module("trackside.plan._core")
    except ImportError as exc:
        raise CoreUnavailableError(
            "trackside.plan's C core (trackside.plan._core) is not built: reinstall with "
            "`pip install -e .` (needs a C compiler and Python headers), or pass backend='numpy' "
            f"for the slower reference implementation ({exc})"
        ) from exc
    return _core


def core_available() -> bool:
    """True when the compiled C core can be imported."""
    try:
        _load_core()
    except CoreUnavailableError:
        return False
    return True


class _Space:
    """Variables flattened to arrays shared by both backends (codes = values or indices)."""

    def __init__(self, variables: Sequence[Real | Ordinal | Categorical]) -> None:
        if len(variables) == 0:
            raise ValueError("minimize needs at least one variable")
        for v in variables:
            if not isinstance(v, (Real, Ordinal, Categorical)):
                raise TypeError(f"variables must be Real, Ordinal or Categorical, got {v!r}")
        self.vars = list(variables)
        self.d = len(variables)
        self.vtype = np.array([v.kind for v in variables], dtype=np.int32)
        self.nvals = np.array([1 if v.kind == REAL else v.values.size for v in variables], dtype=np.int32)
        self.lo = np.array([v.lo if v.kind == REAL else 0.0 for v in variables])
        self.hi = np.array([v.hi if v.kind == REAL else v.values.size - 1.0 for v in variables])
        tables = [np.zeros(1) if v.kind == REAL else v.values for v in variables]
        self.val_off = np.zeros(self.d, dtype=np.int32)
        self.val_off[1:] = np.cumsum([t.size for t in tables])[:-1]
        self.table = np.concatenate(tables)
        self.cat_off = np.zeros(self.d, dtype=np.int32)
        ncum = [int(v.values.size) if v.kind == CAT else 0 for v in variables]
        self.cat_off[1:] = np.cumsum(ncum)[:-1]
        self.cat_size = max(1, int(sum(ncum)))
        self.has_cat = any(v.kind == CAT for v in variables)
        self.max_nv = int(self.nvals.max())
        self.disc = self.vtype != REAL
        self.rot_idx = np.flatnonzero(self.vtype != CAT).astype(np.int32)

    def random_codes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        u = rng.random((n, self.d))
        codes = self.lo + u * (self.hi - self.lo)
        # discrete: uniform over indices
        codes[:, self.disc] = np.floor(u[:, self.disc] * self.nvals[self.disc])
        return codes

    def encode(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if X.shape[1] != self.d:
            raise ValueError(f"x0 rows need {self.d} values, got {X.shape[1]}")
        codes = X.copy()
        for j, v in enumerate(self.vars):
            if v.kind == REAL:
                codes[:, j] = np.clip(X[:, j], v.lo, v.hi)
            else:
                dist = np.abs(X[:, j][:, None] - v.values[None, :])
                idx = dist.argmin(axis=1)
                if dist[np.arange(X.shape[0]), idx].max() > 1e-9 * (1.0 + np.abs(v.values).max()):
                    raise ValueError(f"x0 column {j} holds a value not in {v!r}")
                codes[:, j] = idx
        return codes


class _NumpyCore:
    """Reference implementation of the C core, operation for operation."""

    name = "numpy"

    def __init__(self, sp: _Space, q: float) -> None:
        self.sp, self.q = sp, q

    def cat_probs(self, arch: np.ndarray, omega: np.ndarray) -> np.ndarray:
        sp = self.sp
        out = np.zeros(sp.cat_size)
        for j in np.flatnonzero(sp.vtype == CAT):
            nv = int(sp.nvals[j])
            col = arch[:, j].astype(np.int64)
            count = np.bincount(col, minlength=nv)
            best = np.full(nv, -1)
            uniq, first = np.unique(col, return_index=True)
            best[uniq] = first
            eta = int(np.sum(count == 0))
            w = np.where(count > 0, omega[np.maximum(best, 0)] / np.maximum(count, 1), 0.0)
            if eta > 0:
                w = w + self.q / eta
            cum = np.cumsum(w)
            out[sp.cat_off[j]: sp.cat_off[j] + nv] = cum / cum[-1]
        return out

    def sample(self, arch, cumw, cat_cum, xi, u_guide, z, u_cat, u_rot=None) -> np.ndarray:
        sp = self.sp
        k = arch.shape[0]
        guide = np.searchsorted(cumw[:-1], u_guide, side="right")
        G = arch[guide]
        s = np.abs(arch[None, :, :] - G[:, None, :]).sum(axis=1)
        v = G + xi * s / (k - 1) * z
        v = np.minimum(np.maximum(v, sp.lo), sp.hi)
        ordm = sp.vtype == ORD
        v[:, ordm] = np.floor(v[:, ordm] + 0.5)
        for j in np.flatnonzero(sp.vtype == CAT):
            nv = int(sp.nvals[j])
            cum = cat_cum[sp.cat_off[j]: sp.cat_off[j] + nv]
            v[:, j] = np.searchsorted(cum[:-1], u_cat[:, j], side="right")
        if u_rot is not None:
            for a, l in enumerate(guide):
                v[a, sp.rot_idx] = self._rotated(arch, int(l), xi, z[a], u_rot[a])
        return v

    def _rotated(self, arch, l, xi, z, u_rot) -> np.ndarray:
        # ACO_R correlation handling, same steps as sample_rotated() in acocore.c
        sp = self.sp
        k, idx = arch.shape[0], sp.rot_idx
        n = idx.size
        D = arch[:, idx] - arch[l, idx]
        dist = np.sqrt((D * D).sum(axis=1))
        cum = np.cumsum(dist)
        tot, dmax = cum[-1], dist.max()
        basis: list[np.ndarray] = []

        def orth(w: np.ndarray) -> tuple[np.ndarray, float]:
            for b in basis:
                w = w - np.dot(w, b) * b
            return w, float(np.sqrt(np.dot(w, w)))

        if tot > 0:
            for u in u_rot:
                r = int(np.searchsorted(cum[:-1], u * tot, side="right"))
                w, nw = orth(D[r].copy())
                if nw > 1e-12 * dmax:
                    basis.append(w / nw)
        for i in range(n):
            if len(basis) == n:
                break
            w, nw = orth(np.eye(n)[i])
            if nw > 1e-6:
                basis.append(w / nw)
        B = np.array(basis)
        y = xi * np.abs(D @ B.T).sum(axis=0) / (k - 1) * z[idx]
        x = arch[l, idx] + y @ B
        x = np.minimum(np.maximum(x, sp.lo[idx]), sp.hi[idx])
        o = sp.vtype[idx] == ORD
        x[o] = np.floor(x[o] + 0.5)
        return x

    def decode(self, codes: np.ndarray) -> np.ndarray:
        sp = self.sp
        X = codes.copy()
        idx = sp.val_off[sp.disc] + codes[:, sp.disc].astype(np.int64)
        X[:, sp.disc] = sp.table[idx]
        return X

    def insert(self, arch, af, av, newc, nf, nv, penalty_mode, penalty, eps=0.0) -> int:
        k = arch.shape[0]
        A = np.concatenate([arch, newc])
        F = np.concatenate([af, nf])
        V = np.concatenate([av, nv])
        if penalty_mode:
            order = np.argsort(F + penalty * V, kind="stable")
        else:
            order = _rank(F, V, eps)
        keep = order[:k]
        new_pos = np.flatnonzero(keep >= k)
        arch[:] = A[keep]
        af[:] = F[keep]
        av[:] = V[keep]
        return int(new_pos[0]) if new_pos.size else k


class _CCore:
    """cffi wrappers around acocore.c (static arrays wrapped once)."""

    name = "c"

    def __init__(self, sp: _Space, q: float) -> None:
        core = _load_core()
        self.ffi, self.lib = core.ffi, core.lib
        self.sp, self.q = sp, q
        self._scratch = np.zeros(2 * sp.max_nv, dtype=np.int32)
        self._cat = np.zeros(sp.cat_size)
        self._work = np.zeros(1)
        d, i = self._d, self._i
        self._p = {"vtype": i(sp.vtype), "lo": d(sp.lo), "hi": d(sp.hi), "nvals": i(sp.nvals),
                   "cat_off": i(sp.cat_off), "val_off": i(sp.val_off), "table": d(sp.table),
                   "rot_idx": i(sp.rot_idx), "scratch": i(self._scratch), "cat": d(self._cat)}
        self._cache: dict[int, Any] = {}

    def _d(self, a):
        return self.ffi.from_buffer("double[]", a)

    def _i(self, a):
        return self.ffi.from_buffer("int[]", a)

    def _const(self, a):
        # omega and cumw do not change during a run: wrap them once
        key = id(a)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not a:
            hit = (a, self._d(a))
            self._cache[key] = hit
        return hit[1]

    def cat_probs(self, arch, omega):
        sp, p = self.sp, self._p
        self.lib.aco_cat_probs(arch.shape[0], sp.d, self._d(arch), self._const(omega), p["vtype"], p["nvals"],
                               p["cat_off"], self.q, p["cat"], p["scratch"])
        return self._cat.copy()

    def sample(self, arch, cumw, cat_cum, xi, u_guide, z, u_cat, u_rot=None):
        sp, p = self.sp, self._p
        k, m = arch.shape[0], u_guide.shape[0]
        out = np.empty((m, sp.d))
        nrot = 0 if u_rot is None else int(sp.rot_idx.size)
        if nrot:
            need = k * nrot + nrot * nrot + 2 * k + 2 * nrot
            if self._work.size < need:
                self._work = np.zeros(need)
        urot = u_rot if nrot else self._work
        self.lib.aco_sample(k, sp.d, m, self._d(arch), self._const(cumw), p["vtype"], p["lo"], p["hi"],
                            p["nvals"], p["cat_off"], self._d(cat_cum), xi, self._d(u_guide), self._d(z),
                            self._d(u_cat), self._d(out), nrot, p["rot_idx"], self._d(urot),
                            self._d(self._work))
        return out

    def decode(self, codes):
        sp, p = self.sp, self._p
        out = np.empty_like(codes)
        self.lib.aco_decode(codes.shape[0], sp.d, self._d(codes), p["vtype"], p["val_off"], p["table"],
                            self._d(out))
        return out

    def insert(self, arch, af, av, newc, nf, nv, penalty_mode, penalty, eps=0.0):
        return int(self.lib.aco_insert(arch.shape[0], self.sp.d, newc.shape[0], self._d(arch), self._d(af),
                                       self._d(av), self._d(newc), self._d(nf), self._d(nv),
                                       int(penalty_mode), float(penalty), float(eps)))


def _make_core(backend: str, sp: _Space, q: float):
    if backend == "c":
        return _CCore(sp, q)
    if backend == "numpy":
        return _NumpyCore(sp, q)
    if backend == "auto":
        return _CCore(sp, q) if core_available() else _NumpyCore(sp, q)
    raise ValueError(f"backend must be 'c', 'numpy' or 'auto', got {backend!r}")


def _rank(F: np.ndarray, V: np.ndarray, eps: float) -> np.ndarray:
    """Stable feasibility-first order (violations <= eps count as feasible)."""
    infeas = V > eps
    return np.lexsort((np.where(infeas, V, F), infeas))


def _better(f1: float, v1: float, f2: float, v2: float) -> bool:
    if (v1 > 0) != (v2 > 0):
        return v1 <= 0
    return v1 < v2 if v1 > 0 else f1 < f2


def minimize(
    objective: Callable[[np.ndarray], np.ndarray],
    variables: Sequence[Real | Ordinal | Categorical],
    constraints: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    max_evals: int,
    seed: int | None,
    archive_size: int = 60,
    n_ants: int = 2,
    q: float = 0.1,
    xi: float = 0.7,
    rotation: bool | None = None,
    constraint_handling: str = "rank",
    penalty: float = 1e6,
    ctol: float = 0.0,
    restart_iters: int = 300,
    restart_tol: float = 1e-6,
    restart_keep: int = 0,
    restart_spread: float = 1e-4,
    eps_evals: int = 0,
    eps_theta: float = 0.2,
    eps_cp: float = 2.0,
    probe_evals: int = 400,
    x0: np.ndarray | None = None,
    target: float | None = None,
    max_time: float | None = None,
    backend: str = "c",
    callback: Callable[[np.ndarray, float, float, int], bool | None] | None = None,
) -> OptimizeResult:
    """Minimise ``objective`` over mixed real/ordinal/categorical variables with ACO_MV.

    Args:
        objective: ``f(X) -> (n,)`` for an ``(n, d)`` float array of candidate values.
        variables: one :class:`Real`, :class:`Ordinal` or :class:`Categorical` per column.
        constraints: optional ``g(X) -> (n, c)``; a row is feasible when every entry <= ``ctol``.
        max_evals: evaluation budget (rows passed to ``objective``).
        seed: seed of ``numpy.random.default_rng``; the same seed gives the same result.
        archive_size: ``k``, solutions kept in the archive.
        n_ants: ``m``, solutions sampled per iteration.
        q: locality of the search (small: exploit the best ranks).
        xi: speed of convergence (``sigma`` factor).
        rotation: sample real and ordinal variables in ACO_R's rotated basis (handles
            correlated variables and constraint ridges; cost O(k n^2 + n^3) per ant for n such
            variables).  ``None``: on when 2 <= n <= 40.
        constraint_handling: ``"rank"`` (feasibility first) or ``"penalty"``
            (``f + penalty * violation``).
        ctol: tolerance on constraint values (rounding on active constraints).
        restart_iters: iterations without relative improvement ``restart_tol`` before a restart.
        restart_spread: also restart when every real/ordinal column of the archive spans at most
            this fraction of its range and every categorical column holds one value (0: off).
        restart_keep: best archive rows kept at a restart (0: fully independent restarts; the
            best solution is remembered across restarts either way).
        eps_evals: with rank handling, use the epsilon-constrained ranking of Takahama and
            Sakai for the first ``eps_evals`` evaluations of every epoch: violations up to
            ``eps`` rank as feasible, ``eps`` falling from the ``eps_theta``-quantile violation of
            the new archive to 0 as ``(1 - t)^eps_cp``.  0 disables it (pure feasibility first).
        probe_evals: local probe before each restart (a Trackside extension, not in ACO_MV):
            SLSQP (scipy, finite differences) on the real variables from the epoch's best, then
            from each ordinal variable's one-step-down and one-step-up neighbour (other discrete
            variables fixed), at most this many evaluations each, all counted in ``nfev``; and
            one final SLSQP from the best when at most ``min(probe_evals, max_evals // 10)``
            evaluations are left.  0 disables it (plain ACO_MV with restarts).
        x0: optional ``(r, d)`` or ``(d,)`` initial solutions (values) put in the first archive.
        target: stop as soon as a feasible solution with ``fun <= target`` is found.
        max_time: stop after this many seconds (wall clock).
        backend: ``"c"`` (compiled core), ``"numpy"`` (reference) or ``"auto"``.
        callback: ``callback(x, fun, violation, nfev)`` after each improvement; return True to stop.

    Returns:
        :class:`OptimizeResult` with ``x`` (values), ``fun``, ``nfev``, ``feasible``, ``history``.
    """
    sp = _Space(variables)
    max_evals = int(max_evals)
    k, m = int(archive_size), int(n_ants)
    if k < 2:
        raise ValueError(f"archive_size must be >= 2, got {archive_size}")
    if m < 1:
        raise ValueError(f"n_ants must be >= 1, got {n_ants}")
    if max_evals < k:
        raise ValueError(f"max_evals={max_evals} is smaller than archive_size={k}")
    if not (q > 0 and xi > 0):
        raise ValueError(f"q and xi must be positive, got q={q}, xi={xi}")
    if constraint_handling not in ("rank", "penalty"):
        raise ValueError(f"constraint_handling must be 'rank' or 'penalty', got {constraint_handling!r}")
    if not 0 <= restart_keep < k:
        raise ValueError(f"restart_keep must be in [0, archive_size), got {restart_keep}")
    pen_mode = constraint_handling == "penalty"
    nrot = int(sp.rot_idx.size)
    if rotation is None:
        rotation = 2 <= nrot <= 40
    rotation = bool(rotation) and nrot >= 2
    core = _make_core(backend, sp, q)
    rng = np.random.default_rng(seed)
    ranks = np.arange(k, dtype=float)
    omega = np.exp(-(ranks**2) / (2.0 * q * q * k * k)) / (q * k * math.sqrt(2.0 * math.pi))
    cumw = np.cumsum(omega)
    cumw = cumw / cumw[-1]
    t_start = time.perf_counter()

    nfev = 0
    best = {"x": None, "f": math.inf, "v": math.inf}
    history: list = []
    stop = False

    def evaluate(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if codes.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        return evaluate_values(core.decode(codes))

    last_G: list = [None]

    def evaluate_values(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal nfev, stop
        n = X.shape[0]
        f = np.asarray(objective(X), dtype=float).reshape(-1)
        if f.shape[0] != n:
            raise ValueError(f"objective returned {f.shape[0]} values for {n} rows")
        if constraints is not None:
            G = np.asarray(constraints(X), dtype=float)
            if G.ndim == 1:
                G = G.reshape(n, -1)
            if G.shape[0] != n:
                raise ValueError(f"constraints returned {G.shape[0]} rows for {n} rows")
            last_G[0] = G
            with np.errstate(invalid="ignore"):
                v = np.sum(np.maximum(G - ctol, 0.0), axis=1)
            v[~np.isfinite(v)] = math.inf
        else:
            v = np.zeros(n)
        f = np.where(np.isnan(f), math.inf, f)
        nfev += n
        feas = v <= 0
        i = int(np.argmin(np.where(feas, f, math.inf))) if feas.any() else int(np.argmin(v))
        if _better(f[i], v[i], best["f"], best["v"]):
            best.update(x=X[i].copy(), f=float(f[i]), v=float(v[i]))
            history.append((nfev - n + i + 1, best["f"], best["v"]))
            if callback is not None and callback(best["x"].copy(), best["f"], best["v"], nfev):
                stop = True
            if target is not None and best["v"] <= 0 and best["f"] <= target:
                stop = True
        return f, v

    def new_archive(keep: np.ndarray | None, kf, kv) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_keep = 0 if keep is None else keep.shape[0]
        codes = sp.random_codes(rng, k - n_keep)
        f, v = evaluate(codes)
        if n_keep:
            codes, f, v = np.concatenate([keep, codes]), np.concatenate([kf, f]), np.concatenate([kv, v])
        if pen_mode:
            order = np.argsort(f + penalty * v, kind="stable")
        else:
            order = _rank(f, v, 0.0)
        return (np.ascontiguousarray(codes[order]), np.ascontiguousarray(f[order]),
                np.ascontiguousarray(v[order]))

    if x0 is not None:
        seeds = sp.encode(x0)[:k]
        sf, sv = evaluate(seeds)
        arch, af, av = new_archive(seeds, sf, sv)
    else:
        arch, af, av = new_archive(None, None, None)

    def eps_start(av: np.ndarray) -> float:
        # epsilon level of a new epoch: the violation of the eps_theta-quantile row
        if eps_evals <= 0 or pen_mode:
            return 0.0
        return float(np.sort(av)[min(k - 1, int(eps_theta * k))])

    def slsqp(xn: np.ndarray, reserve: int = k) -> bool:
        # local search on the real variables of xn (discrete ones fixed): scipy's SLSQP with
        # finite differences, every evaluation counted; constraints get a 1e-9 margin so the
        # (exactly checked) result is feasible.  False when it used its whole budget or the
        # run must stop.
        from scipy.optimize import minimize as sp_minimize

        budget = min(probe_evals, max_evals - nfev - reserve)
        if budget < 4 * (n_real + 1):
            return False
        cache: dict = {}
        used = [0]

        class _Spent(Exception):
            pass

        def ev(y: np.ndarray):
            key = y.tobytes()
            hit = cache.get(key)
            if hit is None:
                if used[0] >= budget or stop:
                    raise _Spent
                X = xn.copy()
                X[ri] = np.minimum(np.maximum(y, sp.lo[ri]), sp.hi[ri])
                f, _ = evaluate_values(X[None, :])
                used[0] += 1
                g = last_G[0][0] if constraints is not None else np.zeros(0)
                hit = cache[key] = (float(f[0]) if math.isfinite(f[0]) else 1e300, np.asarray(g, dtype=float))
            return hit

        cons = []
        if constraints is not None:
            cons = [{"type": "ineq", "fun": lambda y: np.nan_to_num(ctol - 1e-9 - ev(y)[1], nan=-1e300,
                                                                   posinf=1e300, neginf=-1e300)}]
        try:
            sp_minimize(lambda y: ev(y)[0], xn[ri], method="SLSQP", bounds=list(zip(sp.lo[ri], sp.hi[ri])),
                        constraints=cons, options={"maxiter": 100, "ftol": 1e-12})
        except _Spent:
            pass
        return not stop and used[0] < budget

    def probe(xb: np.ndarray) -> None:
        # Ordinal neighbourhood probe (Trackside extension, not in ACO_MV): a run that
        # converged next to the optimum on a discrete variable (pressure vessel: one thickness
        # step too thick) cannot step across, because the real variables must move with it.
        # Try each ordinal variable +-1 step with the reals re-optimised locally.  A local
        # search that spends its whole budget ends the probe (the rest goes back to ACO_MV).
        has_real = bool(np.any(sp.vtype == REAL))
        # the epoch's best itself first: an archive may stall short of a constraint's edge
        if has_real and not slsqp(xb.copy()):
            return
        for j in np.flatnonzero(sp.vtype == ORD):
            vals = sp.vars[j].values
            i0 = int(np.argmin(np.abs(vals - xb[j])))
            for i in (i0 - 1, i0 + 1):
                if stop or not 0 <= i < vals.size:
                    continue
                xn = xb.copy()
                xn[j] = vals[i]
                if not has_real:
                    evaluate_values(xn[None, :])
                    continue
                if not slsqp(xn):
                    return

    ri = np.flatnonzero(sp.vtype == REAL)
    n_real = int(ri.size)

    cont, catc = sp.vtype != CAT, sp.vtype == CAT
    span = restart_spread * (sp.hi - sp.lo)[cont]
    nit = restarts = stale = 0
    ref_f, ref_v = af[0], av[0]
    eps0, epoch_start, eps = eps_start(av), nfev, 0.0
    final_probe = probe_evals > 0 and n_real > 0
    while not stop and nfev < max_evals:
        if max_time is not None and time.perf_counter() - t_start > max_time:
            break
        if eps0 > 0 or eps > 0:
            # epsilon-constrained ranking: the level falls to 0 over eps_evals evaluations
            t = (nfev - epoch_start) / eps_evals
            eps = eps0 * (1.0 - t) ** eps_cp if t < 1.0 else 0.0
            order = _rank(af, av, eps)
            arch, af, av = arch[order], af[order], av[order]
            if eps == 0.0:
                eps0 = 0.0
        mm = min(m, max_evals - nfev)
        cat_cum = core.cat_probs(arch, omega) if sp.has_cat else np.zeros(1)
        u_guide = rng.random(mm)
        z = rng.standard_normal((mm, sp.d))
        u_cat = rng.random((mm, sp.d)) if sp.has_cat else np.zeros((mm, sp.d))
        u_rot = rng.random((mm, nrot)) if rotation else None
        newc = core.sample(arch, cumw, cat_cum, xi, u_guide, z, u_cat, u_rot)
        nf, nv = evaluate(newc)
        core.insert(arch, af, av, newc, nf, nv, pen_mode, penalty, eps)
        nit += 1
        # stagnation: no relative improvement of the archive's best for restart_iters iterations
        improved = (av[0] < ref_v * (1 - restart_tol)) if ref_v > 0 else (
            av[0] <= 0 and af[0] < ref_f - restart_tol * max(abs(ref_f), 1e-12))
        if improved or eps > 0:
            ref_f, ref_v, stale = af[0], av[0], 0
        else:
            stale += 1
        collapsed = False
        if restart_spread > 0 and nit % 5 == 0:
            # the archive has shrunk to (nearly) one point: nothing left to sample
            collapsed = bool(np.all((arch[:, cont].max(axis=0) - arch[:, cont].min(axis=0)) <= span)
                             and np.all(arch[:, catc] == arch[0, catc]))
        if final_probe and max_evals - nfev <= min(probe_evals, max_evals // 10) and not stop:
            # budget nearly spent: one last local search from the best so far (it may have
            # been found too late for a restart's probe)
            final_probe = False
            slsqp(best["x"].copy(), reserve=0)
            continue
        if (stale >= restart_iters or collapsed) and nfev + k <= max_evals and not stop:
            if probe_evals > 0:
                probe(core.decode(arch[:1])[0])
            if stop or nfev + k > max_evals:
                break
            restarts += 1
            keep = restart_keep
            arch, af, av = new_archive(arch[:keep] if keep else None, af[:keep], av[:keep])
            ref_f, ref_v, stale = af[0], av[0], 0
            eps0, epoch_start, eps = eps_start(av), nfev, 0.0

    x = best["x"] if best["x"] is not None else core.decode(arch[:1])[0]
    feasible = best["v"] <= 0
    msg = "feasible solution found" if feasible else "no feasible solution found"
    return OptimizeResult(x=x, fun=best["f"], nfev=nfev, feasible=bool(feasible), history=history,
                          violation=best["v"], nit=nit, restarts=restarts, backend=core.name, message=msg)
