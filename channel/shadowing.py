"""Log-normal shadowing [dB] per link, correlated along the distance the link's vehicle travels.

Gudmundson (1991) exponential correlation rho = exp(-|delta_d| / d_corr), kept with an AR(1) update
so the marginal stays N(0, sigma^2). Defaults per model and LOS state are in SHADOWING.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from channel._validate import generator, nonnegative_array, positive_array


class ShadowingParams(NamedTuple):
    sigma_db: float
    decorrelation_m: float
    source: str


# Keys: (model name, state name); state "any" where the model has no LOS states.
_V2V = "TR 37.885 Table 6.2.1-1 (sigma), Table 6.2.3-1 (decorrelation)"
SHADOWING: dict[tuple[str, str], ShadowingParams] = {
    ("tr37885_highway", "los"): ShadowingParams(3.0, 10.0, _V2V),
    ("tr37885_highway", "nlosv"): ShadowingParams(3.0, 13.0, _V2V),
    ("tr37885_urban", "los"): ShadowingParams(3.0, 10.0, _V2V),
    ("tr37885_urban", "nlosv"): ShadowingParams(3.0, 13.0, _V2V),
    ("tr37885_urban", "nlos"): ShadowingParams(4.0, 13.0, _V2V),
    ("tr36885_macro", "any"): ShadowingParams(8.0, 50.0, "TR 36.885 Table A.1.4-1 (V2I)"),
    ("tr38901_umi", "los"): ShadowingParams(4.0, 10.0, "TR 38.901 Tables 7.4.1-1, 7.5-6"),
    ("tr38901_umi", "nlos"): ShadowingParams(7.82, 13.0, "TR 38.901 Tables 7.4.1-1, 7.5-6"),
}


def shadowing_params(model_name: str, state: str = "any") -> ShadowingParams:
    """Default (sigma_db, decorrelation_m) for a model and state ("los", "nlosv", "nlos" or "any")."""
    for key in ((model_name, state), (model_name, "any")):
        if key in SHADOWING:
            return SHADOWING[key]
    known = sorted(f"{m}/{s}" for m, s in SHADOWING)
    raise ValueError(f"no shadowing defaults for model_name={model_name!r}, state={state!r}; "
                     f"expected one of {known}")


def correlation(delta_distance_m, decorrelation_m) -> np.ndarray:
    """Shadowing correlation exp(-|delta_d| / d_corr) between two points delta_d apart."""
    d_corr = positive_array("decorrelation_m", decorrelation_m)
    # Gudmundson 1991, Electronics Letters 27(23), eq. (1)
    return np.exp(-np.abs(np.asarray(delta_distance_m, dtype=float)) / d_corr)


def initial_shadowing_db(size, sigma_db, rng) -> np.ndarray:
    """Independent N(0, sigma_db^2) draws [dB] for new links; sigma_db broadcasts against size."""
    sigma = nonnegative_array("sigma_db", sigma_db)
    rng = generator("rng", rng, "shadowing is random")
    return sigma * rng.standard_normal(size)


def next_shadowing_db(prev_db, delta_distance_m, sigma_db, decorrelation_m, rng) -> np.ndarray:
    """AR(1) step: rho * prev + sqrt(1 - rho^2) * sigma * N(0, 1), rho = exp(-|delta_d| / d_corr).

    Vectorized over links; one standard normal is drawn per element of the broadcast shape.
    """
    prev = np.asarray(prev_db, dtype=float)
    sigma = nonnegative_array("sigma_db", sigma_db)
    rho = correlation(delta_distance_m, decorrelation_m)
    rng = generator("rng", rng, "shadowing is random")
    prev, rho, sigma = np.broadcast_arrays(prev, rho, sigma)
    # Gudmundson 1991 correlation as a first-order autoregression along travelled distance
    return rho * prev + np.sqrt(1.0 - rho**2) * sigma * rng.standard_normal(prev.shape)
