"""Brute force for ASFL's problem, for the tests: every cut x a grid of powers and clocks per vehicle; the
bandwidth shares by a general root search (the round latency T is the least at which, per RSU, the shares
the vehicles need, each at its best grid point, sum to at most 1), with the exact rates."""
from __future__ import annotations

import numpy as np

from cosim.optimizers.split_table import SplitTable


def _least_share(table, T, e_cap, cols, p, f, iters=60):
    """(n, g) least share meeting latency T and the energy budget at each grid point, inf above 1."""
    n, g = cols.shape
    lo, hi = np.full((n, g), 1e-9), np.ones((n, g))
    rows = np.repeat(np.arange(n)[:, None], g, axis=1)

    def cost(share):
        r_ul, r_dl = _rates(table, share, p)
        down, up = table.down_bits[rows, cols], table.up_bits[rows, cols]
        cyc, srv = table.cycles[rows, cols], table.server_s[rows, cols]
        lat = down / r_dl + cyc / f + up / r_ul + srv
        en = table.kappa[:, None] * cyc * f ** 2 + p * up / r_ul
        return lat, en

    lat_hi, en_hi = cost(hi)
    ok_hi = (lat_hi <= T) & (en_hi <= e_cap)
    for _ in range(iters):
        mid = np.sqrt(lo * hi)
        lat, en = cost(mid)
        good = (lat <= T) & (en <= e_cap)
        hi, lo = np.where(good, mid, hi), np.where(good, lo, mid)
    return np.where(ok_hi, hi, np.inf)


def _rates(table, share, p):
    from channel.seed import dbm_to_w

    snap = table.snap
    gain = np.array([c.gain_linear for c in snap.candidates])[:, None]
    n0_ul = float(dbm_to_w(snap.link.noise_dbm_per_hz + snap.link.rsu_noise_figure_db))
    n0_dl = float(dbm_to_w(snap.link.noise_dbm_per_hz + snap.link.vehicle_noise_figure_db))
    bw_ul, bw_dl = share * snap.radio.uplink_bandwidth_hz, share * snap.radio.downlink_bandwidth_hz
    r_ul = bw_ul * np.log2(1.0 + p * gain / (n0_ul * bw_ul))
    p_dl = snap.radio.rsu_tx_power_w * share               # the RSU's power follows its share of the band
    r_dl = bw_dl * np.log2(1.0 + p_dl * gain / (n0_dl * bw_dl))
    return r_ul, r_dl


def brute_force_latency(table: SplitTable, e_cap: float, p_min: float, p_max: float, points: int = 15,
                        iters: int = 50) -> float:
    """The least round latency over the grid (per RSU, then the largest)."""
    n, k = table.cycles.shape
    p_grid = np.linspace(p_min, p_max, points)
    cols, p, f = [], [], []
    for c in range(k):
        for pi in p_grid:
            for fi in range(points):
                cols.append(c), p.append(pi), f.append(fi)
    cols = np.tile(np.array(cols), (n, 1))
    p = np.tile(np.array(p), (n, 1))
    frac = np.array(f) / (points - 1)
    f = table.f_min[:, None] + (table.f_max - table.f_min)[:, None] * frac[None, :]
    worst = 0.0
    for r in np.unique(table.rsu):
        at = table.rsu == r
        lo, hi = 0.0, 1.0
        while np.sum(np.min(_least_share(_Sub(table, at), hi, e_cap, cols[at], p[at], f[at]), axis=1)) > 1.0:
            lo, hi = hi, 2.0 * hi
            if hi > 1e6:
                return float("inf")
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            need = np.sum(np.min(_least_share(_Sub(table, at), mid, e_cap, cols[at], p[at], f[at]), axis=1))
            lo, hi = (lo, mid) if need <= 1.0 else (mid, hi)
        worst = max(worst, hi)
    return worst


class _Sub:
    """The rows `at` of a SplitTable (what _least_share reads)."""

    def __init__(self, table, at):
        self.down_bits, self.up_bits = table.down_bits[at], table.up_bits[at]
        self.cycles, self.server_s, self.kappa = table.cycles[at], table.server_s[at], table.kappa[at]
        import dataclasses

        self.snap = dataclasses.replace(table.snap, candidates=tuple(c for c, a in zip(table.snap.candidates, at) if a))
