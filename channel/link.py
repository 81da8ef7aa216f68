"""One link's (S)INR and rate from its gain: what the simulator's radio and every optimizer's cost
model share, so a prediction and the timeline compute a rate the same way, bit for bit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import seed as ch
from .fading import ergodic_rate_bps
from .rate import mcs_rate_bps


@dataclass(frozen=True)
class LinkBudget:
    """The settings a rate depends on besides gain, power and bandwidth."""

    noise_dbm_per_hz: float = -174.0
    noise_figure_db: float = 0.0
    antenna_gain_db: float = 0.0          # vehicle + RSU antenna gains
    rate_mode: str = "shannon"            # shannon | mcs
    target_ber: float = 5e-5              # MCS choice (channel.rate)
    fading: str = "none"                  # none | rayleigh | rician
    fading_mode: str = "per_packet"       # per_packet (no effect on the mean rate) | ergodic
    k_factor: Optional[float] = None


def snr_linear(budget: LinkBudget, tx_power_w: float, gain_linear: float, bandwidth_hz: float,
               interference_w_per_hz: float = 0.0) -> float:
    """SNR p g G / (N0 W), or SINR p g G / (N0 W + W I) with an interference density I [W/Hz]."""
    if interference_w_per_hz == 0.0:
        return float(ch.snr_linear(tx_power_w, gain_linear, bandwidth_hz, budget.noise_dbm_per_hz,
                                   budget.noise_figure_db, budget.antenna_gain_db))
    rx_w = tx_power_w * gain_linear * 10.0 ** (budget.antenna_gain_db / 10.0)
    noise_w = float(ch.noise_power_w(bandwidth_hz, budget.noise_dbm_per_hz, budget.noise_figure_db))
    return float(rx_w / (noise_w + bandwidth_hz * interference_w_per_hz))


def rate_at_snr_bps(budget: LinkBudget, bandwidth_hz: float, snr: float) -> float:
    """The rate at a mean SNR: Shannon, ergodic Shannon under fading (mode 'ergodic'), or the MCS table's."""
    if budget.rate_mode == "mcs":
        return float(mcs_rate_bps(bandwidth_hz, snr, budget.target_ber))
    if budget.fading != "none" and budget.fading_mode == "ergodic":
        return float(ergodic_rate_bps(bandwidth_hz, snr, budget.fading, budget.k_factor))
    return float(ch.shannon_rate_bps(bandwidth_hz, snr))


def rate_bps(budget: LinkBudget, tx_power_w: float, gain_linear: float, bandwidth_hz: float,
             interference_w_per_hz: float = 0.0) -> float:
    """The link's rate [bit/s] with power `tx_power_w` over `bandwidth_hz`."""
    return rate_at_snr_bps(budget, bandwidth_hz,
                           snr_linear(budget, tx_power_w, gain_linear, bandwidth_hz, interference_w_per_hz))
