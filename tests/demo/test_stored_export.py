"""``trackside export SESSION`` on a stored session id: the session recorded by a demo run is
decoded from the store and exported again with the same angles as the demo wrote."""

from __future__ import annotations

import numpy as np
import pytest

from trackside.cli import main
from tests.demo.test_demo import read_csv


@pytest.mark.wasm
def test_export_of_stored_session_matches_demo(tmp_path, capsys):
    db = tmp_path / "s.db"
    demo_out, exp_out = tmp_path / "demo", tmp_path / "export"
    assert main(["demo", "--seconds", "5", "--segments", "pelvis,left_thigh,left_shank,left_foot,right_thigh",
                 "--out", str(demo_out), "--db", str(db), "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["export", "1", "--db", str(db), "--out", str(exp_out), "--no-plots"]) == 0
    assert "BVH frames" in capsys.readouterr().out
    head_d, a = read_csv(demo_out / "angles.csv")
    head_e, b = read_csv(exp_out / "angles.csv")
    assert head_d == head_e
    n = len(a)
    assert len(b) >= n                       # the store holds the whole recording, the demo cut it
    col = head_d.index("left_knee_flexion")
    both = np.isfinite(a[:, col]) & np.isfinite(b[:n, col])
    assert both.sum() > 0.9 * n
    assert np.max(np.abs(a[both, col] - b[:n][both, col])) < 0.5
    for name in ("session.bvh", "gait.json"):
        assert (exp_out / name).is_file()


def test_export_of_unknown_session_is_a_clear_error(tmp_path, capsys):
    assert main(["export", "3", "--db", str(tmp_path / "none.db"), "--out", str(tmp_path / "o")]) == 2
    assert "no session database" in capsys.readouterr().err
