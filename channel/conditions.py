"""Link propagation states (LOS, NLOSv, NLOS) and drawing them from a LOS probability."""
from __future__ import annotations

import numpy as np

from channel._validate import generator

LOS = 0     # line of sight
NLOSV = 1   # LOS blocked by a vehicle (TR 37.885 6.2.1)
NLOS = 2    # LOS blocked by buildings
STATE_NAMES = {LOS: "los", NLOSV: "nlosv", NLOS: "nlos"}


def draw_los(los_probability, rng) -> np.ndarray:
    """Bool array, True with the given per-link LOS probability (one uniform draw per link)."""
    p = np.asarray(los_probability, dtype=float)
    assert np.all((p >= 0) & (p <= 1)), "LOS probability out of [0, 1]"
    rng = generator("rng", rng, "to draw LOS states")
    return rng.random(p.shape) < p
