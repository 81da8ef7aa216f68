"""Registry of channel models by the names scenarios use, and one call for all links' gains.

The simulator calls `link_gain_linear(model_name, distance_m, carrier_hz, rng, **params)` once per tick
with every active link's distance. Random draws, in order: one uniform per link for the LOS state
(only when the model has LOS states and `los` is None), then one normal per link for the NLOSv
blockage loss (only for V2V models when some link is NLOSv). Pass `los` to hold a link's state
between ticks, and `shadowing_db` (from channel.shadowing) to add correlated shadowing.

Extension point: add a ChannelModel to MODELS with a `pathloss_db(d_m, carrier_hz, rng, **params)`
function and the parameters it accepts (with defaults).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from channel import v2i, v2v
from channel._validate import choice, finite_array, nonnegative_array, positive_array
from channel.conditions import draw_los as _draw_los
from channel.pathloss import free_space_pl_db, gain_linear_from_pl_db, pl_db_from_gain_linear
from channel.seed import free_space_gain_at_1m, seed_gain_linear


@dataclass(frozen=True)
class ChannelModel:
    """A named path-loss model: its function, accepted parameters (with defaults) and source."""
    pathloss_db: Callable[..., np.ndarray]
    params: Mapping[str, object]
    los_probability: Callable[[np.ndarray], np.ndarray] | None
    source: str


COMMON_PARAMS = MappingProxyType({"min_distance_m": 1.0, "shadowing_db": None})
DEFAULT_MODEL = "seed"
_V2V_HEIGHTS = {"tx_height_m": v2v.DEFAULT_ANTENNA_HEIGHT_M, "rx_height_m": v2v.RSU_ANTENNA_HEIGHT_M,
                "blocker_height_m": v2v.CAR_HEIGHT_M}


def _seed(d_m, carrier_hz, rng, h0, gamma):
    h0 = free_space_gain_at_1m(carrier_hz) if h0 is None else float(positive_array("h0", h0))
    gamma = float(positive_array("gamma", gamma))
    return pl_db_from_gain_linear(seed_gain_linear(d_m, h0, gamma, min_distance_m=0.0))


def _free_space(d_m, carrier_hz, rng):
    return free_space_pl_db(d_m, carrier_hz)


def _los_state(los, d_m, los_probability, rng):
    if los is None:
        return _draw_los(los_probability(d_m), rng)
    los = np.asarray(los)
    if los.dtype != bool:
        raise ValueError(f"los must be None or a bool array, got dtype {los.dtype}")
    return np.broadcast_to(los, d_m.shape)


def _v2v(los_pl_db, los_probability):
    def pathloss_db(d_m, carrier_hz, rng, los, tx_height_m, rx_height_m, blocker_height_m,
                    building_nlos=None, blockage_z=None):
        los = _los_state(los, d_m, los_probability, rng)
        pl = los_pl_db(d_m, carrier_hz)
        if not np.all(los):
            # TR 37.885 Table 6.2.1-1, NLOSv: LOS path loss + additional vehicle blockage loss
            blockage = v2v.nlosv_blockage_db(d_m, rng, tx_height_m, rx_height_m, blocker_height_m,
                                             None if blockage_z is None else np.nan_to_num(blockage_z))
            pl = np.where(los, pl, pl + blockage)
        if building_nlos is not None:
            pl = np.where(np.asarray(building_nlos, dtype=bool), v2v.urban_nlos_pl_db(d_m, carrier_hz), pl)
        return pl
    return pathloss_db


def _macro(d_m, carrier_hz, rng):
    return v2i.macro_pl_db(d_m)


def _umi(d_m, carrier_hz, rng, los, bs_height_m, ut_height_m, building_nlos=None):
    los = _los_state(los, d_m, v2i.umi_los_probability, rng)
    if building_nlos is not None:
        los = los & ~np.asarray(building_nlos, dtype=bool)
    return np.where(los, v2i.umi_los_pl_db(d_m, carrier_hz, bs_height_m, ut_height_m),
                    v2i.umi_nlos_pl_db(d_m, carrier_hz, bs_height_m, ut_height_m))


MODELS: Mapping[str, ChannelModel] = MappingProxyType({
    "seed": ChannelModel(_seed, {"h0": None, "gamma": 2.5}, None,
                         "SCHEMES.md common system model: g = h0 d^-gamma, h0 = free space at 1 m"),
    "free_space": ChannelModel(_free_space, {}, None, "Friis free-space path loss"),
    "tr37885_highway": ChannelModel(_v2v(v2v.highway_los_pl_db, v2v.highway_los_probability),
                                    {"los": None, "blockage_z": None, **_V2V_HEIGHTS}, v2v.highway_los_probability,
                                    "TR 37.885 Tables 6.2.1-1, 6.2.1-2 (highway V2V: LOS / NLOSv)"),
    "tr37885_urban": ChannelModel(_v2v(v2v.urban_los_pl_db, v2v.urban_los_probability),
                                  {"los": None, "building_nlos": None, "blockage_z": None, **_V2V_HEIGHTS},
                                  v2v.urban_los_probability,
                                  "TR 37.885 Tables 6.2.1-1, 6.2.1-2 (urban V2V: LOS / NLOSv / NLOS)"),
    "tr36885_macro": ChannelModel(_macro, {}, None,
                                  "TR 36.885 Table A.1.4-1 (V2I macro, 2 GHz; carrier_hz unused)"),
    "tr38901_umi": ChannelModel(_umi, {"los": None, "building_nlos": None, "bs_height_m": v2i.UMI_BS_HEIGHT_M,
                                       "ut_height_m": v2i.UMI_UT_HEIGHT_M}, v2i.umi_los_probability,
                                "TR 38.901 Tables 7.4.1-1, 7.4.2-1 (UMi street canyon, d = 2D distance)"),
})


# models with a building-NLOS formula (links that buildings block: `building_nlos`)
BUILDING_MODELS = tuple(name for name, m in MODELS.items() if "building_nlos" in m.params)


def get_model(model_name: str) -> ChannelModel:
    """The registered model; raises ValueError listing the known names."""
    choice("model_name", model_name, MODELS)
    return MODELS[model_name]


def _resolve(model_name, params):
    model = get_model(model_name)
    allowed = {**COMMON_PARAMS, **model.params}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for model_name={model_name!r}; "
                         f"expected some of {sorted(allowed)}")
    return model, {**allowed, **params}


def pathloss_db(model_name: str, distance_m, carrier_hz: float, rng=None, **params) -> np.ndarray:
    """Path loss [dB] of every link, plus `shadowing_db` if given; distances clipped to min_distance_m."""
    model, p = _resolve(model_name, params)
    min_d = float(positive_array("min_distance_m", p.pop("min_distance_m")))
    d_m = np.maximum(nonnegative_array("distance_m", distance_m), min_d)
    carrier_hz = float(positive_array("carrier_hz", carrier_hz))
    shadowing_db = p.pop("shadowing_db")
    pl = model.pathloss_db(d_m, carrier_hz, rng, **p)
    return pl if shadowing_db is None else pl + finite_array("shadowing_db", shadowing_db)


def link_gain_linear(model_name: str, distance_m, carrier_hz: float, rng=None, **params) -> np.ndarray:
    """Linear power gain of every link, 10^(-PL/10); same arguments as pathloss_db.

    Raises ValueError for an unknown model or parameter, bad values, or a missing rng when one is needed.
    """
    return gain_linear_from_pl_db(pathloss_db(model_name, distance_m, carrier_hz, rng, **params))


def los_probability(model_name: str, distance_m) -> np.ndarray:
    """LOS probability of each link; raises ValueError for models without LOS states."""
    model = get_model(model_name)
    if model.los_probability is None:
        with_states = sorted(n for n, m in MODELS.items() if m.los_probability is not None)
        raise ValueError(f"model_name={model_name!r} has no LOS states; expected one of {with_states}")
    return model.los_probability(distance_m)


def draw_los(model_name: str, distance_m, rng) -> np.ndarray:
    """Draw each link's LOS state (bool) to hold between ticks and pass back as `los`."""
    return _draw_los(los_probability(model_name, distance_m), rng)
