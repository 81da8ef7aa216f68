"""V2I (vehicle to RSU / base station) path loss: TR 36.885 macro and TR 38.901 UMi street canyon.

Distances in m, carrier in Hz, heights in m. Path losses in dB.
"""
from __future__ import annotations

import numpy as np

from channel._validate import nonnegative_array, positive_array
from channel.seed import SPEED_OF_LIGHT_MPS

UMI_BS_HEIGHT_M = 10.0        # TR 38.901 Table 7.4.1-1 note: h_BS = 10 m for UMi
UMI_UT_HEIGHT_M = 1.5
UMI_EFFECTIVE_ENV_HEIGHT_M = 1.0  # TR 38.901 Table 7.4.1-1 note 1: h_E = 1 m for UMi


def macro_pl_db(distance_m) -> np.ndarray:
    """Macro-cell V2I path loss [dB], 128.1 + 37.6 log10(R), R in km (2 GHz)."""
    d_km = positive_array("distance_m", distance_m) / 1000.0
    # TR 36.885 Table A.1.4-1 (V2I, from TR 36.942 macro model)
    return 128.1 + 37.6 * np.log10(d_km)


def _umi_geometry(distance_2d_m, carrier_hz, bs_height_m, ut_height_m):
    d_2d = positive_array("distance_2d_m", distance_2d_m)
    f_hz = positive_array("carrier_hz", carrier_hz)
    h_bs = positive_array("bs_height_m", bs_height_m)
    h_ut = positive_array("ut_height_m", ut_height_m)
    d_3d = np.sqrt(d_2d**2 + (h_bs - h_ut) ** 2)
    return d_2d, d_3d, f_hz, h_bs, h_ut


def _above_env(name, height_m):
    h = np.asarray(height_m, dtype=float)
    if np.any(~(h > UMI_EFFECTIVE_ENV_HEIGHT_M)):
        bad = h[~(h > UMI_EFFECTIVE_ENV_HEIGHT_M)].flat[0] if h.ndim else h.item()
        raise ValueError(f"{name} must be > {UMI_EFFECTIVE_ENV_HEIGHT_M} m (the UMi h_E), got {bad!r}")
    return h - UMI_EFFECTIVE_ENV_HEIGHT_M


def umi_breakpoint_distance_m(carrier_hz, bs_height_m=UMI_BS_HEIGHT_M, ut_height_m=UMI_UT_HEIGHT_M):
    """UMi breakpoint distance d'_BP = 4 h'_BS h'_UT f_c / c [m], with h' = h - 1 m."""
    f_hz = positive_array("carrier_hz", carrier_hz)
    h_bs = _above_env("bs_height_m", bs_height_m)
    h_ut = _above_env("ut_height_m", ut_height_m)
    # TR 38.901 Table 7.4.1-1 note 1
    return 4.0 * h_bs * h_ut * f_hz / SPEED_OF_LIGHT_MPS


def umi_los_pl_db(distance_2d_m, carrier_hz, bs_height_m=UMI_BS_HEIGHT_M,
                  ut_height_m=UMI_UT_HEIGHT_M) -> np.ndarray:
    """UMi street-canyon LOS path loss [dB] (PL1 before the breakpoint, PL2 after).

    Valid for 10 m <= d2D <= 5 km; applied as is outside that range.
    """
    d_2d, d_3d, f_hz, h_bs, h_ut = _umi_geometry(distance_2d_m, carrier_hz, bs_height_m, ut_height_m)
    fc_ghz = f_hz / 1e9
    d_bp = umi_breakpoint_distance_m(f_hz, h_bs, h_ut)
    # TR 38.901 Table 7.4.1-1, UMi-Street Canyon LOS, PL1 and PL2
    pl1 = 32.4 + 21.0 * np.log10(d_3d) + 20.0 * np.log10(fc_ghz)
    pl2 = (32.4 + 40.0 * np.log10(d_3d) + 20.0 * np.log10(fc_ghz)
           - 9.5 * np.log10(d_bp**2 + (h_bs - h_ut) ** 2))
    return np.where(d_2d <= d_bp, pl1, pl2)


def umi_nlos_pl_db(distance_2d_m, carrier_hz, bs_height_m=UMI_BS_HEIGHT_M,
                   ut_height_m=UMI_UT_HEIGHT_M) -> np.ndarray:
    """UMi street-canyon NLOS path loss [dB], max(PL_LOS, PL'_NLOS)."""
    _, d_3d, f_hz, _, h_ut = _umi_geometry(distance_2d_m, carrier_hz, bs_height_m, ut_height_m)
    # TR 38.901 Table 7.4.1-1, UMi-Street Canyon NLOS
    pl_nlos = 35.3 * np.log10(d_3d) + 22.4 + 21.3 * np.log10(f_hz / 1e9) - 0.3 * (h_ut - 1.5)
    return np.maximum(umi_los_pl_db(distance_2d_m, carrier_hz, bs_height_m, ut_height_m), pl_nlos)


def umi_los_probability(distance_2d_m) -> np.ndarray:
    """UMi street-canyon LOS probability at outdoor 2D distance d2D [m]."""
    d = nonnegative_array("distance_2d_m", distance_2d_m)
    d_safe = np.maximum(d, 18.0)
    # TR 38.901 Table 7.4.2-1, UMi-Street Canyon
    p = 18.0 / d_safe + np.exp(-d_safe / 36.0) * (1.0 - 18.0 / d_safe)
    return np.where(d <= 18.0, 1.0, p)
