"""ST-SFLora's optimizer on random rounds: Algorithm 3 against brentq's min-max, the token closed form and the
power against the exact constraints, the least band, every plan's constraints, the trends, its rates against
the channel's and the cost model's, and the command line."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq

from channel import link
from channel.link import LinkBudget
from cosim import registry
from cosim.cli import main
from cosim.optimizers import st_sflora as S
from cosim.optimizers.api import Decision, snapshot_from_json, snapshot_to_json
from cosim.optimizers.constraints import violations
from cosim.optimizers.costs import uplink_rate_bps
from cosim.optimizers.instances import random_snapshot
from cosim.optimizers.st_sflora_model import geometry
from learning.tokens import tokens_sent

N = 64


def _snap(n, seed, rsus=None, **settings):
    return random_snapshot(n, seed, "st_sflora", rsus=rsus, settings=settings)


def _budget(snap, e_max):
    """The snapshot with energy budget e_max (settings and budgets alike)."""
    return dataclasses.replace(snap, settings={**snap.settings, "energy_budget_j": e_max},
                               budgets=dataclasses.replace(snap.budgets, vehicle_energy_j=e_max))


def _with(snap, **settings):
    return dataclasses.replace(snap, settings={**snap.settings, **settings})


def _exact(snap, cand, k, w_hz, p_w):
    """(T, E) of the vehicle's token upload from the channel's own rate and the geometry's payload."""
    bits = cand.num_samples * geometry(snap).sample_bits(int(k))
    rate = link.rate_bps(snap.link, "ul", float(p_w), cand.gain_linear, float(w_hz), cand.interference_ul_w_per_hz)
    return bits / rate, p_w * bits / rate


def _interfered(snap, seed):
    """Interference, a noise figure and antenna gain: the SINR's W scaling must still hold."""
    rng = np.random.default_rng(seed)
    return dataclasses.replace(
        snap, link=LinkBudget(rsu_noise_figure_db=7.0, vehicle_noise_figure_db=8.0, antenna_gain_db=3.0),
        candidates=tuple(dataclasses.replace(c, interference_ul_w_per_hz=float(rng.uniform(0, 1e-19)))
                         for c in snap.candidates))


# ---- rates ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("interfered", [False, True])
def test_the_snr_per_watt_per_hertz_scales_like_the_channels(interfered):
    snap = _snap(12, 3, rsus=2)
    snap = _interfered(snap, 3) if interfered else snap
    up = S.uplinks(snap)
    rng = np.random.default_rng(0)
    for c, per in zip(snap.candidates, up.snr_per_w_hz):
        for p, w in zip(rng.uniform(0.01, 0.2, 4), rng.uniform(1e4, 5e7, 4)):
            assert link.snr_linear(snap.link, "ul", p, c.gain_linear, w, c.interference_ul_w_per_hz) == pytest.approx(
                p * per / w, rel=1e-12)


@pytest.mark.parametrize("interfered", [False, True])
def test_rates_and_airtimes_are_the_cost_models(interfered):
    snap = _budget(_snap(40, 5), 0.03)
    snap = _interfered(snap, 5) if interfered else snap
    plan = S.st_sflora(snap)
    up = S.uplinks(snap)
    cost = registry.scheme("st_sflora").cost
    assert plan.selected
    for i, c in enumerate(snap.candidates):
        if c.id not in plan.selected:
            continue
        d = plan.decisions[c.id]
        rate = float(up.rate_bps(d.bandwidth_share * snap.radio.uplink_bandwidth_hz, d.tx_power_w)[i])
        assert rate == pytest.approx(uplink_rate_bps(snap, c, d), rel=1e-12)
        bits = c.num_samples * geometry(snap).sample_bits(d.tokens)
        assert plan.costs[c.id].comm_s == pytest.approx(bits / rate, rel=1e-12)
        assert plan.costs[c.id] == cost.cost(snap, c, d)
    # and at arbitrary decisions
    rng = np.random.default_rng(1)
    for i, c in enumerate(snap.candidates[:10]):
        d = Decision(bandwidth_share=float(rng.uniform(0.01, 1)), tx_power_w=float(rng.uniform(0.01, 0.2)),
                     tokens=int(rng.integers(0, N + 1)))
        w = d.bandwidth_share * snap.radio.uplink_bandwidth_hz
        assert float(up.rate_bps(w, d.tx_power_w)[i]) == pytest.approx(uplink_rate_bps(snap, c, d), rel=1e-12)
        assert float(up.airtime_s(d.tokens, w, d.tx_power_w)[i]) == pytest.approx(cost.cost(snap, c, d).comm_s,
                                                                                  rel=1e-12)


def test_a_batch_cap_and_more_epochs_send_what_the_cost_model_sends():
    """Each sample goes up once (the first epoch's batches), at most batches_per_round of them."""
    snap = _with(_snap(15, 8), batches_per_round=2)
    snap = dataclasses.replace(snap, learning=dataclasses.replace(snap.learning, local_epochs=3))
    plan = S.st_sflora(snap)
    up = S.uplinks(snap)
    assert np.all(up.bits_per_token == np.minimum([c.num_samples for c in snap.candidates], 64) * 64 * 32)
    for i, c in enumerate(snap.candidates):
        d = plan.decisions[c.id]
        w = d.bandwidth_share * snap.radio.uplink_bandwidth_hz
        assert float(up.airtime_s(d.tokens, w, d.tx_power_w)[i]) == pytest.approx(plan.costs[c.id].comm_s, rel=1e-12)
    assert violations(snap, plan) == []


def test_tokens_sent_and_the_semantic_content():
    assert tokens_sent(np.array([0, 1, 62, 63, 64]), 64).tolist() == [2, 3, 64, 65, 65]
    snap = _snap(3, 0)
    up = S.uplinks(snap)
    for c, row in zip(snap.candidates, up.content):
        scores = np.sort(snap.extra["importance"][c.id])[::-1]
        assert row[0] == 0.0 and row[N] == pytest.approx(np.sum(scores), rel=1e-12)
        np.testing.assert_allclose(row[1:], np.cumsum(scores), rtol=1e-12)
        assert np.all(np.diff(row) >= 0) and 0.8 < row[N] < 1.0


# ---- SUBP2: Algorithm 3 ------------------------------------------------------------------------------
def _reference_tau(a, bits, floor, band):
    """The min-max by brentq: W_m(tau) solves R(W) = max(bits / tau, floor), tau solves sum W_m(tau) = band."""
    def rate(w, a_m):
        return w * np.log2(1.0 + a_m / w)

    def w_of(tau):
        return np.array([brentq(lambda w, m=m: rate(w, a[m]) - max(bits[m] / tau, floor[m]), band * 1e-12, band,
                                xtol=band * 1e-15, rtol=1e-15) for m in range(len(a))])

    lo = max(bits / rate(band, a))
    if np.sum(w_of(lo)) <= band:
        return lo
    hi = lo * 2
    while np.sum(w_of(hi)) > band:
        hi *= 2
    return brentq(lambda t: np.sum(w_of(t)) - band, lo, hi, xtol=1e-15, rtol=1e-14)


def _subp2_instance(seed):
    """2-8 vehicles over 1-2 RSUs at random powers, tokens and a budget and dwells that bind for some."""
    rng = np.random.default_rng(seed)
    n, rsus = int(rng.integers(2, 9)), int(rng.integers(1, 3))
    snap = _snap(n, seed, rsus=rsus)
    up = S.uplinks(snap)
    p = rng.uniform(0.01, 0.2, n)
    k = rng.integers(16, N + 1, n)
    s = up.payload_bits(k)
    t_eq = s / up.rate_bps(S.equal_bandwidth_hz(up), p)
    up = dataclasses.replace(up, standing_s=t_eq * rng.uniform(0.8, 20.0, n),
                             energy_cap_j=float(np.median(p * t_eq) * rng.uniform(0.9, 3.0)))
    return up, p, k


def _check_algorithm_3(seed) -> int:
    """Algorithm 3 against brentq on the instance's RSUs; returns how many were feasible."""
    up, p, k = _subp2_instance(seed)
    a, bits, floor = up.snr_per_w_hz * p, up.payload_bits(k), S.rate_floors_bps(up, k, p)
    got = S.min_max_bandwidth(a, bits, floor, up.rsu, up.band_hz)
    checked = 0
    for r in range(up.rsus):
        at = up.rsu == r
        reach = floor <= S.shannon_bps(a, up.band_hz)
        need = np.array([brentq(lambda w, m=m: w * np.log2(1 + a[m] / w) - floor[m], up.band_hz * 1e-12, up.band_hz)
                         if reach[m] else np.inf for m in np.flatnonzero(at)])
        feasible = np.sum(need) <= up.band_hz
        assert got.feasible[r] == feasible
        if not feasible:
            continue
        checked += 1
        tau = _reference_tau(a[at], bits[at], floor[at], up.band_hz)
        assert got.tau_s[r] == pytest.approx(tau, rel=1e-8)
        w = got.w_hz[at]
        assert np.sum(w) <= up.band_hz * (1 + 1e-12)
        rate = S.shannon_bps(a[at], w)
        assert np.all(bits[at] / rate <= got.tau_s[r] * (1 + 1e-9))
        assert np.all(rate >= floor[at] * (1 - 1e-12))                      # C5 and C6 at these p, K
        # from another feasible allocation (the optimizer's warm start), the same tau
        start = 0.5 * (w + need + (up.band_hz - np.sum(need)) / len(need))
        warm = S.min_max_bandwidth(a[at], bits[at], floor[at], np.zeros(at.sum(), dtype=int), up.band_hz,
                                   start_hz=start)
        assert warm.tau_s[0] == pytest.approx(tau, rel=1e-8) and np.sum(warm.w_hz) <= up.band_hz * (1 + 1e-12)
    return checked


def test_algorithm_3_is_the_min_max_brentq_finds():
    """24 instances of 2-8 vehicles over 1-2 RSUs, most of them feasible."""
    assert sum(_check_algorithm_3(seed) > 0 for seed in range(24)) >= 16


def test_algorithm_3_on_one_vehicle_gives_it_the_whole_band():
    a, bits = np.array([3e8]), np.array([2e6])
    got = S.min_max_bandwidth(a, bits, np.zeros(1), np.zeros(1, dtype=int), 5e6)
    assert got.w_hz[0] == pytest.approx(5e6, rel=1e-9) and got.w_hz[0] <= 5e6
    assert got.tau_s[0] == pytest.approx(bits[0] / S.shannon_bps(a[0], 5e6), rel=1e-12)


def test_the_inner_bisection_returns_the_feasible_end():
    a = np.array([1e6, 3e8, 5e9])
    rate = np.array([5e5, 2e7, 3e8])
    lo, hi = S.bandwidth_for_rate(a, rate, 0.0, np.full(3, 5e7))
    assert np.all(S.shannon_bps(a, hi) >= rate) and np.all(S.shannon_bps(a, lo) < rate)
    assert np.all(hi - lo <= 1e-15 * hi)


# ---- SUBP1: power ------------------------------------------------------------------------------------
def test_the_energy_snr_bound_is_the_largest():
    target = np.array([0.5, math.log(2.0), 0.7, 1.0, 5.0, 123.0, 2e4, np.inf])
    x = S.snr_within(target)
    assert x[0] == x[1] == 0.0 and x[-1] == np.inf
    v = x[2:-1]
    assert np.all(v / np.log2(1 + v) <= target[2:-1])
    assert np.all((v * (1 + 1e-12)) / np.log2(1 + v * (1 + 1e-12)) > target[2:-1])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("e_max", [0.004, 0.01, 0.05, None])
def test_subp1_takes_the_largest_feasible_power(seed, e_max):
    snap = _budget(_snap(30, seed, rsus=2), e_max)
    up = S.uplinks(snap)
    rng = np.random.default_rng(seed)
    k = rng.integers(16, N + 1, 30)
    w = S.equal_bandwidth_hz(up) * rng.uniform(0.05, 2.0, 30)
    up = dataclasses.replace(up, standing_s=up.standing_s * rng.uniform(0.002, 0.05, 30))   # C6 binds for some
    p = S.subp1_power(up, k, w)
    cap = math.inf if e_max is None else e_max
    grid = np.linspace(0.01, 0.2, 400)
    for i, c in enumerate(snap.candidates):
        if np.isnan(p[i]):                    # no power in [p_min, p_max] keeps C5 and C6
            ok = [t <= up.standing_s[i] and e <= cap for t, e in (_exact(snap, c, k[i], w[i], q) for q in grid)]
            assert not any(ok)
            continue
        t, e = _exact(snap, c, k[i], w[i], p[i])
        assert 0.01 <= p[i] <= 0.2 and t <= up.standing_s[i] * (1 + 1e-9) and e <= cap * (1 + 1e-9)
        if p[i] < 0.2:
            t2, e2 = _exact(snap, c, k[i], w[i], p[i] * (1 + 1e-7))
            assert e2 > cap or t2 > up.standing_s[i]
    assert np.isfinite(p).any()
    if e_max is not None and e_max <= 0.01:
        assert (p < 0.2).any()


# ---- SUBP3: tokens -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("e_max", [0.004, 0.02, None])
def test_the_closed_form_keeps_every_constraint_and_one_more_token_breaks_one(seed, e_max):
    snap = _budget(_snap(40, seed, rsus=3), e_max)
    up = S.uplinks(snap)
    rng = np.random.default_rng(seed)
    w = S.equal_bandwidth_hz(up) * rng.uniform(0.05, 3.0, 40)
    p = rng.uniform(0.01, 0.2, 40)
    tau = float(np.median(up.airtime_s(N, w, p))) * rng.uniform(0.3, 1.5)
    up = dataclasses.replace(up, standing_s=up.standing_s * rng.uniform(0.001, 0.05, 40))
    cap = math.inf if e_max is None else e_max
    for t_cap in (tau, math.inf):
        kmax = S.token_bound(up, w, p, t_cap)
        kstar = S.subp3_tokens(up, w, p, t_cap, 16)
        assert np.all(kstar == np.where(kmax >= 16, kmax, -1))        # f does not fall: K* = K_max
        for i, c in enumerate(snap.candidates):
            def fits(k):
                t, e = _exact(snap, c, k, w[i], p[i])
                return t <= up.standing_s[i] * (1 + 1e-9) and e <= cap * (1 + 1e-9) and t <= t_cap * (1 + 1e-9)

            def breaks(k):
                t, e = _exact(snap, c, k, w[i], p[i])
                return t > up.standing_s[i] or e > cap or t > t_cap

            assert -1 <= kmax[i] <= N
            if kmax[i] >= 0:
                assert fits(kmax[i])
            assert kmax[i] == N or breaks(kmax[i] + 1)
        assert (kmax < N).any() and ((kmax == N).any() or e_max is not None)


def test_the_largest_argmax_over_the_range():
    content = np.array([[0, 1, 2, 2, 2, 2], [0, 3, 2, 1, 0, -1], [0, 1, 2, 3, 4, 5], [0, 1, 1, 1, 1, 1]], dtype=float)
    assert S.best_tokens(content, 2, np.array([4, 5, 1, 5])).tolist() == [4, 2, -1, 5]


# ---- the least band and dropping -----------------------------------------------------------------------
@pytest.mark.parametrize("power_control", ["bisection", "max"])
@pytest.mark.parametrize("e_max", [0.003, 0.02, None])
def test_the_least_band_is_the_least(power_control, e_max):
    snap = _budget(_snap(30, 2, rsus=1), e_max)
    up = S.uplinks(snap)
    rng = np.random.default_rng(2)
    up = dataclasses.replace(up, standing_s=up.standing_s * rng.uniform(0.001, 0.02, 30))
    k = np.full(30, 16)
    need = S.least_bandwidth_hz(up, k, power_control)
    assert np.isfinite(need).any()
    cap = math.inf if e_max is None else e_max
    grid = np.linspace(0.01, 0.2, 400)

    def best_power(i, w):
        """The largest power that keeps C5 and C6 at band w (nan: none): SUBP1's, or p_max if it does."""
        if power_control == "max":
            t, e = _exact(snap, snap.candidates[i], 16, w, 0.2)
            return 0.2 if t <= up.standing_s[i] * (1 + 1e-9) and e <= cap * (1 + 1e-9) else np.nan
        return S.subp1_power(up, k, np.full(30, w))[i]

    for i, c in enumerate(snap.candidates):
        if np.isfinite(need[i]):
            for w in (need[i], need[i] * (1 + 1e-6)):
                q = best_power(i, w)
                t, e = _exact(snap, c, 16, w, q)
                assert t <= up.standing_s[i] * (1 + 1e-9) and e <= cap * (1 + 1e-9)
            assert np.isnan(best_power(i, need[i] * (1 - 1e-4)))
            low = need[i] * (1 - 1e-4)
        else:
            assert np.isnan(best_power(i, up.band_hz))
            low = up.band_hz
        if power_control == "bisection":                 # no power on a grid does it either
            assert not any(t <= up.standing_s[i] and e <= cap for t, e in (_exact(snap, c, 16, low, q) for q in grid))


def test_an_rsu_keeps_the_vehicles_whose_least_bands_fit():
    need = np.array([5.0, 1.0, np.inf, 3.0, 2.0, 4.0, 9.0])
    rsu = np.array([0, 0, 0, 0, 1, 1, 1])
    assert S.keep_hostable(need, rsu, 8.0, equal=False).tolist() == [False, True, False, True, True, True, False]
    assert S.keep_hostable(need, rsu, 8.0, equal=True).tolist() == [False, True, False, True, True, True, False]
    assert S.keep_hostable(need, rsu, 6.0, equal=True).tolist() == [False, True, False, True, True, False, False]


def test_vehicles_that_cannot_send_k_min_are_dropped():
    snap = _budget(_snap(30, 4, rsus=2), 0.002)
    plan = S.st_sflora(snap)
    up = S.uplinks(snap)
    alone = ~np.isfinite(S.least_bandwidth_hz(up, np.full(30, 16)))
    assert plan.stats["dropped"] >= alone.sum() > 0
    assert not {c.id for c, out in zip(snap.candidates, alone) if out} & set(plan.selected)
    assert violations(snap, plan) == []
    nothing = S.st_sflora(_budget(snap, 1e-6))
    assert nothing.selected == () and nothing.stats["dropped"] == 30 and nothing.stats["efficiency"] == 0.0
    assert nothing.stats["tokens_mean"] is None and nothing.round == {"efficiency": 0.0}


# ---- plans -------------------------------------------------------------------------------------------
SETTINGS = [{}, {"energy_budget_j": 0.003}, {"energy_budget_j": 0.01}, {"energy_budget_j": 0.8},
            {"token_selection": "full", "energy_budget_j": 0.02}, {"fixed_tokens": 24, "energy_budget_j": 0.01},
            {"fixed_tokens": 100}, {"bandwidth_allocation": "equal", "energy_budget_j": 0.01},
            {"power_control": "max", "energy_budget_j": 0.01},
            {"power_control": "max", "bandwidth_allocation": "equal", "energy_budget_j": 0.02},
            {"k_min": 40, "energy_budget_j": 0.02, "max_iterations": 3}]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("n,seed", [(5, 0), (23, 1), (100, 2)])
def test_no_plan_breaks_a_constraint(settings, n, seed):
    snap = _snap(n, seed, **settings)
    plan, history = S.solve(snap)
    assert violations(snap, plan) == []
    assert set(plan.stats) == set(S.ROUND_FIELDS) and plan.round == {"efficiency": plan.stats["efficiency"]}
    assert list(plan.selected) == [c.id for c in snap.candidates if c.id in plan.selected]
    assert len(plan.selected) + plan.stats["dropped"] == n and plan.selected
    cap = snap.budgets.vehicle_energy_j or math.inf
    s = snap.settings
    k_lo = N if s["token_selection"] == "full" else min(s["fixed_tokens"] or s["k_min"], N)
    fixed = s["token_selection"] == "full" or s["fixed_tokens"] is not None
    f = 0.0
    shares: dict[int, float] = {}
    for v in plan.selected:
        c, d, cost = snap.candidate(v), plan.decisions[v], plan.costs[v]
        t, e = _exact(snap, c, d.tokens, d.bandwidth_share * snap.radio.uplink_bandwidth_hz, d.tx_power_w)
        assert t <= c.dwell_s * (1 + 1e-9) and e <= cap * (1 + 1e-9)                    # C6, C5
        assert (d.tokens == k_lo) if fixed else (k_lo <= d.tokens <= N)                  # C4
        assert 0.01 * (1 - 1e-12) <= d.tx_power_w <= 0.2 and d.cut == 3
        assert cost.comm_s == pytest.approx(t, rel=1e-12) and cost.comm_energy_j == cost.energy_j
        shares[c.rsu] = shares.get(c.rsu, 0.0) + d.bandwidth_share
        f += sum(sorted(snap.extra["importance"][v], reverse=True)[:d.tokens])
    assert max(shares.values()) <= 1 + 1e-12
    tau = max(plan.costs[v].comm_s for v in plan.selected)
    assert plan.stats["tau_s"] == tau and plan.stats["efficiency"] == pytest.approx(f / tau, rel=1e-12)
    tokens = [plan.decisions[v].tokens for v in plan.selected]
    assert (plan.stats["tokens_min"], plan.stats["tokens_max"]) == (min(tokens), max(tokens))
    assert plan.stats["tokens_mean"] == pytest.approx(np.mean(tokens))
    assert plan.stats["iterations"] == len(history) <= s["max_iterations"]
    if s["power_control"] == "max":
        assert {plan.decisions[v].tx_power_w for v in plan.selected} == {0.2}
    if s["bandwidth_allocation"] == "equal":
        assert all(share == pytest.approx(1.0 / sum(snap.candidate(u).rsu == snap.candidate(v).rsu
                                                    for u in plan.selected), rel=1e-12)
                   for v, share in ((v, plan.decisions[v].bandwidth_share) for v in plan.selected))


@pytest.mark.parametrize("e_max", [0.005, 0.02, None])
def test_the_bcd_never_loses_ground(e_max):
    """Every pass keeps the last point feasible: the makespan never grows, K never falls, E never falls."""
    snap = _budget(_snap(60, 7), e_max)
    plan, history = S.solve(snap)
    for a, b in zip(history, history[1:]):
        assert b.tau_s <= a.tau_s * (1 + 1e-9) and b.tokens_mean >= a.tokens_mean
        assert b.efficiency >= a.efficiency * (1 - 1e-12)
    assert plan.stats["efficiency"] == pytest.approx(max(h.efficiency for h in history), rel=1e-9)


def test_the_defaults_converge_at_once_with_every_token():
    snap = _snap(100, 0)
    plan, history = S.solve(snap)
    assert len(history) == 1 and plan.stats["tokens_min"] == N and plan.stats["dropped"] == 0


# ---- trends ------------------------------------------------------------------------------------------
BUDGETS = [0.003, 0.006, 0.012, 0.03, 0.1, None]


@pytest.mark.parametrize("seed,n", [(0, 8), (1, 30), (2, 60)])
def test_a_looser_budget_never_lowers_a_vehicles_tokens(seed, n):
    base = _snap(n, seed)
    prev, dropped = None, n
    for e_max in BUDGETS:
        plan = S.st_sflora(_budget(base, e_max))
        k = {v: d.tokens for v, d in plan.decisions.items()}
        if prev is not None:
            assert all(k[v] >= prev[v] for v in k.keys() & prev.keys())
        assert plan.stats["dropped"] <= dropped
        prev, dropped = k, plan.stats["dropped"]


@pytest.mark.parametrize("seed,n", [(0, 8), (1, 30), (2, 60)])
@pytest.mark.parametrize("settings", [{"power_control": "max"}, {"bandwidth_allocation": "equal"}])
def test_with_tokens_fixed_and_one_exact_block_a_looser_budget_never_lowers_the_efficiency(seed, n, settings):
    """Power 'max': SUBP2 alone solves the min-max; bandwidth 'equal': SUBP1 alone. (With both blocks, or
    top-K tokens, the lecture's BCD can stall or lock in tokens: a looser budget can lower E; module doc.)"""
    base = _snap(n, seed, fixed_tokens=24, **settings)
    prev = None
    for e_max in BUDGETS:
        plan = S.st_sflora(_budget(base, e_max))
        if prev is not None and plan.selected == prev.selected:
            assert plan.stats["efficiency"] >= prev.stats["efficiency"] * (1 - 1e-9)
        prev = plan


def test_full_sends_every_token_to_every_feasible_vehicle():
    snap = _snap(50, 3, token_selection="full", energy_budget_j=0.02)
    plan = S.st_sflora(snap)
    assert plan.selected and {d.tokens for d in plan.decisions.values()} == {N}
    assert plan.stats["tokens_min"] == plan.stats["tokens_max"] == N
    up = S.uplinks(snap)
    need = S.least_bandwidth_hz(up, np.full(50, N))
    assert plan.stats["dropped"] >= int((~np.isfinite(need)).sum())
    top = S.st_sflora(_with(snap, token_selection="topk"))
    assert plan.stats["tau_s"] >= top.stats["tau_s"] * (1 - 1e-9) or plan.selected != top.selected


def test_with_no_budget_and_long_dwells_the_closed_form_sends_every_token():
    snap = _snap(40, 6)
    snap = dataclasses.replace(snap, candidates=tuple(dataclasses.replace(c, dwell_s=1e4) for c in snap.candidates))
    up = S.uplinks(snap)
    w = S.equal_bandwidth_hz(up)
    assert np.all(S.token_bound(up, w, np.full(40, 0.2)) == N)
    plan = S.st_sflora(snap)
    assert {d.tokens for d in plan.decisions.values()} == {N} and plan.stats["dropped"] == 0
    fixed = S.st_sflora(_with(snap, fixed_tokens=10))
    assert {d.tokens for d in fixed.decisions.values()} == {10}


# ---- the registry, errors and the command line ------------------------------------------------------
def test_it_is_registered_for_its_scheme_with_its_columns():
    entry = registry.optimizer("st_sflora")
    assert entry.schemes == ("st_sflora",) and entry.round_fields == S.ROUND_FIELDS
    assert S.ROUND_FIELDS == ("efficiency", "tau_s", "tokens_mean", "tokens_min", "tokens_max", "iterations",
                              "dropped")


def test_what_it_cannot_plan_is_an_error_that_says_why():
    snap = _snap(4, 0)
    with pytest.raises(ValueError, match="Shannon"):
        S.st_sflora(dataclasses.replace(snap, link=LinkBudget(rate_mode="mcs")))
    with pytest.raises(ValueError, match="Shannon"):
        S.st_sflora(dataclasses.replace(snap, link=LinkBudget(fading="rayleigh", fading_mode="ergodic")))
    bad = {**snap.extra, "importance": {**snap.extra["importance"], "v0001": [0.1] * 10}}
    with pytest.raises(ValueError, match="v0001: 10 token importance scores, expected num_patches = 64"):
        S.st_sflora(dataclasses.replace(snap, extra=bad))
    with pytest.raises(ValueError, match="token_geometry"):
        S.st_sflora(dataclasses.replace(snap, extra={}))


def test_a_vehicle_without_scores_has_the_flat_prior():
    snap = _snap(6, 1)
    extra = {**snap.extra, "importance": {}}
    plan = S.st_sflora(dataclasses.replace(snap, extra=extra))
    assert violations(snap, plan) == [] and plan.selected


def test_a_random_instance_round_trips_and_solves_from_the_command_line(tmp_path, monkeypatch, capsys):
    snap = _snap(8, 2)
    assert snapshot_from_json(snapshot_to_json(snap)) == snap
    monkeypatch.chdir(tmp_path)
    assert main(["optimize", "st_sflora", "--random", "20", "--seed", "1", "--scheme", "st_sflora"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["violations"] == [] and set(out["stats"]) == set(S.ROUND_FIELDS) and out["vehicles"]
    assert all(16 <= v["decision"]["tokens"] <= N for v in out["vehicles"].values())
    assert (tmp_path / "instance-st_sflora-n20-seed1.json").exists()
