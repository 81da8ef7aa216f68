"""Sources of vehicle positions (SUMO live, FCD replay, synthetic), RSU geometry, coverage, dwell time.

No SimPy here: a source is stepped by whoever owns the clock. Modules: base (interface), sumo_live,
fcd, synthetic, rsu (coverage, association), roads (RSU placement, route shapes; sumolib), dwell
(predictors), builders (SUMO scenario bundles), errors.
"""
from .base import MobilityError, MobilitySnapshot, MobilitySource
from .errors import MobilityFileNotFoundError, MobilityInputError
from .fcd import FcdReplay, FcdTracks
from .sumo_live import SumoLive

__all__ = ["MobilityError", "MobilitySnapshot", "MobilitySource", "MobilityInputError", "MobilityFileNotFoundError",
           "SumoLive", "FcdReplay", "FcdTracks"]
