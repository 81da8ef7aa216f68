"""The bundled real-map scenario: SUMO's OSM-derived DRT net, read through $SUMO_HOME."""
from __future__ import annotations

import csv
import math
from pathlib import Path

from cosim.scenario import expand_path, load_scenario
from cosim.run import run_scenario
from mobility.sumo_live import sumo_home

REPO = Path(__file__).resolve().parents[2]


def test_sumo_home_in_a_scenario_path_is_the_installed_sumo():
    assert expand_path("$SUMO_HOME/tools/game/DRT/osm.net.xml") == f"{sumo_home()}/tools/game/DRT/osm.net.xml"
    assert expand_path("${SUMO_HOME}/x") == f"{sumo_home()}/x"
    assert expand_path("highway/highway.sumocfg") == "highway/highway.sumocfg"


def test_real_map_rounds_never_select_an_infinite_dwell(tmp_path):
    sc = load_scenario(REPO / "scenarios" / "drt_city.yaml", ["protocol.rounds=4", "output.realize_dwells=false"])
    result = run_scenario(sc, tmp_path / "run")
    assert result.status == "completed" and len(result.rounds) == 4
    with open(tmp_path / "run" / "dwell.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    selected = [r for r in rows if r["selected"] == "True"]
    assert len(selected) == 4 * 8
    assert all(math.isfinite(float(r["predicted_s"])) and math.isfinite(float(r["predicted_serving_s"]))
               for r in selected)
    with open(tmp_path / "run" / "rsus.csv", newline="") as fh:
        assert all(r["edge"] for r in csv.DictReader(fh))      # placed along the net's roads
