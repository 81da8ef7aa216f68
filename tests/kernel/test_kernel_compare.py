"""`cosim compare`: the scheme and its declared baselines over seeds, as a sweep into one directory."""
from __future__ import annotations

import csv

from cosim.cli import main
from cosim.compare import COMPARE_FIELDS, methods
from tests.conftest import write_yaml

TREE = {
    "name": "cmp", "seed": 4, "duration_s": 100,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": 100.0}, {"id": "b", "x_m": 250.0}]}},
    "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0},
    "learning": {"num_clients": 4, "batch_size": 32},
    "protocol": {"scheme": "sfl_v1", "cut": 1, "rounds": 2, "selection": "all", "round_deadline_s": 50},
}


def test_split_schemes_declare_the_other_schemes_and_fixed_cuts(tmp_path):
    path = write_yaml(tmp_path / "s.yaml", TREE)
    got = methods(path, [])
    assert list(got)[:1] == ["sfl_v1"] and got["sfl_v1"] == []
    assert got["sl"] == ["protocol.scheme=sl"] and got["fedavg"] == ["protocol.scheme=fedavg"]
    assert got["fixed_cut_3"] == ["protocol.cut=3"] and "fixed_cut_1" not in got      # cut 1 is its own


def test_compare_writes_one_row_per_method_and_seed(tmp_path, capsys):
    path = write_yaml(tmp_path / "s.yaml", TREE)
    out = tmp_path / "cmp"
    assert main(["compare", str(path), "--seeds", "2", "--baselines", "sl,fedavg,fixed_cut_2", "--out", str(out)]) == 0
    with open(out / "compare.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COMPARE_FIELDS
    assert [(r["method"], r["seed"]) for r in rows] == [(m, s) for m in ("sfl_v1", "sl", "fedavg", "fixed_cut_2")
                                                        for s in ("4", "5")]
    assert all(r["status"] == "completed" and 0.0 <= float(r["final_accuracy"]) <= 1.0 for r in rows)
    by = {(r["method"], r["seed"]): r for r in rows}
    assert float(by[("fedavg", "4")]["bytes_up"]) != float(by[("sfl_v1", "4")]["bytes_up"])
    assert (out / "fedavg-seed5" / "summary.json").is_file() and (out / "compare.png").stat().st_size > 1000
    md = (out / "compare.md").read_text()
    assert md.count("\n| sl |") == 2 and "± " in md and "vehicle comm [s]" in md
    with open(out / "compare_breakdown.csv", newline="") as fh:
        split = list(csv.DictReader(fh))
    assert len(split) == 8 and float(split[0]["mean_vehicle_comm_s"]) > 0
    assert "compare table" in capsys.readouterr().err


def test_an_unknown_baseline_is_one_line(tmp_path, capsys):
    path = write_yaml(tmp_path / "s.yaml", TREE)
    assert main(["compare", str(path), "--baselines", "nope", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--baselines = 'nope'" in err[0] and "fixed_cut_3" in err[0]
