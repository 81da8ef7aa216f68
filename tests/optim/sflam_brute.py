"""Brute force for SFLAM's problem, for the tests: every matching of each RSU's vehicles to its subchannels x
every bit level x a grid of powers, the costs re-derived one pair at a time from the wire sizes, device
models and channel.link (not from the optimizer's table)."""
from __future__ import annotations

import itertools

import numpy as np

from channel import link
from cosim.compute import device_model
from cosim.optimizers.costs import batch_sizes
from cosim.wire import activation_bytes


def levels(settings) -> list[int]:
    return [q for q in range(settings["bits_min"], settings["bits_max"] + 1) if q <= 16 or q == 32]


def pair_terms(snap, cand, m: int, q: int):
    """(fixed time [s], compute energy [J], uplink bits, uplink SNR per watt, uplink bandwidth [Hz]) of vehicle
    `cand` on subchannel m at q bits: T(p) = fixed + U / R(p), E(p) = E_cmp + p U / R(p)."""
    s, r = snap.settings, snap.radio
    prof = snap.model.cut(s["cut"])
    dev = device_model(cand.device)
    t_cmp = e_cmp = t_srv = 0.0
    up = down = prof.client_param_bytes * 8.0
    for b in batch_sizes(cand.num_samples, snap.learning.batch_size, snap.learning.local_epochs,
                         s.get("batches_per_round")):
        fwd, bwd = prof.client_fwd_flops * b, prof.client_bwd_flops * b
        t_cmp += dev.time_s(fwd) + dev.time_s(bwd)
        e_cmp += dev.energy_j(fwd) + dev.energy_j(bwd)
        t_srv += prof.server_flops * b / snap.server.flops_per_s
        up += activation_bytes(b * prof.activation_elements, q) * 8.0
        down += activation_bytes(b * prof.activation_elements, s.get("gradient_bits", 32)) * 8.0
    g = cand.gain_linear * cand.subchannel_fading[m]
    bw_ul, bw_dl = r.uplink_bandwidth_hz / r.subchannels, r.downlink_bandwidth_hz / r.subchannels
    r_dl = link.rate_bps(snap.link, "dl", r.downlink_power_w(bw_dl), g, bw_dl, cand.interference_dl_w_per_hz)
    snr_w = link.snr_linear(snap.link, "ul", 1.0, g, bw_ul, cand.interference_ul_w_per_hz)
    return t_cmp + t_srv + down / r_dl, e_cmp, up, snr_w, bw_ul


def best_pairs(snap, accuracy, points: int = 2001) -> np.ndarray:
    """(N, M) each pair's best O(q) / E over the levels and a linear grid of powers (endpoints included)
    within the deadline; 0 where none meets it."""
    s, r = snap.settings, snap.radio
    t_max = s.get("max_latency_s") or snap.budgets.round_time_s
    grid = np.linspace(r.vehicle_min_tx_power_w, r.vehicle_tx_power_w, points)
    if s.get("power_control") == "max":
        grid = np.array([r.vehicle_tx_power_w])
    out = np.zeros((len(snap.candidates), r.subchannels))
    for i, c in enumerate(snap.candidates):
        for m in range(r.subchannels):
            for q in levels(s):
                fixed, e_cmp, up, snr_w, bw = pair_terms(snap, c, m, q)
                rate = bw * np.log2(1.0 + snr_w * grid)
                ok = fixed + up / rate <= t_max
                if ok.any():
                    out[i, m] = max(out[i, m], float(np.max(accuracy(q) / (e_cmp + grid[ok] * up / rate[ok]))))
    return out


def best_matching(value: np.ndarray) -> float:
    """The largest sum of `value` over all matchings of rows to columns (each at most once; zeros unmatched)."""
    n, m = value.shape
    best = 0.0
    for k in range(1, min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                best = max(best, float(sum(value[i, j] for i, j in zip(rows, cols))))
    return best


def brute_force_objective(snap, accuracy, points: int = 2001) -> float:
    """max sum_n a_n O(q_n) / E_n over every matching per RSU, level and grid power."""
    value = best_pairs(snap, accuracy, points)
    rsu = np.array([c.rsu for c in snap.candidates])
    return sum(best_matching(value[rsu == r]) for r in np.unique(rsu))
