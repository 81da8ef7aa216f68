"""ASFL's optimizer on small random instances: each subproblem against a direct solve, the whole against
brute force over cuts x a grid of powers and clocks (shares by a root search), its constraints, its trends."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

from asfl_brute import brute_force_latency
from cosim.cli import main
from cosim.optimizers import asfl as A
from cosim.optimizers.api import Decision
from cosim.optimizers.constraints import violations
from cosim.optimizers.costs import SplitCost
from cosim.optimizers.instances import random_snapshot
from cosim.optimizers.split_table import SplitTable

CASES = [(seed, 3 + seed % 6) for seed in range(6)]        # 3..8 vehicles


def _instance(seed, n, cap=None, bandwidth_hz=2e6, rsus=1, **settings):
    return random_snapshot(n, seed, "asfl", rsus=rsus, bandwidth_hz=bandwidth_hz,
                           settings={"energy_budget_j": cap, **settings})


def _solve(snap, **kw):
    table = SplitTable.build(snap)
    n, k = len(snap.candidates), len(table.cuts)
    cap = snap.settings["energy_budget_j"] or math.inf
    return table, A.solve(table, np.ones(k, dtype=bool), np.zeros(n, dtype=int), cap, 0.01, 0.2, **kw)


@pytest.mark.parametrize("bits,cap", [(32, None), (8, None), (32, 3)])
def test_the_table_is_the_cost_model(bits, cap):
    snap = random_snapshot(12, 4, "sfl_v1", rsus=2, settings={"activation_bits": bits, "batches_per_round": cap})
    table = SplitTable.build(snap, bits=bits)
    rng = np.random.default_rng(1)
    col, p = rng.integers(0, len(table.cuts), 12), rng.uniform(0.01, 0.2, 12)
    f, share = rng.uniform(1e9, 2e9, 12), rng.uniform(0.05, 1.0, 12)
    lat, energy = table.latency_s(col, p, f, share), table.energy_j(col, p, f, share)
    parts = table.costs(col, p, f, share)
    for i, c in enumerate(snap.candidates):
        want = SplitCost().cost(snap, c, Decision(share[i], p[i], f[i], int(table.cuts[col[i]]), bits))
        assert lat[i] == pytest.approx(want.latency_s, rel=1e-12) and energy[i] == pytest.approx(want.energy_j, rel=1e-12)
        got = parts[i]
        for name in ("latency_s", "energy_j", "compute_s", "comm_s", "server_s", "compute_energy_j", "comm_energy_j"):
            assert getattr(got, name) == pytest.approx(getattr(want, name), rel=1e-12, abs=1e-15), name


@pytest.mark.parametrize("seed,n", CASES)
def test_sca_finds_the_largest_power_within_the_budget_through_feasible_steps(seed, n):
    snap = _instance(seed, n)
    table = SplitTable.build(snap)
    col = np.full(n, 1)
    ln = A.lanes(table, np.full(n, 1.0 / n), col)
    full = ln.tx_energy_j(np.full(n, 0.2))
    budget = full * np.linspace(0.3, 1.2, n)                 # some bind, some do not
    p, _ = A.sca_max_power(ln, budget, 0.01, 0.2)
    for i in range(n):
        e = lambda q: float(ln.tx_energy_j(np.full(n, q))[i] - budget[i])  # noqa: E731
        want = 0.2 if e(0.2) <= 0 else brentq(e, 0.01, 0.2, xtol=1e-15)
        assert p[i] == pytest.approx(want, rel=1e-9)
    q = np.linspace(0.01, 0.2, 200)                           # the transmit energy is concave in p
    e = np.array([ln.tx_energy_j(np.full(n, x)) for x in q])
    assert np.all(np.diff(e, 2, axis=0) <= 1e-15 * e[1:-1])


def _slsqp_subp3(q: A.Subp3, full: bool = False):
    """The convex SUBP3 for one RSU by SLSQP: variables (T, f in GHz, beta); T (and the result when `full`)."""
    n = len(q.A)
    scale = 1e9

    def unpack(x):
        return x[0], x[1:n + 1] * scale, x[n + 1:]

    cons = [{"type": "ineq", "fun": lambda x: 1.0 - np.sum(unpack(x)[2])},
            {"type": "ineq", "fun": lambda x: unpack(x)[0] - (q.A / unpack(x)[1] + q.B / unpack(x)[2] + q.C)}]
    if np.isfinite(q.E).all():
        cons.append({"type": "ineq", "fun": lambda x: q.E - (q.D * unpack(x)[1] ** 2 + q.F / unpack(x)[2])})
    f0 = q.f_lo + 0.5 * (q.f_hi - q.f_lo)
    b0 = np.full(n, 1.0 / n)
    t0 = float(np.max(q.A / f0 + q.B / b0 + q.C))
    bounds = [(0.0, None)] + [(lo / scale, hi / scale) for lo, hi in zip(q.f_lo, q.f_hi)] + [(1e-6, 1.0)] * n
    res = minimize(lambda x: x[0], np.concatenate([[t0], f0 / scale, b0]), method="SLSQP", bounds=bounds,
                   constraints=cons, options={"ftol": 1e-14, "maxiter": 2000})
    # at the optimum SLSQP may stop with "positive directional derivative" (status 8): its point must be feasible
    assert res.success or res.status == 8, res.message
    assert all(np.all(c["fun"](res.x) >= -1e-9) for c in cons)
    return (float(res.x[0]), res) if full else float(res.x[0])


@pytest.mark.parametrize("seed,n", CASES)
@pytest.mark.parametrize("cap", [math.inf, 0.05, 0.02])
def test_subp3_matches_a_general_solver_and_the_closed_form(seed, n, cap):
    snap = _instance(seed, n)
    table = SplitTable.build(snap)
    col, p = np.full(n, 1), np.full(n, 0.03)
    q = A.subp3_inputs(table, col, p, np.full(n, 1.0 / n), cap, table.f_min, table.f_max)
    with np.errstate(all="ignore"):
        f, share, T = A.subp3(q)
    if not np.isfinite(share).all():           # infeasible: the energy budgets alone need more than the band
        with np.errstate(all="ignore"):
            floor = np.where(q.E > q.D * q.f_lo ** 2, q.F / (q.E - q.D * q.f_lo ** 2), np.inf)
        assert np.sum(floor) > 1.0
        return
    assert np.sum(share) <= 1.0 + 1e-12 and np.all((f >= q.f_lo * (1 - 1e-12)) & (f <= q.f_hi * (1 + 1e-12)))
    assert np.all(q.A / f + q.B / share + q.C <= T * (1 + 1e-12))
    if math.isfinite(cap):
        assert np.all(q.D * f ** 2 + q.F / share <= q.E * (1 + 1e-9))
    assert T[0] == pytest.approx(_slsqp_subp3(q), rel=1e-6)


@pytest.mark.parametrize("seed,n", CASES)
def test_subp1_is_the_enumeration(seed, n):
    snap = _instance(seed, n)
    table = SplitTable.build(snap)
    rng = np.random.default_rng(seed)
    p, f, share = rng.uniform(0.01, 0.2, n), rng.uniform(1e9, 1.5e9, n), np.full(n, 1.0 / n)
    got = A.subp1(table, np.ones(len(table.cuts), dtype=bool), p, f, share, math.inf)
    lat = np.array([table.latency_s(np.full(n, c), p, f, share) for c in range(len(table.cuts))])
    assert list(got) == list(np.argmin(lat, axis=0))


@pytest.mark.parametrize("seed,n", CASES)
@pytest.mark.parametrize("cap,bandwidth_hz", [(None, 2e6), (0.05, 2e6), (0.02, 2e6), (None, 20e6), (0.02, 20e6)])
def test_the_optimizer_matches_or_beats_brute_force(seed, n, cap, bandwidth_hz):
    snap = _instance(seed, n, cap, bandwidth_hz=bandwidth_hz)
    table, result = _solve(snap)
    brute = brute_force_latency(table, cap or math.inf, 0.01, 0.2, points=11)
    assert result.latency_s <= brute * (1 + 1e-4)
    assert violations(snap, A.asfl(snap)) == []


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cap", [None, 0.02])
def test_adapting_the_cut_is_never_worse_than_any_fixed_cut(seed, cap):
    snap = random_snapshot(24, seed, "asfl", rsus=3, settings={"energy_budget_j": cap})
    best = A.asfl(snap).predicted_latency_s
    for cut in (1, 2, 3):
        fixed = A.asfl(dataclasses.replace(snap, settings={**snap.settings, "cuts": [cut], "cut": cut}))
        assert best <= fixed.predicted_latency_s * (1 + 1e-6), cut


def test_without_the_joint_step_the_descent_stalls_where_the_energy_budget_binds():
    gaps = []
    for seed, n in CASES:
        snap = _instance(seed, n, 0.02)
        table, stalled = _solve(snap, joint=False)
        gaps.append(stalled.latency_s / brute_force_latency(table, 0.02, 0.01, 0.2, points=11))
    assert max(gaps) > 1.05                    # SUBP2 and SUBP3 alone end well above brute force


@pytest.mark.parametrize("blocks", [A.BLOCKS, ("cut", "power", "cpu"), ("cut", "cpu", "bandwidth"),
                                    ("cut", "power", "bandwidth"), ("power", "cpu", "bandwidth")])
@pytest.mark.parametrize("seed", range(4))
def test_no_decision_ever_breaks_a_constraint(blocks, seed):
    snap = random_snapshot(20, seed, "asfl", rsus=3, settings={"energy_budget_j": [None, 0.1, 0.03, 0.01][seed],
                                                              "blocks": list(blocks)})
    plan = A.asfl(snap)
    assert violations(snap, plan) == []
    assert len(plan.selected) + plan.stats["infeasible"] == 20
    if "power" not in blocks:
        assert {d.tx_power_w for d in plan.decisions.values()} <= {0.2}
    if "cpu" not in blocks:
        assert all(d.cpu_hz == snap.candidate(v).device.cpu_hz for v, d in plan.decisions.items())


@pytest.mark.parametrize("seed,n", CASES)
def test_more_bandwidth_or_a_looser_budget_never_lengthens_the_round(seed, n):
    lat = [_solve(_instance(seed, n, 0.05, bandwidth_hz=w))[1].latency_s for w in (1e6, 2e6, 5e6, 20e6)]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(lat, lat[1:]))
    lat = [_solve(_instance(seed, n, cap))[1].latency_s for cap in (0.02, 0.03, 0.05, 0.2, None)]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(lat, lat[1:]))


@pytest.mark.parametrize("seed,n", CASES)
def test_a_faster_vehicle_never_keeps_fewer_units_on_board(seed, n):
    base = _instance(seed, n)
    cuts = []
    for f_hz in (0.5e9, 1e9, 2e9, 4e9, 8e9):                 # vehicle 0's fixed clock; no energy budget
        dev = dataclasses.replace(base.candidates[0].device, cpu_hz=f_hz, cpu_hz_min=f_hz)
        snap = dataclasses.replace(base, candidates=(dataclasses.replace(base.candidates[0], device=dev),
                                                     *base.candidates[1:]))
        table, result = _solve(snap)
        cuts.append(int(table.cuts[result.cols[0]]))
    assert cuts == sorted(cuts), cuts


def test_cosim_optimize_solves_a_random_asfl_instance(tmp_path, capsys):
    assert main(["optimize", "asfl", "--random", "30", "--seed", "2", "--scheme", "asfl",
                 "--instance", str(tmp_path / "i.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["violations"] == [] and out["stats"]["bcd_iterations"] >= 1
    assert {v["decision"]["cut"] for v in out["vehicles"].values()} <= {1, 2, 3}


@pytest.mark.parametrize("seed", range(5))
def test_at_interior_clocks_the_shares_are_the_lectures_closed_form(seed):
    rng = np.random.default_rng(seed)
    n = 3 + seed
    A_ = rng.uniform(2e7, 8e7, n)                         # cycles: every clock interior (energy binds)
    q = A.Subp3(A=A_, B=rng.uniform(0.05, 0.2, n), C=rng.uniform(1e-4, 1e-2, n), D=1e-28 * A_,
                F=rng.uniform(5e-4, 2e-3, n), E=np.full(n, 0.02), f_lo=np.full(n, 1e8), f_hi=np.full(n, 1e10),
                rsu=np.zeros(n, dtype=int))
    with np.errstate(all="ignore"):
        f, share, T = A.subp3(q)
    assert np.all((f > 1e8 * 1.001) & (f < 1e10 * 0.999))
    np.testing.assert_allclose(q.D * f ** 2 + q.F / share, q.E, rtol=1e-9)       # both constraints bind
    np.testing.assert_allclose(q.A / f + q.B / share + q.C, T, rtol=1e-9)
    t_ref, res = _slsqp_subp3(q, full=True)
    assert T[0] == pytest.approx(t_ref, rel=1e-6)
    lam = res.multipliers[1:n + 1]                     # the general solver's latency multipliers
    assert lam.sum() == pytest.approx(1.0, rel=1e-4)   # dL/dT = 1 - sum lambda = 0
    np.testing.assert_allclose(A.closed_form_shares(q, f, lam), share, rtol=1e-4)
