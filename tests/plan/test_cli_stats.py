"""`trackside plan` / `trackside stats` commands and the statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from trackside.cli import main
from trackside.plan import aco
from trackside.plan.stats import StatsError, analyse, cohens_d, compare_groups, paired_change, read_results

EX = Path(__file__).resolve().parents[2] / "host" / "trackside" / "plan" / "examples"


@pytest.mark.skipif(not aco.core_available(), reason="C core not built")
def test_plan_command_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "p" / "plan.json"
    rc = main(["plan", "--athlete", str(EX / "athlete.json"), "--weeks", "3", "--out", str(out),
               "--start", "2026-11-09", "--max-time", "0.4"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert len(data["sessions"]) == 12
    for key in ("weekly_loads", "acwr_week_end", "monotony", "predicted_performance"):
        assert key in data["summary"]
    lines = out.with_suffix(".csv").read_text().splitlines()
    assert lines[0].startswith("date,category,ability_area,intensity_hrr") and len(lines) == 13
    ics = out.with_suffix(".ics").read_bytes()
    assert ics.startswith(b"BEGIN:VCALENDAR\r\n") and ics.count(b"BEGIN:VEVENT") == 12
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize("args, match", [
    (["--athlete", "/nonexistent.json"], "not found"),
    (["--athlete", str(EX / "athlete.json"), "--weeks", "0"], "weeks must be"),
    (["--athlete", str(EX / "athlete.json"), "--acwr", "0.8"], "--acwr needs two numbers"),
])
def test_plan_command_bad_input_exits_2(args, match, capsys):
    assert main(["plan", *args, "--out", "/tmp/unused-trackside-plan.json"]) == 2
    assert match in capsys.readouterr().err


def test_stats_command(tmp_path, capsys):
    js = tmp_path / "s.json"
    assert main(["stats", str(EX / "test_results.csv"), "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "Welch" in out and "shot_put" in out
    assert set(json.loads(js.read_text())["tests"]) == {"run_800m", "shot_put", "standing_long_jump"}
    assert main(["stats", str(tmp_path / "missing.csv")]) == 2
    assert main(["stats", str(EX / "test_results.csv"), "--groups", "control,nobody"]) == 2
    assert "nobody" in capsys.readouterr().err


def test_statistics_match_scipy_and_hand_formulas():
    a = np.array([10.0, 12.0, 11.0, 13.0, 9.0])
    b = np.array([14.0, 15.0, 13.0, 17.0, 16.0, 15.5])
    r = compare_groups(a, b)
    assert r["t"] == pytest.approx(st.ttest_ind(a, b).statistic)
    assert r["p_welch"] == pytest.approx(st.ttest_ind(a, b, equal_var=False).pvalue)
    sp = np.sqrt(((4 * a.var(ddof=1)) + 5 * b.var(ddof=1)) / 9)
    assert r["cohens_d"] == pytest.approx((b.mean() - a.mean()) / sp) == cohens_d(a, b)
    pre, post = np.array([200.0, 210.0, 220.0, 230.0]), np.array([195.0, 200.0, 214.0, 220.0])
    pc = paired_change(pre, post)
    assert pc["p"] == pytest.approx(st.ttest_rel(pre, post).pvalue)
    assert pc["percent_change"] == pytest.approx(100 * (post.mean() - pre.mean()) / pre.mean())
    d = post - pre
    assert pc["cohens_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    with pytest.raises(StatsError):
        compare_groups([1.0], [2.0, 3.0])


def test_analyse_example_file():
    res = analyse(read_results(EX / "test_results.csv"))
    sp = res["tests"]["shot_put"]
    assert sp["between"]["n_a"] == 12 and set(sp["within"]) == {"control", "experimental"}
    assert sp["within"]["experimental"]["percent_change"] > sp["within"]["control"]["percent_change"]
