"""Tiny SUMO networks built in tmp folders, and a guard that no libsumo run leaks out of a test."""
from __future__ import annotations

from pathlib import Path

import pytest
from sumo_testnets import CONSTANT_CAR, SPEED_MPS, netconvert, one_vehicle_routes

from mobility import sumo_live
from mobility.builders import build_urban_grid
from mobility.sumo_live import SumoLive


@pytest.fixture
def straight_net(tmp_path: Path) -> tuple[Path, Path]:
    """A 1 km one-lane road along +x (lane centre at y = -1.6) and one car at 20 m/s."""
    net = netconvert(tmp_path, "straight", '<node id="a" x="0" y="0"/><node id="b" x="1000" y="0"/>',
                     f'<edge id="e" from="a" to="b" numLanes="1" speed="{SPEED_MPS}"/>')
    return net, one_vehicle_routes(tmp_path, "straight", "e")


@pytest.fixture
def l_net(tmp_path: Path) -> tuple[Path, Path]:
    """One edge shaped like an L: east 500 m, then north 500 m (no junction, so no slowing down)."""
    net = netconvert(tmp_path, "ell", '<node id="a" x="0" y="0"/><node id="b" x="500" y="500"/>',
                     f'<edge id="e" from="a" to="b" numLanes="1" speed="{SPEED_MPS}" shape="0,0 500,0 500,500"/>')
    return net, one_vehicle_routes(tmp_path, "ell", "e")


@pytest.fixture
def two_way_net(tmp_path: Path) -> tuple[Path, Path]:
    """A 1 km two-way road; a car each way."""
    net = netconvert(tmp_path, "twoway", '<node id="a" x="0" y="0"/><node id="b" x="1000" y="0"/>',
                     f'<edge id="ab" from="a" to="b" speed="{SPEED_MPS}"/>'
                     f'<edge id="ba" from="b" to="a" speed="{SPEED_MPS}"/>')
    rou = tmp_path / "twoway.rou.xml"
    rou.write_text(f'<routes>{CONSTANT_CAR}'
                   '<vehicle id="east" type="const" depart="0" departSpeed="max"><route edges="ab"/></vehicle>'
                   '<vehicle id="west" type="const" depart="0" departSpeed="max"><route edges="ba"/></vehicle>'
                   '</routes>')
    return net, rou


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory):
    """A 3 x 3 grid, 100 m blocks, 120 s of busy random traffic (turns, traffic lights)."""
    return build_urban_grid(tmp_path_factory.mktemp("grid"), grid_n=3, block_m=100.0, lanes=1,
                            vehicles_per_hour=3600.0, duration_s=120.0, seed=7)


@pytest.fixture
def live():
    """Factory for SumoLive runs that are closed at the end of the test, whatever happens."""
    made: list[SumoLive] = []

    def make(*args, **kwargs) -> SumoLive:
        src = SumoLive(*args, **kwargs)
        made.append(src)
        return src

    yield make
    for src in made:
        src.close()


@pytest.fixture(autouse=True)
def no_leaked_libsumo():
    yield
    leaked = sumo_live._libsumo_session
    if leaked is not None:
        leaked.close()
        pytest.fail("a test left libsumo running")
