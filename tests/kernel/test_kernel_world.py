"""The World across ticks: rows follow vehicles through departures and arrivals; a vehicle that comes
back (after a teleport) keeps its client; departed vehicles keep their last values."""
from __future__ import annotations

import numpy as np
import pytest
import simpy

from channel.seed import free_space_gain_at_1m
from cosim.radio import RadioParams
from cosim.rng import RngStreams
from cosim.trace import Trace
from cosim.world import World
from mobility.base import MobilitySnapshot
from mobility.rsu import RsuLayout


def _world() -> World:
    rsus = RsuLayout(("r0", "r1"), np.array([[0.0, 0.0], [400.0, 0.0]]), 250.0)
    radio = RadioParams(free_space_gain_at_1m(5.9e9), 2.5, -174.0, model="tr38901_umi", shadowing=True,
                        streams=RngStreams(1))
    return World(simpy.Environment(), rsus, radio, Trace("rounds"), num_clients=10, hysteresis_m=10.0)


def _snap(t_s: float, vehicles: dict[str, float]) -> MobilitySnapshot:
    ids = tuple(sorted(vehicles))
    xy = np.array([[vehicles[v], 0.0] for v in ids]).reshape(-1, 2)
    return MobilitySnapshot(t_s, ids, xy, np.full(len(ids), 20.0), np.zeros(len(ids)))


def test_rows_clients_and_coverage_follow_vehicles_through_gaps():
    w = _world()
    ticks = [{"a": 10.0, "c": 390.0}, {"a": 30.0, "b": 100.0, "c": 370.0}, {"b": 120.0, "c": 350.0},
             {"a": 210.0, "b": 140.0, "c": 330.0}]
    first_a = None
    for k, vehicles in enumerate(ticks):
        w.apply(_snap(float(k), vehicles))
        if k == 0:
            first_a = w.vehicles["a"]
        for vid, x in vehicles.items():           # each vehicle reads its own row
            veh = w.vehicles[vid]
            assert veh.xy_m[0] == x and veh.rsu == (0 if x < 200.0 else 1)
            np.testing.assert_allclose(veh.velocity_mps, [20.0, 0.0])
            assert veh.gain_linear > 0.0 and veh.distance_m == min(x, 400.0 - x)
        assert set(w.vehicles) == set(vehicles) and w.count_covered() == len(vehicles)
    # a left at t = 2 and came back at t = 3 (as after a teleport) with its client
    assert not first_a.present and first_a.departed.triggered and first_a.xy_m[0] == 30.0
    assert first_a.rsu == 0 and np.isnan(first_a.velocity_mps).all()
    assert w.vehicles["a"] is not first_a and w.vehicles["a"].client == first_a.client
    assert sorted(v.client for v in w.vehicles.values()) == [0, 1, 2]
    kinds = [(i.t_s, i.actor, i.kind) for i in w.trace.instants if i.actor == "a"]
    assert kinds == [(0.0, "a", "vehicle.enter"), (0.0, "a", "coverage.enter"), (2.0, "a", "coverage.leave"),
                     (2.0, "a", "vehicle.leave"), (3.0, "a", "vehicle.enter"), (3.0, "a", "coverage.enter")]
    # the radio state holds exactly the vehicles present
    assert set(w.radio_state.shadow_z) == set(w.radio_state.states) == {"a", "b", "c"}


def test_a_source_that_does_not_sort_its_ids_is_caught():
    import pytest

    from mobility.base import MobilityError

    w = _world()
    w.apply(_snap(0.0, {"b": 10.0, "c": 20.0}))
    unsorted = MobilitySnapshot(1.0, ("b", "c", "a"), np.zeros((3, 2)), np.zeros(3), np.zeros(3))
    with pytest.raises(MobilityError, match="sorted order"):
        w.apply(unsorted)


def test_fit_to_dwell_drops_the_worst_miss_and_replans_until_every_vehicle_fits():
    from cosim.optimizers.api import Plan
    from cosim.optimizers.selection import fit_to_dwell

    def plan_for(ids):          # one band shared equally: latency = 4 s x how many share it
        return Plan(tuple(ids), {}, {}, {v: 4.0 * len(ids) for v in ids}, 0.0, 0.0)

    # three share: 12 s each; c misses by 7 s and goes; two share: 8 s, b misses by 2 s and goes
    kept, late = fit_to_dwell(["a", "b", "c"], {"a": 20.0, "b": 6.0, "c": 5.0}, plan_for)
    assert kept == ["a"] and late == {"c": 12.0, "b": 8.0}
    # b misses by 3 s, c by 1 s: once b has gone, c (11 s) fits the 8 s of two
    kept, late = fit_to_dwell(["a", "b", "c"], {"a": 20.0, "b": 9.0, "c": 11.0}, plan_for)
    assert kept == ["a", "c"] and late == {"b": 12.0}
    kept, late = fit_to_dwell(["a", "b"], {"a": 20.0, "b": 9.0}, plan_for)
    assert kept == ["a", "b"] and late == {}


def test_kinematic_dwell_of_a_stopped_vehicle_follows_its_smoothed_velocity():
    # Prepare: "a" drives east at 10 m/s for 5 ticks, then stands still for 10; "p" never moves
    from mobility.dwell import FLOOR_MPS, SMOOTHING_S

    rsus = RsuLayout(("r0",), np.array([[0.0, 0.0]]), 200.0)
    radio = RadioParams(free_space_gain_at_1m(5.9e9), 2.5, -174.0, streams=RngStreams(1))
    w = World(simpy.Environment(), rsus, radio, Trace("rounds"), num_clients=2)
    x = 0.0
    for t in range(16):
        moving = t < 5
        x = 10.0 * min(t, 4)
        w.apply(MobilitySnapshot(float(t), ("a", "p"), np.array([[x, 0.0], [50.0, 0.0]]),
                                 np.array([10.0 if moving else 0.0, 0.0]), np.zeros(2)))
    # Execute
    dwell = w.dwell_s([w.vehicles["a"], w.vehicles["p"]])
    # Assert: a's smoothed speed decayed for 11 ticks from 10 m/s (never below the floor here); p stays put
    speed = 10.0 * np.exp(-11.0 / SMOOTHING_S)
    assert speed > FLOOR_MPS
    assert dwell[0] == pytest.approx((200.0 - 40.0) / speed, rel=1e-9)
    assert np.isinf(dwell[1])


def test_history_velocity_is_the_smoothed_one():
    from mobility.dwell import SMOOTHING_S

    rsus = RsuLayout(("r0",), np.array([[0.0, 0.0]]), 500.0)
    radio = RadioParams(free_space_gain_at_1m(5.9e9), 2.5, -174.0, streams=RngStreams(1))
    w = World(simpy.Environment(), rsus, radio, Trace("rounds"), num_clients=1)
    xs = [0.0, 10.0, 20.0, 30.0, 50.0]                  # 10 m/s, then one tick at 20 m/s
    for t, x in enumerate(xs):
        speed = 20.0 if t == 4 else 10.0
        w.apply(MobilitySnapshot(float(t), ("a",), np.array([[x, 0.0]]), np.array([speed]), np.zeros(1)))
    _, history = w.history_velocity([w.vehicles["a"]])
    _, kinematic = w.kinematic_velocity([w.vehicles["a"]])
    alpha = 1.0 - np.exp(-1.0 / SMOOTHING_S)
    assert history[0, 0] == pytest.approx(10.0 + alpha * 10.0, rel=1e-12) and kinematic[0, 0] == pytest.approx(20.0)
