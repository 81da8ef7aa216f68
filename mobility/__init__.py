"""Sources of vehicle positions (SUMO live, FCD replay, synthetic), RSU geometry, coverage, dwell time.

No SimPy here: a source is stepped by whoever owns the clock.
"""
from .base import MobilityError, MobilitySnapshot, MobilitySource

__all__ = ["MobilityError", "MobilitySnapshot", "MobilitySource"]
