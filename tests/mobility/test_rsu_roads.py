"""RSU placement along roads, the longest path, remaining route shapes and handover with hysteresis."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from sumo_testnets import netconvert

from mobility.roads import longest_path_edges, path_shape_xy, remaining_path_xy, rsus_along_path
from mobility.rsu import RsuLayout, associate


def test_rsus_every_spacing_along_given_edges(straight_net):
    net, _ = straight_net

    layout = rsus_along_path(net, spacing_m=300.0, radius_m=200.0, edge_ids=["e"])

    assert layout.ids == ("rsu0", "rsu1", "rsu2")
    np.testing.assert_allclose(layout.xy_m, [[150.0, -1.6], [450.0, -1.6], [750.0, -1.6]])
    assert layout.radius_m == 200.0
    shifted = rsus_along_path(net, 300.0, 200.0, ["e"], first_m=0.0, lateral_offset_m=10.0)
    np.testing.assert_allclose(shifted.xy_m, [[0.0, 8.4], [300.0, 8.4], [600.0, 8.4], [900.0, 8.4]])


def test_rsus_walk_a_bent_path_by_arc_length(l_net):
    net, _ = l_net

    layout = rsus_along_path(net, spacing_m=400.0, radius_m=100.0, edge_ids=["e"], first_m=150.0)

    poly = path_shape_xy(net, ["e"])  # the lane's centre: (0, -1.6), (501.6, -1.6), (501.6, 500)
    np.testing.assert_allclose(poly, [[0.0, -1.6], [501.6, -1.6], [501.6, 500.0]])
    # 150, 550 and 950 m along: the last two past the corner, on the northbound leg
    np.testing.assert_allclose(layout.xy_m, [[150.0, -1.6], [501.6, 46.8], [501.6, 446.8]], atol=1e-9)


def test_default_path_is_the_longest_shortest_path(tmp_path):
    # a T: a 1 km main road a-b-c with a 200 m spur b-d; both directions everywhere
    nodes = '<node id="a" x="0" y="0"/><node id="b" x="500" y="0"/><node id="c" x="1000" y="0"/>' \
            '<node id="d" x="500" y="200"/>'
    edges = "".join(f'<edge id="{u}{v}" from="{u}" to="{v}"/><edge id="{v}{u}" from="{v}" to="{u}"/>'
                    for u, v in (("a", "b"), ("b", "c"), ("b", "d")))
    net = netconvert(tmp_path, "tee", nodes, edges)

    assert longest_path_edges(net) == ["ab", "bc"]
    layout = rsus_along_path(net, spacing_m=250.0, radius_m=150.0)
    assert len(layout.ids) == 4 and layout.edges == ("ab", "ab", "bc", "bc")


def test_default_path_keeps_to_roads_cars_may_use(tmp_path):
    # a 1 km road a-b-c and, from c, a 2 km cycleway c-e: the longest path overall runs along the cycleway
    nodes = '<node id="a" x="0" y="0"/><node id="b" x="500" y="0"/><node id="c" x="1000" y="0"/>' \
            '<node id="e" x="1000" y="2000"/>'
    edges = "".join(f'<edge id="{u}{v}" from="{u}" to="{v}"/><edge id="{v}{u}" from="{v}" to="{u}"/>'
                    for u, v in (("a", "b"), ("b", "c")))
    edges += '<edge id="ce" from="c" to="e" allow="bicycle"/><edge id="ec" from="e" to="c" allow="bicycle"/>'
    net = netconvert(tmp_path, "cycle", nodes, edges)

    assert longest_path_edges(net) == ["ab", "bc"]


def test_remaining_path_follows_the_route_through_the_junction(tmp_path):
    # east 300 m, then a left turn north 300 m, through a real junction
    nodes = '<node id="a" x="0" y="0"/><node id="b" x="300" y="0"/><node id="c" x="300" y="300"/>'
    net = netconvert(tmp_path, "turn", nodes, '<edge id="ab" from="a" to="b"/><edge id="bc" from="b" to="c"/>')

    path = remaining_path_xy(net, ["ab", "bc"], 0, "ab_0", 100.0)

    assert path[0] == pytest.approx([100.0, -1.6], abs=0.2)
    assert path[-1][1] == pytest.approx(300.0, abs=15.0) and path[-1][0] > 295.0
    assert len(path) > 4  # the junction's internal lane adds the curve
    length = np.hypot(*np.diff(path, axis=0).T).sum()
    assert 480.0 < length < 510.0


def test_handover_happens_once_past_the_midpoint_by_the_hysteresis():
    layout = RsuLayout(("rsu0", "rsu1"), np.array([[0.0, 0.0], [300.0, 0.0]]), radius_m=200.0)
    hyst_m, y = 40.0, -1.6
    x = np.arange(-250.0, 550.0, 0.5)
    traj = np.stack([x, np.full_like(x, y)], axis=1)

    current = np.array([-1])
    served = []
    for p in traj:
        current = associate(layout.distances_m(p[None, :]), layout.radius_m, current, hyst_m)
        served.append(int(current[0]))
    served = np.array(served)

    changes = np.flatnonzero(np.diff(served) != 0) + 1
    assert served[changes].tolist() == [0, 1, -1]  # enter rsu0, hand over once, leave rsu1
    switch_x = x[changes[1]]
    # where being served by rsu0 is hyst_m worse than by rsu1
    x_star = brentq(lambda s: np.hypot(s, y) - np.hypot(300.0 - s, y) - hyst_m, 150.0, 300.0)
    assert x_star > 150.0 + hyst_m / 2 - 1e-9
    assert x[changes[1] - 1] < x_star <= switch_x


def test_associate_strongest_with_hysteresis_db():
    from mobility.rsu import associate_strongest

    inf = -np.inf
    power = np.array([[-80.0, -78.0], [-80.0, -85.0], [inf, -90.0], [inf, inf]])
    current = np.array([0, 1, 0, -1])
    # vehicle 0 keeps rsu0 (2 dB weaker, within 3 dB); vehicle 1 moves to the 5 dB stronger rsu0;
    # vehicle 2 lost rsu0's range so takes rsu1; vehicle 3 has nothing in range
    assert associate_strongest(power, current, hysteresis_db=3.0).tolist() == [0, 0, 1, -1]
    assert associate_strongest(power, current, hysteresis_db=0.0).tolist() == [1, 0, 1, -1]
    assert associate_strongest(power, np.full(4, -1), 10.0).tolist() == [1, 0, 1, -1]
