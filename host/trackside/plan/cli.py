"""``trackside plan`` and ``trackside stats``."""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
from pathlib import Path

__all__ = ["register", "write_outputs"]


def _date(text: str) -> _dt.date:
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def register(subparsers) -> None:
    """Add the ``plan`` and ``stats`` sub-commands."""
    p = subparsers.add_parser("plan", help="generate a personalised training plan (ACO_MV)",
                              description="Optimise a training plan for one athlete and write JSON, CSV, "
                                          "iCalendar and PNG files.")
    p.add_argument("--athlete", required=True, help="athlete JSON file")
    p.add_argument("--weeks", type=int, default=8, help="plan horizon in weeks, 1-16 (default 8)")
    p.add_argument("--out", default="plan.json", help="output JSON; .csv, .ics and .png are written beside it")
    p.add_argument("--start", type=_date, help="first day of the plan (default: next Monday)")
    p.add_argument("--sessions-per-week", type=int, default=4)
    p.add_argument("--rest-days", default="sun", help="comma-separated weekdays without training (default sun)")
    p.add_argument("--competition", type=_date, help="competition date (the plan tapers into it)")
    p.add_argument("--taper-days", type=int, default=10)
    p.add_argument("--max-daily-trimp", type=float, default=200.0)
    p.add_argument("--ramp", type=float, default=0.10, help="maximum weekly load increase (default 0.10)")
    p.add_argument("--acwr", default="0.8,1.3", help="acute:chronic workload band low,high (default 0.8,1.3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-time", type=float, default=1.6, help="optimiser time budget in seconds")
    p.add_argument("--backend", choices=("c", "numpy"), default="c")
    p.add_argument("--no-png", action="store_true", help="skip the PNG chart")
    p.set_defaults(func=_cmd_plan)

    s = subparsers.add_parser("stats", help="compare groups of test results (t-tests, Cohen's d)",
                              description="Between-group (Student and Welch t-tests, Cohen's d) and pre/post "
                                          "(paired t-test, d_z, percent change) statistics per test.")
    s.add_argument("results", help="CSV with columns subject,group,phase,test,value")
    s.add_argument("--groups", help="the two groups to compare, e.g. control,experimental")
    s.add_argument("--phase", default="post", help="phase compared between groups (default post)")
    s.add_argument("--pre", default="pre", help="baseline phase for the paired comparison (default pre)")
    s.add_argument("--json", help="also write the results as JSON here")
    s.set_defaults(func=_cmd_stats)


def _cmd_plan(args) -> int:
    from trackside.cli import UsageError
    from trackside.plan.athlete import AthleteError, load_athlete
    from trackside.plan.aco import CoreUnavailableError
    from trackside.plan.problem import PlanError, PlanLimits, PlanProblem

    try:
        lo, hi = (float(v) for v in args.acwr.split(","))
    except ValueError:
        raise UsageError(f"--acwr needs two numbers low,high, got {args.acwr!r}") from None
    start = args.start
    if start is None:
        today = _dt.date.today()
        start = today + _dt.timedelta(days=(7 - today.weekday()) % 7 or 7)
    try:
        athlete = load_athlete(args.athlete)
        limits = PlanLimits(max_daily_trimp=args.max_daily_trimp, ramp=args.ramp, acwr_lo=lo, acwr_hi=hi,
                            acwr_daily_hi=max(1.5, hi), taper_days=args.taper_days)
        problem = PlanProblem(athlete, weeks=args.weeks, start=start, sessions_per_week=args.sessions_per_week,
                              rest_days=args.rest_days, competition=args.competition, limits=limits)
        plan = problem.solve(seed=args.seed, max_time=args.max_time, backend=args.backend)
    except (AthleteError, PlanError, CoreUnavailableError) as exc:
        raise UsageError(str(exc)) from None
    paths = write_outputs(plan, Path(args.out), png=not args.no_png)
    sm = plan.summary
    print(f"{len(plan.sessions)} sessions, {sm['start']} to {sm['target_date']}; predicted performance "
          f"{sm['current_performance']:.3f} -> {sm['predicted_performance']:.3f}; solver {sm['solver']['nfev']} "
          f"evaluations in {sm['solver']['seconds']:.2f} s")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def write_outputs(plan, out: Path, png: bool = True) -> list[Path]:
    """Write plan.json, plan.csv, plan.ics and (optionally) plan.png; returns the paths."""
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out]
    out.write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
    csv_path = out.with_suffix(".csv")
    with csv_path.open("w", newline="") as fh:
        cols = ["date", "category", "ability_area", "intensity_hrr", "target_hr_low", "target_hr_high",
                "duration_min", "volume", "trimp"]
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for s in plan.sessions:
            w.writerow({c: s[c] for c in cols})
    paths.append(csv_path)
    ics_path = out.with_suffix(".ics")
    ics_path.write_bytes(to_ics(plan).encode("utf-8"))
    paths.append(ics_path)
    if png:
        png_path = out.with_suffix(".png")
        plot_plan(plan, png_path)
        paths.append(png_path)
    return paths


def _ics_text(s: str) -> str:
    return s.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def to_ics(plan) -> str:
    """The sessions as an iCalendar (RFC 5545) file of all-day events."""
    sm = plan.summary
    stamp = sm["start"].replace("-", "") + "T000000Z"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Trackside//training plan//EN", "CALSCALE:GREGORIAN",
             f"X-WR-CALNAME:{_ics_text('Training plan ' + sm['athlete'])}"]
    for i, s in enumerate(plan.sessions):
        day = _dt.date.fromisoformat(s["date"])
        summary = f"{s['category']} ({s['duration_min']} min)"
        desc = (f"{s['ability_area']}; intensity {100 * s['intensity_hrr']:.0f}% HRR; target HR "
                f"{s['target_hr_low']}-{s['target_hr_high']} bpm; volume {s['volume']}/5; TRIMP {s['trimp']}")
        lines += ["BEGIN:VEVENT", f"UID:{sm['start']}-{i}@trackside", f"DTSTAMP:{stamp}",
                  f"DTSTART;VALUE=DATE:{day.strftime('%Y%m%d')}",
                  f"DTEND;VALUE=DATE:{(day + _dt.timedelta(days=1)).strftime('%Y%m%d')}",
                  f"SUMMARY:{_ics_text(summary)}", f"DESCRIPTION:{_ics_text(desc)}", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def plot_plan(plan, path: Path) -> None:
    """PNG: daily load, and predicted fitness, fatigue and form (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pb = plan.problem
    ser = pb.daily_series(plan.x, history_days=28)
    dates = [pb.start + _dt.timedelta(days=int(d)) for d in ser["day"]]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [1, 2]})
    ax1.bar(dates, ser["load"], color=["0.6" if d < 0 else "tab:blue" for d in ser["day"]])
    ax1.set_ylabel("TRIMP / day")
    ax1.set_title(f"Training plan for {pb.athlete.name}")
    ax2.plot(dates, ser["fitness"], label="fitness (k1 g)")
    ax2.plot(dates, ser["fatigue"], label="fatigue (k2 h)")
    ax2.plot(dates, ser["form"], label="form = fitness - fatigue", lw=2)
    for ax in (ax1, ax2):
        ax.axvline(pb.start, color="k", lw=0.8, ls=":")
        ax.axvline(pb.target, color="tab:red", lw=1.0, ls="--")
    ax2.set_ylabel("score units")
    ax2.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cmd_stats(args) -> int:
    from trackside.cli import UsageError
    from trackside.plan.stats import StatsError, analyse, format_report, read_results

    groups = None
    if args.groups:
        parts = [g.strip() for g in args.groups.split(",")]
        if len(parts) != 2 or not all(parts):
            raise UsageError(f"--groups needs two names A,B, got {args.groups!r}")
        groups = (parts[0], parts[1])
    try:
        res = analyse(read_results(args.results), groups=groups, phase=args.phase, pre=args.pre)
    except StatsError as exc:
        raise UsageError(str(exc)) from None
    print(format_report(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0
