"""Dwell-time predictors: the remaining time a vehicle stays inside its RSU's coverage disc."""
from __future__ import annotations

import numpy as np


def kinematic_dwell_s(xy_m: np.ndarray, velocity_mps: np.ndarray, rsu_xy_m: np.ndarray, radius_m: float) -> np.ndarray:
    """Constant velocity until the coverage circle: largest t with |p + v t - c| = r (papers' rule).

    Vectorized over rows; inf for a vehicle at rest inside, 0 for one already outside.
    """
    p = xy_m - rsu_xy_m
    a = (velocity_mps ** 2).sum(axis=1)
    b = (p * velocity_mps).sum(axis=1)
    c = (p ** 2).sum(axis=1) - radius_m ** 2
    disc = b ** 2 - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b + np.sqrt(np.maximum(disc, 0.0))) / a
    t = np.where(a > 0, t, np.inf)
    return np.where(c > 0, 0.0, np.maximum(t, 0.0))
