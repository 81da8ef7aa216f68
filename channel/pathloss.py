"""Free-space path loss and dB <-> linear gain conversion."""
from __future__ import annotations

import numpy as np

from channel._validate import finite_array, positive_array
from channel.seed import SPEED_OF_LIGHT_MPS

# 20 log10(4 pi / c) = -147.55 dB (Friis; d in m, f in Hz)
FSPL_CONSTANT_DB = 20.0 * np.log10(4.0 * np.pi / SPEED_OF_LIGHT_MPS)


def free_space_pl_db(distance_m, carrier_hz) -> np.ndarray:
    """Free-space path loss [dB]: 20 log10(d) + 20 log10(f) - 147.55. Raises ValueError if d or f <= 0."""
    d = positive_array("distance_m", distance_m)
    f = positive_array("carrier_hz", carrier_hz)
    # Friis transmission equation, FSPL = (4 pi d f / c)^2
    return 20.0 * np.log10(d) + 20.0 * np.log10(f) + FSPL_CONSTANT_DB


def gain_linear_from_pl_db(pl_db) -> np.ndarray:
    """Linear power gain 10^(-PL/10) from a path loss in dB."""
    return 10.0 ** (-finite_array("pl_db", pl_db) / 10.0)


def pl_db_from_gain_linear(gain_linear) -> np.ndarray:
    """Path loss in dB, -10 log10(g), from a linear power gain > 0."""
    return -10.0 * np.log10(positive_array("gain_linear", gain_linear))
