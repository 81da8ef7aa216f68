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
    # b and c stand still: flagged parked, predicted to stay to the run's end instead of forever
    still = [r for r in rows if r["vehicle"] in ("b", "c")]
    assert all(r["parked"] == "True" and float(r["predicted_s"]) == 40.0 - float(r["t_s"]) for r in still)
    assert all(r["parked"] == "False" for r in rows if r["vehicle"] == "a")


def test_rsus_csv_has_every_rsu(tmp_path):
    run_scenario(validate_tree(TREE, "rows.yaml"), tmp_path / "run")
    with open(tmp_path / "run" / "rsus.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == [{"rsu": "rsu0", "x_m": "0.0", "y_m": "0.0", "radius_m": "200.0",
                                             "edge": ""}]


HANDOVER = {
    "name": "handover", "seed": 2, "duration_s": 40,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": 10.0, "speed_mps": 15.0}]}},
    # overlapping discs: a hands over to rsu1 (nearer, by more than the hysteresis) well before it leaves
    # rsu0's coverage at x = 300
    "rsus": {"positions_m": [[0.0, 0.0], [400.0, 0.0]], "coverage_radius_m": 300.0, "hysteresis_m": 20.0},
    "protocol": {"rounds": 7, "vehicles_per_round": 1, "selection": "dwell", "round_interval_s": 3.0},
}


import pytest  # noqa: E402


@pytest.mark.parametrize("predictor", ["kinematic", "oracle"])
def test_serving_dwell_is_realized_at_the_handover_and_predicted_on_the_ticks(tmp_path, predictor):
    tree = {**HANDOVER, "protocol": {**HANDOVER["protocol"], "dwell_predictor": predictor,
                                     "dwell_definition": "serving"}}
    run_scenario(validate_tree(tree, "ho.yaml"), tmp_path / "run")
    rows = _rows(tmp_path / "run")
    instants = pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()
    (handover,) = [i for i in instants if i["kind"] == "handover" and i["actor"] == "a"]
    assert handover["detail"] == "rsu0->rsu1"
    # x = 10 + 15 t: nearer rsu1 by 20 m once x > 210, i.e. at the tick t = 14; rsu0's disc ends at x = 300
    assert handover["t_s"] == 14.0
    at_rsu0 = [r for r in rows if r["rsu"] == "rsu0"]
    assert at_rsu0
    for r in at_rsu0:
        t = float(r["t_s"])
        assert float(r["realized_serving_s"]) == handover["t_s"] - t        # the tick of the change
        assert float(r["predicted_serving_s"]) == pytest.approx(handover["t_s"] - t, abs=1e-9)
        assert float(r["realized_s"]) == pytest.approx((300.0 - 10.0) / 15.0 - t, rel=1e-9)   # coverage


def test_a_dwell_study_runs_mobility_on_until_the_dwells_are_realized(tmp_path):
    # 3 rounds end at about t = 8, before "a" leaves at t = 15; "c" never leaves, so the run goes to duration_s
    tree = {**TREE, "protocol": {**TREE["protocol"], "rounds": 3}}
    short = run_scenario(validate_tree(tree, "rows.yaml"), tmp_path / "short")
    study = run_scenario(validate_tree({**tree, "output": {"realize_dwells": True}}, "rows.yaml"), tmp_path / "study")
    assert short.summary["sim_time_s"] < 15.0
    assert any(r["vehicle"] == "a" and r["censored"] == "True" for r in _rows(tmp_path / "short"))
    rows = _rows(tmp_path / "study")
    assert study.status == "completed" and 38.0 <= study.summary["sim_time_s"] < 40.0
    assert all(r["censored"] == "False" for r in rows if r["vehicle"] == "a")
    assert all(r["censored"] == "True" for r in rows if r["vehicle"] == "c")
    assert len(study.rounds) == 3


def test_the_serving_dwell_of_many_vehicles_at_once_equals_one_at_a_time(tmp_path, monkeypatch):
    # overlapping discs with hysteresis, a synthetic highway's crowd, both straight-line predictors
    from cosim.dwell import DwellBook

    outputs = {}
    for mode in ("vectorized", "each"):
        if mode == "each":
            monkeypatch.setattr(DwellBook, "_serving", lambda self, vehicles, kin, coverage_s, t_now, here:
                                DwellBook._serving_each(self, vehicles, kin, coverage_s, t_now))
        for predictor in ("kinematic", "history"):
            tree = {"name": "crowd", "seed": 2, "duration_s": 120,
                    "mobility": {"source": "highway", "highway": {"initial_vehicles": 40, "arrival_rate_hz": 1.0}},
                    "rsus": {"positions_m": [[500.0, 0.0], [800.0, 0.0], [1100.0, 0.0], [1400.0, 0.0]],
                             "coverage_radius_m": 250.0, "hysteresis_m": 30.0},
                    "learning": {"num_clients": 10},
                    "protocol": {"rounds": 6, "vehicles_per_round": 5, "selection": "dwell", "round_deadline_s": 10,
                                 "round_interval_s": 15, "dwell_predictor": predictor, "dwell_definition": "serving"}}
            run = tmp_path / f"{mode}-{predictor}"
            run_scenario(validate_tree(tree, "crowd.yaml"), run)
            outputs[mode, predictor] = (run / "dwell.csv").read_bytes()
    for predictor in ("kinematic", "history"):
        rows = outputs["each", predictor].decode().splitlines()
        assert len(rows) > 100 and sum(1 for r in rows if ",inf," not in r) > 50
        assert outputs["vectorized", predictor] == outputs["each", predictor]
