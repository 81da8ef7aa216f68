"""Per-tick channel evaluation: one registry call per tick, stable LOS states, correlated shadowing."""
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
    params = RadioParams(H0, 2.5, -174.0, 0.0, streams=RngStreams(5), **kw)
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


def test_one_registry_call_per_tick_and_los_held(monkeypatch):
    # Prepare: count calls to the registry
    calls = []
    real = models.link_gain_linear
    monkeypatch.setattr(models, "link_gain_linear", lambda *a, **k: calls.append(k.get("los")) or real(*a, **k))
    rs = _state(model="tr38901_umi")
    xy = np.array([[float(x), 10.0] for x in range(0, 200, 10)])
    # Execute: three ticks, vehicles move 1 m per tick
    _tick(rs, xy, [0] * len(xy))
    los_first = {v: s.copy() for v, s in rs.los.items()}
    for k in (1, 2):
        _tick(rs, xy + k, [0] * len(xy))
    # Assert: one call per tick, LOS states drawn once and held, only for the associated RSU
    assert len(calls) == 3
    assert all(np.array_equal(calls[0], c) for c in calls[1:])
    assert all(np.array_equal(los_first[v], rs.los[v]) for v in los_first)
    assert all(s[1] == -1 for s in rs.los.values())
    assert 0 < calls[0].sum() < len(xy)


def test_handover_draws_the_new_link_once():
    rs = _state(model="tr38901_umi")
    _tick(rs, np.array([[190.0, 0.0]]), [0])
    _tick(rs, np.array([[210.0, 0.0]]), [1])
    assert set(rs.los["v0"]) <= {0, 1}


def test_shadowing_follows_travelled_distance():
    # Prepare: sigma 8 dB, decorrelation 50 m (TR 36.885 macro)
    rs = _state(model="tr36885_macro", shadowing=True)
    xy = np.zeros((400, 2))
    xy[:, 0] = np.linspace(0.0, 100.0, 400)
    # Execute: standing still keeps the value; moving 5 m keeps it strongly correlated
    _tick(rs, xy, [0] * 400)
    z0 = np.array([rs.shadow_z[f"v{i}"] for i in range(400)])
    _tick(rs, xy, [0] * 400)
    z1 = np.array([rs.shadow_z[f"v{i}"] for i in range(400)])
    _tick(rs, xy + [5.0, 0.0], [0] * 400)
    z2 = np.array([rs.shadow_z[f"v{i}"] for i in range(400)])
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
    assert rs.snr_linear("v0", g[0], 0.2, 1e6) == plain.snr_linear("v0", g[0], 0.2, 1e6)


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
    told, looked_up = (_state(model="tr38901_umi", shadowing=True) for _ in range(2))
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
        assert told.shadow_z == looked_up.shadow_z and set(told.shadow_z) == set(ids)
        assert all(np.array_equal(told.los[v], looked_up.los[v]) for v in ids)
        prev_ids = ids
    z_b = told.shadow_z["b"]
    assert z_b != 0.0 and set(told.los) == {"b", "d"}
