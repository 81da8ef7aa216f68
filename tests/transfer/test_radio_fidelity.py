"""The radio against its sources: LOS states that follow P_LOS(d) and stay spatially consistent (TR 38.901
7.6.3.3), shadowing per link with TR 37.885's sigma and decorrelation, building NLOS from polygons, constant
downlink power spectral density, and packet errors that follow the MCS in use."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simpy

from channel import models
from channel.buildings import Buildings
from channel.conditions import LOS, LOS_CORRELATION_M, NLOS, NLOSV
from channel.seed import free_space_gain_at_1m, noise_power_w
from channel.shadowing import SHADOWING
from cosim.build import build_radio, build_rsus
from cosim.radio import RadioParams, RadioState
from cosim.rng import RngStreams
from cosim.scenario import load_scenario, validate_tree
from cosim.transfer import packet_sizes_bytes
from transfer_testlib import make_sim, run_one, run_transfers, switching_snr

REPO = Path(__file__).resolve().parents[2]
N_LINKS = 20_000
H0 = free_space_gain_at_1m(5.9e9)


def _radio(model: str, n_rsus: int = 1, seed: int = 7, **kw) -> RadioState:
    params = RadioParams(H0, 2.5, -174.0, model=model, streams=RngStreams(seed), **kw)
    return RadioState(simpy.Environment(), params, n_rsus)


def _drive(rs: RadioState, distances_m, y_m=0.0):
    """Every vehicle at x = d, y = y_m from an RSU at the origin, one tick per distance; yields each tick."""
    ids = [f"v{i:05d}" for i in range(N_LINKS)]
    for d in distances_m:
        xy = np.column_stack([np.full(N_LINKS, float(d)), np.full(N_LINKS, y_m)])
        dist = np.hypot(xy[:, 0], xy[:, 1])[:, None]
        rs.advance(ids, xy, dist)
        yield d, rs.link_arrays()


@pytest.mark.parametrize("model", ["tr37885_highway", "tr37885_urban", "tr38901_umi"])
def test_los_fraction_follows_p_los_as_links_close_in(model):
    # Prepare: 20,000 links driven from 500 m to 20 m, 1 m per tick
    rs = _radio(model)
    checks = {499: None, 250: None, 100: None, 20: None}
    # Execute
    for d, arr in _drive(rs, range(500, 19, -1)):
        if d in checks:
            checks[d] = float((arr["state"][:, 0] == LOS).mean())
    # Assert: the LOS fraction is P_LOS(d) at every distance, not the state drawn at 500 m
    for d, frac in checks.items():
        assert frac == pytest.approx(float(models.los_probability(model, d)), abs=0.02), d


@pytest.mark.parametrize("model", ["tr37885_urban", "tr38901_umi"])
def test_los_state_is_correlated_along_distance_with_the_spec_distance(model):
    # Prepare: the latent normal behind each link's state, at lags of 5 and 20 m
    rs = _radio(model)
    d_corr = LOS_CORRELATION_M[model][0]
    latent = {d: arr["los_z"][:, 0].copy() for d, arr in _drive(rs, [300, 295, 280])}
    # Assert: exp(-lag / d_corr), and a state that mostly stays put over a short move
    for lag, later in ((5, 295), (20, 280)):
        rho = np.corrcoef(latent[300], latent[later])[0, 1]
        assert rho == pytest.approx(np.exp(-lag / d_corr), abs=0.02), lag
        assert -lag / np.log(rho) == pytest.approx(d_corr, rel=0.15 if d_corr < 20 and lag == 20 else 0.05)


def _shadowing_pairs(model, buildings=None):
    """(state at the later tick, shadowing z before, after) of 20,000 links moved 5 m three times, where
    P_LOS is near 1/2 (highway: ~500 m, urban: ~65 m), half of them behind a wall when `buildings` is given."""
    rsu_xy = np.array([[0.0, 0.0]])
    params = RadioParams(H0, 2.5, -174.0, model=model, shadowing=True, buildings=buildings, streams=RngStreams(3))
    rs = RadioState(simpy.Environment(), params, 1, rsu_xy_m=rsu_xy)
    ids = [f"v{i:05d}" for i in range(N_LINKS)]
    y = np.where(np.arange(N_LINKS) % 2 == 0, 60.0, -60.0)
    out = []
    x0 = 500.0 if model == "tr37885_highway" else 20.0
    for x in x0 + np.array([0.0, 5.0, 10.0, 15.0]):
        xy = np.column_stack([np.full(N_LINKS, x), y])
        rs.advance(ids, xy, np.hypot(xy[:, 0], xy[:, 1])[:, None])
        out.append(rs.link_arrays())
    return [(b["state"][:, 0], a["shadow_z"][:, 0], b["shadow_z"][:, 0]) for a, b in zip(out, out[1:])]


WALL = Buildings([np.array([[-1000.0, 20.0], [1000.0, 20.0], [1000.0, 30.0], [-1000.0, 30.0]])])
CASES = [("tr37885_highway", "los", LOS), ("tr37885_highway", "nlosv", NLOSV), ("tr37885_urban", "los", LOS),
         ("tr37885_urban", "nlosv", NLOSV), ("tr37885_urban", "nlos", NLOS)]


@pytest.mark.parametrize("model, name, code", CASES, ids=[f"{m}-{n}" for m, n, _ in CASES])
def test_shadowing_per_state_has_the_table_sigma_and_decorrelation(model, name, code):
    sigma_db, d_corr_m, _ = SHADOWING[(model, name)]
    pairs = _shadowing_pairs(model, WALL if model == "tr37885_urban" else None)
    rs = RadioState(simpy.Environment(), RadioParams(H0, 2.5, -174.0, model=model, shadowing=True), 1)
    after_db, before, after = [], [], []
    for state, z0, z1 in pairs:
        keep = state == code
        sigma, _ = rs._state_params(state[keep])
        after_db.append(sigma * z1[keep])
        before.append(z0[keep])
        after.append(z1[keep])
    after_db, before, after = map(np.concatenate, (after_db, before, after))
    assert len(after_db) > 10_000
    # Assert: sigma within 2%; the 5 m lag correlation gives the decorrelation distance within 5%
    assert np.std(after_db) == pytest.approx(sigma_db, rel=0.02)
    rho = np.corrcoef(before, after)[0, 1]
    assert -5.0 / np.log(rho) == pytest.approx(d_corr_m, rel=0.05)


def test_two_rsus_give_a_vehicle_independent_shadowing_on_each_link():
    rs = _radio("tr37885_highway", n_rsus=2, shadowing=True)
    ids = [f"v{i:05d}" for i in range(N_LINKS)]
    xy = np.column_stack([np.linspace(0.0, 400.0, N_LINKS), np.zeros(N_LINKS)])
    dist = np.abs(xy[:, :1] - np.array([[0.0, 400.0]]))
    rs.advance(ids, xy, dist)
    z = rs.link_arrays()["shadow_z"]
    assert np.abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 0.03
    assert np.std(z[:, 0]) == pytest.approx(1.0, rel=0.03) and np.std(z[:, 1]) == pytest.approx(1.0, rel=0.03)


def test_nlosv_blockage_is_held_while_the_link_stays_nlosv():
    rs = _radio("tr37885_highway")
    ticks = list(_drive(rs, [400, 399]))
    (_, a), (_, b) = ticks
    both = (a["state"][:, 0] == NLOSV) & (b["state"][:, 0] == NLOSV)
    assert both.sum() > 1000 and np.array_equal(a["block_z"][both, 0], b["block_z"][both, 0])
    assert np.isnan(b["block_z"][b["state"][:, 0] == LOS, 0]).all()


def test_bundled_urban_grid_blocks_perpendicular_streets_not_the_rsus_own():
    # Prepare: the bundled scenario's RSUs and buildings
    sc = load_scenario(REPO / "scenarios" / "urban_grid.yaml")
    rsus, radio = build_rsus(sc), build_radio(sc)
    assert len(radio.buildings) == 16
    rs = RadioState(simpy.Environment(), radio, len(rsus.ids), rsu_xy_m=rsus.xy_m, track_radius_m=np.inf)
    # each RSU sits on a street: x or y a multiple of the 200 m block
    on_street = []
    for k, (x, y) in enumerate(rsus.xy_m):
        vertical = abs(x / 200.0 - round(x / 200.0)) < 0.05       # on a north-south street
        along = np.array([[x, y + 60.0]]) if vertical else np.array([[x + 60.0, y]])
        # a perpendicular street, mid-block, off the RSU's own street
        sx = round(x / 200.0) * 200.0 if vertical else (np.floor(x / 200.0) * 200.0 + 100.0)
        sy = (np.floor(y / 200.0) * 200.0 + 100.0) if vertical else round(y / 200.0) * 200.0
        perpendicular = np.array([[sx + 200.0 if sx + 200.0 <= 800.0 else sx - 200.0, sy]]) if vertical else \
            np.array([[sx, sy + 200.0 if sy + 200.0 <= 800.0 else sy - 200.0]])
        on_street.append((k, along, perpendicular))
    ids = [f"v{j:03d}" for j in range(2 * len(on_street))]
    xy = np.vstack([np.vstack([a, p]) for _, a, p in on_street])
    dist = np.hypot(*(xy[:, None, :] - rsus.xy_m[None]).transpose(2, 0, 1))
    # Execute
    rs.advance(ids, xy, dist)
    state = rs.link_arrays()["state"]
    # Assert: in the RSU's street LOS or NLOSv; in the street across the block NLOS
    for j, (k, _, _) in enumerate(on_street):
        assert state[2 * j, k] in (LOS, NLOSV), (k, xy[2 * j])
        assert state[2 * j + 1, k] == NLOS, (k, xy[2 * j + 1])


@pytest.mark.parametrize("n_vehicles", [1, 4, 10])
def test_an_rsu_radiates_its_power_whatever_the_number_of_vehicles(n_vehicles):
    # Prepare: n vehicles at one RSU, each downloading over an equal share of the band
    frames = [{f"v{i}": 20.0 + 10.0 * i for i in range(n_vehicles)}]
    tree = {"rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0},
            "channel": {"downlink_bandwidth_hz": 10e6, "rsu_tx_power_w": 2.0}}
    sim = make_sim([{v: (x, 0.0) for v, x in frames[0].items()}], tree)
    bw = 10e6 / n_vehicles
    run_transfers(sim, [(0.0, v, "dl", 50_000, None, bw) for v in frames[0]])
    # Execute: each vehicle's power, measured from its SNR counter, gain and noise
    snr_db = {c.actor: c.value for c in sim.trace.counters if c.name == "dl.snr_db" and c.t_s == 0.0}
    noise = float(noise_power_w(bw, noise_figure_db=9.0))
    power = [10 ** (snr_db[v] / 10) * noise / sim.world.vehicles[v].gain_linear for v in frames[0]]
    # Assert: the shares' powers add up to the RSU's power; each SNR is the whole band's
    assert sum(power) == pytest.approx(2.0, rel=1e-9)
    assert power == pytest.approx([2.0 / n_vehicles] * n_vehicles, rel=1e-9)


@pytest.mark.parametrize("cqi", range(1, 16))
def test_packet_error_rate_at_each_switching_snr_is_ten_percent(cqi):
    # Prepare: the packet errors a scenario under rate_mode 'mcs' gets, at CQI cqi's switching SNR
    errors = build_radio(validate_tree({"name": "t", "channel": {"rate_mode": "mcs", "max_retransmissions": 30}},
                                       "t.yaml")).errors
    n_packets = 10_000
    # Execute: 10,000 packets (retransmitted until they get through)
    rec = run_one("batched", 1500 * n_packets, 1500, 1.0, [1e9], snrs=[switching_snr(cqi)], errors=errors,
                  seed=cqi)
    attempts = np.array(rec.attempts)
    # Assert
    assert len(attempts) == len(packet_sizes_bytes(1500 * n_packets, 1500)) == n_packets
    per = (attempts.sum() - n_packets) / attempts.sum()
    assert per == pytest.approx(0.10, abs=0.02)
