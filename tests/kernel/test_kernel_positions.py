"""output.positions: positions.parquet holds every tick's geometry and serving link state."""
from __future__ import annotations

import math

import pyarrow.parquet as pq

from cosim.run import run_scenario
from cosim.scenario import validate_tree

TREE = {
    "name": "pos", "seed": 2, "duration_s": 12,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": 50.0, "y_m": 5.0, "speed_mps": 30.0},
        {"id": "b", "x_m": 900.0, "speed_mps": 0.0, "depart_s": 2.0}]}},
    "rsus": {"positions_m": [[0.0, 0.0], [400.0, 0.0]], "coverage_radius_m": 250.0},
    "channel": {"model": "tr37885_highway", "shadowing": {"enabled": True}},
    "protocol": {"rounds": 3, "vehicles_per_round": 1, "selection": "all", "round_interval_s": 5.0},
    "output": {"positions": True},
}


def test_positions_hold_each_tick_vehicle_rsu_distance_and_state(tmp_path):
    run_scenario(validate_tree(TREE, "pos.yaml"), tmp_path / "run")
    rows = pq.read_table(tmp_path / "run" / "positions.parquet").to_pylist()
    assert list(rows[0]) == ["t_s", "vehicle", "x_m", "y_m", "rsu", "distance_m", "los"]
    a = [r for r in rows if r["vehicle"] == "a"]
    assert [r["t_s"] for r in a] == [float(t) for t in range(len(a))] and len(a) >= 10
    for r in a:
        assert r["x_m"] == 50.0 + 30.0 * r["t_s"] and r["y_m"] == 5.0
        if r["rsu"] is None:
            assert r["distance_m"] is None and r["los"] is None
        else:
            centre = {"rsu0": 0.0, "rsu1": 400.0}[r["rsu"]]
            assert math.isclose(r["distance_m"], math.hypot(r["x_m"] - centre, 5.0), rel_tol=1e-12)
            assert r["los"] in ("LOS", "NLOSv")
    assert {r["rsu"] for r in a} >= {"rsu0", "rsu1"}
    b = [r for r in rows if r["vehicle"] == "b"]                    # out of every RSU's range
    assert b and b[0]["t_s"] == 2.0 and all(r["rsu"] is None and r["los"] is None for r in b)
    assert "positions.parquet" in (tmp_path / "run" / "manifest.json").read_text()


def test_no_positions_file_unless_asked(tmp_path):
    run_scenario(validate_tree({**TREE, "output": {}}, "pos.yaml"), tmp_path / "run")
    assert not (tmp_path / "run" / "positions.parquet").exists()


def test_cosim_plot_draws_the_map_from_positions(tmp_path):
    from cosim.cli import main

    run_scenario(validate_tree(TREE, "pos.yaml"), tmp_path / "run")
    assert main(["plot", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "plots" / "map.png").is_file()
    run_scenario(validate_tree({**TREE, "output": {}}, "pos.yaml"), tmp_path / "bare")
    assert main(["plot", str(tmp_path / "bare")]) == 0
    assert not (tmp_path / "bare" / "plots" / "map.png").exists()


def test_plots_as_pdf_and_svg_and_a_bad_format_is_one_line(tmp_path, capsys):
    from cosim.cli import main

    run_scenario(validate_tree(TREE, "pos.yaml"), tmp_path / "run")
    for fmt in ("pdf", "svg"):
        assert main(["plot", str(tmp_path / "run"), "--format", fmt]) == 0
        assert (tmp_path / "run" / "plots" / f"map.{fmt}").is_file()
    assert main(["plot", str(tmp_path / "run"), "--format", "gif"]) == 2
    assert "expected one of png, pdf, svg" in capsys.readouterr().err
