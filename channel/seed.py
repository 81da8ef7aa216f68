"""The seed papers' channel: gain = h0 * d^-gamma (linear), noise N0 * W, Shannon rate.

Source: SCHEMES.md "Common system model" (GenFV, ASFL, SFLAM, ST-SFLora system models).
"""
from __future__ import annotations

import numpy as np

SPEED_OF_LIGHT_MPS = 299_792_458.0


def free_space_gain_at_1m(carrier_hz: float) -> float:
    """Linear free-space power gain at 1 m, (c / (4 pi f))^2; the seed's default h0."""
    return (SPEED_OF_LIGHT_MPS / (4.0 * np.pi * carrier_hz)) ** 2


def seed_gain_linear(distance_m, h0: float, gamma: float, min_distance_m: float = 1.0):
    """Linear channel power gain h0 * d^-gamma; distances are clipped below at min_distance_m."""
    d = np.maximum(np.asarray(distance_m, dtype=float), min_distance_m)
    return h0 * d ** (-gamma)


def dbm_to_w(power_dbm):
    """Power in dBm to watts."""
    return 10.0 ** ((np.asarray(power_dbm, dtype=float) - 30.0) / 10.0)


def db_to_linear(value_db):
    """Power ratio in dB to linear."""
    return 10.0 ** (np.asarray(value_db, dtype=float) / 10.0)


def noise_power_w(bandwidth_hz, noise_dbm_per_hz: float = -174.0, noise_figure_db: float = 0.0):
    """Thermal noise power N0 * W (with noise figure) in watts."""
    return dbm_to_w(noise_dbm_per_hz + noise_figure_db) * np.asarray(bandwidth_hz, dtype=float)


def snr_linear(tx_power_w, gain_linear, bandwidth_hz, noise_dbm_per_hz: float = -174.0,
               noise_figure_db: float = 0.0, antenna_gain_db: float = 0.0):
    """Received SNR p * g * G_ant / (N0 W), linear."""
    rx_w = np.asarray(tx_power_w, dtype=float) * gain_linear * db_to_linear(antenna_gain_db)
    return rx_w / noise_power_w(bandwidth_hz, noise_dbm_per_hz, noise_figure_db)


def shannon_rate_bps(bandwidth_hz, snr):
    """Shannon capacity W log2(1 + SNR) in bit/s."""
    return np.asarray(bandwidth_hz, dtype=float) * np.log2(1.0 + np.asarray(snr, dtype=float))
