"""One clock for all nodes: node microsecond clocks mapped to host time, then aligned.

Each node counts microseconds on its own crystal (offset and drift of tens of ppm against the
host) with a counter that wraps. :class:`ClockSync` estimates, per node,

    host_s = host_ref + offset_s + (node_us - node_ref) * 1e-6 * (1 + drift)

from time-sync exchanges (host sends at ``t1``, node answers with its clock ``tn``, host receives
at ``t2``) or, without exchanges, from the host receive times of data frames. USB latency only
ever delays a message, so the estimator keeps the fastest exchange per window (minimum round trip,
or minimum receive delay) and fits a robust line through those (Theil-Sen), which ignores the
jitter of the rest. Its residual is reported per node.

:func:`align` puts samples of many nodes on one grid at the session rate: each grid slot takes the
node's sample nearest in host time if it lies within half a period, else the slot is marked
missing (never interpolated). The per-node alignment error is the RMS distance between sample
time and slot time plus the clock fit residual.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass, field

import numpy as np

US = 1e-6


class Unwrapper:
    """Turns a wrapping counter (period ``period``) into a monotonic 64-bit count.

    A step backwards of less than half a period is taken as reordering/jitter (returned as a
    smaller value), not as a wrap."""

    def __init__(self, period: int = 1 << 32):
        if period <= 0:
            raise ValueError(f"period must be > 0, got {period}")
        self.period = int(period)
        self.half = self.period // 2
        self.last_raw: int | None = None
        self.base = 0
        self.last = 0

    def __call__(self, raw: int) -> int:
        if self.last_raw is None:
            self.last_raw = raw
            self.last = raw
            return raw
        d = (raw - self.last_raw) % self.period
        if d >= self.half:
            d -= self.period
        self.last_raw = raw
        self.last += d
        return self.last

    def reset(self) -> None:
        """Forget the history (node rebooted: its clock restarted)."""
        self.last_raw = None

    def batch(self, raw: np.ndarray) -> np.ndarray:
        """Unwrap an array in one go (vectorised), continuing from the previous call."""
        raw = np.asarray(raw, dtype=np.int64)
        if raw.size == 0:
            return raw
        prev = raw[0] if self.last_raw is None else self.last_raw
        start = raw[0] if self.last_raw is None else self.last
        d = np.diff(raw, prepend=prev) % self.period
        d[d >= self.half] -= self.period
        out = start + np.cumsum(d)
        self.last_raw = int(raw[-1])
        self.last = int(out[-1])
        return out


@dataclass
class ClockModel:
    """``host_s = host_ref + offset_s + (node_us - node_ref) * 1e-6 * (1 + drift)``."""

    node_ref: int = 0              # unwrapped node µs at the reference point
    host_ref: float = 0.0          # host seconds at the reference point (before offset)
    offset_s: float = 0.0
    drift: float = 0.0             # fractional rate error of the node (ppm = drift * 1e6)
    residual_s: float = float("nan")  # RMS residual of the fit points
    npoints: int = 0

    def to_host(self, node_us: np.ndarray | int) -> np.ndarray | float:
        """Host time (s) of unwrapped node time(s) in µs."""
        return self.host_ref + self.offset_s + (np.asarray(node_us, dtype=np.float64) - self.node_ref) \
            * (US * (1.0 + self.drift))

    @property
    def drift_ppm(self) -> float:
        return self.drift * 1e6


@dataclass
class ClockSync:
    """Streaming estimator of one node's :class:`ClockModel`.

    ``window_s``: one fit point (the fastest message) per window of host time.
    ``history``: fit over the last so many windows (follows slow drift changes, e.g. warming).
    """

    period: int = 1 << 32
    window_s: float = 1.0
    history: int = 120
    _model: ClockModel = field(default_factory=ClockModel, init=False)
    _dirty: bool = field(default=False, init=False)
    _unwrap: Unwrapper = field(init=False)
    _points: deque = field(init=False)
    _win_start: float | None = field(default=None, init=False)
    _best: tuple | None = field(default=None, init=False)
    ready: bool = field(default=False, init=False)
    version: int = field(default=0, init=False)   # bumped whenever the model may change (caches)

    def __post_init__(self) -> None:
        self._unwrap = Unwrapper(self.period)
        self._points = deque(maxlen=self.history)

    def unwrap(self, node_us: int) -> int:
        return self._unwrap(node_us)

    def exchange(self, t1: float, node_us: int, t2: float, *, hold_s: float = 0.0,
                 unwrapped: bool = False) -> None:
        """A time-sync round trip: request sent at host ``t1``, answered with the node clock
        ``node_us`` (the middle of its receive/send times), reply received at host ``t2``;
        ``hold_s``: time the node held the request (t3 - t2). The node read its clock inside
        [t1, t2]; the round trip minus the hold time is the cost to minimise."""
        if t2 < t1:
            return  # inconsistent (host clock stepped): ignore
        u = node_us if unwrapped else self._unwrap(node_us)
        self._offer(t2, u, 0.5 * (t1 + t2), (t2 - t1) - hold_s)

    def one_way(self, node_us: int, t_recv: float, *, unwrapped: bool = False) -> None:
        """A message stamped ``node_us`` by the node, received at host ``t_recv``: the node time
        happened at ``t_recv - delay`` with delay >= 0; the smallest delay per window wins."""
        u = node_us if unwrapped else self._unwrap(node_us)
        self._offer(t_recv, u, t_recv, t_recv - u * US)

    def _offer(self, t_now: float, u: int, host_est: float, cost: float) -> None:
        if self._win_start is None:
            self._win_start = t_now
        if t_now - self._win_start >= self.window_s and self._best is not None:
            self._points.append(self._best[1:])
            self._best = None
            self._win_start = t_now
            self._refit()
        if self._best is None or cost < self._best[0]:
            self._best = (cost, u, host_est)

    def flush(self) -> ClockModel:
        """Close the current window and refit (end of recording)."""
        if self._best is not None:
            self._points.append(self._best[1:])
            self._best = None
            self._refit()
        return self.model

    def reset(self) -> None:
        """The node rebooted: its clock restarted, previous points no longer apply."""
        self._unwrap.reset()
        self._points.clear()
        self._best = None
        self._win_start = None
        self.ready = False
        self._dirty = False
        self.version += 1
        self._model = ClockModel()

    def _refit(self) -> None:
        # fitted lazily, when the model is next asked for (offline: once at the end)
        self._dirty = True
        self.ready = len(self._points) >= 2
        self.version += 1

    @property
    def model(self) -> ClockModel:
        """The current fit (recomputed if fit points were added since)."""
        if self._dirty:
            self._dirty = False
            self._model = fit_clock(np.array([p[0] for p in self._points], dtype=np.int64),
                                    np.array([p[1] for p in self._points], dtype=np.float64))
        return self._model


def fit_clock(node_us: np.ndarray, host_s: np.ndarray) -> ClockModel:
    """Robust line fit of host time against unwrapped node time (Theil-Sen: insensitive to
    outliers up to ~29 % of the points)."""
    node_us = np.asarray(node_us, dtype=np.int64)
    host_s = np.asarray(host_s, dtype=np.float64)
    n = len(node_us)
    if n == 0:
        return ClockModel()
    u0 = int(node_us[0])
    h0 = float(host_s[0])
    x = (node_us - u0) * US            # node seconds since the first point
    y = host_s - h0
    if n == 1 or np.ptp(x) == 0:
        off = float(np.median(y - x))
        return ClockModel(u0, h0, off, 0.0, float("nan"), n)
    slope, intercept = theil_sen(x, y)
    drift = float(slope) - 1.0
    resid = y - (intercept + slope * x)
    return ClockModel(u0, h0, float(intercept), drift, float(np.sqrt(np.mean(resid ** 2))), n)


@functools.lru_cache(maxsize=8)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs i < j of n points (live refits use the same n over and over)."""
    i, j = np.triu_indices(n, 1)
    i.flags.writeable = j.flags.writeable = False
    return i, j


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Theil-Sen line: median of pairwise slopes, then median intercept (scipy.stats.theilslopes
    with method="joint",
    without its confidence interval, which costs milliseconds per call)."""
    i, j = _pairs(len(x))
    dx = x[j] - x[i]
    ok = dx != 0
    slope = _median((y[j] - y[i])[ok] / dx[ok])
    return slope, _median(y - slope * x)


def _median(a: np.ndarray) -> float:
    """np.median of a finite 1-d array without its generic overhead (the live path refits ~30
    clock lines a second)."""
    n = a.size
    h = n // 2
    if n % 2:
        return float(np.partition(a, h)[h])
    p = np.partition(a, (h - 1, h))
    return (float(p[h - 1]) + float(p[h])) / 2


@dataclass
class Aligned:
    """Samples of several nodes on one grid ``t = t0 + k / rate``.

    ``values[node]``: (K, C) float32 array, NaN where the slot is missing; ``valid[node]``: (K,) bool;
    ``error_s[node]``: RMS |sample time - slot time| over valid slots, plus the clock residual."""

    t0: float
    rate: float
    n: int
    values: dict[int, np.ndarray]
    valid: dict[int, np.ndarray]
    error_s: dict[int, float]
    collisions: dict[int, int]

    @property
    def times(self) -> np.ndarray:
        return self.t0 + np.arange(self.n) / self.rate


def align(host_times: dict[int, np.ndarray], values: dict[int, np.ndarray], rate: float, *,
          t0: float | None = None, t1: float | None = None,
          clock_residual_s: dict[int, float] | None = None) -> Aligned:
    """Put each node's samples (host times already mapped by its clock model) on one grid.

    A slot takes the nearest sample within half a period; a second sample falling into an
    occupied slot is counted as a collision and dropped (the nearer one is kept). Slots without
    a sample stay NaN / invalid: gaps are visible, never filled in."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    nodes = sorted(host_times)
    if t0 is None:
        t0 = min(float(host_times[n][0]) for n in nodes if len(host_times[n])) if nodes else 0.0
    if t1 is None:
        t1 = max(float(host_times[n][-1]) for n in nodes if len(host_times[n])) if nodes else t0
    k_n = int(np.floor((t1 - t0) * rate + 0.5)) + 1
    out_v: dict[int, np.ndarray] = {}
    out_ok: dict[int, np.ndarray] = {}
    err: dict[int, float] = {}
    coll: dict[int, int] = {}
    for node in nodes:
        t = np.asarray(host_times[node], dtype=np.float64)
        v = np.asarray(values[node])
        if v.ndim == 1:
            v = v[:, None]
        pos = (t - t0) * rate
        k = np.floor(pos + 0.5).astype(np.int64)
        d = np.abs(pos - k)                      # in periods, <= 0.5
        inside = (k >= 0) & (k < k_n)
        k, d, idx = k[inside], d[inside], np.nonzero(inside)[0]
        # keep the nearest sample per slot: sort by (slot, distance), take the first of each slot
        # (samples usually arrive in time order with one per slot: then no sort is needed)
        in_order = True
        if len(k) > 1 and not (np.diff(k) > 0).all():
            in_order = False
            order = np.lexsort((d, k))
            k, d, idx = k[order], d[order], idx[order]
        first = np.ones(len(k), dtype=bool)
        first[1:] = k[1:] != k[:-1]
        coll[node] = int(len(k) - first.sum())
        k, d, idx = k[first], d[first], idx[first]
        vals = np.full((k_n, v.shape[1]), np.nan, dtype=np.float32)  # int16 sensor values are exact in float32
        ok = np.zeros(k_n, dtype=bool)
        if len(k) and int(k[-1]) - int(k[0]) + 1 == len(k):
            # the usual case, one sample per slot without holes: slice copies, no scatter
            src = v if in_order and len(idx) == len(v) else v[idx]   # then idx is 0..len(v)-1
            vals[int(k[0]):int(k[-1]) + 1] = src
            ok[int(k[0]):int(k[-1]) + 1] = True
        else:
            vals[k] = v[idx]
            ok[k] = True
        out_v[node], out_ok[node] = vals, ok
        res = (clock_residual_s or {}).get(node, 0.0)
        res = 0.0 if res != res else res  # NaN residual (too few sync points) adds nothing
        err[node] = float(np.sqrt(np.mean((d / rate) ** 2))) + res if len(d) else float("nan")
    return Aligned(t0, rate, k_n, out_v, out_ok, err, coll)


class StreamAligner:
    """Live alignment: samples arrive per node (host times already mapped); a grid slot is emitted
    once every active node has passed it, or ``max_wait_s`` after its time (missing nodes then
    marked). A node silent for ``stale_s`` (unplugged) stops holding slots back.
    Calls ``emit(k, t_slot, {node: value or None})``."""

    def __init__(self, rate: float, t0: float, emit, *, max_wait_s: float = 0.05, stale_s: float = 0.2):
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = float(rate)
        self.t0 = float(t0)
        self.emit = emit
        self.max_wait_s = max_wait_s
        self.stale_s = stale_s
        self.next_k = 0
        self.pending: dict[int, dict] = {}      # slot -> {node: (distance, value)}
        self.latest: dict[int, int] = {}        # node -> highest slot seen
        self.emitted = 0
        self.late = 0                           # samples whose slot was already emitted

    def add(self, node: int, t_host: float, value) -> None:
        pos = (t_host - self.t0) * self.rate
        k = int(pos + 0.5) if pos >= -0.5 else -1
        if k < self.next_k:
            self.late += 1
            return  # too late: its slot was already emitted (stays marked missing there)
        d = abs(pos - k)
        slot = self.pending.get(k)
        if slot is None:
            slot = self.pending[k] = {}
        cur = slot.get(node)
        if cur is None or d < cur[0]:
            slot[node] = (d, value)
        if k > self.latest.get(node, -1):
            self.latest[node] = k

    def poll(self, now: float) -> int:
        """Emit every slot that is complete or overdue at host time ``now``; returns how many."""
        if not self.latest:
            return 0
        horizon = (now - self.stale_s - self.t0) * self.rate
        k = self.next_k
        if now < self.t0 + k / self.rate + self.max_wait_s and horizon <= min(self.latest.values()) < k:
            return 0    # an active node has not passed the next slot, which is not overdue yet
        active = [k for k in self.latest.values() if k >= horizon]
        done_all = min(active) if active else -1
        nodes = list(self.latest)
        n = 0
        while True:
            k = self.next_k
            t_slot = self.t0 + k / self.rate
            if k > done_all and now < t_slot + self.max_wait_s:
                break
            slot = self.pending.pop(k, {})
            self.emit(k, t_slot, {node: (slot[node][1] if node in slot else None) for node in nodes})
            self.next_k += 1
            n += 1
        self.emitted += n
        return n
