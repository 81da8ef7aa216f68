"""GenFV's two-stage optimizer: vehicle selection, then bandwidth, power and the generation amount.

Qiang, Chang and Min, "AIGC-Assisted Federated Learning for Vehicular Edge Intelligence", IEEE TMC 24(11),
2025 (arXiv 2503.19676); SCHEMES.md "GenFV". Problem P: min over selection, bandwidth shares l, powers p and
generation amount b of max_n T_n, s.t. E_cp + E_up <= E_bar per vehicle, sum l_n <= 1 per RSU,
p_min <= p <= p_max, b integer, b t0 + T_s_cp <= the round's time.

- Large scale (selection): keep n with predicted T_n <= min(t_hold, t_max) (at an equal share of its RSU among
  the vehicles that pass the EMD test, maximum power) and EMD_n <= EMD_hat; at most vehicles_per_round of
  them, lowest EMD first.
- Small scale, by block-coordinate descent until max_n T_n settles:
  - power: at the shares, the largest power within the energy budget (SCA, `sca.max_power_within`);
    latency falls with power;
  - bandwidth: each upload's airtime s / (l W log2(1 + a p / l)) is concave in 1/l, so its tangent at the
    current share is an upper bound of the form A + B / l (the download's D / l is exact: the RSU's power
    follows the share, so its SNR does not change with l): the round's time and energy become A_n + B_n / l_n and
    C_n + D_n / l_n. The KKT conditions of min T s.t. A_n + B_n / l_n <= T, C_n + D_n / l_n <= E_bar,
    sum l_n <= 1 give l_n* = sqrt((lambda1_n B_n + lambda2_n D_n) / lambda3); the multipliers follow from
    the RSU's T, found numerically (`kkt_shares`).
  Alternating the two stalls where a budget binds (a vehicle at its budget can neither raise its power nor
  give up band), so the bandwidth step sees each vehicle's time with its power at the budget, T(p*(l), l),
  and its tangent; steps are re-taken until max_n T_n settles (`allocate`).
  A vehicle whose round outlasts its dwell at the optimum is dropped (shortest dwell first) and the stage
  solved again.
- Generation amount: b = floor((max_n T_n - T_s_cp(b_s^{t-1})) / t0), T_s_cp the augmented model's training on
  the b_s^{t-1} samples generated before this round (the cumulative set it trains on; FLOPs / the edge
  server's throughput), t0 the generator's seconds per sample; in [0, max_generated]. As the set grows its
  training fills the round and b falls to 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from channel import link
from learning import partition

from ..compute import device_model
from ..registry import register_optimizer, scheme
from .api import Cost, Decision, Plan, RoundSnapshot
from .baseline import assemble
from .sca import max_power_within

ROUND_FIELDS = ("objective_s", "iterations", "emd_filtered", "energy_filtered", "dwell_filtered")


# ---- EMD and the aggregation weights --------------------------------------------------------------
def label_distribution(histogram) -> np.ndarray:
    """p(y = i): a histogram of label counts normalized to sum 1 (all zero stays zero)."""
    h = np.asarray(histogram, dtype=float)
    total = h.sum()
    return h / total if total > 0 else h


def emd(histogram, target) -> float:
    """EMD_n = sum_i |p_n(y = i) - p(y = i)| of a label histogram against p (in [0, 2]; `learning.partition.emd`)."""
    return partition.emd(label_distribution(histogram), np.asarray(target, dtype=float))


def kappa_weights(mean_emd: float) -> tuple[float, float]:
    """(kappa1, kappa2): kappa2 = (mean EMD / 2)^2 weighs the augmented model, kappa1 = 1 - kappa2."""
    k2 = (mean_emd / 2.0) ** 2
    return 1.0 - k2, k2


def target_distribution(snap: RoundSnapshot) -> np.ndarray:
    """The global label distribution the server knows (extra 'label_distribution'), else the candidates' pool."""
    p = snap.extra.get("label_distribution")
    if p is not None:
        return np.asarray(p, dtype=float)
    return label_distribution(np.sum([c.label_histogram for c in snap.candidates], axis=0))


# ---- the round as functions of share and power -----------------------------------------------------
@dataclass(frozen=True)
class Links:
    """The selected vehicles' FedAvg round (model down, local training, model up) as functions of the
    bandwidth share l and power p, on Shannon links: uplink SNR a p / l, downlink SNR c (the RSU's power
    follows the share: constant power spectral density), so the download takes D / l."""

    bits: float                   # the model on the wire, each way
    t_cp_s: np.ndarray
    e_cp_j: np.ndarray
    a_ul: np.ndarray              # uplink SNR per watt over the whole band
    c_dl: np.ndarray              # downlink SNR, on any share
    w_ul_hz: float
    w_dl_hz: float
    rsu: np.ndarray

    def up_s(self, p, l):
        return self.bits / (l * self.w_ul_hz * np.log2(1.0 + self.a_ul * p / l))

    @property
    def down_coef(self) -> np.ndarray:
        """D of the download's time D / l."""
        return self.bits / (self.w_dl_hz * np.log2(1.0 + self.c_dl))

    def down_s(self, l):
        return self.down_coef / l

    def latency_s(self, p, l):
        return self.down_s(l) + self.t_cp_s + self.up_s(p, l)

    def energy_j(self, p, l):
        return self.e_cp_j + p * self.up_s(p, l)


def links(snap: RoundSnapshot) -> Links:
    """The candidates' Links (CPU or GPU devices at their own clock)."""
    b, r = snap.link, snap.radio
    if b.rate_mode != "shannon" or (b.fading != "none" and b.fading_mode == "ergodic"):
        raise ValueError(f"genfv models Shannon links only (link rate_mode {b.rate_mode!r}, fading {b.fading!r} "
                         f"{b.fading_mode!r}): rate_mode 'shannon', not ergodic fading")
    flops = snap.model.train_flops_per_sample * snap.learning.local_epochs
    devs = [device_model(c.device) for c in snap.candidates]
    cands = snap.candidates
    return Links(
        bits=snap.model.model_bytes * 8.0,
        t_cp_s=np.array([d.time_s(flops * c.num_samples) for d, c in zip(devs, cands)]),
        e_cp_j=np.array([d.energy_j(flops * c.num_samples) for d, c in zip(devs, cands)]),
        a_ul=np.array([link.snr_linear(b, "ul", 1.0, c.gain_linear, r.uplink_bandwidth_hz,
                                       c.interference_ul_w_per_hz) for c in cands]),
        c_dl=np.array([link.snr_linear(b, "dl", r.rsu_tx_power_w, c.gain_linear, r.downlink_bandwidth_hz,
                                       c.interference_dl_w_per_hz) for c in cands]),
        w_ul_hz=r.uplink_bandwidth_hz, w_dl_hz=r.downlink_bandwidth_hz, rsu=np.array([c.rsu for c in cands]))


def tangent(bits: float, w_hz: float, snr_full: np.ndarray, share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of the airtime's tangent in x = 1/l at the share: t(x) = s x / (W log2(1 + c x)) is concave, so
    t(l') <= A + B / l' for every l', with equality at l' = share."""
    x = 1.0 / share
    L = np.log2(1.0 + snr_full * x)
    t = bits * x / (w_hz * L)
    slope = bits / w_hz * (L - x * snr_full / ((1.0 + snr_full * x) * math.log(2.0))) / L ** 2
    return t - slope * x, slope


# ---- the KKT bandwidth shares --------------------------------------------------------------------------
@dataclass(frozen=True)
class KktShares:
    """The shares minimizing each RSU's max_n T_n under A + B/l <= T, C + D/l <= E_bar, sum l <= 1, with the
    RSU's T and the multipliers: l_n = sqrt((lambda1_n B_n + lambda2_n D_n) / lambda3)."""

    share: np.ndarray
    latency_s: np.ndarray         # per vehicle: its RSU's T
    lambda1: np.ndarray           # time constraints (sum 1 per RSU)
    lambda2: np.ndarray           # energy constraints
    lambda3: np.ndarray           # per vehicle: its RSU's bandwidth constraint
    feasible: np.ndarray          # False where the RSU's energy needs alone exceed its band


def kkt_shares(A, B, C, D, energy_cap_j: float, rsu, rtol: float = 1e-14, max_iterations: int = 200) -> KktShares:
    """min T_r s.t. A_n + B_n / l_n <= T_r, C_n + D_n / l_n <= E_bar, sum_{n in r} l_n <= 1, per RSU r.

    At T, vehicle n needs l_n(T) = max(B_n / (T - A_n), D_n / (E_bar - C_n)); the optimum is the T where the
    needs fill the band. That sum is convex and decreasing in T, so Newton's method from the right of the
    root lands left of it and then climbs to it monotonically; a bracket guards each step (vectorized over
    the RSUs: scipy's brentq solves one scalar root per call, too slow for a round's dozens of solves).
    """
    A, B, C, D = (np.asarray(v, dtype=float) for v in (A, B, C, D))
    _, inv = np.unique(rsu, return_inverse=True)
    k = int(inv.max()) + 1 if inv.size else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        slack = energy_cap_j - C
        e_need = np.where(D > 0, D / slack, 0.0) if math.isfinite(energy_cap_j) else np.zeros_like(D)
        e_need = np.where(slack > 0, e_need, np.inf) if math.isfinite(energy_cap_j) else e_need
    e_sum = np.bincount(inv, e_need, minlength=k)
    feasible_r = e_sum < 1.0
    a_max = np.full(k, -np.inf)
    np.maximum.at(a_max, inv, A)
    lo = a_max.copy()
    b_sum = np.bincount(inv, B, minlength=k)
    hi = np.where(feasible_r, a_max + b_sum / np.where(feasible_r, 1.0 - e_sum, 1.0), a_max + 1.0)
    T = hi.copy()

    def excess(T_r):
        gap = T_r[inv] - A
        t_need = B / gap
        need = np.maximum(t_need, e_need)
        g = np.bincount(inv, need, minlength=k) - 1.0
        dg = np.bincount(inv, np.where(t_need >= e_need, -B / gap ** 2, 0.0), minlength=k)
        return g, dg

    for _ in range(max_iterations):
        g, dg = excess(T)
        lo = np.where(g > 0, T, lo)
        hi = np.where(g <= 0, T, hi)
        step = np.where(dg < 0, T - g / np.where(dg < 0, dg, -1.0), 0.5 * (lo + hi))
        new = np.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
        new = np.where(feasible_r, new, T)
        if np.all(np.abs(new - T) <= rtol * np.abs(T)):
            T = new
            break
        T = new
    T_v = T[inv]
    t_need = B / (T_v - A)
    share = np.maximum(t_need, e_need)
    time_binds = t_need >= e_need
    # multipliers: d/dT gives sum lambda1 = 1 per RSU; d/dl_n gives lambda3 l_n^2 = lambda1_n B_n + lambda2_n D_n
    with np.errstate(divide="ignore", invalid="ignore"):
        lam3 = (1.0 / np.bincount(inv, np.where(time_binds, share ** 2 / B, 0.0), minlength=k))[inv]
        lam1 = np.where(time_binds, lam3 * share ** 2 / B, 0.0)
        lam2 = np.where(time_binds, 0.0, lam3 * share ** 2 / D)
    return KktShares(share, T_v, lam1, lam2, lam3, feasible_r[inv])


# ---- the small-scale stage ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Allocation:
    share: np.ndarray
    power_w: np.ndarray
    latency_s: np.ndarray         # exact, per vehicle
    iterations: int
    feasible: np.ndarray


def _shares(ln: Links, p: np.ndarray, share: np.ndarray, cap_j: float, rtol: float = 1e-12, rounds: int = 30):
    """KKT shares at powers p, re-taking the tangents at the new shares until they settle."""
    feasible = np.ones(len(p), dtype=bool)
    for _ in range(rounds):
        a_up, b_up = tangent(ln.bits, ln.w_ul_hz, ln.a_ul * p, share)
        kkt = kkt_shares(ln.t_cp_s + a_up, ln.down_coef + b_up, ln.e_cp_j + p * a_up, p * b_up, cap_j, ln.rsu)
        feasible = kkt.feasible
        new = np.where(feasible, kkt.share, share)
        done = np.all(np.abs(new - share) <= rtol * share)
        share = new
        if done:
            break
    return share, feasible


def _powers(ln: Links, share: np.ndarray, cap_j: float, p_min: float, p_max: float) -> np.ndarray:
    """The largest power within the energy budget at the shares (p_max when unbounded); nan where none is."""
    if not math.isfinite(cap_j):
        return np.full(len(share), p_max)
    p, _ = max_power_within(ln.a_ul / share, share * ln.w_ul_hz, np.full(len(share), ln.bits), cap_j - ln.e_cp_j,
                            p_min, p_max)
    return p


def _partials(bits: float, w_hz: float, snr_per_w, p, l):
    """(t, dt/dp, dt/dl) of the airtime s / (l W log2(1 + a p / l))."""
    u = snr_per_w * p / l
    L = np.log2(1.0 + u)
    t = bits / (l * w_hz * L)
    dL = 1.0 / ((1.0 + u) * math.log(2.0))
    return t, -t / L * dL * snr_per_w / l, -t / l + t / L * dL * u / l


def joint_tangent(ln: Links, p: np.ndarray, share: np.ndarray, p_max: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of each vehicle's round time h(l) = T(p*(l), l) in x = 1/l at its share, where p*(l) is the largest
    power within its energy budget (p_max, or the power that spends the budget exactly: along that curve
    dp/dl = -(de/dl) / (de/dp)), so that a vehicle trades power for bandwidth as the budget binds."""
    t_up, dt_dp, dt_dl = _partials(ln.bits, ln.w_ul_hz, ln.a_ul, p, share)
    dd_dl = -ln.down_coef / share ** 2
    binds = p < p_max * (1 - 1e-12)
    de_dp, de_dl = t_up + p * dt_dp, p * dt_dl
    dp_dl = np.where(binds, -de_dl / de_dp, 0.0)
    dh_dl = dd_dl + dt_dl + dt_dp * dp_dl
    slope = -share ** 2 * dh_dl                     # dh/dx at x = 1/l
    return ln.latency_s(p, share) - slope / share, slope


def _rsu_max(values: np.ndarray, inv: np.ndarray, k: int) -> np.ndarray:
    out = np.full(k, -np.inf)
    np.maximum.at(out, inv, values)
    return out


def allocate(ln: Links, cap_j: float, p_min: float, p_max: float, power_control: str = "sca",
             bandwidth: str = "kkt", max_iterations: int = 30, rtol: float = 1e-10) -> Allocation:
    """Shares and powers minimizing each RSU's max_n T_n, from equal shares.

    power_control 'sca': each vehicle at p*(l), the largest power within its budget at its share (SCA); the
    shares by KKT steps on the tangents of T(p*(l), l) (`joint_tangent`), each step halved per RSU until that
    RSU's round gets shorter (with no budget the tangents are upper bounds and every full step is). 'max':
    p_max, the energy budget a lower bound on each share (its tangent C + D / l). Vehicles that cannot keep
    the budget at the start are reported infeasible at once."""
    n = len(ln.rsu)
    _, inv = np.unique(ln.rsu, return_inverse=True)
    k = int(inv.max()) + 1 if n else 0
    share = 1.0 / np.bincount(inv, minlength=k)[inv] if n else np.zeros(0)
    if power_control == "max":
        p = np.full(n, p_max)
        ok = np.ones(n, dtype=bool)
        if bandwidth == "kkt":
            share, ok = _shares(ln, p, share, cap_j)
        return Allocation(share, p, ln.latency_s(p, share), 1, ok & (ln.energy_j(p, share) <= cap_j * (1 + 1e-12)))
    p = _powers(ln, share, cap_j, p_min, p_max)
    if bandwidth != "kkt" or not np.isfinite(p).all():
        ok = np.isfinite(p)
        p = np.where(ok, p, p_min)
        return Allocation(share, p, ln.latency_s(p, share), 1, ok)
    T_r = _rsu_max(ln.latency_s(p, share), inv, k)
    it = 0
    for it in range(1, max_iterations + 1):
        A, B = joint_tangent(ln, p, share, p_max)
        target = kkt_shares(A, B, np.zeros(n), np.zeros(n), math.inf, ln.rsu).share
        step = np.ones(k)
        for _ in range(40):
            cand = share + step[inv] * (target - share)
            q = _powers(ln, cand, cap_j, p_min, p_max)
            T_c = _rsu_max(np.where(np.isfinite(q), ln.latency_s(np.where(np.isfinite(q), q, p_max), cand), np.inf),
                           inv, k)
            better = T_c <= T_r
            if better.all():
                break
            step = np.where(better, step, 0.5 * step)
        take = better[inv]
        share, p = np.where(take, cand, share), np.where(take, q, p)
        gain = np.where(better, (T_r - T_c) / T_r, 0.0)
        T_r = np.where(better, T_c, T_r)
        if np.all(gain <= rtol):
            break
    return Allocation(share, p, ln.latency_s(p, share), it, np.ones(n, dtype=bool))


# ---- the generation amount ------------------------------------------------------------------------------
def augmented_train_s(snap: RoundSnapshot, samples: int) -> float:
    """T_s_cp: the edge server's time to train the augmented model on `samples` generated ones (FLOPs at its
    throughput, as the simulated server job takes it)."""
    flops = snap.model.train_flops_per_sample * samples * snap.learning.local_epochs
    return flops / snap.server.flops_per_s


def generation_amount(budget_s: float, train_prev_s: float, seconds_per_sample: float, b_max: int) -> int:
    """b = floor((budget - T_s_cp(b^{t-1})) / t0), within [0, b_max]: the most samples whose generation plus the
    augmented training (estimated at the last round's amount) fit in the round."""
    room = budget_s - train_prev_s
    if not math.isfinite(room) or room <= 0:
        return 0
    if seconds_per_sample <= 0:
        return b_max
    b = math.floor(room / seconds_per_sample)
    while b > 0 and b * seconds_per_sample + train_prev_s > budget_s:     # floor of a rounded quotient
        b -= 1
    return int(min(b, b_max))


# ---- the optimizer ---------------------------------------------------------------------------------------
def _select(snap: RoundSnapshot, emds: np.ndarray, ln: Links, cap_j: float) -> tuple[np.ndarray, dict[str, int]]:
    """Stage 1: the rows that pass the EMD, energy and dwell tests (at most vehicles_per_round of them, ranked by
    `selection_rank`), and how many each test drops."""
    s, cands, radio = snap.settings, snap.candidates, snap.radio
    n = len(cands)
    if s.get("vehicle_selection", "genfv") != "genfv":
        return np.arange(n), {"emd_filtered": 0, "energy_filtered": 0, "dwell_filtered": 0}
    k = int(s.get("vehicles_per_round", n))
    pass_emd = emds <= float(s.get("emd_max", 2.0)) + 1e-12
    counts = np.bincount(ln.rsu[pass_emd], minlength=int(ln.rsu.max(initial=0)) + 1)
    share = 1.0 / np.maximum(np.minimum(counts[ln.rsu], k), 1)
    p = _powers(ln, share, cap_j, radio.vehicle_min_tx_power_w, radio.vehicle_tx_power_w)
    t_max = s.get("max_latency_s") or snap.budgets.round_time_s
    dwell = np.array([c.dwell_s for c in cands])
    latency = ln.latency_s(np.where(np.isfinite(p), p, radio.vehicle_tx_power_w), share)
    fits = np.isfinite(p) & (latency <= np.minimum(dwell, t_max))
    keep = np.flatnonzero(pass_emd & fits)
    how = s.get("selection_rank", "random")
    if how == "random":          # a uniform draw among those that pass, from the seed the snapshot carries
        rank = np.random.default_rng(int(snap.extra.get("selection_seed", snap.round))).random(n)
    else:
        rank = latency if how == "latency" else emds
    order = sorted(keep.tolist(), key=lambda i: (rank[i], cands[i].id))
    out = {"emd_filtered": int(n - pass_emd.sum()), "energy_filtered": int((pass_emd & ~np.isfinite(p)).sum()),
           "dwell_filtered": int((pass_emd & np.isfinite(p) & ~fits).sum())}
    return np.array(order[:k], dtype=int), out


def solve(snap: RoundSnapshot) -> Plan:
    """Both stages and the generation amount; the plan's round decisions carry b and the cohort's mean EMD."""
    s, radio = snap.settings, snap.radio
    cap = snap.budgets.vehicle_energy_j
    cap_j = float("inf") if cap is None else float(cap)
    p_min, p_max = radio.vehicle_min_tx_power_w, radio.vehicle_tx_power_w
    target = target_distribution(snap)
    emds = np.array([emd(c.label_histogram, target) for c in snap.candidates])
    full = links(snap)
    rows, filtered = _select(snap, emds, full, cap_j)
    dwell = np.array([c.dwell_s for c in snap.candidates])
    t_max = s.get("max_latency_s") or snap.budgets.round_time_s
    while True:
        ln = _subset(full, rows)
        alloc = allocate(ln, cap_j, p_min, p_max, s.get("power_control", "sca"), s.get("bandwidth_allocation", "kkt"),
                         int(s.get("max_iterations", 30)))
        if not alloc.feasible.all():                  # cannot keep the energy budget: out, then again
            filtered["energy_filtered"] += int((~alloc.feasible).sum())
            rows = rows[alloc.feasible]
            continue
        late = alloc.latency_s > np.minimum(dwell[rows], t_max) * (1 + 1e-12)
        if not late.any():
            break
        worst = int(np.flatnonzero(late)[np.argmin(dwell[rows][late])])     # the shortest dwell among them
        rows = np.delete(rows, worst)
        filtered["dwell_filtered"] += 1
    model = scheme(snap.scheme).cost
    ids = [snap.candidates[i].id for i in rows]
    decisions = {vid: Decision(bandwidth_share=float(alloc.share[j]), tx_power_w=float(alloc.power_w[j]))
                 for j, vid in enumerate(ids)}
    costs: dict[str, Cost] = {vid: model.cost(snap, snap.candidate(vid), decisions[vid]) for vid in ids}
    objective = max((c.latency_s for c in costs.values()), default=0.0)
    b = 0
    if s.get("augmentation", True) and ids:
        gen = s.get("generator") or {}
        if s.get("generation_amount", "closed_form") == "fixed":
            b = int(s.get("fixed_b", 0))
        else:
            b = generation_amount(objective, augmented_train_s(snap, int(snap.extra.get("generated_previous", 0))),
                                  float(gen.get("seconds_per_sample", 0.01)), int(s.get("max_generated", 1000)))
    mean_emd = float(np.mean(emds[rows])) if len(rows) else 0.0
    stats = {"objective_s": objective, "iterations": alloc.iterations, **filtered}
    return assemble(ids, decisions, costs, model.sequential, {"b": b, "mean_emd": mean_emd}, stats)


def _subset(ln: Links, rows: np.ndarray) -> Links:
    return Links(ln.bits, ln.t_cp_s[rows], ln.e_cp_j[rows], ln.a_ul[rows], ln.c_dl[rows], ln.w_ul_hz, ln.w_dl_hz,
                 ln.rsu[rows])


@register_optimizer("genfv", round_fields=ROUND_FIELDS, schemes=("genfv",))
def genfv(snap: RoundSnapshot) -> Plan:
    """GenFV (TMC 2025): EMD and dwell selection, KKT bandwidth, SCA power, closed-form generation amount."""
    return solve(snap)


__all__ = ["Allocation", "KktShares", "Links", "allocate", "augmented_train_s", "emd", "generation_amount", "genfv",
           "kappa_weights", "kkt_shares", "label_distribution", "links", "solve", "tangent", "target_distribution"]
