"""A SUMO configuration as SUMO's own examples write one runs as SUMO runs it: its step length, begin and end
unless the scenario sets them, an <add> additional file, and the outputs it asks for in the run directory."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from cosim.run import run_scenario
from cosim.scenario import validate_tree
from mobility.builders import build_highway


def _bundle(tmp_path):
    files = build_highway(tmp_path / "in", length_m=1500.0, lanes=1, vehicles_per_hour=1200.0, duration_s=120.0)
    (tmp_path / "in" / "pois.add.xml").write_text('<add><poi id="p" x="10" y="5" color="1,0,0"/></add>')
    cfg = tmp_path / "in" / "example.sumocfg"
    cfg.write_text('<configuration><input><net-file value="highway.net.xml"/>'
                   '<route-files value="highway.rou.xml"/><additional-files value="pois.add.xml"/></input>'
                   '<output><tripinfo-output value="tripinfos.xml"/></output>'
                   '<time><begin value="0"/><end value="90"/><step-length value="0.5"/></time></configuration>')
    return files, cfg


def _tree(cfg, **mobility):
    return {"name": "example", "seed": 1,
            "mobility": {"source": "sumo", "sumo": {"config": str(cfg)}, **mobility},
            "rsus": {"positions_m": [[250.0, -10.0], [750.0, -10.0]], "coverage_radius_m": 250.0},
            "protocol": {"rounds": 2, "vehicles_per_round": 2, "start_s": 20, "round_interval_s": 30}}


def test_its_step_length_and_end_are_used_and_its_outputs_land_in_the_run_directory(tmp_path):
    _, cfg = _bundle(tmp_path)
    sc = validate_tree(_tree(cfg), "example.yaml")
    assert (sc.mobility.step_s, sc.duration_s) == (0.5, 90.0)
    result = run_scenario(sc, tmp_path / "run")
    assert result.status == "completed"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["scenario"]["mobility"]["step_s"] == 0.5
    enters = [i["t_s"] for i in pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()
              if i["kind"] == "vehicle.enter"]
    assert any(t % 1.0 == 0.5 for t in enters)                    # vehicles appear on half-second ticks
    assert (tmp_path / "run" / "sumo" / "tripinfos.xml").is_file()
    assert not (tmp_path / "in" / "tripinfos.xml").exists()       # not next to the configuration


def test_the_scenario_wins_where_it_sets_a_value(tmp_path):
    _, cfg = _bundle(tmp_path)
    sc = validate_tree({**_tree(cfg, step_s=1.0), "duration_s": 60}, "example.yaml")
    assert (sc.mobility.step_s, sc.duration_s) == (1.0, 60.0)
