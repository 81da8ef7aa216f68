"""Link propagation states (LOS, NLOSv, NLOS): drawn from a LOS probability, or kept spatially consistent.

Spatial consistency (TR 38.901 Sec. 7.6.3.3): each link holds a standard normal that evolves along the
distance its vehicle travels with correlation exp(-delta_d / d_corr) (an AR(1) step per tick); the link is
LOS while Phi(that normal), a uniform variable, is below P_LOS(d). The uniform's marginal makes the LOS
fraction at every distance P_LOS(d), and the state changes smoothly as the vehicle moves.
"""
from __future__ import annotations

import numpy as np
from scipy import special

from channel._validate import generator

LOS = 0     # line of sight
NLOSV = 1   # LOS blocked by a vehicle (TR 37.885 6.2.1)
NLOS = 2    # LOS blocked by buildings
STATE_NAMES = {LOS: "LOS", NLOSV: "NLOSv", NLOS: "NLOS"}

# Correlation distance of the LOS state [m] per model: (value, source)
LOS_CORRELATION_M = {
    "tr38901_umi": (50.0, "TR 38.901 Table 7.6.3.1-2 (UMi, LOS/NLOS state)"),
    # TR 37.885 names no LOS-state distance for V2X; its shadowing decorrelation of LOS links (10 m,
    # Table 6.2.3-1) is used: the length over which the same blockers come and go
    "tr37885_urban": (10.0, "TR 37.885 Table 6.2.3-1 (LOS decorrelation distance)"),
    "tr37885_highway": (10.0, "TR 37.885 Table 6.2.3-1 (LOS decorrelation distance)"),
}


def draw_los(los_probability, rng) -> np.ndarray:
    """Bool array, True with the given per-link LOS probability (one uniform draw per link)."""
    p = np.asarray(los_probability, dtype=float)
    assert np.all((p >= 0) & (p <= 1)), "LOS probability out of [0, 1]"
    rng = generator("rng", rng, "to draw LOS states")
    return rng.random(p.shape) < p


def los_from_latent(latent, los_probability) -> np.ndarray:
    """LOS (True) where Phi(latent) < P_LOS: a spatially correlated uniform compared with P_LOS(d)."""
    # TR 38.901 Sec. 7.6.3.3: a spatially consistent uniform variable compared with the LOS probability
    return special.ndtr(np.asarray(latent, dtype=float)) < np.asarray(los_probability, dtype=float)
