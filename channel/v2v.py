"""V2V sidelink path loss and LOS probability, 3GPP TR 37.885 (v15) section 6.2.1.

Distances in m, carrier in Hz (the tables use fc in GHz). Path losses in dB.
"""
from __future__ import annotations

import numpy as np

from channel._validate import generator, nonnegative_array, positive_array

# TR 37.885 6.2.1: blocker heights of vehicle types 1/2 and 3 (truck/bus)
CAR_HEIGHT_M = 1.6
TRUCK_HEIGHT_M = 3.0
# Antenna heights: a vehicle's (below a car blocker) and an RSU's (TR 37.885 evaluation assumptions, RSU
# antenna height 5 m: above a car, so NLOSv vehicle-RSU links take the 5 dB / 4 dB blockage case)
DEFAULT_ANTENNA_HEIGHT_M = 1.5
RSU_ANTENNA_HEIGHT_M = 5.0


def _d_fc(distance_m, carrier_hz):
    return positive_array("distance_m", distance_m), positive_array("carrier_hz", carrier_hz) / 1e9


def highway_los_pl_db(distance_m, carrier_hz) -> np.ndarray:
    """Highway LOS path loss [dB]."""
    d, fc_ghz = _d_fc(distance_m, carrier_hz)
    # TR 37.885 Table 6.2.1-1, highway LOS
    return 32.4 + 20.0 * np.log10(d) + 20.0 * np.log10(fc_ghz)


def urban_los_pl_db(distance_m, carrier_hz) -> np.ndarray:
    """Urban LOS path loss [dB]."""
    d, fc_ghz = _d_fc(distance_m, carrier_hz)
    # TR 37.885 Table 6.2.1-1, urban LOS
    return 38.77 + 16.7 * np.log10(d) + 18.2 * np.log10(fc_ghz)


def urban_nlos_pl_db(distance_m, carrier_hz) -> np.ndarray:
    """Urban NLOS (building-blocked) path loss [dB]."""
    d, fc_ghz = _d_fc(distance_m, carrier_hz)
    # TR 37.885 Table 6.2.1-1, urban NLOS
    return 36.85 + 30.0 * np.log10(d) + 18.9 * np.log10(fc_ghz)


def nlosv_blockage_db(distance_m, rng, tx_height_m=DEFAULT_ANTENNA_HEIGHT_M,
                      rx_height_m=DEFAULT_ANTENNA_HEIGHT_M, blocker_height_m=CAR_HEIGHT_M, z=None) -> np.ndarray:
    """Additional vehicle-blockage loss [dB] for NLOSv links: max(0, N(mu, sigma^2)), i.e. max(0, mu + sigma z).

    Both antennas above the blocker: 0 dB; both below: mu = 9 + max(0, 15 log10(d) - 41), sigma 4.5;
    otherwise mu = 5 + max(0, 15 log10(d) - 41), sigma 4. Heights broadcast against distance_m. `z`: the
    links' standard normals, held while a link stays NLOSv so its loss follows d (drawn from rng if None).
    The spec calls the variable "log-normal", i.e. Gaussian in dB (ns-3 draws a lognormal in dB instead).
    """
    d = positive_array("distance_m", distance_m)
    h_tx = nonnegative_array("tx_height_m", tx_height_m)
    h_rx = nonnegative_array("rx_height_m", rx_height_m)
    h_b = nonnegative_array("blocker_height_m", blocker_height_m)
    if z is None:
        rng = generator("rng", rng, "NLOSv blockage loss is random")
    d, h_lo, h_hi, h_b = np.broadcast_arrays(d, np.minimum(h_tx, h_rx), np.maximum(h_tx, h_rx), h_b)
    extra_db = np.maximum(0.0, 15.0 * np.log10(d) - 41.0)
    # TR 37.885 6.2.1, additional vehicle blockage loss
    both_below = h_hi < h_b
    mu_db = np.where(both_below, 9.0, 5.0) + extra_db
    sigma_db = np.where(both_below, 4.5, 4.0)
    z = rng.standard_normal(d.shape) if z is None else np.broadcast_to(np.asarray(z, dtype=float), d.shape)
    loss_db = np.maximum(0.0, mu_db + sigma_db * z)
    return np.where(h_lo > h_b, 0.0, loss_db)


def highway_los_probability(distance_m) -> np.ndarray:
    """Highway LOS probability (LOS vs NLOSv) at distance d [m]."""
    d = nonnegative_array("distance_m", distance_m)
    # TR 37.885 Table 6.2.1-2, highway
    near = np.minimum(1.0, 2.1013e-6 * d**2 - 0.002 * d + 1.0193)
    far = np.maximum(0.0, 0.54 - 0.001 * (d - 475.0))
    return np.where(d <= 475.0, near, far)


def urban_los_probability(distance_m) -> np.ndarray:
    """Urban LOS probability (LOS vs NLOSv) at distance d [m]; building NLOS is set by geometry."""
    d = nonnegative_array("distance_m", distance_m)
    # TR 37.885 Table 6.2.1-2, urban
    return np.minimum(1.0, 1.05 * np.exp(-0.0114 * d))
