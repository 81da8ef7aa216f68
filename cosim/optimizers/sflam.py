"""SFLAM's optimizer: per round and RSU, which vehicle gets which subchannel, its transmit power and the bits
of its activations.

SFLAM, arXiv 2504.09114 (IEEE TMC 2026; github XiankeQiang/SFLAM), SCHEMES.md "SFLAM": max sum_n a_n
O(q_n) / E_n over the subchannel assignment z (each of an RSU's M subchannels of W / M to at most one of
its vehicles, each vehicle at most one; a_n = 1 iff n has one), power p_n in [p_min, p_max] and bits q_n
among the quantizer's levels, s.t. T_n <= T_max.
Iterated until the objective stops improving (at most `max_iterations`):
- SUBP1, power, per (vehicle, subchannel, bits): min E_cmp + E_com(p) s.t. T_fixed + T_com(p) <= T_max by
  SCA on the first-order Taylor expansions of E_com = p U / R(p) and T_com = U / R(p). E_com increases with
  p (p / ln(1 + a p) does), so each convex step takes the least power meeting the linearized deadline: a
  Newton step on T_com(p) = T_max - T_fixed, from p_max in the first pass and from the last powers after,
  clipped to [p_min, p_max]. T_com is convex, so the iterates approach the root from the infeasible side;
  each ends at the closed form (2^{U / (B tau)} - 1) / snr_per_w (`least_power_w`), the feasibility guard;
- SUBP2, bits: per pair the level of largest O(q) / E(q) at its SUBP1 power (the system's optimum is each
  device's);
- SUBP3, subchannels: Delta[n, m] = pair (n, m)'s best efficiency (infeasible pairs excluded); the
  assignment LP with z relaxed to [0, 1] (HiGHS; its vertices are integral, which is checked), or exactly
  (linear_sum_assignment, also where the LP's answer is not integral; the default: at 100 x 100 HiGHS takes
  10-20 ms, linear_sum_assignment 0.1 ms, tools/bench_optim.py); the baseline 'random': a random
  feasible matching drawn from the snapshot alone (its round and candidates), the same in every pass.
Once z is fixed the problem decomposes per (vehicle, subchannel) pair, and SUBP1-2 are solved for every pair,
not only the assigned ones: the first pass is already exact and the second only confirms it.

Latency and energy are the scheme's cost model's (SplitCost with the QuantizingCodec) decomposed per
vehicle and vectorized over vehicles x subchannels x bit levels (`PairTable`, tested equal to it); Shannon
links only. The arrays divide by zero where a pair cannot meet the deadline; `solve` turns NumPy's
errors off.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import linear_sum_assignment, linprog

from learning.quantize import FULL_PRECISION_BITS, HEADER_BITS

from ..compute import device_model
from ..registry import register_optimizer, scheme
from ..wire import FLOAT32_BYTES
from .api import Plan, RoundSnapshot
from .baseline import assemble
from .sflam_model import SflamDecision, accuracy_curve
from .split_table import batch_counts

LN2 = math.log(2.0)
INTEGRALITY_TOL = 1e-9
SCA_RTOL = 1e-12


def bit_levels(bits_min: int, bits_max: int) -> np.ndarray:
    """The quantizer's levels in [bits_min, bits_max]: 1..16 bits, and 32 (float32 as is)."""
    return np.array([q for q in range(bits_min, bits_max + 1) if q <= 16 or q == FULL_PRECISION_BITS], dtype=np.int64)


def payload_bytes(elements, bits) -> np.ndarray:
    """cosim.wire.activation_bytes over arrays: elements (...,) x bits (L,) -> (..., L) bytes on the wire."""
    e = np.asarray(elements, dtype=np.int64)[..., None]
    q = np.asarray(bits, dtype=np.int64)
    return np.where(q == FULL_PRECISION_BITS, e * FLOAT32_BYTES, (e * q + HEADER_BITS + 7) // 8)


@dataclass(frozen=True)
class PairTable:
    """Vehicles (N) x subchannels (M) x bit levels (L): each vehicle's round on each subchannel of its RSU at
    each level, as functions of its power: T = compute + server + down / R_dl + U / R_ul(p), E = E_cmp +
    p U / R_ul(p), summed over its batches as SplitCost does."""

    levels: np.ndarray           # (L,) bits per activation element
    compute_s: np.ndarray        # (N,) the vehicle's forward and backward calls over the round
    compute_j: np.ndarray        # (N,) their energy
    server_s: np.ndarray         # (N,) the server's compute for the vehicle (no queueing)
    up_bits: np.ndarray          # (N, L) client model + activations at each level
    down_s: np.ndarray           # (N, M) client model + gradients down at gradient_bits, over each subchannel
    snr_per_w: np.ndarray        # (N, M) uplink SNR per watt of transmit power on each subchannel
    bw_ul_hz: float              # a subchannel's uplink bandwidth W / M
    rsu: np.ndarray              # (N,)

    @property
    def fixed_s(self) -> np.ndarray:
        """(N, M) the round's time besides the activations' uplink."""
        return (self.compute_s + self.server_s)[:, None] + self.down_s

    # in place on one (N, M, L) array each: fresh arrays of that size cost page faults, more than the arithmetic
    def rate_bps(self, power_w) -> np.ndarray:
        """(N, M, L) uplink rates at power_w (broadcast to (N, M, L)): W / M log2(1 + snr_per_w p)."""
        r = self.snr_per_w[:, :, None] * power_w
        r += 1.0
        np.log2(r, out=r)
        r *= self.bw_ul_hz
        return r

    def uplink_s(self, power_w) -> np.ndarray:
        """(N, M, L) the uplink's airtime U / R(p)."""
        r = self.rate_bps(power_w)
        if r.shape[2] != self.up_bits.shape[1]:           # one power for every level
            return self.up_bits[:, None, :] / r
        return np.divide(self.up_bits[:, None, :], r, out=r)

    def latency_s(self, power_w) -> np.ndarray:
        t = self.uplink_s(power_w)
        t += self.fixed_s[:, :, None]
        return t

    def energy_j(self, power_w) -> np.ndarray:
        e = self.uplink_s(power_w)
        e *= power_w
        e += self.compute_j[:, None, None]
        return e


def pair_table(snap: RoundSnapshot) -> PairTable:
    """The table of the snapshot's candidates (in order). Raises ValueError for a link that is not Shannon's,
    a band not divided into subchannels, or a candidate without a fading value per subchannel."""
    b, r, s = snap.link, snap.radio, snap.settings
    if b.rate_mode != "shannon" or (b.fading != "none" and b.fading_mode == "ergodic"):
        raise ValueError(f"sflam models Shannon links only (link rate_mode {b.rate_mode!r}, fading {b.fading!r} "
                         f"{b.fading_mode!r}): rate_mode 'shannon', not ergodic fading")
    M = r.subchannels
    if M == 0:
        raise ValueError("radio.subchannels is 0: sflam assigns each vehicle one of its RSU's subchannels (>= 1)")
    cands = snap.candidates
    for c in cands:
        if len(c.subchannel_fading) != M:
            raise ValueError(f"{c.id}: {len(c.subchannel_fading)} subchannel_fading values, "
                             f"expected radio.subchannels = {M}")
    prof = snap.model.cut(s["cut"])
    levels = bit_levels(s["bits_min"], s["bits_max"])
    grad_bits = s.get("gradient_bits", FULL_PRECISION_BITS)
    e = prof.activation_elements
    learn = snap.learning
    samples = np.array([c.num_samples for c in cands], dtype=np.int64)
    n_full, n_rem, rem = batch_counts(samples, learn.batch_size, learn.local_epochs, s.get("batches_per_round"))
    compute_s, compute_j = np.zeros(len(cands)), np.zeros(len(cands))
    for i, c in enumerate(cands):
        dev = device_model(c.device)
        for count, size in ((n_full[i], learn.batch_size), (n_rem[i], rem[i])):
            if count:
                fwd, bwd = prof.client_fwd_flops * size, prof.client_bwd_flops * size
                compute_s[i] += count * (dev.time_s(fwd) + dev.time_s(bwd))
                compute_j[i] += count * (dev.energy_j(fwd) + dev.energy_j(bwd))
    server_s = (n_full * (prof.server_flops * learn.batch_size / snap.server.flops_per_s)
                + n_rem * (prof.server_flops * rem / snap.server.flops_per_s))
    model_bits = prof.client_param_bytes * 8.0
    full_bytes = payload_bytes(learn.batch_size * e, np.append(levels, grad_bits))        # (L + 1,)
    rem_bytes = payload_bytes(rem * e, np.append(levels, grad_bits))                     # (N, L + 1)
    bits = model_bits + 8.0 * (n_full[:, None] * full_bytes[None, :] + n_rem[:, None] * rem_bytes)
    up_bits, down_bits = bits[:, :-1], bits[:, -1]
    # channel.link: SNR p g G / (N0 NF W + W I) over a subchannel of W / M, g the path gain x the subchannel's
    # fading; the RSU sends P / M on each (constant power spectral density)
    fading = np.array([c.subchannel_fading for c in cands]).reshape(-1, M)
    gain = np.array([c.gain_linear for c in cands])[:, None] * fading
    ant = 10.0 ** (b.antenna_gain_db / 10.0)
    bw_ul, bw_dl = r.uplink_bandwidth_hz / M, r.downlink_bandwidth_hz / M
    i_ul = np.array([c.interference_ul_w_per_hz for c in cands])[:, None]
    i_dl = np.array([c.interference_dl_w_per_hz for c in cands])[:, None]
    snr_per_w = gain * ant / (b.noise_w_per_hz("ul") * bw_ul + bw_ul * i_ul)
    with np.errstate(divide="ignore"):
        p_dl = r.downlink_power_w(bw_dl)
        r_dl = bw_dl * np.log2(1.0 + p_dl * gain * ant / (b.noise_w_per_hz("dl") * bw_dl + bw_dl * i_dl))
        down_s = down_bits[:, None] / r_dl
    return PairTable(levels, compute_s, compute_j, server_s, up_bits, down_s, snr_per_w, bw_ul,
                     np.array([c.rsu for c in cands], dtype=np.int64))


# ---- SUBP1: power ------------------------------------------------------------------------------
def least_power_w(table: PairTable, t_max_s: float) -> np.ndarray:
    """(N, M, L) the least power [W] with T <= T_max, unbounded: (2^{U / (B tau)} - 1) / snr_per_w with
    tau = T_max - T_fixed what the deadline leaves the uplink; inf where tau <= 0."""
    tau = (t_max_s - table.fixed_s)[:, :, None]
    p = table.up_bits[:, None, :] * (LN2 / (table.bw_ul_hz * tau))
    np.expm1(p, out=p)
    p /= table.snr_per_w[:, :, None]
    np.copyto(p, np.inf, where=tau <= 0)
    return p


def subp1(table: PairTable, t_max_s: float, p_min_w: float, p_max_w: float, start_w=None, sca: bool = True,
          guard: bool = True, least_w=None, max_iterations: int = 100) -> tuple[np.ndarray, int]:
    """SUBP1 for every (vehicle, subchannel, level): the power of least energy that meets the deadline, by SCA
    (`sca`; else p_max). Each step minimizes the linearized E_com (increasing: the least power) under the
    linearized deadline T_com(p_k) + T_com'(p_k) (p - p_k) <= tau: the Newton step on T_com = tau, clipped to
    [p_min, p_max], from `start_w` (default p_max). Pairs whose p_min meets the deadline take no step; the
    others end at the closed form where the iterates fall short of it (`guard`; `least_w`: the closed form
    if known). Returns (power [W], nan where p_max misses the deadline; SCA iterations, the most any pair
    took)."""
    least = least_power_w(table, t_max_s) if least_w is None else least_w
    feasible = least <= p_max_w
    if not sca:
        return np.where(feasible, p_max_w, np.nan), 0
    p = np.where(feasible, p_min_w, np.nan)
    idx = np.flatnonzero(feasible & (least > p_min_w))
    n, m, l = np.unravel_index(idx, p.shape)
    u, a, t, bw = table.up_bits[n, l], table.snr_per_w[n, m], t_max_s - table.fixed_s[n, m], table.bw_ul_hz
    q = np.full(idx.size, p_max_w) if start_w is None else np.asarray(start_w, dtype=float).reshape(-1)[idx]
    q = np.where(np.isfinite(q), q, p_max_w)
    live, it = np.arange(idx.size), 0
    while live.size and it < max_iterations:
        it += 1
        x, aa, uu = q[live], a[live], u[live]
        log = np.log2(1.0 + aa * x)
        t_com = uu / (bw * log)
        d_t = -uu * aa / (bw * log * log * (1.0 + aa * x) * LN2)         # T_com'(p) < 0
        new = np.clip(x - (t_com - t[live]) / d_t, p_min_w, p_max_w)
        q[live] = new
        live = live[np.abs(new - x) > SCA_RTOL * new]
    p.reshape(-1)[idx] = np.maximum(q, least.reshape(-1)[idx]) if guard else q
    return p, it


# ---- SUBP2: bits -------------------------------------------------------------------------------
def subp2(table: PairTable, accuracy: np.ndarray, power_w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SUBP2: per (vehicle, subchannel) the level of largest O(q) / E(q) at its SUBP1 power. Returns (level
    index, efficiency [1/J], -inf where no level meets the deadline), both (N, M)."""
    eff = table.energy_j(power_w)                        # nan where the power is
    np.divide(accuracy, eff, out=eff)
    np.copyto(eff, -np.inf, where=np.isnan(power_w))
    col = np.argmax(eff, axis=2)
    return col, np.take_along_axis(eff, col[:, :, None], axis=2)[:, :, 0]


# ---- SUBP3: subchannels ------------------------------------------------------------------------
def assign_exact(delta: np.ndarray) -> np.ndarray:
    """The best assignment of one RSU's vehicles (rows) to its subchannels (columns), maximizing the sum of
    `delta` over the pairs with delta > 0 (linear_sum_assignment). Returns each row's column, -1: none."""
    out = np.full(delta.shape[0], -1)
    if delta.size:
        r, c = linear_sum_assignment(np.where(delta > 0, delta, 0.0), maximize=True)
        keep = delta[r, c] > 0
        out[r[keep]] = c[keep]
    return out


def assign_lp(delta: np.ndarray) -> tuple[np.ndarray, bool]:
    """The assignment LP (z in [0, 1] on the pairs with delta > 0, at most one per row and column) by HiGHS;
    the exact assignment where its answer is not integral. Returns (each row's column or -1, integral)."""
    n, m = delta.shape
    rows, cols = np.nonzero(delta > 0)
    out = np.full(n, -1)
    if rows.size == 0:
        return out, True
    k = rows.size
    A = sparse.csc_array((np.ones(2 * k), (np.concatenate([rows, n + cols]), np.tile(np.arange(k), 2))),
                         shape=(n + m, k))
    w = delta[rows, cols]
    res = linprog(-w / w.max(), A_ub=A, b_ub=np.ones(n + m), bounds=(0.0, 1.0), method="highs",
                  options={"presolve": False})          # a 0/1 matrix with no redundancy: presolve only costs
    if res.status != 0 or np.max(np.abs(res.x - np.round(res.x))) > INTEGRALITY_TOL:
        return assign_exact(delta), False
    pick = res.x > 0.5
    out[rows[pick]] = cols[pick]
    return out, True


def assign_random(delta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random feasible matching: the rows in random order, each to a random free column with delta > 0."""
    out, free = np.full(delta.shape[0], -1), np.ones(delta.shape[1], dtype=bool)
    for i in rng.permutation(delta.shape[0]):
        ok = np.flatnonzero((delta[i] > 0) & free)
        if ok.size:
            out[i] = ok[rng.integers(ok.size)]
            free[out[i]] = False
    return out


def subp3(delta: np.ndarray, rsu: np.ndarray, rule: str, solver: str, rng=None) -> tuple[np.ndarray, bool | None]:
    """SUBP3 per RSU: each vehicle's subchannel (-1: none). rule 'optimal' by solver 'lp' or 'exact', or
    'random' (from `rng`). Returns (subchannels, whether every LP was integral; None when none was solved)."""
    out = np.full(len(rsu), -1)
    integral = None if rule == "random" or solver == "exact" else True
    for r in np.unique(rsu):
        at = np.flatnonzero(rsu == r)
        if rule == "random":
            out[at] = assign_random(delta[at], rng)
        elif solver == "exact":
            out[at] = assign_exact(delta[at])
        else:
            out[at], ok = assign_lp(delta[at])
            integral = integral and ok
    return out, integral


# ---- the iteration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Iterate:
    """One outer iteration: the objective sum O(q) / E [1/J], the assigned vehicles' mean bits and power (nan
    when none is), the most SCA iterations a pair took, how many vehicles got a subchannel."""

    objective: float
    bits_mean: float
    power_mean_w: float
    sca_iterations: int
    assigned: int


def _rng(snap: RoundSnapshot) -> np.random.Generator:
    """The random assignment's draws: seeded by the round and the candidates, so a snapshot plans the same."""
    return np.random.default_rng([snap.round, zlib.crc32(" ".join(c.id for c in snap.candidates).encode("utf-8"))])


def solve(snap: RoundSnapshot) -> tuple[Plan, tuple[Iterate, ...]]:
    """SFLAM's plan and its iterations: SUBP1 (SCA power), SUBP2 (bits), SUBP3 (subchannels) until the
    objective improves by no more than 1e-12 (relative)."""
    with np.errstate(all="ignore"):
        return _solve(snap)


def _solve(snap: RoundSnapshot) -> tuple[Plan, tuple[Iterate, ...]]:
    s, radio = snap.settings, snap.radio
    table = pair_table(snap)
    accuracy = accuracy_curve(snap)(table.levels.astype(float))
    t_max = s.get("max_latency_s") or snap.budgets.round_time_s
    p_min, p_max = radio.vehicle_min_tx_power_w, radio.vehicle_tx_power_w
    sca = s.get("power_control", "sca") == "sca"
    rule, solver = s.get("assignment", "optimal"), s.get("assignment_solver", "exact")
    least = least_power_w(table, t_max)             # the closed form: the same in every pass
    history, best, power, sca_its = [], None, None, 0
    for _ in range(s.get("max_iterations", 20)):
        power, its = subp1(table, t_max, p_min, p_max, power, sca, least_w=least)
        sca_its = max(sca_its, its)
        col, eff = subp2(table, accuracy, power)
        delta = np.where(np.isfinite(eff), eff, 0.0)
        sub, integral = subp3(delta, table.rsu, rule, solver, _rng(snap) if rule == "random" else None)
        got = np.flatnonzero(sub >= 0)
        lv = col[got, sub[got]]
        objective = float(np.sum(delta[got, sub[got]]))
        history.append(Iterate(objective, float(np.mean(table.levels[lv])) if got.size else math.nan,
                               float(np.mean(power[got, sub[got], lv])) if got.size else math.nan, its,
                               int(got.size)))
        improved = best is None or objective > best[0] * (1.0 + 1e-12)
        if best is None or objective > best[0]:
            best = (objective, got, sub[got], lv, power[got, sub[got], lv], eff[got, sub[got]], integral)
        if not improved:
            break
    objective, got, sub, lv, pw, eff, integral = best
    cost = scheme(snap.scheme).cost
    decisions, costs, ids = {}, {}, []
    for i, m, l, p, e in zip(got, sub, lv, pw, eff):
        c = snap.candidates[i]
        decisions[c.id] = SflamDecision(
            bandwidth_share=1.0 / radio.subchannels, tx_power_w=float(p), cut=s["cut"],
            activation_bits=int(table.levels[l]), subchannel=int(m),
            gradient_bits=s.get("gradient_bits", FULL_PRECISION_BITS), predicted_accuracy=float(accuracy[l]),
            efficiency_per_j=float(e))
        costs[c.id] = cost.cost(snap, c, decisions[c.id])
        ids.append(c.id)
    bits = [d.activation_bits for d in decisions.values()]
    stats = {"objective": objective, "bits_mean": float(np.mean(bits)) if bits else None,
             "bits_min": min(bits, default=None), "bits_max": max(bits, default=None), "sca_iterations": sca_its,
             "iterations": len(history), "lp_integral": integral}
    return assemble(ids, decisions, costs, False, stats=stats), tuple(history)


@register_optimizer("sflam", round_fields=("objective", "bits_mean", "bits_min", "bits_max", "sca_iterations",
                                           "iterations", "lp_integral"), schemes=("sflam",))
def sflam(snap: RoundSnapshot) -> Plan:
    """SFLAM (arXiv 2504.09114): each vehicle's subchannel, power and activation bits for the most O(q) / E."""
    return solve(snap)[0]


__all__ = ["Iterate", "PairTable", "assign_exact", "assign_lp", "assign_random", "bit_levels", "least_power_w",
           "pair_table", "payload_bytes", "sflam", "solve", "subp1", "subp2", "subp3"]
