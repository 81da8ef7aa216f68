"""Scripted vehicles: each drives a straight line at constant velocity between its depart and arrive times.

Useful for small, exactly-known scenarios (tests, tutorials, what-if studies).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import MobilitySnapshot, MobilitySource


@dataclass(frozen=True)
class ScriptedVehicle:
    id: str
    x_m: float
    y_m: float
    speed_mps: float
    heading_deg: float = 0.0       # counter-clockwise from +x
    depart_s: float = 0.0
    arrive_s: float = float("inf")


class ScriptedSource(MobilitySource):
    """Vehicle i is present for depart_s <= t < arrive_s at (x, y) + v (t - depart_s)."""

    def __init__(self, vehicles: list[ScriptedVehicle], step_s: float):
        """ValueError for a vehicle id listed twice or a non-finite number (a snapshot lists each id once)."""
        self.vehicles = sorted(vehicles, key=lambda v: v.id)
        for a, b in zip(self.vehicles, self.vehicles[1:]):
            if a.id == b.id:
                raise ValueError(f"scripted vehicle id {a.id!r} is listed twice (expected each id once)")
        for v in self.vehicles:
            if not all(np.isfinite([v.x_m, v.y_m, v.speed_mps, v.heading_deg, v.depart_s])):
                raise ValueError(f"scripted vehicle {v.id!r}: expected finite x_m, y_m, speed_mps, heading_deg "
                                 f"and depart_s, got {v}")
        self.step_s = step_s
        self._k = 0

    def _at(self, t_s: float) -> MobilitySnapshot:
        present = [v for v in self.vehicles if v.depart_s <= t_s < v.arrive_s]
        if not present:
            return MobilitySnapshot.empty(t_s)
        heading = np.radians([v.heading_deg for v in present])
        speed = np.array([v.speed_mps for v in present])
        dt = np.array([t_s - v.depart_s for v in present])
        xy = np.array([[v.x_m, v.y_m] for v in present]) + (speed * dt)[:, None] * np.stack(
            [np.cos(heading), np.sin(heading)], axis=1)
        return MobilitySnapshot(t_s, tuple(v.id for v in present), xy, speed, heading)

    def start(self) -> MobilitySnapshot:
        self._k = 0
        return self._at(0.0)

    def step(self) -> MobilitySnapshot:
        self._k += 1
        return self._at(self._k * self.step_s)
