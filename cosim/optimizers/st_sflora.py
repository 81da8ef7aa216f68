"""ST-SFLora's optimizer: each selected vehicle's token count K, bandwidth W and transmit power p.

ST-SFLora, arXiv 2605.26120; SCHEMES.md "ST-SFLora". P0: max E = sum_m f_m(K_m) / max_m T_m over K, W, p s.t.
C1 p_min <= p_m <= p_max (p_min the radio's; the lecture's 0), C2 sum_m W_m <= W_tot per RSU, C3 W_m >= 0,
C4 K_min <= K_m <= N integer, C5 E_m = p_m S_m / R_m <= E_max, C6 T_m = S_m / R_m <= T_m^standing, with
S_m(K) = n_m (K + 2) D q0 bits ((N + 1) D q0 per sample at K = N; n_m the samples it sends, once each),
R_m = W_m log2(1 + p_m c_m / W_m) (c_m the SNR at 1 W over 1 Hz) and f_m(K) the sum of its K largest token
importance scores. Block-coordinate descent, SUBP2 -> SUBP1 -> SUBP3 per pass:
- SUBP2 bandwidth, per RSU at fixed p, K (Algorithm 3): min tau = max_m T_m by nested bisection: outer on tau,
  inner per vehicle for the W_m(tau) whose rate meets the largest of S_m / tau, S_m / T_m^standing (C6) and
  p_m S_m / E_max (C5); tau feasible when sum_m W_m(tau) <= W_tot. The inner bisections run on all vehicles
  (and RSUs) at once and stop as soon as their brackets decide that comparison; W_m(tau) falls with tau, so
  each bracket starts from the ones the last feasible and infeasible tau left (the first lower ends from R's
  tangent at the last allocation, concave R). W* = W(tau_high) to float precision. "equal": W_tot / count.
- SUBP1 power at fixed K, W: the largest p with C5 and C6. Energy p S / R grows with p and depends on the SNR
  x = p c / W alone (x S / (c log2(1 + x))), so bisection on x for the budget, p = min(p_max, x W / c);
  infeasible where that p misses C6 or p_min. "max": p_max.
- SUBP3 tokens: K_max = floor(min{N, E_max R / (p beta) - 2, T^standing R / beta - 2, tau R / beta - 2}),
  beta = n_m D q0, tau the makespan after SUBP2, checked against the exact payload (so K_max = N where N + 1
  tokens fit); K* = the largest argmax of f over [K_min, K_max] (f does not fall: K_max).
Start: equal shares (where an RSU's vehicles need more than that for K_min, each its least band plus an equal
part of the rest), SUBP1's power at K_min, K from SUBP3 without the tau term. Passes repeat until E improves by
no more than 1e-10 (relative: the outer bisection's tolerance on tau; where budgets bind, the W-p alternation
creeps on by ~1e-12 a pass), a pass changes neither p nor K (SUBP2 would repeat itself), or max_iterations;
the best pass is kept. Every step keeps the last point feasible, so the makespan never grows and K never falls,
and the BCD is degenerate in two ways: the tau term locks K where it starts (as many tokens as energy and dwell
allow at the start) at every vehicle SUBP2 puts on the makespan, so it never gives up tokens for a shorter
round, and at a fixed p the budget is a floor on W, so a vehicle at its budget never gives up the band it
starts with; hence a looser E_max never lowers a K but often lowers E (with no budget and long dwells K = N
throughout and only W and p move).
Vehicles that cannot send K_min tokens within C1, C5, C6 even with the whole band, and then those an RSU cannot
host together (the sum of their least bands above W_tot; largest first), are dropped (stats 'dropped'). Shannon
links only; rates as channel.link's (and the cost model's). `solve` turns NumPy's errors off.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from channel import link
from learning.tokens import tokens_sent

from ..registry import register_optimizer, scheme
from .api import Decision, Plan, RoundSnapshot
from .baseline import assemble
from .costs import batch_sizes
from .st_sflora_model import geometry, importance

ROUND_FIELDS = ("efficiency", "tau_s", "tokens_mean", "tokens_min", "tokens_max", "iterations", "dropped")
TOL = 1e-12                 # relative slack on C5, C6 and T <= tau in the optimizer's own checks
BISECTION_RTOL = 1e-15      # inner bisections: to float precision
FINAL_RTOL = 1e-13          # W(tau*): the last inner bisections
STOP_RTOL = 1e-10           # BCD: E no longer improving (the outer bisection's tolerance on tau)
MAX_BISECTIONS = 200


# ---- rates ------------------------------------------------------------------------------------------
def shannon_bps(a_hz, w_hz):
    """R = W log2(1 + a / W), a = p c the received SNR x bandwidth [Hz]: increasing, concave, -> a / ln 2."""
    return w_hz * np.log2(1.0 + a_hz / w_hz)


def shannon_slope(a_hz, w_hz):
    """dR/dW = log2(1 + a / W) - (a / W) / ((1 + a / W) ln 2) > 0."""
    x = a_hz / w_hz
    return np.log2(1.0 + x) - x / ((1.0 + x) * math.log(2.0))


@dataclass(frozen=True)
class Uplinks:
    """The candidates' token uploads: SNR per watt per hertz, bits per token over their samples, standing time,
    semantic content f(K) for K = 0..N (rows), RSU (0..k-1), and the radio's limits."""

    snr_per_w_hz: np.ndarray      # c_m: SNR at 1 W over 1 Hz
    bits_per_token: np.ndarray    # beta_m = n_m D q0
    standing_s: np.ndarray        # T_m^standing
    content: np.ndarray           # (M, N + 1) f_m(K)
    rsu: np.ndarray               # compact RSU index
    rsus: int
    num_patches: int
    band_hz: float                # W_tot per RSU
    p_min_w: float
    p_max_w: float
    energy_cap_j: float           # E_max (inf: none)

    def payload_bits(self, k):
        return self.bits_per_token * tokens_sent(k, self.num_patches)

    def rate_bps(self, w_hz, p_w):
        return shannon_bps(self.snr_per_w_hz * p_w, w_hz)

    def airtime_s(self, k, w_hz, p_w):
        return self.payload_bits(k) / self.rate_bps(w_hz, p_w)

    def fits(self, k, w_hz, p_w, tau_s=math.inf, tol: float = TOL) -> np.ndarray:
        """C5, C6 and T <= tau at K with the exact payload (relative slack `tol`)."""
        s, r = self.payload_bits(k), self.rate_bps(w_hz, p_w)
        t = s / r
        return ((p_w * s / r <= self.energy_cap_j * (1 + tol)) & (t <= self.standing_s * (1 + tol))
                & (t <= tau_s * (1 + tol)))

    def subset(self, rows) -> "Uplinks":
        _, rsu = np.unique(self.rsu[rows], return_inverse=True)
        return Uplinks(self.snr_per_w_hz[rows], self.bits_per_token[rows], self.standing_s[rows],
                       self.content[rows], rsu.astype(np.int64), int(rsu.max()) + 1 if rsu.size else 0,
                       self.num_patches, self.band_hz, self.p_min_w, self.p_max_w, self.energy_cap_j)


def energy_cap_j(snap: RoundSnapshot) -> float:
    """E_max: the tighter of budgets.vehicle_energy_j and settings energy_budget_j (inf: neither is set)."""
    caps = [c for c in (snap.budgets.vehicle_energy_j, snap.settings.get("energy_budget_j")) if c is not None]
    return float(min(caps)) if caps else math.inf


def uplinks(snap: RoundSnapshot) -> Uplinks:
    """The snapshot's candidates as Uplinks. Raises ValueError for a link that is not Shannon's."""
    b, r = snap.link, snap.radio
    if b.rate_mode != "shannon" or (b.fading != "none" and b.fading_mode == "ergodic"):
        raise ValueError(f"st_sflora models Shannon links only (link rate_mode {b.rate_mode!r}, fading {b.fading!r} "
                         f"{b.fading_mode!r}): rate_mode 'shannon', not ergodic fading")
    geo = geometry(snap)
    n_tok = geo.num_patches
    cands = snap.candidates
    cap = snap.settings.get("batches_per_round")
    sent = np.array([sum(batch_sizes(c.num_samples, snap.learning.batch_size, 1, cap)) for c in cands], dtype=float)
    scores = np.zeros((len(cands), n_tok))
    for i, c in enumerate(cands):
        got = importance(snap, c.id, n_tok)
        if len(got) != n_tok:
            raise ValueError(f"{c.id}: {len(got)} token importance scores, expected num_patches = {n_tok}")
        scores[i] = got
    content = np.zeros((len(cands), n_tok + 1))
    np.cumsum(-np.sort(-scores, axis=1), axis=1, out=content[:, 1:])
    _, rsu = np.unique(np.array([c.rsu for c in cands], dtype=np.int64), return_inverse=True)
    return Uplinks(
        snr_per_w_hz=np.array([link.snr_linear(b, "ul", 1.0, c.gain_linear, 1.0, c.interference_ul_w_per_hz)
                               for c in cands]),
        bits_per_token=sent * geo.dim * geo.bits, standing_s=np.array([c.dwell_s for c in cands], dtype=float),
        content=content, rsu=rsu.astype(np.int64), rsus=int(rsu.max()) + 1 if rsu.size else 0, num_patches=n_tok,
        band_hz=float(r.uplink_bandwidth_hz), p_min_w=float(r.vehicle_min_tx_power_w),
        p_max_w=float(r.vehicle_tx_power_w), energy_cap_j=energy_cap_j(snap))


def _group_max(values: np.ndarray, rsu: np.ndarray, k: int) -> np.ndarray:
    out = np.full(k, -np.inf)
    np.maximum.at(out, rsu, values)
    return out


# ---- the inner bisections ---------------------------------------------------------------------------
def bandwidth_for_rate(a_hz, rate_bps, lo_hz, hi_hz, rtol: float = BISECTION_RTOL):
    """Bisection on W in [lo, hi] for W log2(1 + a / W) = rate (vectorized). Returns the bracket (lo, hi):
    R(hi) >= rate, so hi is the feasible end; both 0 where rate <= 0."""
    a, rate = np.asarray(a_hz, dtype=float), np.asarray(rate_bps, dtype=float)
    zero = rate <= 0
    lo = np.where(zero, 0.0, np.asarray(lo_hz, dtype=float) + 0.0 * a)
    hi = np.where(zero, 0.0, np.asarray(hi_hz, dtype=float) + 0.0 * a)
    for step in range(MAX_BISECTIONS):
        if step % 4 == 0 and np.all(hi - lo <= rtol * hi):
            break
        mid = 0.5 * (lo + hi)
        ok = shannon_bps(a, mid) >= rate
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return lo, hi


def snr_within(energy_per_bit_x_c):
    """The largest SNR x > 0 with x / log2(1 + x) <= A (A = E_max c / S: the budget's energy per bit x c), by
    bisection (vectorized); 0 where none is (A <= ln 2, the energy per bit's floor as p -> 0), inf where A is.
    x / ln(1 + x) lies between sqrt(1 + x) and 1 + x / 2, which brackets the root."""
    target = np.asarray(energy_per_bit_x_c, dtype=float)
    a = target / math.log(2.0)                          # x / ln(1 + x) = a
    some = (a > 1.0) & np.isfinite(a)
    lo = np.where(some, 2.0 * (a - 1.0), 0.0)
    hi = np.where(some, a * a - 1.0, 0.0)
    with np.errstate(invalid="ignore"):                  # 0 / 0 where there is no root: stays 0
        for step in range(MAX_BISECTIONS):
            if step % 4 == 0 and np.all(hi - lo <= BISECTION_RTOL * hi):
                break
            mid = 0.5 * (lo + hi)
            ok = mid / np.log2(1.0 + mid) <= target
            lo = np.where(ok, mid, lo)
            hi = np.where(ok, hi, mid)
    return np.where(np.isinf(a), np.inf, lo)


# ---- SUBP1: power -----------------------------------------------------------------------------------
def subp1_power(up: Uplinks, k, w_hz) -> np.ndarray:
    """The largest p in [p_min, p_max] with C5 and C6 at tokens k and bandwidths w (nan where none is)."""
    c, s = up.snr_per_w_hz, up.payload_bits(k)
    x_cap = up.p_max_w * c / w_hz
    x = np.minimum(x_cap, snr_within(up.energy_cap_j * c / s))
    p = np.where(x >= x_cap, up.p_max_w, x * w_hz / c)
    with np.errstate(divide="ignore", invalid="ignore"):   # p = 0 where the budget allows no SNR
        ok = (x > 0) & (p >= up.p_min_w * (1 - TOL)) & up.fits(k, w_hz, p)
    return np.where(ok, np.maximum(p, up.p_min_w), np.nan)


def least_bandwidth_hz(up: Uplinks, k, power_control: str = "bisection") -> np.ndarray:
    """The least W with which a vehicle sends k tokens within C1, C5, C6 at its best power (inf: not within its
    RSU's band). At W the budget allows SNRs up to x_E, so the best power is min(p_max, x_E W / c); p_min needs
    W >= p_min c / x_E. 'max': at p_max, the W meeting C5's and C6's rates."""
    c, s = up.snr_per_w_hz, up.payload_bits(k)
    band = np.full(len(c), up.band_hz)
    r_time = s / up.standing_s
    if power_control == "max":
        a = up.p_max_w * c
        target = np.maximum(r_time, up.p_max_w * s / up.energy_cap_j)
        w = bandwidth_for_rate(a, target, 0.0, band)[1]
        return np.where(shannon_bps(a, band) >= target, w, np.inf)
    x_e = snr_within(up.energy_cap_j * c / s)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_x = up.p_max_w * c / x_e                       # above it p_max binds, below it the budget
        w1 = r_time / np.log2(1.0 + x_e)
    a = up.p_max_w * c
    w2 = bandwidth_for_rate(a, r_time, 0.0, band)[1]
    w2 = np.where(shannon_bps(a, band) >= r_time, w2, np.inf)
    w = np.where(np.isfinite(x_e) & (w1 <= w_x), w1, w2)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.maximum(w, np.where(x_e > 0, up.p_min_w * c / x_e, np.inf))
    return np.where(w <= band, w, np.inf)


# ---- SUBP2: bandwidth (Algorithm 3) -------------------------------------------------------------------
@dataclass(frozen=True)
class Bandwidths:
    w_hz: np.ndarray              # per vehicle (nan at an infeasible RSU)
    tau_s: np.ndarray             # per RSU: tau* (nan where infeasible)
    feasible: np.ndarray          # per RSU: the rate floors fit in its band
    outer: int                    # outer bisection steps (the most any RSU took)


def min_max_bandwidth(a_hz, bits, floor_bps, rsu, band_hz: float, start_hz=None, rtol: float = 1e-10,
                      rsus: int | None = None, max_inner: int = MAX_BISECTIONS) -> Bandwidths:
    """Algorithm 3 per RSU: min tau s.t. W_m(tau) log2(1 + a_m / W_m(tau)) >= max(bits_m / tau, floor_m),
    sum_m W_m(tau) <= W_tot. Outer bisection on tau in [tau_min, tau_max] until tau_high - tau_low <= rtol
    tau_high: tau_min the slowest vehicle with the whole band; tau_max the slowest at `start_hz` (an allocation
    that keeps the floors within the band, e.g. the last iterate's), else with its floor's band plus an equal
    part of the rest. Inner bisections on every vehicle's W at once, until their brackets' sums decide
    Phi(tau) = sum_m W_m(tau) > W_tot per RSU. W* = W(tau_high), tau* = tau_high."""
    with np.errstate(all="ignore"):                      # an infeasible RSU's sums are inf
        return _min_max_bandwidth(a_hz, bits, floor_bps, rsu, band_hz, start_hz, rtol, rsus, max_inner)


def _min_max_bandwidth(a_hz, bits, floor_bps, rsu, band_hz, start_hz, rtol, rsus, max_inner) -> Bandwidths:
    a, bits, floor = (np.asarray(v, dtype=float) for v in (a_hz, bits, floor_bps))
    rsu = np.asarray(rsu, dtype=np.int64)
    k = (int(rsu.max()) + 1 if rsu.size else 0) if rsus is None else rsus
    count = np.bincount(rsu, minlength=k)
    band_v = np.full(len(a), float(band_hz))
    full = shannon_bps(a, band_v)
    if start_hz is None:
        need = np.where(floor <= full, bandwidth_for_rate(a, floor, 0.0, band_v)[1], np.inf)
        need_sum = np.bincount(rsu, need, minlength=k)
        feasible = (need_sum <= band_hz) & (count > 0)
        top = need + ((band_hz - need_sum) / np.maximum(count, 1))[rsu]
    else:
        top = np.asarray(start_hz, dtype=float)
        feasible = count > 0
    ok_v = feasible[rsu]
    top = np.where(ok_v, top, band_hz)
    lo = np.where(feasible, _group_max(np.where(ok_v, bits / full, -np.inf), rsu, k), np.nan)
    hi = np.where(feasible, _group_max(np.where(ok_v, bits / shannon_bps(a, top), -np.inf), rsu, k), np.nan)
    hi = np.maximum(hi, lo)
    # W(tau) in [L, U] for every tau in [lo, hi] (it falls with tau); W_hi: an allocation feasible at hi. L: R is
    # concave, so its tangent at `top` reaches max(bits / hi, floor) left of W(hi)
    r = np.maximum(bits / np.where(ok_v, hi[rsu], 1.0), floor)
    L = np.clip(top - (shannon_bps(a, top) - r) / shannon_slope(a, top), 0.0, top)
    L, U, W_hi = np.where(np.isfinite(L), L, 0.0), band_v, top
    outer = 0
    while True:
        active = feasible & (hi - lo > rtol * hi)
        if not active.any():
            break
        outer += 1
        mid = 0.5 * (lo + hi)
        r = np.maximum(bits / np.where(ok_v, mid[rsu], 1.0), floor)
        l, u = L, U
        for _ in range(max_inner):
            su = np.bincount(rsu, u, minlength=k)
            if not (active & (su > band_hz) & (np.bincount(rsu, l, minlength=k) <= band_hz)).any():
                break
            w = 0.5 * (l + u)
            good = shannon_bps(a, w) >= r
            u = np.where(good, w, u)
            l = np.where(good, l, w)
        over = active & (su > band_hz)                   # Phi(mid) > W_tot (or not shown to fit): tau_low = mid
        down = active & ~over
        lo, hi = np.where(over, mid, lo), np.where(down, mid, hi)
        over_v, down_v = over[rsu], down[rsu]
        U = np.where(over_v, u, U)
        L = np.where(down_v, l, L)
        W_hi = np.where(down_v, u, W_hi)
    r = np.maximum(bits / np.where(ok_v, hi[rsu], 1.0), floor)
    w = np.minimum(bandwidth_for_rate(a, r, L, np.minimum(U, W_hi), rtol=FINAL_RTOL)[1], W_hi)
    return Bandwidths(np.where(ok_v, w, np.nan), hi, feasible, outer)


def rate_floors_bps(up: Uplinks, k, p_w) -> np.ndarray:
    """The least rate C5 and C6 allow: max(S / T^standing, p S / E_max)."""
    s = up.payload_bits(k)
    return np.maximum(s / up.standing_s, p_w * s / up.energy_cap_j)


def equal_bandwidth_hz(up: Uplinks) -> np.ndarray:
    return up.band_hz / np.bincount(up.rsu, minlength=up.rsus)[up.rsu]


# ---- SUBP3: tokens ----------------------------------------------------------------------------------
def token_bound(up: Uplinks, w_hz, p_w, tau_s=math.inf) -> np.ndarray:
    """K_max = floor(min{N, E_max R / (p beta) - 2, T^standing R / beta - 2, tau R / beta - 2}), made exact
    against the payload S(K) (N + 1 tokens at K = N): K_max keeps C5, C6 and T <= tau, K_max + 1 breaks one
    or K_max = N; -1 where not even K = 0 fits."""
    n = up.num_patches
    r = up.rate_bps(w_hz, p_w)
    bits = np.minimum(np.minimum(up.energy_cap_j * r / p_w, up.standing_s * r), tau_s * r)
    sent = np.floor(np.minimum(bits / up.bits_per_token, n + 2.0))
    kmax = np.clip(np.where(sent >= n + 1, n, sent - 2), -1, n).astype(np.int64)
    for _ in range(n + 2):                                 # the floor may be one off either way
        more = (kmax < n) & up.fits(np.minimum(kmax + 1, n), w_hz, p_w, tau_s)
        if not more.any():
            break
        kmax = kmax + more
    for _ in range(n + 2):
        less = (kmax >= 0) & ~up.fits(np.maximum(kmax, 0), w_hz, p_w, tau_s)
        if not less.any():
            break
        kmax = kmax - less
    return kmax


def best_tokens(content: np.ndarray, k_lo, kmax) -> np.ndarray:
    """The largest argmax of f(K) over [k_lo, kmax] per row; -1 where kmax < k_lo."""
    n = content.shape[1] - 1
    cols = np.arange(n + 1)
    allowed = (cols >= np.asarray(k_lo)[..., None]) & (cols <= np.asarray(kmax)[:, None])
    vals = np.where(allowed, content, -np.inf)
    k = n - np.argmax(vals[:, ::-1], axis=1)
    return np.where(allowed.any(axis=1), k, -1)


def subp3_tokens(up: Uplinks, w_hz, p_w, tau_s, k_lo) -> np.ndarray:
    """SUBP3: K* = the largest argmax of f over [K_min, K_max] (-1 where K_max < K_min)."""
    return best_tokens(up.content, k_lo, token_bound(up, w_hz, p_w, tau_s))


# ---- the iteration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Iterate:
    """One BCD pass: the efficiency sum f / max T [1/s], the makespan, the mean K, the outer bisection steps."""

    efficiency: float
    tau_s: float
    tokens_mean: float
    outer: int


def keep_hostable(need_hz: np.ndarray, rsu: np.ndarray, band_hz: float, equal: bool) -> np.ndarray:
    """Which vehicles stay when each RSU drops its most demanding ones (largest least band first) until the rest
    fit: the sum of their least bands within W_tot ('equal': each within W_tot / their number)."""
    keep = np.zeros(len(need_hz), dtype=bool)
    for r in np.unique(rsu):
        at = np.flatnonzero((rsu == r) & np.isfinite(need_hz))
        at = at[np.argsort(need_hz[at], kind="stable")]
        w = need_hz[at]
        j = np.arange(1, len(at) + 1)
        ok = w <= band_hz / j if equal else np.cumsum(w) <= band_hz   # the first j fit: true for j <= m
        m = int(np.flatnonzero(ok)[-1]) + 1 if ok.any() else 0
        keep[at[:m]] = True
    return keep


def _token_rule(snap: RoundSnapshot, n_tok: int) -> tuple[int, bool]:
    """(K_min or the fixed K, whether K is fixed)."""
    s = snap.settings
    if s.get("token_selection", "topk") == "full":
        return n_tok, True
    if s.get("fixed_tokens") is not None:
        return min(int(s["fixed_tokens"]), n_tok), True
    return min(int(s.get("k_min", 16)), n_tok), False


def solve(snap: RoundSnapshot) -> tuple[Plan, tuple[Iterate, ...]]:
    """ST-SFLora's plan and its BCD passes."""
    with np.errstate(all="ignore"):
        return _solve(snap)


def _start(up: Uplinks, need: np.ndarray, k_lo: int, fixed: bool, power_max: bool):
    """Equal shares (or least bands plus an equal part of the rest where an RSU's vehicles need more), SUBP1's
    power at K_min, K from SUBP3 without the tau term."""
    count = np.bincount(up.rsu, minlength=up.rsus)
    w_eq = equal_bandwidth_hz(up)
    short = np.bincount(up.rsu, need > w_eq, minlength=up.rsus) > 0
    slack = (up.band_hz - np.bincount(up.rsu, need, minlength=up.rsus)) / np.maximum(count, 1)
    w = np.where(short[up.rsu], need + slack[up.rsu], w_eq)
    k_min = np.full(len(need), k_lo)
    p = np.full(len(need), up.p_max_w) if power_max else subp1_power(up, k_min, w)
    k = k_min if fixed else np.maximum(subp3_tokens(up, w, p, math.inf, k_lo), k_lo)
    return w, p, k


def _solve(snap: RoundSnapshot) -> tuple[Plan, tuple[Iterate, ...]]:
    s = snap.settings
    geo = geometry(snap)
    k_lo, fixed = _token_rule(snap, geo.num_patches)
    power_max = s.get("power_control", "bisection") == "max"
    equal = s.get("bandwidth_allocation", "bisection") == "equal"
    full = uplinks(snap)
    need = least_bandwidth_hz(full, np.full(len(snap.candidates), k_lo), "max" if power_max else "bisection")
    rows = np.flatnonzero(keep_hostable(need, full.rsu, full.band_hz, equal))
    while True:                                          # (a start at the least band that rounds infeasible: out)
        up = full.subset(rows)
        w, p, k = _start(up, need[rows], k_lo, fixed, power_max)
        if not np.isnan(p).any():
            break
        rows = rows[~np.isnan(p)]
    dropped = len(snap.candidates) - len(rows)
    history: list[Iterate] = []
    best = None
    if len(rows):
        for _ in range(int(s.get("max_iterations", 20))):
            p_in, k_in, outer = p, k, 0
            if not equal:
                bw = min_max_bandwidth(up.snr_per_w_hz * p, up.payload_bits(k), rate_floors_bps(up, k, p), up.rsu,
                                       up.band_hz, start_hz=w, rsus=up.rsus)
                outer = bw.outer
                w = np.where(np.isfinite(bw.w_hz), bw.w_hz, w)
            tau = float(np.max(up.airtime_s(k, w, p)))
            if not power_max:
                q = subp1_power(up, k, w)
                p = np.where(np.isnan(q), p, q)
            if not fixed:
                kk = subp3_tokens(up, w, p, tau, k_lo)
                k = np.where(kk >= k_lo, kk, k)
            t = float(np.max(up.airtime_s(k, w, p)))
            eff = float(np.sum(up.content[np.arange(len(k)), k]) / t)
            history.append(Iterate(eff, t, float(np.mean(k)), outer))
            improved = best is None or eff > best[0] * (1.0 + STOP_RTOL)
            if best is None or eff > best[0]:
                best = (eff, w.copy(), p.copy(), k.copy())
            if not improved or (np.array_equal(p, p_in) and np.array_equal(k, k_in)):   # or SUBP2 would repeat
                break
    return _plan(snap, up, rows, best, dropped, len(history)), tuple(history)


def _plan(snap: RoundSnapshot, up: Uplinks, rows, best, dropped: int, iterations: int) -> Plan:
    model = scheme(snap.scheme).cost
    decisions, costs, ids, f = {}, {}, [], []
    if best is not None:
        _, w, p, k = best
        share = w / up.band_hz
        total = np.bincount(up.rsu, share, minlength=up.rsus)     # rounding of tau_max's point: at most 1 ulp
        share = share / np.maximum(total, 1.0)[up.rsu]
        for j, i in enumerate(rows):
            c = snap.candidates[i]
            decisions[c.id] = Decision(bandwidth_share=float(share[j]), tx_power_w=float(p[j]),
                                       cut=snap.settings.get("cut"), tokens=int(k[j]))
            costs[c.id] = model.cost(snap, c, decisions[c.id])
            ids.append(c.id)
            f.append(float(up.content[j, k[j]]))
    t_up = [costs[v].comm_s for v in ids]
    tau = max(t_up, default=0.0)
    eff = float(sum(f) / tau) if ids and tau > 0 else 0.0
    tokens = [decisions[v].tokens for v in ids]
    stats = {"efficiency": eff, "tau_s": tau, "tokens_mean": float(np.mean(tokens)) if tokens else None,
             "tokens_min": min(tokens, default=None), "tokens_max": max(tokens, default=None),
             "iterations": iterations, "dropped": dropped}
    return assemble(ids, decisions, costs, model.sequential, {"efficiency": eff}, stats)


@register_optimizer("st_sflora", round_fields=ROUND_FIELDS, schemes=("st_sflora",))
def st_sflora(snap: RoundSnapshot) -> Plan:
    """ST-SFLora (arXiv 2605.26120): each vehicle's top-K token count, bandwidth and power for sum f / max T."""
    return solve(snap)[0]


__all__ = ["Bandwidths", "Iterate", "Uplinks", "bandwidth_for_rate", "best_tokens", "energy_cap_j",
           "equal_bandwidth_hz", "keep_hostable", "least_bandwidth_hz", "min_max_bandwidth", "rate_floors_bps",
           "shannon_bps", "snr_within", "solve", "st_sflora", "subp1_power", "subp3_tokens", "token_bound",
           "uplinks"]
