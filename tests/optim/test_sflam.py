"""SFLAM's optimizer on small random instances: its table against the cost model, SUBP1's SCA against the
closed form and a power grid, the whole against brute force over matchings x bit levels x powers, its
constraints, its LP, its trends and its baselines."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from channel.link import LinkBudget
from cosim import registry
from cosim.cli import main
from cosim.compute import DeviceSpec
from cosim.optimizers import sflam as S
from cosim.optimizers.api import snapshot_from_json, snapshot_to_json
from cosim.optimizers.constraints import violations
from cosim.optimizers.costs import SplitCost
from cosim.optimizers.instances import random_snapshot
from cosim.optimizers.sflam_model import SflamDecision, accuracy_curve
from cosim.wire import QuantizingCodec, activation_bytes
from sflam_brute import brute_force_objective

# (seed, vehicles, subchannels, RSUs): 2-6 vehicles on 2-6 subchannels, one or two RSUs
CASES = [(0, 2, 2, 1), (1, 3, 5, 1), (2, 4, 3, 1), (3, 5, 4, 1), (4, 6, 6, 1), (5, 6, 2, 1), (6, 5, 3, 2),
         (7, 6, 4, 2), (8, 4, 6, 2)]


def _instance(seed, n, m, rsus=1, **settings):
    return random_snapshot(n, seed, "sflam", rsus=rsus, subchannels=m, settings=settings)


def _with(snap, **settings):
    return dataclasses.replace(snap, settings={**snap.settings, **settings})


def _t_max(snap):
    return snap.settings["max_latency_s"] or snap.budgets.round_time_s


def _objective(snap):
    return S.sflam(snap).stats["objective"]


def _gpu(snap, seed):
    """Every other vehicle on a GPU (per-call t0, E = p_cp t)."""
    rng = np.random.default_rng(seed)
    cands = tuple(dataclasses.replace(c, device=DeviceSpec("gpu", f, f, t0_s=float(rng.uniform(1e-4, 2e-3)),
                                                           p_cp_w=float(rng.uniform(5.0, 15.0))))
                  if i % 2 else c for i, (c, f) in enumerate(zip(snap.candidates, rng.uniform(0.8e9, 1.5e9, 99))))
    return dataclasses.replace(snap, candidates=cands)


def test_the_scheme_prices_rounds_with_the_quantizing_split_cost():
    cost = registry.scheme("sflam").cost
    assert isinstance(cost, SplitCost) and isinstance(cost.codec, QuantizingCodec)
    assert not cost.sequential and not cost.frozen_client


@pytest.mark.parametrize("case", range(6))
def test_the_table_is_the_cost_model(case):
    """Latency and energy of every (vehicle, subchannel, level) at random powers, CPU and GPU vehicles, with
    interference, antenna gain, noise figure, a batch cap and quantized gradients in some cases."""
    settings = [{}, {"gradient_bits": 8}, {"batches_per_round": 3}, {"bits_min": 1, "bits_max": 32},
                {"gradient_bits": 4, "bits_max": 6}, {}][case]
    snap = _instance(case, 7, 5, rsus=2, **settings)
    if case % 2:
        snap = _gpu(snap, case)
    if case >= 3:
        rng = np.random.default_rng(case)
        snap = dataclasses.replace(
            snap, link=LinkBudget(rsu_noise_figure_db=7.0, vehicle_noise_figure_db=8.0, antenna_gain_db=3.0),
            candidates=tuple(dataclasses.replace(c, interference_ul_w_per_hz=float(rng.uniform(0, 1e-19)),
                                                 interference_dl_w_per_hz=float(rng.uniform(0, 1e-19)))
                             for c in snap.candidates))
    if case == 5:                                    # a smaller learning batch: several batches per epoch
        snap = dataclasses.replace(snap, learning=dataclasses.replace(snap.learning, batch_size=16, local_epochs=2))
    table = S.pair_table(snap)
    rng = np.random.default_rng(100 + case)
    power = rng.uniform(0.01, 0.2, table.snr_per_w.shape + (len(table.levels),))
    lat, energy = table.latency_s(power), table.energy_j(power)
    np.testing.assert_array_equal(table.energy_j(0.1), table.energy_j(np.full(power.shape, 0.1)))
    cost = registry.scheme("sflam").cost
    s = snap.settings
    for i, c in enumerate(snap.candidates):
        for m in range(snap.radio.subchannels):
            for k, q in enumerate(table.levels):
                dec = SflamDecision(bandwidth_share=1.0 / snap.radio.subchannels, tx_power_w=float(power[i, m, k]),
                                    cut=s["cut"], activation_bits=int(q), subchannel=m,
                                    gradient_bits=s["gradient_bits"])
                want = cost.cost(snap, c, dec)
                assert lat[i, m, k] == pytest.approx(want.latency_s, rel=1e-12)
                assert energy[i, m, k] == pytest.approx(want.energy_j, rel=1e-12)


def test_payload_bytes_is_the_wires():
    elements = np.array([0, 1, 7, 2080, 128 * 2080, 33 * 2080])
    bits = np.array([1, 2, 3, 7, 8, 15, 16, 32])
    got = S.payload_bytes(elements, bits)
    assert got.tolist() == [[activation_bytes(int(e), int(q)) for q in bits] for e in elements]


@pytest.mark.parametrize("seed,n,m,rsus", CASES)
def test_sca_meets_the_closed_form_and_a_power_grid(seed, n, m, rsus):
    snap = _instance(seed, n, m, rsus)
    table, t_max = S.pair_table(snap), _t_max(snap)
    with np.errstate(all="ignore"):
        sca, its = S.subp1(table, t_max, 0.01, 0.2, guard=False)
        guarded, _ = S.subp1(table, t_max, 0.01, 0.2)
        least = S.least_power_w(table, t_max)
    exact, feasible = np.clip(least, 0.01, 0.2), least <= 0.2
    assert np.array_equal(np.isfinite(sca), feasible) and its >= 1
    binding = feasible & (exact > 0.01)
    assert binding.any()
    np.testing.assert_allclose(sca[feasible], exact[feasible], rtol=1e-9)
    assert np.all(guarded[feasible] >= exact[feasible]) and np.all(guarded[feasible] <= sca[feasible] * (1 + 1e-9))
    assert np.all(sca[binding] <= exact[binding] * (1 + 1e-13))      # from the infeasible side
    with np.errstate(all="ignore"):
        assert np.all(table.latency_s(guarded)[feasible] <= t_max * (1 + 1e-12))
    grid = np.linspace(0.01, 0.2, 2001)
    for i, j, k in zip(*np.nonzero(feasible)):
        rate = table.bw_ul_hz * np.log2(1.0 + table.snr_per_w[i, j] * grid)
        ok = table.fixed_s[i, j] + table.up_bits[i, k] / rate <= t_max
        e_grid = table.compute_j[i] + grid * table.up_bits[i, k] / rate
        e_sca = table.energy_j(np.full(table.snr_per_w.shape + (len(table.levels),), guarded[i, j, k]))[i, j, k]
        assert e_sca <= np.min(e_grid[ok]) * (1 + 1e-12)             # no grid power does better
        assert grid[ok][0] >= guarded[i, j, k] * (1 - 1e-12)          # nor meets the deadline with less power


@pytest.mark.parametrize("seed,n,m,rsus", CASES)
@pytest.mark.parametrize("deadline", [1.0, 0.6, 2.0])
def test_the_optimizer_matches_or_beats_brute_force(seed, n, m, rsus, deadline):
    snap = _instance(seed, n, m, rsus)
    snap = _with(snap, max_latency_s=_t_max(snap) * deadline)
    plan = S.sflam(snap)
    brute = brute_force_objective(snap, accuracy_curve(snap))
    assert plan.stats["objective"] >= brute * (1 - 1e-4)
    assert plan.stats["objective"] <= brute * (1 + 5e-3) + 1e-12     # the grid is 1e-4 W apart
    assert violations(snap, plan) == []


SETTINGS = [{}, {"power_control": "max"}, {"assignment": "random"}, {"assignment_solver": "lp"},
            {"bits_min": 8, "bits_max": 8}, {"bits_min": 4, "bits_max": 4}, {"bits_min": 32, "bits_max": 32},
            {"gradient_bits": 8, "bits_min": 1}]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("seed", range(3))
def test_no_plan_breaks_a_constraint(settings, seed):
    snap = _instance(seed, 20, 8, rsus=3, **settings)
    plan = S.sflam(snap)
    assert violations(snap, plan) == []
    t_max, levels = _t_max(snap), set(S.bit_levels(snap.settings["bits_min"], snap.settings["bits_max"]).tolist())
    assert list(plan.selected) == [c.id for c in snap.candidates if c.id in plan.selected]   # candidate order
    assert plan.selected and plan.predicted_latency_s <= t_max * (1 + 1e-9)
    for v in plan.selected:
        d, cost = plan.decisions[v], plan.costs[v]
        assert cost.latency_s <= t_max * (1 + 1e-9)
        assert 0.01 * (1 - 1e-12) <= d.tx_power_w <= 0.2 * (1 + 1e-12)
        assert d.activation_bits in levels and d.gradient_bits == snap.settings["gradient_bits"]
        assert d.bandwidth_share == 1.0 / 8 and 0 <= d.subchannel < 8 and d.cut == 1
        assert d.predicted_accuracy == pytest.approx(accuracy_curve(snap)(d.activation_bits), rel=1e-15)
        assert d.efficiency_per_j == pytest.approx(d.predicted_accuracy / cost.energy_j, rel=1e-12)
    if settings.get("power_control") == "max":
        assert {d.tx_power_w for d in plan.decisions.values()} == {0.2}
    assert plan.stats["objective"] == pytest.approx(sum(d.efficiency_per_j for d in plan.decisions.values()), rel=1e-12)
    bits = [d.activation_bits for d in plan.decisions.values()]
    assert (plan.stats["bits_min"], plan.stats["bits_max"]) == (min(bits), max(bits))
    assert plan.stats["bits_mean"] == pytest.approx(np.mean(bits))


@pytest.mark.parametrize("seed", range(6))
def test_the_lp_is_integral_and_agrees_with_the_exact_assignment(seed):
    snap = _instance(seed, 12 + seed, 6 + 2 * seed, rsus=1 + seed % 2)
    lp, exact = S.sflam(_with(snap, assignment_solver="lp")), S.sflam(_with(snap, assignment_solver="exact"))
    assert lp.stats["lp_integral"] is True and exact.stats["lp_integral"] is None
    assert lp.stats["objective"] == pytest.approx(exact.stats["objective"], rel=1e-9)


def test_a_fractional_lp_answer_falls_back_to_the_exact_assignment(monkeypatch):
    delta = np.array([[1.0, 1.0], [1.0, 1.0]])

    class Half:
        status, x = 0, np.full(4, 0.5)

    monkeypatch.setattr(S, "linprog", lambda *a, **k: Half())
    out, integral = S.assign_lp(delta)
    assert not integral and sorted(out.tolist()) == [0, 1]


@pytest.mark.parametrize("seed,n,m,rsus", CASES)
def test_a_looser_deadline_or_another_subchannel_never_lowers_the_objective(seed, n, m, rsus):
    snap = _instance(seed, n, m, rsus)
    t_max = _t_max(snap)
    obj = [_objective(_with(snap, max_latency_s=t_max * f)) for f in (0.4, 0.7, 1.0, 1.5, 3.0)]
    assert all(b >= a * (1 - 1e-12) for a, b in zip(obj, obj[1:])) and obj[-1] > obj[0]
    rng = np.random.default_rng(seed)
    base = _objective(snap)
    for _ in range(2):          # the band grows by W / M, the RSU's power with it: a subchannel's width and power stay
        r = snap.radio
        grow = (r.subchannels + 1) / r.subchannels
        snap = dataclasses.replace(
            snap, radio=dataclasses.replace(r, subchannels=r.subchannels + 1, rsu_tx_power_w=r.rsu_tx_power_w * grow,
                                            uplink_bandwidth_hz=r.uplink_bandwidth_hz * grow,
                                            downlink_bandwidth_hz=r.downlink_bandwidth_hz * grow),
            candidates=tuple(dataclasses.replace(c, subchannel_fading=(*c.subchannel_fading, float(rng.exponential())))
                             for c in snap.candidates))
        more = _objective(snap)
        assert more >= base * (1 - 1e-12)
        base = more


@pytest.mark.parametrize("seed,n,m,rsus", CASES)
def test_the_baselines_never_beat_the_optimum(seed, n, m, rsus):
    snap = _instance(seed, n, m, rsus)
    best = _objective(snap)
    for settings in ({"power_control": "max"}, {"assignment": "random"}, {"bits_min": 8, "bits_max": 8},
                     {"bits_min": 4, "bits_max": 4}, {"bits_min": 32, "bits_max": 32}):
        assert _objective(_with(snap, **settings)) <= best * (1 + 1e-12), settings


def test_a_random_assignment_is_drawn_from_the_snapshot_alone():
    snap = _instance(3, 10, 6, rsus=1, assignment="random")
    (first, history), again = S.solve(snap), S.sflam(snap)
    assert first == again and len(history) == 2                # one draw, kept in every pass
    assert dataclasses.replace(history[1], sca_iterations=0) == dataclasses.replace(history[0], sca_iterations=0)
    other = S.sflam(dataclasses.replace(snap, round=1))
    def subchannels(plan):
        return {v: d.subchannel for v, d in plan.decisions.items()}

    assert subchannels(other) != subchannels(first)


def test_the_second_pass_confirms_the_first():
    snap = _instance(4, 30, 12, rsus=2)
    plan, history = S.solve(snap)
    assert plan.stats["iterations"] == len(history) == 2
    assert history[1].objective == history[0].objective == plan.stats["objective"]
    assert history[0].sca_iterations == plan.stats["sca_iterations"] >= 2 and history[1].sca_iterations == 1
    assert history[0].assigned == len(plan.selected)
    assert history[0].bits_mean == pytest.approx(plan.stats["bits_mean"])
    assert history[0].power_mean_w == pytest.approx(np.mean([d.tx_power_w for d in plan.decisions.values()]))
    one = S.solve(_with(snap, max_iterations=1))
    assert one[0] == dataclasses.replace(plan, stats={**plan.stats, "iterations": 1}) and len(one[1]) == 1


def test_what_it_cannot_plan_is_an_error_that_says_why():
    snap = _instance(0, 4, 3)
    with pytest.raises(ValueError, match="Shannon"):
        S.sflam(dataclasses.replace(snap, link=LinkBudget(rate_mode="mcs")))
    with pytest.raises(ValueError, match="Shannon"):
        S.sflam(dataclasses.replace(snap, link=LinkBudget(fading="rayleigh", fading_mode="ergodic")))
    with pytest.raises(ValueError, match="subchannels is 0"):
        S.sflam(dataclasses.replace(snap, radio=dataclasses.replace(snap.radio, subchannels=0)))
    short = dataclasses.replace(snap.candidates[1], subchannel_fading=(1.0, 1.0))
    with pytest.raises(ValueError, match="v0001: 2 subchannel_fading values, expected radio.subchannels = 3"):
        S.sflam(dataclasses.replace(snap, candidates=(snap.candidates[0], short, *snap.candidates[2:])))


def test_no_vehicle_within_the_deadline_is_an_empty_plan():
    snap = _with(_instance(1, 5, 3), max_latency_s=1e-3)
    plan = S.sflam(snap)
    assert plan.selected == () and plan.stats["objective"] == 0.0 and plan.stats["bits_mean"] is None
    assert violations(snap, plan) == []


def test_a_random_instance_round_trips_and_solves_from_the_command_line(tmp_path, capsys):
    snap = _instance(2, 8, 4)
    assert snapshot_from_json(snapshot_to_json(snap)) == snap
    assert main(["optimize", "sflam", "--random", "30", "--seed", "2", "--instance", str(tmp_path / "i.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["violations"] == [] and out["stats"]["iterations"] == 2
    assert {v["decision"]["subchannel"] for v in out["vehicles"].values()} <= set(range(10))
