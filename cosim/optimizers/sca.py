"""Transmit power by successive convex approximation (SCA), shared by the optimizers that bound a vehicle's
uplink energy: the largest power whose uplink energy p s / (W log2(1 + a p)) stays within a budget.

The energy is increasing and concave in p on a Shannon link, so each first-order expansion lies above it:
solving the expansion for the budget gives a feasible point, and iterating from p_min climbs to the
largest feasible power (the SCA step of Qiang et al., IoT-J 2025, and of GenFV, TMC 2025).
"""
from __future__ import annotations

import numpy as np


def tx_energy_j(power_w, snr_per_w, bw_hz, bits):
    """Uplink energy p s / R(p) [J] with R(p) = W log2(1 + a p) (a: SNR per watt over the bandwidth W)."""
    return power_w * bits / (bw_hz * np.log2(1.0 + snr_per_w * power_w))


def max_power_within(snr_per_w: np.ndarray, bw_hz: np.ndarray, bits: np.ndarray, budget_j: np.ndarray, p_min: float,
                     p_max: float, max_iterations: int = 60, rtol: float = 1e-13) -> tuple[np.ndarray, int]:
    """The largest p in [p_min, p_max] with tx_energy_j(p) <= budget, by SCA: p_{k+1} = p_k + (budget - e(p_k)) /
    e'(p_k) from p_min (every iterate feasible). nan where even p_min exceeds the budget. Returns (p, iterations)."""
    p = np.full(len(budget_j), p_max, dtype=float)
    need = tx_energy_j(p, snr_per_w, bw_hz, bits) > budget_j
    p[need] = p_min
    bad = need & (tx_energy_j(np.full(len(p), p_min), snr_per_w, bw_hz, bits) > budget_j)
    it = 0
    idx = np.flatnonzero(need & ~bad)
    for it in range(1, max_iterations + 1):
        if idx.size == 0:
            break
        q, a, bw, s = p[idx], snr_per_w[idx], bw_hz[idx], bits[idx]
        rate = bw * np.log2(1.0 + a * q)
        d_rate = bw * a / ((1.0 + a * q) * np.log(2.0))
        e = q * s / rate
        de = s * (rate - q * d_rate) / rate ** 2
        new = np.minimum(q + np.maximum(budget_j[idx] - e, 0.0) / de, p_max)
        p[idx] = new
        idx = idx[np.abs(new - q) > rtol * new]
    p[bad] = np.nan
    return p, it
