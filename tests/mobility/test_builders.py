"""Scenario builders: runnable bundles, byte-identical for the same seed; the CLI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mobility.builders import build_highway
from mobility.roads import load_net

REPO = Path(__file__).resolve().parents[2]


def test_highway_is_deterministic_and_runs(live, tmp_path):
    a = build_highway(tmp_path / "a", length_m=1000.0, lanes=2, vehicles_per_hour=3600.0, duration_s=60.0, seed=5)
    b = build_highway(tmp_path / "b", length_m=1000.0, lanes=2, vehicles_per_hour=3600.0, duration_s=60.0, seed=5)

    for fa, fb in ((a.net, b.net), (a.routes, b.routes), (a.sumocfg, b.sumocfg)):
        assert fa.read_bytes() == fb.read_bytes(), fa.name
    net = load_net(a.net)
    assert sorted(e.getID() for e in net.getEdges(withInternal=False)) == ["bwd", "fwd"]
    assert net.getEdge("fwd").getLaneNumber() == 2
    n_vehicles = a.routes.read_text().count("<vehicle ")
    assert 30 <= n_vehicles <= 90

    src = live(1.0, sumocfg=a.sumocfg)
    seen = set(src.start().ids)
    for _ in range(60):
        seen |= set(src.step().ids)
    src.close()
    assert len(seen) == n_vehicles


def test_grid_bundle(tiny_grid):
    net = load_net(tiny_grid.net)
    assert len(net.getNodes()) == 9
    assert tiny_grid.routes.read_text().count("<vehicle ") > 50
    assert tiny_grid.sumocfg.read_text().count("urban_grid.net.xml") == 1


def test_cli_builds_a_bundle(tmp_path):
    out = tmp_path / "hw"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "build_scenario.py"), "highway", "--out", str(out),
                           "--length-m", "500", "--lanes", "1", "--vehicles-per-hour", "600", "--duration-s", "60"],
                          capture_output=True, text=True, check=True)

    assert "vehicles" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["highway.net.xml", "highway.rou.xml", "highway.sumocfg"]


def test_default_build_reproduces_the_bundled_highway(tmp_path):
    from cosim.cli import main

    assert main(["scenario", "build", "highway", "--out", str(tmp_path)]) == 0
    for name in ("highway.net.xml", "highway.rou.xml"):
        assert (tmp_path / name).read_bytes() == (REPO / "scenarios" / "highway" / name).read_bytes(), name


def test_routes_on_an_existing_net_reproduce_the_bundled_real_map_trips(tmp_path):
    from mobility.builders import build_routes
    from mobility.sumo_live import sumo_home

    routes = build_routes(tmp_path, "drt_city", sumo_home() / "tools" / "game" / "DRT" / "osm.net.xml", 900, 900, 1)
    bundled = Path(__file__).resolve().parents[2] / "scenarios" / "drt_city" / "drt_city.rou.xml"
    assert routes.read_bytes() == bundled.read_bytes()
