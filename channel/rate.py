"""Link rates: Shannon, and a CQI/MCS table rate with documented SNR thresholds.

The packet error model (each CQI's BLER curve) lives in channel.per.
"""
from __future__ import annotations

import numpy as np

from channel._validate import nonnegative_array, positive_array
from channel.seed import shannon_rate_bps  # noqa: F401  (re-export)

# TS 38.214 Table 5.2.2.1-2 (4-bit CQI Table 1; same as TS 36.213 Table 7.2.3-1):
# (CQI index, modulation order Qm, code rate x 1024, spectral efficiency [bit/s/Hz])
CQI_TABLE = (
    (1, 2, 78, 0.1523), (2, 2, 120, 0.2344), (3, 2, 193, 0.3770), (4, 2, 308, 0.6016),
    (5, 2, 449, 0.8770), (6, 2, 602, 1.1758), (7, 4, 378, 1.4766), (8, 4, 490, 1.9141),
    (9, 4, 616, 2.4063), (10, 6, 466, 2.7305), (11, 6, 567, 3.3223), (12, 6, 666, 3.9023),
    (13, 6, 772, 4.5234), (14, 6, 873, 5.1152), (15, 6, 948, 5.5547),
)
CQI_EFFICIENCY_BPS_PER_HZ = np.array([row[3] for row in CQI_TABLE])
DEFAULT_TARGET_BER = 5e-5  # the value ns-3's LteAmc uses (Piro et al., IEEE TVT 60(2), 2011)


def snr_gap_linear(target_ber: float = DEFAULT_TARGET_BER) -> float:
    """SNR gap Gamma = -ln(5 BER) / 1.5 of M-QAM to capacity at a target BER (0 < BER < 0.2)."""
    ber = float(positive_array("target_ber", target_ber))
    if ber >= 0.2:
        raise ValueError(f"target_ber must be < 0.2 for the M-QAM gap bound, got {ber!r}")
    # Goldsmith & Chua, IEEE TCOM 45(10) 1997, M-QAM bound: BER <= 0.2 exp(-1.5 snr / (2^eff - 1))
    return -np.log(5.0 * ber) / 1.5


def cqi_snr_thresholds_db(target_ber: float = DEFAULT_TARGET_BER) -> np.ndarray:
    """Minimum SNR [dB] per CQI 1..15: the SNR where log2(1 + snr / Gamma) reaches its efficiency.

    Thresholds come from the SNR-gap rule above (as in ns-3 LteAmc), not from link-level BLER curves.
    """
    return 10.0 * np.log10(snr_gap_linear(target_ber) * (2.0 ** CQI_EFFICIENCY_BPS_PER_HZ - 1.0))


def cqi_index(snr_linear, target_ber: float = DEFAULT_TARGET_BER) -> np.ndarray:
    """Highest CQI (1..15) whose threshold the SNR meets; 0 when below CQI 1 (out of range)."""
    snr = nonnegative_array("snr_linear", snr_linear)
    thresholds = snr_gap_linear(target_ber) * (2.0 ** CQI_EFFICIENCY_BPS_PER_HZ - 1.0)
    return np.searchsorted(thresholds, snr, side="right")


def mcs_spectral_efficiency(snr_linear, target_ber: float = DEFAULT_TARGET_BER) -> np.ndarray:
    """Spectral efficiency [bit/s/Hz] of the highest CQI the SNR supports (0 below CQI 1)."""
    cqi = cqi_index(snr_linear, target_ber)
    return np.concatenate(([0.0], CQI_EFFICIENCY_BPS_PER_HZ))[cqi]


def mcs_rate_bps(bandwidth_hz, snr_linear, target_ber: float = DEFAULT_TARGET_BER) -> np.ndarray:
    """Rate [bit/s] = W * efficiency of the CQI-table entry chosen for the SNR."""
    return positive_array("bandwidth_hz", bandwidth_hz) * mcs_spectral_efficiency(snr_linear, target_ber)
