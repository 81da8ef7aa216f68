"""SINR of links that share radio resources (co-channel interference)."""
from __future__ import annotations

import numpy as np

from channel._validate import nonnegative_array, positive_array


def sinr_linear(tx_power_w, gain_matrix, noise_w, resource=None) -> np.ndarray:
    """Per-link SINR p_i g_ii / (N_i + sum_{j != i, r_j = r_i} p_j g_ji), linear.

    tx_power_w: (n,) transmit power of link i's transmitter [W].
    gain_matrix: (n, n), gain_matrix[j, i] = linear gain from link j's transmitter to link i's receiver.
    noise_w: noise power at each receiver [W], scalar or (n,).
    resource: (n,) resource (subchannel) index per link; None means all share one resource.
    """
    p = nonnegative_array("tx_power_w", tx_power_w)
    g = nonnegative_array("gain_matrix", gain_matrix)
    noise = positive_array("noise_w", noise_w)
    if p.ndim != 1 or g.shape != (p.size, p.size):
        raise ValueError(f"gain_matrix must have shape (n, n) = {(p.size, p.size)} for n = len(tx_power_w), "
                         f"got {g.shape}")
    r = np.zeros(p.size, dtype=int) if resource is None else np.asarray(resource)
    if r.shape != p.shape:
        raise ValueError(f"resource must have shape {p.shape} like tx_power_w, got {r.shape}")
    # Standard SINR with co-channel interference (Goldsmith, Wireless Communications, 2005, ch. 15)
    shares = (r[:, None] == r[None, :]) & ~np.eye(p.size, dtype=bool)
    interference_w = (p[:, None] * g * shares).sum(axis=0)
    return p * np.diagonal(g) / (noise + interference_w)
