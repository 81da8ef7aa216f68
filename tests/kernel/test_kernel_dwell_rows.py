"""dwell.csv marks the selected vehicles, exits through the map's boundary and censored rows' lower bounds;
rsus.csv says where the RSUs are."""
from __future__ import annotations

import csv
import math

import pyarrow.parquet as pq

from cosim.run import run_scenario
from cosim.scenario import validate_tree

TREE = {
    "name": "rows", "seed": 4, "duration_s": 40,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": -100.0, "speed_mps": 20.0},                      # leaves the disc at t = 15
        {"id": "b", "x_m": 50.0, "speed_mps": 0.0, "arrive_s": 12.0},       # vanishes inside at t = 12
        {"id": "c", "x_m": 10.0, "speed_mps": 0.0}]}},                      # parked: never leaves
    "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 200.0},
    "protocol": {"rounds": 5, "vehicles_per_round": 1, "selection": "random", "round_interval_s": 4.0},
}


def _rows(run):
    with open(run / "dwell.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_rows_mark_selection_boundary_exits_and_lower_bounds(tmp_path):
    result = run_scenario(validate_tree(TREE, "rows.yaml"), tmp_path / "run")
    rows = _rows(tmp_path / "run")
    # selected: exactly the vehicles of each round's "select" instants
    instants = pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()
    chosen = {(i["round"], i["actor"]) for i in instants if i["kind"] == "select"}
    assert {(int(r["round"]), r["vehicle"]) for r in rows if r["selected"] == "True"} == chosen and chosen
    # b vanished inside the disc: realized at its last tick, through the boundary; a left through the edge
    for r in rows:
        if r["vehicle"] == "b":
            assert r["boundary_exit"] == "True" and r["censored"] == "False"
            assert float(r["t_s"]) + float(r["realized_s"]) == 11.0
        if r["vehicle"] == "a":
            assert r["boundary_exit"] == "False" and r["censored"] == "False"
            assert math.isclose(float(r["t_s"]) + float(r["realized_s"]), 15.0, rel_tol=1e-9)
    # c never left: censored, with the time its prediction was open as a lower bound
    end_s = result.summary["sim_time_s"]
    c = [r for r in rows if r["vehicle"] == "c"]
    assert c and all(r["censored"] == "True" and r["realized_s"] == "nan" for r in c)
    assert all(math.isclose(float(r["lower_bound_s"]), end_s - float(r["t_s"]), abs_tol=1e-9) for r in c)
    assert all(r["lower_bound_s"] == "nan" for r in rows if r["censored"] == "False")


def test_rsus_csv_has_every_rsu(tmp_path):
    run_scenario(validate_tree(TREE, "rows.yaml"), tmp_path / "run")
    with open(tmp_path / "run" / "rsus.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == [{"rsu": "rsu0", "x_m": "0.0", "y_m": "0.0", "radius_m": "200.0",
                                             "edge": ""}]
