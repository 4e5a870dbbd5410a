"""Group statistics over recorded test results, as sports-science studies report them.

Input: a CSV with columns ``subject, group, phase, test, value`` (``phase`` e.g. ``pre`` /
``post``; extra columns ignored).  For every test:

* between groups at one phase: means and SDs, Student's independent t-test, Welch's t-test,
  Cohen's d (pooled SD) and the difference of means;
* within each group, pre vs post on subjects with both: paired t-test, Cohen's d_z (mean
  difference / SD of differences) and the percent change of the group mean.

t-tests come from ``scipy.stats`` (two-sided).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as _st

__all__ = ["StatsError", "read_results", "cohens_d", "compare_groups", "paired_change", "analyse", "format_report"]


class StatsError(ValueError):
    """Unusable results file or request."""


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a results CSV as dicts with a float ``value`` (raises :class:`StatsError`)."""
    p = Path(path)
    if not p.exists():
        raise StatsError(f"results file not found: {p}")
    with p.open(newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"subject", "group", "phase", "test", "value"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise StatsError(f"{p}: needs columns {sorted(need)}, has {reader.fieldnames}")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                v = float(r["value"])
            except (TypeError, ValueError):
                raise StatsError(f"{p}:{i}: value {r['value']!r} is not a number") from None
            if not math.isfinite(v):
                raise StatsError(f"{p}:{i}: value must be finite")
            rows.append({"subject": r["subject"].strip(), "group": r["group"].strip(),
                         "phase": r["phase"].strip(), "test": r["test"].strip(), "value": v})
    if not rows:
        raise StatsError(f"{p}: no results")
    return rows


def cohens_d(a, b) -> float:
    """Cohen's d of ``b - a`` with the pooled standard deviation."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = a.size, b.size
    sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    return float((b.mean() - a.mean()) / sp) if sp > 0 else math.nan


def compare_groups(a, b) -> dict[str, float]:
    """Independent comparison of samples ``a`` and ``b`` (Student, Welch, Cohen's d)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        raise StatsError("each group needs at least 2 results")
    st = _st.ttest_ind(a, b, equal_var=True)
    we = _st.ttest_ind(a, b, equal_var=False)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df_w = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if va + vb > 0 else math.nan
    return {"n_a": int(a.size), "n_b": int(b.size), "mean_a": float(a.mean()), "sd_a": float(a.std(ddof=1)),
            "mean_b": float(b.mean()), "sd_b": float(b.std(ddof=1)),
            "t": float(st.statistic), "p": float(st.pvalue), "df": int(a.size + b.size - 2),
            "t_welch": float(we.statistic), "p_welch": float(we.pvalue), "df_welch": float(df_w),
            "cohens_d": cohens_d(a, b), "diff": float(b.mean() - a.mean())}


def paired_change(pre, post) -> dict[str, float]:
    """Paired pre/post comparison: paired t-test, Cohen's d_z and percent change of the means."""
    pre, post = np.asarray(pre, float), np.asarray(post, float)
    if pre.size != post.size or pre.size < 2:
        raise StatsError("paired comparison needs at least 2 subjects with both phases")
    st = _st.ttest_rel(pre, post)
    diff = post - pre
    sd = diff.std(ddof=1)
    return {"n": int(pre.size), "mean_pre": float(pre.mean()), "sd_pre": float(pre.std(ddof=1)),
            "mean_post": float(post.mean()), "sd_post": float(post.std(ddof=1)),
            "t": float(st.statistic), "p": float(st.pvalue), "df": int(pre.size - 1),
            "cohens_dz": float(diff.mean() / sd) if sd > 0 else math.nan,
            "percent_change": float(100.0 * (post.mean() - pre.mean()) / pre.mean()) if pre.mean() else math.nan}


def analyse(rows: list[dict[str, Any]], *, groups: tuple[str, str] | None = None, phase: str = "post",
            pre: str = "pre") -> dict[str, Any]:
    """Between-group comparison at ``phase`` and pre->``phase`` change within each group, per test."""
    all_groups = sorted({r["group"] for r in rows})
    if groups is None:
        if len(all_groups) != 2:
            raise StatsError(f"expected two groups, found {all_groups}; choose two with --groups A,B")
        groups = (all_groups[0], all_groups[1])
    for g in groups:
        if g not in all_groups:
            raise StatsError(f"group {g!r} not in the results (groups: {all_groups})")
    phases = {r["phase"] for r in rows}
    if phase not in phases:
        raise StatsError(f"phase {phase!r} not in the results (phases: {sorted(phases)})")
    data: dict = defaultdict(dict)
    for r in rows:
        data[(r["test"], r["group"], r["phase"])][r["subject"]] = r["value"]
    out: dict[str, Any] = {"groups": list(groups), "phase": phase, "tests": {}}
    for test in sorted({r["test"] for r in rows}):
        entry: dict[str, Any] = {}
        a = list(data.get((test, groups[0], phase), {}).values())
        b = list(data.get((test, groups[1], phase), {}).values())
        if len(a) >= 2 and len(b) >= 2:
            entry["between"] = compare_groups(a, b)
        for g in groups:
            p0, p1 = data.get((test, g, pre), {}), data.get((test, g, phase), {})
            subj = sorted(set(p0) & set(p1))
            if pre != phase and len(subj) >= 2:
                entry.setdefault("within", {})[g] = paired_change([p0[s] for s in subj], [p1[s] for s in subj])
        out["tests"][test] = entry
    return out


def format_report(res: dict[str, Any]) -> str:
    """Plain-text tables of :func:`analyse` results."""
    ga, gb = res["groups"]
    lines = [f"Between groups at '{res['phase']}': {ga} vs {gb}",
             f"{'test':<22}{ga:>16}{gb:>16}{'t':>8}{'p':>8}{'t Welch':>9}{'p Welch':>9}{'d':>7}"]
    for test, e in res["tests"].items():
        if "between" in e:
            b = e["between"]
            lines.append(f"{test:<22}{b['mean_a']:>9.2f}±{b['sd_a']:<6.2f}{b['mean_b']:>9.2f}±{b['sd_b']:<6.2f}"
                         f"{b['t']:>8.3f}{b['p']:>8.3f}{b['t_welch']:>9.3f}{b['p_welch']:>9.3f}{b['cohens_d']:>7.3f}")
    lines += ["", "Within groups, pre -> post (paired)",
              f"{'test':<22}{'group':<14}{'pre':>16}{'post':>16}{'t':>8}{'p':>8}{'d_z':>7}{'change %':>10}"]
    for test, e in res["tests"].items():
        for g, w in e.get("within", {}).items():
            lines.append(f"{test:<22}{g:<14}{w['mean_pre']:>9.2f}±{w['sd_pre']:<6.2f}{w['mean_post']:>9.2f}±"
                         f"{w['sd_post']:<6.2f}{w['t']:>8.3f}{w['p']:>8.3f}{w['cohens_dz']:>7.3f}"
                         f"{w['percent_change']:>10.2f}")
    return "\n".join(lines)
