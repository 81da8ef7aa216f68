"""The wired backhaul: path latency plus bytes over the bottleneck, as its own span."""
from __future__ import annotations

import networkx as nx
import pytest

from cosim.backhaul import SERVER, Backhaul
from transfer_testlib import make_sim, run_transfers


def test_star_delay_is_latency_plus_serialization():
    bh = Backhaul.star(["rsu0", "rsu1"], latency_s=2e-3, capacity_bps=1e8)
    assert bh.hops("rsu1") == 1
    assert bh.delay_s("rsu1", 1_000_000) == pytest.approx(2e-3 + 8e6 / 1e8, rel=1e-15)


def test_graph_takes_the_least_latency_path_and_its_bottleneck():
    # Prepare: rsu0 - r1 - server (fast but thin) and rsu0 - r2 - server (slow and wide)
    g = nx.Graph()
    g.add_edge("rsu0", "r1", latency_s=1e-3, capacity_bps=1e9)
    g.add_edge("r1", SERVER, latency_s=1e-3, capacity_bps=1e7)
    g.add_edge("rsu0", "r2", latency_s=5e-3, capacity_bps=1e10)
    g.add_edge("r2", SERVER, latency_s=5e-3, capacity_bps=1e10)
    bh = Backhaul(g, ["rsu0"])
    # Assert
    assert bh.latency_s("rsu0") == pytest.approx(2e-3) and bh.hops("rsu0") == 2
    assert bh.delay_s("rsu0", 125_000) == pytest.approx(2e-3 + 1e6 / 1e7)


def test_unreachable_rsu_is_an_error():
    g = nx.Graph()
    g.add_edge("rsu0", SERVER, latency_s=1e-3, capacity_bps=1e9)
    g.add_node("rsu1")
    with pytest.raises(ValueError, match="rsu1"):
        Backhaul(g, ["rsu0", "rsu1"])


SCENARIO = {"rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 200.0},
            "backhaul": {"enabled": True, "latency_s": 4e-3, "capacity_bps": 1e8}}


@pytest.mark.parametrize("direction", ["ul", "dl"])
def test_backhaul_adds_the_path_delay_as_its_own_span(direction):
    # Prepare: the same transfer with and without backhaul
    nbytes = 400_000
    frames = [{"v0": (50.0, 0.0)}]
    plain = make_sim(frames, {"rsus": SCENARIO["rsus"]})
    (radio_only,) = run_transfers(plain, [(0.0, "v0", direction, nbytes, 0.2, 1e6)])
    sim = make_sim(frames, SCENARIO)
    # Execute
    (out,) = run_transfers(sim, [(0.0, "v0", direction, nbytes, 0.2, 1e6)])
    # Assert: the outcome is ok and longer by exactly the backhaul delay
    delay = 4e-3 + nbytes * 8 / 1e8
    assert out.ok and radio_only.ok
    bh = [s for s in sim.trace.spans if s.kind == "tx.backhaul"]
    tx = [s for s in sim.trace.spans if s.kind == f"tx.{direction}"]
    assert len(bh) == 1 and len(tx) == 1
    assert (bh[0].actor, bh[0].bytes, bh[0].status) == ("rsu0", nbytes, "ok")
    assert bh[0].t_end_s - bh[0].t_start_s == pytest.approx(delay, rel=1e-12)
    if direction == "ul":
        assert bh[0].t_start_s == tx[0].t_end_s and out.t_end_s == bh[0].t_end_s
    else:
        assert tx[0].t_start_s == bh[0].t_end_s and out.t_end_s == tx[0].t_end_s
    assert out.t_end_s - out.t_start_s == pytest.approx(radio_only.t_end_s - radio_only.t_start_s + delay, abs=1e-6)
