"""Per-tick channel evaluation: one registry call per tick, link state carried with the vehicles."""
from __future__ import annotations

import numpy as np
import pytest
import simpy

import channel.models as models
from channel.seed import free_space_gain_at_1m, seed_gain_linear
from cosim.radio import RadioParams, RadioState
from cosim.rng import RngStreams

H0 = free_space_gain_at_1m(5.9e9)


def _state(**kw) -> RadioState:
    params = RadioParams(H0, 2.5, -174.0, streams=RngStreams(5), **kw)
    return RadioState(simpy.Environment(), params, 2)


def _tick(rs: RadioState, xy: np.ndarray, rsu_idx):
    rsu_xy = np.array([[0.0, 0.0], [400.0, 0.0]])
    dist = np.sqrt(((xy[:, None, :] - rsu_xy[None]) ** 2).sum(axis=2))
    ids = [f"v{i}" for i in range(len(xy))]
    return rs.evaluate(ids, xy, dist, np.asarray(rsu_idx))


def test_seed_default_is_the_seed_formula_bit_for_bit():
    rs = _state()
    xy = np.array([[30.0, 5.0], [350.0, -3.0], [900.0, 0.0]])
    gain = _tick(rs, xy, [0, 1, -1])
    d = np.array([np.hypot(30.0, 5.0), np.hypot(50.0, 3.0)])
    assert np.array_equal(gain[:2], seed_gain_linear(d, H0, 2.5)) and gain[2] == 0.0


def test_one_registry_call_per_tick_and_no_draws_inside_it(monkeypatch):
    # Prepare: count calls to the registry and the rng it is given
    calls = []
    real = models.link_gain_linear
    monkeypatch.setattr(models, "link_gain_linear", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    rs = _state(model="tr37885_highway")
    xy = np.array([[float(x), 10.0] for x in range(0, 200, 10)])
    # Execute: three ticks, vehicles move 1 m per tick
    for k in (0, 1, 2):
        _tick(rs, xy + k, [0] * len(xy))
    # Assert: one call per tick, which draws nothing (the state is drawn by `advance`)
    assert calls == [None, None, None]


def test_standing_still_keeps_every_link_state():
    rs = _state(model="tr37885_urban", shadowing=True)
    xy = np.array([[float(x), 10.0] for x in range(0, 300, 7)])
    _tick(rs, xy, [0] * len(xy))
    first = rs.link_arrays()
    _tick(rs, xy, [0] * len(xy))
    again = rs.link_arrays()
    for name in ("state", "los_z", "shadow_z", "block_z"):
        assert np.array_equal(first[name], again[name], equal_nan=True), name


def test_both_links_of_a_vehicle_in_range_are_tracked():
    rs = _state(model="tr38901_umi")
    _tick(rs, np.array([[190.0, 0.0]]), [0])
    _tick(rs, np.array([[210.0, 0.0]]), [1])
    assert set(rs.states["v0"]) <= {0, 2}


def test_shadowing_follows_travelled_distance():
    # Prepare: sigma 8 dB, decorrelation 50 m (TR 36.885 macro)
    rs = _state(model="tr36885_macro", shadowing=True)
    xy = np.zeros((400, 2))
    xy[:, 0] = np.linspace(0.0, 100.0, 400)
    # Execute: standing still keeps the value; moving 5 m keeps it strongly correlated
    _tick(rs, xy, [0] * 400)
    z0 = rs.link_arrays()["shadow_z"][:, 0]
    _tick(rs, xy, [0] * 400)
    z1 = rs.link_arrays()["shadow_z"][:, 0]
    _tick(rs, xy + [5.0, 0.0], [0] * 400)
    z2 = rs.link_arrays()["shadow_z"][:, 0]
    # Assert
    assert np.array_equal(z0, z1)
    rho = np.corrcoef(z1, z2)[0, 1]
    assert rho == pytest.approx(np.exp(-5.0 / 50.0), abs=0.03)
    assert np.std(z0) == pytest.approx(1.0, abs=0.15)


def test_interference_lowers_the_snr():
    rs = _state(interference=True, vehicle_tx_power_w=0.2, rsu_tx_power_w=1.0)
    plain = _state()
    xy = np.array([[150.0, 0.0], [250.0, 0.0]])
    g = _tick(rs, xy, [0, 1])
    g_plain = _tick(plain, xy, [0, 1])
    assert np.array_equal(g, g_plain)
    for direction in ("ul", "dl"):
        with_i = rs.snr_linear("v0", g[0], 0.2, 1e6, direction)
        without = plain.snr_linear("v0", g[0], 0.2, 1e6, direction)
        assert with_i < without


def test_noise_figure_is_the_receivers():
    rs = _state(rsu_noise_figure_db=5.0, vehicle_noise_figure_db=9.0)
    up, down = rs.snr_linear("v0", 1e-9, 0.2, 1e6, "ul"), rs.snr_linear("v0", 1e-9, 0.2, 1e6, "dl")
    assert 10 * np.log10(up / down) == pytest.approx(4.0, abs=1e-12)


def test_rate_modes():
    shannon = _state()
    mcs = _state(rate_mode="mcs")
    ergodic = _state(fading="rayleigh", fading_mode="ergodic")
    assert shannon.rate_bps(1e6, 100.0) == pytest.approx(1e6 * np.log2(101.0))
    assert mcs.rate_bps(1e6, 100.0) <= shannon.rate_bps(1e6, 100.0)
    assert mcs.rate_bps(1e6, 0.01) == 0.0
    assert ergodic.rate_bps(1e6, 100.0) < shannon.rate_bps(1e6, 100.0)


def test_state_follows_vehicles_through_arrivals_and_departures():
    # Prepare: two states, one told the row map (as the World does), one looking each vehicle up
    told, looked_up = (_state(model="tr37885_urban", shadowing=True) for _ in range(2))
    rsu_xy = np.array([[0.0, 0.0], [400.0, 0.0]])
    ticks = [(("a", "b", "c"), [[10.0, 0.0], [150.0, 0.0], [300.0, 0.0]], [0, 0, 1]),
             (("b", "c", "d"), [[152.0, 0.0], [303.0, 0.0], [20.0, 0.0]], [0, 1, 0]),
             (("b", "d"), [[154.0, 0.0], [22.0, 0.0]], [0, 0])]
    prev_ids = None
    for ids, xy, rsu in ticks:
        xy = np.array(xy)
        dist = np.sqrt(((xy[:, None, :] - rsu_xy[None]) ** 2).sum(axis=2))
        prev = None if prev_ids is None else (prev_ids, np.array([prev_ids.index(v) if v in prev_ids else -1
                                                                  for v in ids]))
        # Execute
        g_told = told.evaluate(ids, xy, dist, np.array(rsu), prev)
        g_looked = looked_up.evaluate(list(ids), xy, dist, np.array(rsu))
        # Assert: the same gains and states; departed vehicles are forgotten
        assert np.array_equal(g_told, g_looked)
        a, b = told.link_arrays(), looked_up.link_arrays()
        assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)
        assert set(told.states) == set(ids)
        prev_ids = ids
    assert set(told.states) == {"b", "d"}
    assert not np.isnan(told.link_arrays()["shadow_z"]).all()


def test_links_out_of_range_are_forgotten():
    params = RadioParams(H0, 2.5, -174.0, model="tr37885_highway", shadowing=True, streams=RngStreams(1))
    rs = RadioState(simpy.Environment(), params, 2, track_radius_m=100.0)
    xy = np.array([[50.0, 0.0]])
    dist = np.array([[50.0, 350.0]])
    rs.advance(["v0"], xy, dist)
    arr = rs.link_arrays()
    assert arr["state"][0, 0] >= 0 and arr["state"][0, 1] == -1 and np.isnan(arr["shadow_z"][0, 1])
