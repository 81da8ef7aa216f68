"""A synthetic straight multi-lane highway: Poisson arrivals at x = 0, constant speed per vehicle."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import MobilitySnapshot, MobilitySource


@dataclass(frozen=True)
class HighwaySpec:
    length_m: float = 3000.0
    lanes: int = 3
    lane_width_m: float = 3.5
    arrival_rate_hz: float = 0.3
    speed_mean_mps: float = 25.0
    speed_std_mps: float = 3.0
    speed_min_mps: float = 16.7
    speed_max_mps: float = 33.3
    initial_vehicles: int = 10


class SyntheticHighway(MobilitySource):
    """Vehicles drive in +x along lanes at y = (lane + 0.5) * lane_width_m and leave at length_m.

    Arrivals are Poisson with rate arrival_rate_hz; speeds are normal, clipped to [min, max];
    `initial_vehicles` start spread uniformly over the road. All draws come from `rng`.
    """

    def __init__(self, spec: HighwaySpec, step_s: float, rng: np.random.Generator):
        self.spec, self.step_s, self.rng = spec, step_s, rng
        self.t_s = 0.0
        self._next_id = 0
        self._ids: list[str] = []
        self._x = np.zeros(0)
        self._lane = np.zeros(0, dtype=int)
        self._v = np.zeros(0)
        self._next_arrival_s = 0.0

    def _spawn(self, n: int, x_m: np.ndarray) -> None:
        s = self.spec
        v = np.clip(self.rng.normal(s.speed_mean_mps, s.speed_std_mps, n), s.speed_min_mps, s.speed_max_mps)
        lanes = self.rng.integers(0, s.lanes, n)
        self._ids += [f"veh{self._next_id + i:05d}" for i in range(n)]
        self._next_id += n
        self._x = np.concatenate([self._x, x_m])
        self._v = np.concatenate([self._v, v])
        self._lane = np.concatenate([self._lane, lanes])

    def _snapshot(self) -> MobilitySnapshot:
        order = np.argsort(np.asarray(self._ids, dtype=object), kind="stable") if self._ids else np.zeros(0, int)
        ids = tuple(self._ids[i] for i in order)
        y = (self._lane[order] + 0.5) * self.spec.lane_width_m
        xy = np.stack([self._x[order], y], axis=1) if len(ids) else np.zeros((0, 2))
        return MobilitySnapshot(self.t_s, ids, xy, self._v[order].copy(), np.zeros(len(ids)))

    def start(self) -> MobilitySnapshot:
        n0 = self.spec.initial_vehicles
        if n0:
            self._spawn(n0, np.sort(self.rng.uniform(0.0, self.spec.length_m, n0)))
        self._next_arrival_s = self._draw_gap()
        return self._snapshot()

    def _draw_gap(self) -> float:
        rate = self.spec.arrival_rate_hz
        return float(self.rng.exponential(1.0 / rate)) if rate > 0 else float("inf")

    def step(self) -> MobilitySnapshot:
        t_new = self.t_s + self.step_s
        self._x = self._x + self._v * self.step_s
        while self._next_arrival_s <= t_new:
            # a vehicle that arrived at t_a has driven (t_new - t_a) by t_new
            self._spawn(1, np.zeros(1))
            self._x[-1] = self._v[-1] * (t_new - self._next_arrival_s)
            self._next_arrival_s += self._draw_gap()
        keep = self._x <= self.spec.length_m
        self._ids = [i for i, k in zip(self._ids, keep) if k]
        self._x, self._v, self._lane = self._x[keep], self._v[keep], self._lane[keep]
        self.t_s = t_new
        return self._snapshot()
