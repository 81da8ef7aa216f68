"""One link's (S)INR and rate from its gain: what the simulator's radio and every optimizer's cost
model share, so a prediction and the timeline compute a rate the same way, bit for bit.

The noise figure is the receiver's: the RSU's on the uplink ('ul'), the vehicle's on the downlink ('dl').
An RSU spreads its power evenly over its downlink band, so a vehicle given bandwidth b receives P b / W
(`downlink_power_w`): the RSU radiates P in all, and the downlink SNR does not depend on the share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import seed as ch
from .fading import ergodic_rate_bps
from .rate import mcs_rate_bps

# TR 37.885 Sec. 6.1 / TR 36.885 Table A.1.2-1 evaluation assumptions: noise figure 9 dB at a vehicle (UE),
# 5 dB at an RSU (eNB-type)
VEHICLE_NOISE_FIGURE_DB = 9.0
RSU_NOISE_FIGURE_DB = 5.0


@dataclass(frozen=True)
class LinkBudget:
    """The settings a rate depends on besides gain, power and bandwidth."""

    noise_dbm_per_hz: float = -174.0
    rsu_noise_figure_db: float = RSU_NOISE_FIGURE_DB          # the uplink's receiver
    vehicle_noise_figure_db: float = VEHICLE_NOISE_FIGURE_DB  # the downlink's receiver
    antenna_gain_db: float = 0.0          # vehicle + RSU antenna gains
    rate_mode: str = "shannon"            # shannon | mcs
    target_ber: float = 5e-5              # MCS choice (channel.rate)
    fading: str = "none"                  # none | rayleigh | rician
    fading_mode: str = "per_packet"       # per_packet (no effect on the mean rate) | ergodic
    k_factor: Optional[float] = None

    def noise_figure_db(self, direction: str) -> float:
        """The receiver's noise figure: the RSU's for 'ul', the vehicle's for 'dl'."""
        if direction == "ul":
            return self.rsu_noise_figure_db
        if direction == "dl":
            return self.vehicle_noise_figure_db
        raise ValueError(f"direction {direction!r}: expected 'ul' or 'dl'")

    def noise_w_per_hz(self, direction: str) -> float:
        """Noise density N0 x NF at the receiver [W/Hz]."""
        return float(ch.dbm_to_w(self.noise_dbm_per_hz + self.noise_figure_db(direction)))


def downlink_power_w(rsu_tx_power_w: float, downlink_band_hz: float, bandwidth_hz):
    """The power an RSU sends a vehicle on `bandwidth_hz` of its band: constant power spectral density."""
    return rsu_tx_power_w * (bandwidth_hz / downlink_band_hz)


def snr_linear(budget: LinkBudget, direction: str, tx_power_w: float, gain_linear: float, bandwidth_hz: float,
               interference_w_per_hz: float = 0.0) -> float:
    """SNR p g G / (N0 NF W), or SINR p g G / (N0 NF W + W I) with an interference density I [W/Hz]."""
    rx_w = tx_power_w * gain_linear * 10.0 ** (budget.antenna_gain_db / 10.0)
    noise_w = float(ch.noise_power_w(bandwidth_hz, budget.noise_dbm_per_hz, budget.noise_figure_db(direction)))
    if interference_w_per_hz == 0.0:
        return float(rx_w / noise_w)
    return float(rx_w / (noise_w + bandwidth_hz * interference_w_per_hz))


def rate_at_snr_bps(budget: LinkBudget, bandwidth_hz: float, snr: float) -> float:
    """The rate at a mean SNR: Shannon, ergodic Shannon under fading (mode 'ergodic'), or the MCS table's."""
    if budget.rate_mode == "mcs":
        return float(mcs_rate_bps(bandwidth_hz, snr, budget.target_ber))
    if budget.fading != "none" and budget.fading_mode == "ergodic":
        return float(ergodic_rate_bps(bandwidth_hz, snr, budget.fading, budget.k_factor))
    return float(ch.shannon_rate_bps(bandwidth_hz, snr))


def rate_bps(budget: LinkBudget, direction: str, tx_power_w: float, gain_linear: float, bandwidth_hz: float,
             interference_w_per_hz: float = 0.0) -> float:
    """The link's rate [bit/s] with power `tx_power_w` over `bandwidth_hz`."""
    return rate_at_snr_bps(budget, bandwidth_hz, snr_linear(budget, direction, tx_power_w, gain_linear,
                                                            bandwidth_hz, interference_w_per_hz))
