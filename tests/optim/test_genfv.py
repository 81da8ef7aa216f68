"""GenFV's optimizer: EMD and kappa by hand, the KKT shares against SLSQP, the SCA/KKT descent against a general
solver, the closed-form generation amount at its boundary, and plans that keep every constraint."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from cosim.optimizers import genfv as G
from cosim.optimizers.constraints import violations
from cosim.optimizers.instances import random_snapshot
from learning.fl import aggregate, augmented_aggregate


# ---- EMD and the aggregation weights ------------------------------------------------------------------
def test_emd_by_hand():
    # p_n = (0.5, 0.5, 0, 0), p = (0.25, 0.25, 0.25, 0.25): |0.25| + |0.25| + |-0.25| + |-0.25| = 1
    assert G.emd((3, 3, 0, 0), (0.25, 0.25, 0.25, 0.25)) == pytest.approx(1.0, abs=1e-15)
    # one class only against a balanced 2-class target: |1 - 0.5| + |0 - 0.5| = 1
    assert G.emd((7, 0), (0.5, 0.5)) == pytest.approx(1.0, abs=1e-15)
    # identical distributions: 0; disjoint supports: 2 (the maximum)
    assert G.emd((2, 4, 6), (1 / 6, 2 / 6, 3 / 6)) == pytest.approx(0.0, abs=1e-15)
    assert G.emd((5, 0, 0), (0.0, 0.4, 0.6)) == pytest.approx(2.0, abs=1e-15)
    # (0.2, 0.8) against (0.6, 0.4): 0.4 + 0.4
    assert G.emd((1, 4), (0.6, 0.4)) == pytest.approx(0.8, abs=1e-15)


def test_kappa_by_hand():
    assert G.kappa_weights(0.0) == (1.0, 0.0)
    assert G.kappa_weights(1.0) == (0.75, 0.25)        # (1/2)^2
    assert G.kappa_weights(2.0) == (0.0, 1.0)
    k1, k2 = G.kappa_weights(0.6)                      # (0.3)^2 = 0.09
    assert k2 == pytest.approx(0.09, abs=1e-15) and k1 + k2 == pytest.approx(1.0, abs=1e-15)


def _states(seed: int, n: int = 3):
    g = torch.Generator().manual_seed(seed)
    return [({"w": torch.randn(4, 3, generator=g), "b": torch.randn(3, generator=g),
              "steps": torch.tensor(n + i)}, float(10 + i)) for i in range(n)]


def test_kappa2_zero_is_fedavg_bit_for_bit():
    results = _states(0)
    w_a = _states(1, 1)[0][0]
    fed = aggregate(results)
    for out in (augmented_aggregate(results, w_a, 0.0), augmented_aggregate(results, None, 0.3)):
        assert all(torch.equal(out[k], fed[k]) for k in fed)


def test_augmented_aggregate_by_hand():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(5)}
    w_a = {"w": torch.tensor([10.0, -10.0]), "n": torch.tensor(9)}
    out = augmented_aggregate([(a, 1.0), (b, 3.0)], w_a, 0.25)    # FedAvg: (2.5, 4.5)
    assert torch.allclose(out["w"], torch.tensor([0.75 * 2.5 + 2.5, 0.75 * 4.5 - 2.5]))
    assert int(out["n"]) == 5                                      # integer entries: the average's


# ---- the KKT shares -------------------------------------------------------------------------------------
def _instance(rng, n: int, energy: bool):
    A = rng.uniform(0.2, 2.0, n)
    B = rng.uniform(0.02, 0.5, n)
    C = rng.uniform(0.005, 0.05, n)
    D = rng.uniform(0.0005, 0.01, n)
    # a budget that binds for some vehicles but leaves every energy need below the band
    cap = float(np.max(C) + n * np.max(D) * rng.uniform(1.2, 3.0)) if energy else math.inf
    return A, B, C, D, cap


def _slsqp(A, B, C, D, cap):
    n = len(A)
    cons = [{"type": "ineq", "fun": lambda x: x[-1] - A - B / x[:-1]},
            {"type": "ineq", "fun": lambda x: 1.0 - x[:-1].sum()}]
    if math.isfinite(cap):
        cons.append({"type": "ineq", "fun": lambda x: cap - C - D / x[:-1]})
    x0 = np.r_[np.full(n, 1.0 / n), float(np.max(A + B * n)) * 2]
    res = minimize(lambda x: x[-1], x0, jac=lambda x: np.r_[np.zeros(n), 1.0], method="SLSQP", constraints=cons,
                   bounds=[(1e-9, 1.0)] * n + [(0.0, None)], options={"ftol": 1e-13, "maxiter": 2000})
    assert res.status in (0, 8), res.message        # 8: converged to where the line search cannot improve
    assert all(np.all(c["fun"](res.x) >= -1e-6) for c in cons)
    return res.x[:-1], res.x[-1]


@pytest.mark.parametrize("seed", range(12))
def test_kkt_shares_equal_slsqp(seed):
    rng = np.random.default_rng(seed)
    A, B, C, D, cap = _instance(rng, int(rng.integers(2, 9)), energy=seed % 3 != 0)
    k = G.kkt_shares(A, B, C, D, cap, np.zeros(len(A), dtype=int))
    share, T = _slsqp(A, B, C, D, cap)
    assert k.feasible.all()
    assert k.latency_s[0] == pytest.approx(T, rel=1e-4)
    np.testing.assert_allclose(k.share, share, rtol=1e-4)
    # the closed form with the multipliers found: l_n = sqrt((lambda1_n B_n + lambda2_n D_n) / lambda3)
    np.testing.assert_allclose(np.sqrt((k.lambda1 * B + k.lambda2 * D) / k.lambda3), k.share, rtol=1e-12)
    assert k.lambda1.sum() == pytest.approx(1.0, rel=1e-12)
    # no constraint violated
    assert k.share.sum() <= 1.0 + 1e-12
    assert np.all(A + B / k.share <= k.latency_s * (1 + 1e-12))
    if math.isfinite(cap):
        assert np.all(C + D / k.share <= cap * (1 + 1e-12))


def test_kkt_shares_some_energy_bound_and_per_rsu():
    rng = np.random.default_rng(99)
    A, B, C, D, _ = _instance(rng, 6, energy=True)
    D[0] = 0.2                                     # vehicle 0's energy needs more band than its time does
    cap = float(np.max(C) + 0.5)
    rsu = np.array([0, 0, 0, 1, 1, 1])
    k = G.kkt_shares(A, B, C, D, cap, rsu)
    assert k.lambda2[0] > 0 and k.lambda1[0] == 0
    for r in (0, 1):                               # each RSU is its own problem
        m = rsu == r
        share, T = _slsqp(A[m], B[m], C[m], D[m], cap)
        np.testing.assert_allclose(k.share[m], share, rtol=1e-4)
        assert k.latency_s[m][0] == pytest.approx(T, rel=1e-4)


def test_kkt_reports_infeasible_energy():
    A, B = np.ones(2), np.full(2, 0.1)
    C, D = np.full(2, 0.1), np.full(2, 0.1)
    k = G.kkt_shares(A, B, C, D, 0.25, np.zeros(2, dtype=int))   # each needs 0.1 / 0.15 > 1/2 of the band
    assert not k.feasible.any()


def test_tangent_is_an_upper_bound_exact_at_its_point():
    rng = np.random.default_rng(3)
    snr = rng.uniform(1.0, 1e4, 50)
    at = rng.uniform(0.02, 1.0, 50)
    a, b = G.tangent(8e5, 20e6, snr, at)

    def airtime(l):
        return 8e5 / (l * 20e6 * np.log2(1.0 + snr / l))

    np.testing.assert_allclose(a + b / at, airtime(at), rtol=1e-12)
    for l in (0.01, 0.1, 0.5, 1.0):
        assert np.all(a + b / l >= airtime(l) * (1 - 1e-12))


# ---- the whole stage and the plans --------------------------------------------------------------------
def _snap(n, seed, **settings):
    return random_snapshot(n, seed, "genfv", settings=settings)


def _brute_min_max(ln: G.Links, cap, p_min, p_max):
    """A general solver on the exact problem of one RSU: min T over (l, p, T) by SLSQP from several starts."""
    n = len(ln.rsu)

    def unpack(x):
        return x[:n], x[n:2 * n], x[-1]

    cons = [{"type": "ineq", "fun": lambda x: unpack(x)[2] - ln.latency_s(unpack(x)[1], unpack(x)[0])},
            {"type": "ineq", "fun": lambda x: 1.0 - unpack(x)[0].sum()}]
    if math.isfinite(cap):
        cons.append({"type": "ineq", "fun": lambda x: cap - ln.energy_j(unpack(x)[1], unpack(x)[0])})
    best = math.inf
    for p0 in (p_min, 0.5 * (p_min + p_max), p_max):
        x0 = np.r_[np.full(n, 1.0 / n), np.full(n, p0), 100.0]
        res = minimize(lambda x: x[-1], x0, method="SLSQP", constraints=cons,
                       bounds=[(1e-6, 1.0)] * n + [(p_min, p_max)] * n + [(0, None)],
                       options={"ftol": 1e-12, "maxiter": 3000})
        x = res.x
        l, p, _ = unpack(x)
        ok = l.sum() <= 1 + 1e-7 and (not math.isfinite(cap) or np.all(ln.energy_j(p, l) <= cap * (1 + 1e-7)))
        if ok:
            best = min(best, float(np.max(ln.latency_s(p, l))))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_allocation_matches_a_general_solver(seed):
    snap = random_snapshot(5, seed, "genfv", rsus=1)
    ln = G.links(snap)
    r = snap.radio
    caps = [math.inf, float(np.median(ln.e_cp_j) + 0.02)]
    for cap in caps:
        alloc = G.allocate(ln, cap, r.vehicle_min_tx_power_w, r.vehicle_tx_power_w)
        if not alloc.feasible.all():
            continue
        ours = float(alloc.latency_s.max())
        ref = _brute_min_max(ln, cap, r.vehicle_min_tx_power_w, r.vehicle_tx_power_w)
        assert ours <= ref * (1 + 1e-4), (cap, ours, ref)
        assert alloc.share.sum() <= 1 + 1e-12
        if math.isfinite(cap):
            assert np.all(ln.energy_j(alloc.power_w, alloc.share) <= cap * (1 + 1e-12))


# ---- the generation amount --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(20))
def test_generation_amount_is_the_most_that_fits(seed):
    rng = np.random.default_rng(seed)
    budget, train_prev, t0 = rng.uniform(0.5, 20.0), rng.uniform(0.0, 0.4), rng.uniform(1e-3, 0.1)
    b = G.generation_amount(budget, train_prev, t0, 10 ** 9)
    assert b == math.floor((budget - train_prev) / t0) or b + 1 == math.floor((budget - train_prev) / t0)
    assert b * t0 + train_prev <= budget
    assert (b + 1) * t0 + train_prev > budget
    assert G.generation_amount(budget, train_prev, t0, 7) == min(b, 7)
    assert G.generation_amount(0.1, 0.2, t0, 100) == 0          # training alone outlasts the round


def test_plan_generation_amount_uses_the_server_budget():
    snap = dataclasses.replace(random_snapshot(20, 4, "genfv"), extra={"generated_previous": 300})
    plan = G.solve(snap)
    b = plan.round["b"]
    t0 = snap.settings["generator"]["seconds_per_sample"]
    train = G.augmented_train_s(snap, 300)
    budget = plan.predicted_latency_s
    assert b * t0 + train <= budget < (b + 1) * t0 + train or b == snap.settings["max_generated"]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("settings", [{}, {"energy_budget_j": 0.05}, {"emd_max": 1.0},
                                      {"power_control": "max", "energy_budget_j": 0.08},
                                      {"bandwidth_allocation": "equal", "energy_budget_j": 0.08}])
def test_plans_keep_every_constraint(seed, settings):
    snap = _snap(30, seed, **settings)
    plan = G.solve(snap)
    assert violations(snap, plan) == []
    target = G.target_distribution(snap)
    s = snap.settings
    t_max = s.get("max_latency_s") or snap.budgets.round_time_s
    for vid in plan.selected:
        c = snap.candidate(vid)
        assert G.emd(c.label_histogram, target) <= s["emd_max"] + 1e-12
        assert plan.costs[vid].latency_s <= min(c.dwell_s, t_max) * (1 + 1e-9)
    assert len(plan.selected) <= s["vehicles_per_round"]


def test_kkt_beats_equal_bandwidth():
    snap = _snap(30, 2)
    kkt = G.solve(snap)
    equal = G.solve(dataclasses.replace(snap, settings={**snap.settings, "bandwidth_allocation": "equal"}))
    assert set(kkt.selected) == set(equal.selected)
    assert kkt.predicted_latency_s < equal.predicted_latency_s


def _with(snap, **settings):
    return dataclasses.replace(snap, settings={**snap.settings, **settings})


def test_selection_filters_by_emd_and_dwell_then_ranks():
    snap = _snap(40, 5)
    snap = dataclasses.replace(snap, candidates=tuple(dataclasses.replace(c, dwell_s=1e6) for c in snap.candidates))
    target = G.target_distribution(snap)
    emds = {c.id: G.emd(c.label_histogram, target) for c in snap.candidates}
    passing = {v for v, e in emds.items() if e <= 1.0}
    assert 10 < len(passing) < 40
    # the paper's filter: EMD_n <= EMD_hat; with no cap, every vehicle that passes
    tight = G.solve(_with(snap, emd_max=1.0))
    assert set(tight.selected) == passing and tight.stats["emd_filtered"] == 40 - len(passing)
    # capped: the 10 lowest EMDs, the 10 shortest rounds, or 10 drawn from the snapshot's seed
    low = G.solve(_with(snap, emd_max=1.0, vehicles_per_round=10, selection_rank="emd"))
    assert sorted(low.selected) == sorted(sorted(passing, key=lambda v: (emds[v], v))[:10])
    drawn = [set(G.solve(dataclasses.replace(_with(snap, emd_max=1.0, vehicles_per_round=10),
                                             extra={**snap.extra, "selection_seed": seed})).selected)
             for seed in (1, 1, 2)]
    assert drawn[0] == drawn[1] != drawn[2] and all(len(d) == 10 and d <= passing for d in drawn)
    fast = G.solve(_with(snap, emd_max=1.0, vehicles_per_round=10, selection_rank="latency"))
    slowest_kept = max(fast.costs[v].latency_s for v in fast.selected)
    left_out = G.solve(_with(snap, emd_max=1.0, vehicles_per_round=10, selection_rank="emd"))
    assert len(fast.selected) == 10 and slowest_kept <= max(left_out.costs[v].latency_s for v in left_out.selected)
    # a vehicle about to leave is not selected
    short = low.selected[0]
    gone = dataclasses.replace(snap, candidates=tuple(dataclasses.replace(c, dwell_s=1e-3) if c.id == short else c
                                                      for c in snap.candidates))
    assert short not in G.solve(gone).selected
