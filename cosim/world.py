"""The World: vehicles, RSUs and the edge server as of the last mobility tick.

Only the mobility process calls `apply()`; every other process reads the state it leaves.
Association, coverage events and the channel gain of every vehicle are evaluated here, once per
tick, vectorized over vehicles.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import simpy

from mobility.base import MobilitySnapshot
from mobility.dwell import kinematic_dwell_s
from mobility.rsu import RsuLayout, associate

from .radio import RadioParams, RadioState  # noqa: F401  (RadioParams: re-export)
from .trace import Trace


@dataclass
class Vehicle:
    id: str
    client: int
    departed: simpy.Event
    xy_m: np.ndarray = field(default_factory=lambda: np.zeros(2))
    velocity_mps: np.ndarray = field(default_factory=lambda: np.zeros(2))
    rsu: int = -1
    distance_m: float = float("inf")
    gain_linear: float = 0.0
    present: bool = True


class World:
    """Vehicles present now (by id, in order of appearance), RSUs, and their links."""

    def __init__(self, env: simpy.Environment, rsus: RsuLayout, radio: RadioParams, trace: Trace,
                 num_clients: int, hysteresis_m: float = 0.0, step_s: float = 1.0):
        self.env, self.rsus, self.radio, self.trace = env, rsus, radio, trace
        self.num_clients, self.hysteresis_m, self.step_s = num_clients, hysteresis_m, step_s
        self.vehicles: dict[str, Vehicle] = {}
        self.appeared = 0
        self.round = 0
        self.t_tick_s = 0.0
        self.snapshot = MobilitySnapshot.empty(0.0)
        self._rsu_idx = np.zeros(0, dtype=int)
        self.radio_state = RadioState(env, radio, len(rsus.ids), step_s)

    @property
    def next_tick_s(self) -> float:
        """When the state next changes (the next mobility tick)."""
        return self.t_tick_s + self.step_s

    def apply(self, snap: MobilitySnapshot) -> None:
        """Take a new snapshot: arrivals, departures, association, coverage events, channel gains."""
        t = snap.t_s
        self.t_tick_s = t
        new_ids = set(snap.ids)
        for vid in [v for v in self.vehicles if v not in new_ids]:
            veh = self.vehicles.pop(vid)
            veh.present = False
            if veh.rsu >= 0:
                self.trace.instant(t, self.round, vid, "coverage.leave", self.rsus.ids[veh.rsu])
            self.trace.instant(t, self.round, vid, "vehicle.leave", "")
            veh.departed.succeed(t)
        previous = np.array([self.vehicles[v].rsu if v in self.vehicles else -1 for v in snap.ids], dtype=int)
        for vid in snap.ids:
            if vid not in self.vehicles:
                self.vehicles[vid] = Vehicle(vid, self.appeared % self.num_clients, self.env.event())
                self.appeared += 1
                self.trace.instant(t, self.round, vid, "vehicle.enter", f"client={self.vehicles[vid].client}")
        dist = self.rsus.distances_m(snap.xy_m)
        rsu_idx = associate(dist, self.rsus.radius_m, previous, self.hysteresis_m)
        rows = np.arange(len(snap.ids))
        d_assoc = np.where(rsu_idx >= 0, dist[rows, np.maximum(rsu_idx, 0)] if len(rows) else 0.0, np.inf)
        gain = self.radio_state.evaluate(list(snap.ids), snap.xy_m, dist, rsu_idx)
        velocity = snap.velocity_mps()
        for i, vid in enumerate(snap.ids):
            veh = self.vehicles[vid]
            old, new = int(previous[i]), int(rsu_idx[i])
            if old != new:
                self._coverage_event(t, vid, old, new)
            veh.rsu, veh.xy_m, veh.velocity_mps = new, snap.xy_m[i], velocity[i]
            veh.distance_m, veh.gain_linear = float(d_assoc[i]), float(gain[i])
        self.snapshot = snap
        self._rsu_idx = rsu_idx

    def _coverage_event(self, t: float, vid: str, old: int, new: int) -> None:
        ids = self.rsus.ids
        if old < 0:
            self.trace.instant(t, self.round, vid, "coverage.enter", ids[new])
        elif new < 0:
            self.trace.instant(t, self.round, vid, "coverage.leave", ids[old])
        else:
            self.trace.instant(t, self.round, vid, "handover", f"{ids[old]}->{ids[new]}")

    def covered(self) -> list[Vehicle]:
        """Vehicles associated with some RSU, in sorted id order."""
        return [self.vehicles[v] for v in self.snapshot.ids if v in self.vehicles and self.vehicles[v].rsu >= 0]

    def dwell_s(self, vehicles: list[Vehicle]) -> np.ndarray:
        """Kinematic remaining dwell time in the current RSU's coverage, per vehicle."""
        if not vehicles:
            return np.zeros(0)
        xy = np.stack([v.xy_m for v in vehicles])
        vel = np.stack([v.velocity_mps for v in vehicles])
        centers = self.rsus.xy_m[[v.rsu for v in vehicles]]
        return kinematic_dwell_s(xy, vel, centers, self.rsus.radius_m)

    def snr_linear(self, veh: Vehicle, tx_power_w: float, bandwidth_hz: float, direction: str | None = None) -> float:
        """SNR of the vehicle's link to its RSU as of the last tick (SINR when interference is on and
        `direction` ('ul' or 'dl') is given)."""
        return self.radio_state.snr_linear(veh.id, veh.gain_linear, tx_power_w, bandwidth_hz, direction)

    def rate_bps(self, veh: Vehicle, tx_power_w: float, bandwidth_hz: float, direction: str | None = None) -> float:
        """Rate of the vehicle's link to its RSU as of the last tick (0 when uncovered): Shannon (ergodic
        under fading with mode 'ergodic') or the MCS table's, per the scenario's rate_mode."""
        if not veh.present or veh.rsu < 0:
            return 0.0
        return self.radio_state.rate_bps(bandwidth_hz, self.snr_linear(veh, tx_power_w, bandwidth_hz, direction))
