"""ASFL's optimizer: per-vehicle cut, transmit power, CPU clock and bandwidth share for one round.

Qiang et al., "Adaptive and Parallel Split Federated Learning in Vehicular Edge Computing", IEEE IoT-J
12(5), 2025 (SCHEMES.md "ASFL"): min T = max_n t_n s.t. sum_n beta_n <= 1 (per RSU), e_n <= E_hat,
p in [p_min, p_max], f in [f_min, f_max], cut in E; by block-coordinate descent until T stops improving
(at most `bcd_max_iterations` rounds):
- SUBP1, cut: enumeration over the allowed cuts per vehicle: in the first round the least latency at its
  power, clock and share among the cuts within the energy budget (the paper's `subp1`); afterwards the
  cut that needs the least bandwidth share to finish within the current round latency, each cut with its
  own best power and clock (`subp1_at`): judged at the resources its current cut was tuned to, a vehicle
  keeps a worse cut, and the descent can lose to a single fixed cut (tests/optim);
- SUBP2, power (the first round's): the largest power within the budget at its clock and share, by
  successive convex approximation: the transmit energy p s / R(p) is concave in p, so its first-order
  Taylor expansion bounds it from above and each step p + (E_hat - e(p)) / e'(p) stays feasible;
- SUBP3, clock and share: Theorem 1's convex problem, t_n = A/f + B/beta + C, e_n = D f^2 + F/beta, each
  airtime replaced by its tangent in 1/beta at the current shares (an upper bound: the airtime is concave
  in 1/beta) and re-taken until the shares settle; solved exactly (`subp3`: the round latency by a
  safeguarded Newton search, each vehicle's clock from a cubic; the lecture's closed form for the shares
  holds at its solution, `closed_form_shares`).
Where the energy budget binds, SUBP2 and SUBP3 stall each other: power at a fixed clock and clock at a
fixed power cannot trade one for the other inside the budget (on random instances the descent then ends
up to 24% above brute force, tests/optim). A joint step follows them there (`joint_power`: per vehicle the
power that needs the least share at the current round latency, its clock from SUBP3), then SUBP3 again;
with it the descent matches or beats brute force. Without the bandwidth block (equal shares) the power and
clock are chosen at the fixed shares (`power_and_clock_at_share`).

Latency and energy come from `SplitTable`, the simulator's own cost model for CPU vehicles. The functions
here divide by zero where a vehicle is infeasible (inf marks it) and expect NumPy's errors off, as `solve`
sets them (np.errstate costs more than most steps).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..registry import register_optimizer, scheme
from .api import Decision, Plan, RoundSnapshot
from .baseline import assemble
from .sca import max_power_within
from .split_table import SplitTable

BLOCKS = ("cut", "power", "cpu", "bandwidth")
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class Lanes:
    """Each vehicle at its cut and current share, as functions of its power and clock (SUBP2's view)."""

    cycles: np.ndarray
    up_bits: np.ndarray
    down_bits: np.ndarray
    server_s: np.ndarray
    kappa: np.ndarray
    f_min: np.ndarray
    f_max: np.ndarray
    snr_per_w: np.ndarray         # uplink SNR per watt of transmit power at the share
    bw_ul_hz: np.ndarray
    r_dl_bps: np.ndarray

    def r_ul_bps(self, power_w):
        return self.bw_ul_hz * np.log2(1.0 + self.snr_per_w * power_w)

    def tx_energy_j(self, power_w):
        return power_w * self.up_bits / self.r_ul_bps(power_w)

    def latency_s(self, power_w, cpu_hz):
        return self.down_bits / self.r_dl_bps + self.cycles / cpu_hz + self.up_bits / self.r_ul_bps(power_w) + self.server_s

    def energy_j(self, power_w, cpu_hz):
        return self.kappa * self.cycles * cpu_hz ** 2 + self.tx_energy_j(power_w)


def lanes(table: SplitTable, share: np.ndarray, cols) -> Lanes:
    """Each vehicle at its cut `cols` (a column of the table per vehicle) and share."""
    snr, bw = table.snr_per_watt(share)
    r_dl = table.rates_bps(share, np.full(len(share), table.snap.radio.vehicle_tx_power_w))[1]
    return Lanes(table.pick("cycles", cols), table.pick("up_bits", cols), table.pick("down_bits", cols),
                 table.pick("server_s", cols), table.kappa, table.f_min, table.f_max, snr, bw, r_dl)


# ---- SUBP2: power ------------------------------------------------------------------------------
def sca_max_power(ln: Lanes, budget_j: np.ndarray, p_min: float, p_max: float, max_iterations: int = 60,
                  rtol: float = 1e-13) -> tuple[np.ndarray, int]:
    """The largest p in [p_min, p_max] with e_tx(p) <= budget at the lanes' shares (`sca.max_power_within`);
    nan where even p_min exceeds the budget. Returns (p, iterations)."""
    return max_power_within(ln.snr_per_w, ln.bw_ul_hz, ln.up_bits, budget_j, p_min, p_max, max_iterations, rtol)


def subp2(ln: Lanes, cpu_hz: np.ndarray, energy_cap_j: float, p_min: float, p_max: float) -> np.ndarray:
    """SUBP2 (the paper's): at the vehicle's cut, clock and share, the largest power within the energy budget
    (latency falls with power), by `sca_max_power`; p_min where even that exceeds the budget."""
    if not math.isfinite(energy_cap_j):
        return np.full(len(cpu_hz), p_max)
    p, _ = sca_max_power(ln, energy_cap_j - ln.kappa * ln.cycles * cpu_hz ** 2, p_min, p_max)
    return np.where(np.isfinite(p), p, p_min)


def _spend(ln: Lanes, budget_j, power_w):
    """The clock that spends what the transmit energy leaves of the budget, within [f_min, f_max]."""
    f = np.sqrt(np.maximum(budget_j - ln.tx_energy_j(power_w), 0.0) / (ln.kappa * ln.cycles))
    return np.clip(f, ln.f_min, ln.f_max)


def golden_min(fun, lo: np.ndarray, hi: np.ndarray, grid: int = 9, iterations: int = 36) -> np.ndarray:
    """Per entry, the x in [lo, hi] that minimizes fun(x) (vectorized): the best of a grid, then a golden-
    section search between its neighbours (never returning worse than the grid's best)."""
    pts = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, grid)[None, :]
    vals = np.stack([fun(pts[:, j]) for j in range(grid)], axis=1)
    j = np.argmin(vals, axis=1)
    rows = np.arange(len(lo))
    a, b = pts[rows, np.maximum(j - 1, 0)], pts[rows, np.minimum(j + 1, grid - 1)]
    x1, x2 = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    f1, f2 = fun(x1), fun(x2)
    for _ in range(iterations):
        left = f1 <= f2                     # the minimum is in [a, x2]: x2 <- x1, new x1
        a, b = np.where(left, a, x1), np.where(left, x2, b)
        x1_new = np.where(left, b - _GOLDEN * (b - a), x2)
        x2_new = np.where(left, x1, a + _GOLDEN * (b - a))
        f_new = fun(np.where(left, x1_new, x2_new))
        f1, f2 = np.where(left, f_new, f2), np.where(left, f1, f_new)
        x1, x2 = x1_new, x2_new
    best = np.where(f1 <= f2, x1, x2)
    return np.where(fun(best) <= vals[rows, j], best, pts[rows, j])


def power_and_clock_at_share(ln: Lanes, energy_cap_j: float, p_min: float, p_max: float, clock: bool = True
                             ) -> tuple[np.ndarray, np.ndarray]:
    """With the shares fixed (the equal-bandwidth baseline): per lane the power of least latency when the rest
    of the budget goes to the clock (`_spend`), over [p_min, p_sca] with p_sca the SCA bound at f_min; the
    clock stays at f_max when `clock` is False (then the power is the SCA bound itself)."""
    n = len(ln.cycles)
    p, f = np.full(n, p_max), ln.f_max.copy()
    if not math.isfinite(energy_cap_j):
        return p, f
    cap = np.full(n, energy_cap_j)
    floor = ln.f_min if clock else ln.f_max
    p_hi, _ = sca_max_power(ln, cap - ln.kappa * ln.cycles * floor ** 2, p_min, p_max)
    p_hi = np.where(np.isfinite(p_hi), p_hi, p_min)
    if not clock:
        return p_hi, f
    p = golden_min(lambda q: ln.latency_s(q, _spend(ln, cap, q)), np.full(n, p_min), p_hi)
    return p, _spend(ln, cap, p)


# ---- SUBP1: cuts ---------------------------------------------------------------------------------
def subp1(table: SplitTable, allowed: np.ndarray, power_w, cpu_hz, share, energy_cap_j: float) -> np.ndarray:
    """SUBP1: per vehicle, the allowed cut of least latency at its power, clock and share among those within
    the energy budget (the least energy when none is)."""
    r_ul, r_dl = table.rates_bps(share, power_w)
    lat = (table.down_bits / r_dl[:, None] + table.cycles / cpu_hz[:, None] + table.up_bits / r_ul[:, None]
           + table.server_s)
    energy = table.kappa[:, None] * table.cycles * cpu_hz[:, None] ** 2 + power_w[:, None] * table.up_bits / r_ul[:, None]
    lat, energy = np.where(allowed, lat, np.inf), np.where(allowed, energy, np.inf)
    ok = energy <= energy_cap_j * (1 + 1e-12)
    return np.where(ok.any(axis=1), np.argmin(np.where(ok, lat, np.inf), axis=1), np.argmin(energy, axis=1))


def subp1_at(table: SplitTable, allowed: np.ndarray, share, T: np.ndarray, energy_cap_j: float, p_min: float,
             p_max: float, f_lo, f_hi, power: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """SUBP1 once the round latency T is known: per vehicle the allowed cut that needs the least share to
    finish within T, each cut at its best power (searched as in `joint_power` where the energy budget binds,
    when `power`; else p_max) and its clock from SUBP3. A vehicle's cut is judged with its power and clock
    re-chosen for it, not at the ones its current cut was given, so the descent does not keep a cut only
    because its resources were tuned to it. Returns (columns, powers)."""
    n, k = table.cycles.shape
    row = np.repeat(np.arange(n), k)
    lanes_ = [getattr(table, name).ravel() for name in ("cycles", "up_bits", "down_bits", "server_s")]
    t_lane = T[row]

    def needed(pw):
        return clock_and_share(_inputs(table, *lanes_, row, pw, share, energy_cap_j, f_lo, f_hi), t_lane, False)[1]

    pw = np.full(n * k, p_max)
    if power and math.isfinite(energy_cap_j):
        pw = golden_min(needed, np.full(n * k, p_min), pw, grid=5, iterations=12)   # enough to rank the cuts
    need = np.where(np.tile(allowed, n), needed(pw), np.inf).reshape(n, k)
    col = np.argmin(need, axis=1)
    return col, pw.reshape(n, k)[np.arange(n), col]


# ---- SUBP3: clocks and shares --------------------------------------------------------------------
@dataclass(frozen=True)
class Subp3:
    """t_n = A/f + B/beta + C <= T and D f^2 + F/beta <= E per vehicle, f in [f_lo, f_hi], the shares at each
    RSU summing to at most 1: arrays over vehicles."""

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    D: np.ndarray
    F: np.ndarray
    E: np.ndarray
    f_lo: np.ndarray
    f_hi: np.ndarray
    rsu: np.ndarray


def cubic_root(bd: np.ndarray, lin: np.ndarray, fa: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The positive root of bd x^3 - lin x - fa = 0 (bd, fa > 0: there is exactly one), by Cardano's formula
    (trigonometric when three roots are real) in units of `scale`, polished by two Newton steps."""
    a, b, c = bd * scale * scale * scale, lin * scale, fa
    P, Q = -b / a, -c / a                              # y^3 + P y + Q = 0, y = x / scale
    p3, q2 = P / 3.0, Q / 2.0
    disc = q2 * q2 + p3 * p3 * p3
    one = disc >= 0
    y = np.empty_like(disc)
    if one.any():
        root = np.sqrt(disc[one])
        y[one] = np.cbrt(-q2[one] + root) + np.cbrt(-q2[one] - root)
    if not one.all():
        m = np.sqrt(-p3[~one])
        y[~one] = 2.0 * m * np.cos(np.arccos(np.minimum(np.maximum(-q2[~one] / (m * m * m), -1.0), 1.0)) / 3.0)
    for _ in range(2):
        y2 = y * y
        y = y - (a * y2 * y - b * y - c) / (3.0 * a * y2 - b)
    return y * scale


def clock_and_share(q: Subp3, T: np.ndarray, derivative: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each vehicle's least share at round latency T, the clock that gives it, and d share / dT.

    The share needed is max(B / (T - C - A/f), F / (E - D f^2)): the first falls with f, the second rises,
    so the best clock is where they meet, the positive root of B D f^3 - (B E - F (T - C)) f - F A = 0
    (`cubic_root`), clipped to [f_lo, f_hi]; share inf where no clock meets both. Where both bind at an
    interior clock, d share / dT = -share / (L + A M / (2 D f^3)), L = T - C - A/f and M = E - D f^2 the time
    and energy left."""
    A, B, D, F, E = q.A, q.B, q.D, q.F, q.E
    TC = T - q.C
    if not np.isfinite(E).any():                   # no energy budget: the fastest clock, the latency's share
        left_t = TC - A / q.f_hi
        share = np.where((left_t > 0) & (q.f_lo <= q.f_hi), B / left_t, np.inf)
        return q.f_hi.copy(), share, -share / left_t
    lo = np.where(TC > 0, np.maximum(q.f_lo, A / TC), np.inf)
    hi = np.minimum(q.f_hi, np.sqrt(np.maximum(E, 0.0) / D))
    BD, FA, lin = B * D, F * A, B * E - F * TC
    span = lo < hi
    at_lo = span & (BD * lo * lo * lo - lin * lo - FA >= 0)
    inner = span & ~at_lo & (BD * hi * hi * hi - lin * hi - FA > 0)
    f = np.where(at_lo, lo, hi)
    if inner.any():
        f[inner] = cubic_root(BD[inner], lin[inner], FA[inner], hi[inner])
    left_t, left_e = TC - A / f, E - D * f * f
    g1 = np.where(left_t > 0, B / left_t, np.inf)
    g2 = np.where(left_e > 0, F / left_e, np.inf)
    share = np.where(span, np.maximum(g1, g2), np.inf)
    if not derivative:
        return f, share, None
    d_share = np.where(inner, -share / (left_t + A * left_e / (2.0 * D * f * f * f)), np.where(g1 >= g2, -g1 / left_t, 0.0))
    return f, share, d_share


def subp3(q: Subp3, T_guess=None, rtol: float = 1e-13, max_iterations: int = 100
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SUBP3 exactly: per RSU the least T at which the shares its vehicles need sum to 1 (safeguarded Newton
    steps in T from `T_guess` or above, the sum falling with T), each vehicle's clock and share at that T.
    Returns (clock, share, T of the vehicle's RSU); share inf where the RSU cannot fit its vehicles' energy
    budgets at any T.

    At the optimum the shares are the lecture's closed form (`closed_form_shares`) with the latency
    constraints' multipliers; finding T is finding those multipliers."""
    rsus, inv = np.unique(q.rsu, return_inverse=True)
    k = len(rsus)
    floor = q.C + q.A / np.minimum(q.f_hi, np.where(np.isfinite(q.E) & (q.D > 0), np.sqrt(q.E / q.D), np.inf))
    lo = np.zeros(k)
    np.maximum.at(lo, inv, floor)

    def phi(T_rsu):
        _, share, d = clock_and_share(q, T_rsu[inv])
        return np.bincount(inv, share, minlength=k) - 1.0, np.bincount(inv, d, minlength=k)

    T = np.full(k, np.nan)
    if T_guess is not None:
        guess = np.full(k, np.nan)
        guess[inv] = T_guess
        T = np.where(np.isfinite(guess) & (guess > lo), guess, np.nan)
    T = np.where(np.isnan(T), 2.0 * lo + 1e-9, T)
    hi = np.full(k, np.inf)
    val, slope = phi(T)
    for _ in range(80):                            # a T at which the shares fit (an upper bracket)
        grow = ~(val <= 0.0)
        if not grow.any():
            break
        # the sum is convex and falling in T: a Newton step from below lands above the root
        newton = T - val / slope
        step = np.where(np.isfinite(newton) & (newton > T), newton - T, 2.0 * (T - lo) + 1e-9)
        lo = np.where(grow, T, lo)                 # the shares do not fit at T: the root is above
        T = np.where(grow, T + step * (1.0 + 1e-9), T)
        val, slope = phi(T)
    feasible = val <= 0.0
    hi = np.where(feasible, T, hi)
    for _ in range(max_iterations):
        done = ~feasible | (np.abs(val) <= rtol) | (hi - lo <= rtol * hi)
        if done.all():
            break
        newton = T - val / slope
        T = np.where(done, T, np.where((newton > lo) & (newton < hi), newton, 0.5 * (lo + hi)))
        val, slope = phi(np.where(feasible, T, 1.0))
        hi = np.where(feasible & (val < 0), T, hi)
        lo = np.where(feasible & (val > 0), T, lo)
    f, share, _ = clock_and_share(q, T[inv])
    total = np.bincount(inv, np.where(np.isfinite(share), share, 0.0), minlength=k)
    share = share / np.maximum(total, 1.0)[inv]   # a root from below may sum to 1 + 1e-16: no more than the band
    return f, np.where(feasible[inv], share, np.inf), np.where(feasible, T, np.inf)[inv]


def closed_form_shares(q: Subp3, f: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The lecture's closed form beta_n* = sigma_n^2 (B_n + A_n F_n / (2 D_n f_n^3))^(1/2) / sum_m (same), with
    sigma_n^2 = sqrt(lambda_n) from the latency constraints' multipliers `lam`, per RSU. From the KKT
    conditions of SUBP3 at interior clocks: d/df gives mu_n = lambda_n A_n / (2 D_n f_n^3) for the energy
    constraint, d/dbeta gives nu beta_n^2 = lambda_n B_n + mu_n F_n, and the shares sum to one."""
    w = lam * (q.B + q.A * q.F / (2.0 * q.D * f ** 3))
    out = np.empty_like(w)
    for r in np.unique(q.rsu):
        at = q.rsu == r
        out[at] = np.sqrt(w[at]) / np.sqrt(w[at]).sum()
    return out


def _tangent(bits: np.ndarray, bw_hz: float, snr_full: np.ndarray, share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(intercept, slope) of the airtime bits / R(beta), R = beta W log2(1 + k / beta), as a + b / beta: its
    tangent in y = 1/beta at the current share. The airtime is concave in y (y / log(1 + k y) is), so the
    tangent bounds it from above: a plan that meets the tangent's constraints meets the exact ones."""
    y = 1.0 / share
    log = np.log2(1.0 + snr_full * y)
    value = bits * y / (bw_hz * log)
    slope = bits / bw_hz * (log - y * snr_full / ((1.0 + snr_full * y) * np.log(2.0))) / log ** 2
    return value - slope * y, slope


def subp3_inputs(table: SplitTable, cols, power_w, share, energy_cap_j: float, f_lo, f_hi) -> Subp3:
    """SUBP3's coefficients for the vehicles at cuts `cols` and powers `power_w`: each airtime as its tangent
    a + b / beta at `share` (`_tangent`; the rate per unit share where it is not Shannon's), its intercepts
    folded into C and, times the power, taken from the energy budget."""
    return _inputs(table, table.pick("cycles", cols), table.pick("up_bits", cols), table.pick("down_bits", cols),
                   table.pick("server_s", cols), np.arange(len(cols)), power_w, share, energy_cap_j, f_lo, f_hi)


def _inputs(table, cycles, up, down, server_s, row, power_w, share, energy_cap_j, f_lo, f_hi) -> Subp3:
    """`subp3_inputs` for lanes: lane i is vehicle row[i] with the given cycles, bits and server time."""
    radio = table.snap.radio
    share = share[row]
    if table.shannon:
        snr_ul = power_w * table.snr_per_watt(np.ones(len(table.rsu)))[0][row]
        snr_dl = radio.rsu_tx_power_w * table.snr_per_watt_dl()[row]       # on any share (constant PSD)
        a_ul, b_ul = _tangent(up, radio.uplink_bandwidth_hz, snr_ul, share)
        a_dl, b_dl = 0.0, down / (radio.downlink_bandwidth_hz * np.log2(1.0 + snr_dl))  # exactly b / beta
    else:
        r_ul, r_dl = table.rates_bps(share, power_w, row)
        a_ul, b_ul, a_dl, b_dl = 0.0, up * share / r_ul, 0.0, down * share / r_dl
    return Subp3(A=cycles, B=b_ul + b_dl, C=server_s + a_ul + a_dl, D=table.kappa[row] * cycles, F=power_w * b_ul,
                 E=energy_cap_j - power_w * a_ul, f_lo=f_lo[row], f_hi=f_hi[row], rsu=table.rsu[row])


# ---- the joint step -----------------------------------------------------------------------------
def joint_power(table: SplitTable, cols, share, T: np.ndarray, energy_cap_j: float, p_min: float, p_max: float,
                f_lo, f_hi, p_prev=None, newton_steps: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """The joint step: per vehicle the power in [p_min, p_max] that needs the least share to finish within its
    RSU's round latency, each power with its clock from SUBP3 (`clock_and_share`): power and clock trade
    against each other inside the energy budget, which SUBP2 (at a fixed clock) and SUBP3 (at a fixed power)
    alone cannot do. The round latency moves with the powers, so it is updated by Newton steps on
    sum_n beta_n(T) = 1 (by the envelope theorem the powers' own change does not enter the slope), the powers
    re-searched around their last values at each. Returns (powers, T per vehicle's RSU)."""
    n = len(cols)
    rsus, inv = np.unique(table.rsu, return_inverse=True)
    k = len(rsus)
    T_rsu = np.zeros(k)
    T_rsu[inv] = T
    base = subp3_inputs(table, cols, np.full(n, p_max), share, energy_cap_j, f_lo, f_hi)
    up = table.pick("up_bits", cols)
    snr_w = table.snr_per_watt(np.ones(n))[0]
    bw = table.snap.radio.uplink_bandwidth_hz
    a_up, b_up = _tangent(up, bw, p_max * snr_w, share)
    rest_b, rest_c = base.B - b_up, base.C - a_up             # the downlink's and the server's parts

    def inputs(power):
        a, b = _tangent(up, bw, power * snr_w, share) if table.shannon else (0.0, up / table.rates_bps(share, power)[0] * share)
        return Subp3(base.A, rest_b + b, rest_c + a, base.D, power * b, energy_cap_j - power * a, f_lo, f_hi, base.rsu)

    p = p_prev
    for step in range(newton_steps):
        t_lane = T_rsu[inv]
        needed = lambda pw: clock_and_share(inputs(pw), t_lane, False)[1]  # noqa: E731
        if p is None:
            p = golden_min(needed, np.full(n, p_min), np.full(n, p_max), grid=9, iterations=14)
        else:                                 # the powers move little with T: a narrow search around them
            width = 0.15 if step == 0 else 0.04
            p = golden_min(needed, np.maximum(p_min, (1 - width) * p), np.minimum(p_max, (1 + width) * p), grid=3,
                           iterations=8 if step else 10)
        _, s, d = clock_and_share(inputs(p), t_lane)
        phi = np.bincount(inv, s, minlength=k) - 1.0
        if not np.all(np.isfinite(phi)) or np.max(np.abs(phi)) <= 1e-9:
            break
        slope = np.bincount(inv, d, minlength=k)
        T_rsu = np.clip(T_rsu - phi / slope, 0.5 * T_rsu, 2.0 * T_rsu)
    return p, T_rsu[inv]


def exact_subp3(table: SplitTable, cols, power_w, share, energy_cap_j: float, f_lo, f_hi, T=None, rounds: int = 40
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SUBP3 with the airtimes' tangents re-taken at the new shares until they settle (the fixed point meets
    every latency and energy constraint with the exact rates), from round latency `T` if known. Returns
    (clock, share, T per vehicle)."""
    f = table.f_max
    for _ in range(rounds):
        f_new, s_new, T = subp3(subp3_inputs(table, cols, power_w, share, energy_cap_j, f_lo, f_hi), T)
        s_new = np.where(np.isfinite(s_new), s_new, share)
        moved = float(np.max(np.abs(s_new - share) / s_new)) if len(cols) else 0.0
        f, share = np.where(np.isfinite(f_new), f_new, f), s_new
        if moved <= 1e-11:
            break
    return f, share, T


# ---- the descent ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AsflResult:
    cols: np.ndarray
    power_w: np.ndarray
    cpu_hz: np.ndarray
    share: np.ndarray
    feasible: np.ndarray
    latency_s: float
    iterations: int
    history: tuple[float, ...]


def equal_shares(rsu: np.ndarray) -> np.ndarray:
    counts = np.bincount(rsu)
    return 1.0 / counts[rsu]


def solve(table: SplitTable, allowed: np.ndarray, start_col: np.ndarray, energy_cap_j: float, p_min: float,
          p_max: float, blocks=BLOCKS, max_iterations: int = 20, rtol: float = 1e-5, joint: bool = True) -> AsflResult:
    """Block-coordinate descent over `blocks` (those left out stay at cut `start_col`, p_max, f_max, equal
    shares): SUBP1, SUBP2 (first round), SUBP3, then (`joint`, where the energy budget binds) the joint power
    step and SUBP3 again. Keeps the best iterate (most vehicles within their budgets, then least T); stops
    when T stops improving (after a round that changed cuts, one more)."""
    with np.errstate(all="ignore"):
        return _solve(table, allowed, start_col, energy_cap_j, p_min, p_max, blocks, max_iterations, rtol, joint)


def _solve(table, allowed, start_col, energy_cap_j, p_min, p_max, blocks, max_iterations, rtol, joint) -> AsflResult:
    n = len(start_col)
    col, p, f = start_col.copy(), np.full(n, p_max), table.f_max.copy()
    share = equal_shares(table.rsu)
    use = set(blocks)
    bounded = math.isfinite(energy_cap_j)
    f_lo, f_hi = (table.f_min, table.f_max) if "cpu" in use else (table.f_max, table.f_max)
    best, history, it, T, p_joint, stale, prev_col = None, [], 0, None, None, 0, None
    for it in range(1, max_iterations + 1):
        if "cut" in use:
            if T is None or "bandwidth" not in use:
                col = subp1(table, allowed, p, f, share, energy_cap_j)
            else:
                col_at, p_at = subp1_at(table, allowed, share, T, energy_cap_j, p_min, p_max, f_lo, f_hi, "power" in use)
                moved = col_at != col
                col, p = col_at, np.where(moved, p_at, p)
        if "bandwidth" not in use:              # fixed shares: power and clock at them
            p, f = power_and_clock_at_share(lanes(table, share, col), energy_cap_j, p_min, p_max, "cpu" in use) \
                if "power" in use else (p, _clock_at_share(table, col, p, share, energy_cap_j, "cpu" in use))
        else:
            if "power" in use and T is None:
                p = subp2(lanes(table, share, col), f, energy_cap_j, p_min, p_max)
            binds = bounded and _binds(table, col, p, f, share, energy_cap_j, p_max)
            if T is None or not (joint and binds and "power" in use):
                f, share, T = exact_subp3(table, col, p, share, energy_cap_j, f_lo, f_hi, T)
                binds = bounded and _binds(table, col, p, f, share, energy_cap_j, p_max)
            if joint and "power" in use and binds:
                p, T = joint_power(table, col, share, T, energy_cap_j, p_min, p_max, f_lo, f_hi, p_joint)
                p_joint = p
                f, share, T = exact_subp3(table, col, p, share, energy_cap_j, f_lo, f_hi, T)
        ok = table.energy_j(col, p, f, share) <= energy_cap_j * (1 + 1e-12)
        t = float(np.max(table.latency_s(col, p, f, share)[ok])) if ok.any() else 0.0
        history.append(t)
        score = (-int(ok.sum()), t)
        improved = best is None or score[0] < best[0][0] or t < best[0][1] * (1 - rtol)
        if best is None or score < best[0]:
            best = (score, col.copy(), p.copy(), f.copy(), share.copy(), ok.copy())
        stale = 0 if improved else stale + 1
        settled = prev_col is not None and np.array_equal(prev_col, col)
        if stale >= 2 or (stale and settled):    # T stopped improving (a changed cut gets one more round)
            break
        prev_col = col.copy()
    (_, t_best), col, p, f, share, ok = best
    return AsflResult(col, p, f, share, ok, t_best, it, tuple(history))


def _binds(table, col, p, f, share, energy_cap_j, p_max) -> bool:
    """Whether the energy budget holds some vehicle back: below full power or clock, or at the budget."""
    return bool(np.any((p < p_max * (1 - 1e-9)) | (f < table.f_max * (1 - 1e-9))
                       | (table.energy_j(col, p, f, share) >= energy_cap_j * (1 - 1e-6))))


def _clock_at_share(table, col, p, share, energy_cap_j, clock: bool) -> np.ndarray:
    """With the shares and powers fixed: the fastest clock within the energy budget (f_max without `clock`)."""
    ln = lanes(table, share, col)
    if not clock or not math.isfinite(energy_cap_j):
        return ln.f_max.copy()
    return _spend(ln, np.full(len(col), energy_cap_j), p)


@register_optimizer("asfl", round_fields=("cuts", "bcd_iterations", "objective_s", "infeasible"), schemes=("asfl",))
def asfl(snap: RoundSnapshot) -> Plan:
    """ASFL (Qiang et al. 2025): per-vehicle cut, power, CPU clock and bandwidth by block-coordinate descent."""
    s = snap.settings
    bits = s.get("activation_bits", 32)
    table = SplitTable.build(snap, s.get("cuts") or None, bits)
    cuts = [int(c) for c in table.cuts]
    start = cuts.index(s["cut"]) if s.get("cut") in cuts else len(cuts) // 2
    cap = float("inf") if s.get("energy_budget_j") is None else float(s["energy_budget_j"])
    r = solve(table, np.ones(len(cuts), dtype=bool), np.full(len(snap.candidates), start), cap,
              snap.radio.vehicle_min_tx_power_w, snap.radio.vehicle_tx_power_w, tuple(s.get("blocks", BLOCKS)),
              s.get("bcd_max_iterations", 20))
    keep = np.flatnonzero(r.feasible)
    costs = table.costs(r.cols, r.power_w, r.cpu_hz, r.share)
    ids = [snap.candidates[i].id for i in keep]
    decisions = {snap.candidates[i].id: Decision(
        bandwidth_share=float(r.share[i]), tx_power_w=float(r.power_w[i]), cpu_hz=float(r.cpu_hz[i]),
        cut=cuts[r.cols[i]], activation_bits=bits) for i in keep}
    hist = Counter(d.cut for d in decisions.values())
    stats = {"cuts": " ".join(f"{c}:{hist[c]}" for c in sorted(hist)), "bcd_iterations": r.iterations,
             "objective_s": r.latency_s, "infeasible": len(snap.candidates) - len(keep)}
    return assemble(ids, decisions, {snap.candidates[i].id: costs[i] for i in keep},
                    scheme(snap.scheme).cost.sequential, stats=stats)


__all__ = ["AsflResult", "BLOCKS", "Lanes", "Subp3", "asfl", "clock_and_share", "closed_form_shares", "lanes",
           "sca_max_power", "solve", "subp1", "subp2", "subp3", "subp3_inputs"]
