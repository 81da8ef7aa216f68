"""Dwell predictors: kinematic, route (SUMO route shape) and oracle (recorded future) against geometry."""
from __future__ import annotations

import numpy as np
import pytest
from sumo_testnets import SPEED_MPS

from mobility.dwell import kinematic_dwell_s, oracle_dwell_s, route_dwell_s
from mobility.roads import load_net

STEP_S = 0.5


def drive(src, n_steps: int, rsu_xy_m: np.ndarray, radius_m: float):
    """Run a one-car scenario; per step: time, position, velocity, lane position, route-dwell prediction."""
    rows = []
    for k in range(n_steps):
        snap = src.start() if k == 0 else src.step()
        if "v0" not in snap.ids:
            break
        i = snap.ids.index("v0")
        rows.append((snap.t_s, snap.xy_m[i], snap.velocity_mps()[i], src.route_state("v0").lane_pos_m,
                     src.route_dwell_s("v0", rsu_xy_m, radius_m)))
    src.close()
    t, xy, vel, lane_pos, route = (np.array(c) for c in zip(*rows))
    return t, xy, vel, lane_pos, route


def test_straight_road_all_predictors_match_the_analytic_dwell(live, straight_net):
    net, rou = straight_net
    rsu, radius = np.array([500.0, 0.0]), 200.0
    t, xy, vel, _, route = drive(live(STEP_S, net_file=net, route_files=[rou]), 200, rsu, radius)

    inside = np.hypot(*(xy - rsu).T) <= radius
    exit_x = rsu[0] + np.sqrt(radius ** 2 - 1.6 ** 2)  # lane centre at y = -1.6
    analytic = (exit_x - xy[inside, 0]) / SPEED_MPS
    kinematic = kinematic_dwell_s(xy[inside], vel[inside], np.tile(rsu, (inside.sum(), 1)), radius)
    oracle = np.array([oracle_dwell_s(t, xy, tk, rsu, radius) for tk in t[inside]])

    assert inside.sum() > 30
    np.testing.assert_allclose(kinematic, analytic, atol=STEP_S)
    np.testing.assert_allclose(route[inside], analytic, atol=STEP_S)
    np.testing.assert_allclose(oracle, analytic, atol=STEP_S)
    assert np.all(route[~inside] == 0.0)


def exit_time_along_lane_s(net_file, lane_id: str, lane_pos_m: float, rsu, radius: float) -> float:
    """Reference: walk the lane's shape in 1 cm steps from lane_pos_m to the first point outside."""
    shape = np.array(load_net(net_file).getLane(lane_id).getShape())
    seg = np.hypot(*np.diff(shape, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.arange(lane_pos_m, cum[-1], 0.01)
    pts = np.stack([np.interp(s, cum, shape[:, 0]), np.interp(s, cum, shape[:, 1])], axis=1)
    first_out = np.flatnonzero(np.hypot(*(pts - rsu).T) > radius)[0]
    return (s[first_out] - lane_pos_m) / SPEED_MPS


def test_turning_road_route_beats_kinematic_and_oracle_is_exact(live, l_net):
    net, rou = l_net  # east along y = -1.6 to the corner near (501.6, -1.6), then north along x = 501.6
    rsu, radius = np.array([550.0, 100.0]), 150.0
    t, xy, vel, lane_pos, route = drive(live(STEP_S, net_file=net, route_files=[rou]), 200, rsu, radius)

    before_turn = (np.hypot(*(xy - rsu).T) <= radius) & (xy[:, 0] < 495.0)
    truth = np.array([exit_time_along_lane_s(net, "e_0", p, rsu, radius) for p in lane_pos[before_turn]])
    kinematic = kinematic_dwell_s(xy[before_turn], vel[before_turn], np.tile(rsu, (before_turn.sum(), 1)), radius)
    oracle = np.array([oracle_dwell_s(t, xy, tk, rsu, radius) for tk in t[before_turn]])

    assert before_turn.sum() >= 5
    np.testing.assert_allclose(oracle, truth, atol=1e-3)
    np.testing.assert_allclose(route[before_turn], truth, atol=1e-3)
    assert np.all(np.abs(kinematic - truth) > 3.0)  # the straight line leaves ~85 m early


# ---- pure functions -----------------------------------------------------------------------------------
def test_route_dwell_takes_the_first_exit_and_ends_with_the_path():
    rsu, r = np.array([0.0, 0.0]), 10.0
    out_and_back = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 0.0]])
    short = np.array([[0.0, 0.0], [5.0, 0.0]])

    assert route_dwell_s(out_and_back, 2.0, rsu, r) == pytest.approx(5.0)
    assert route_dwell_s(short, 2.0, rsu, r) == pytest.approx(2.5)  # arrives inside: the end counts
    assert route_dwell_s(short, 0.0, rsu, r) == np.inf
    assert route_dwell_s(np.array([[11.0, 0.0], [0.0, 0.0]]), 2.0, rsu, r) == 0.0


def test_route_dwell_equals_kinematic_on_a_straight_path():
    rng = np.random.default_rng(3)
    p = rng.uniform(-5, 5, (20, 2))
    v = rng.uniform(-10, 10, (20, 2))
    rsu, r = np.zeros(2), 10.0

    kin = kinematic_dwell_s(p, v, np.zeros((20, 2)), r)
    route = [route_dwell_s(np.stack([p[i], p[i] + v[i] * 100.0]), np.hypot(*v[i]), rsu, r) for i in range(20)]

    np.testing.assert_allclose(route, kin, rtol=1e-12)


def test_oracle_dwell_interpolates_between_samples():
    times = np.array([0.0, 1.0, 2.0, 3.0])
    xy = np.array([[0.0, 0.0], [4.0, 0.0], [8.0, 0.0], [12.0, 0.0]])  # 4 m/s
    rsu, r = np.zeros(2), 10.0

    assert oracle_dwell_s(times, xy, 0.5, rsu, r) == pytest.approx(2.0)  # leaves at x = 10, t = 2.5
    assert oracle_dwell_s(times, xy, 2.75, rsu, r) == 0.0  # already outside
    assert oracle_dwell_s(times[:3], xy[:3], 0.0, rsu, r) == pytest.approx(2.0)  # track ends inside at t = 2
    assert oracle_dwell_s(times, xy, -1.0, rsu, r) == 0.0  # not yet there
    assert oracle_dwell_s(times, xy, 4.0, rsu, r) == 0.0  # gone
