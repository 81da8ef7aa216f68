"""The World: vehicles, RSUs and the edge server as of the last mobility tick.

Only the mobility process calls `apply()`; every other process reads the state it leaves.
Association, coverage events and the channel gain of every vehicle are evaluated here, once per
tick, vectorized over vehicles.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Optional

import numpy as np
import simpy

from mobility.base import MobilityError, MobilitySnapshot
from mobility.dwell import FLOOR_MPS, SMOOTHING_S, STOPPED_MPS, kinematic_dwell_s
from mobility.rsu import RsuLayout, associate, associate_strongest

from .radio import RadioParams, RadioState  # noqa: F401  (RadioParams: re-export)
from .trace import Trace


class Vehicle:
    """One vehicle, as the World last saw it. Position, velocity, RSU, distance and gain are read from the
    World's per-tick arrays (no per-vehicle copy each tick); after departure they keep their last values,
    except the velocity, which is NaN (live SUMO reads it on demand, and the vehicle is gone by then)."""

    __slots__ = ("id", "client", "departed", "present", "_world", "_frozen")

    def __init__(self, vid: str, client: int, departed: simpy.Event, world: "World"):
        self.id, self.client, self.departed = vid, client, departed
        self.present = True
        self._world = world
        self._frozen: tuple | None = None

    def _get(self, field_index: int):
        if self._frozen is not None:
            return self._frozen[field_index]
        return self._world._field(field_index, self._world._row_of(self.id))

    def freeze(self) -> None:
        """Keep the last-seen values (called when the vehicle leaves the World)."""
        row = self._world._row_of(self.id)
        self._frozen = tuple(np.full(2, np.nan) if k == 1 else self._world._field(k, row) for k in range(5))

    xy_m = property(lambda self: self._get(0))
    velocity_mps = property(lambda self: self._get(1))
    rsu = property(lambda self: self._get(2))
    distance_m = property(lambda self: self._get(3))
    gain_linear = property(lambda self: self._get(4))

    def __repr__(self) -> str:
        return f"Vehicle({self.id!r}, client={self.client}, rsu={self.rsu}, present={self.present})"


class World:
    """Vehicles present now (by id, in order of appearance), RSUs, and their links."""

    def __init__(self, env: simpy.Environment, rsus: RsuLayout, radio: RadioParams, trace: Trace,
                 num_clients: int, hysteresis_m: float = 0.0, step_s: float = 1.0, association: str = "nearest",
                 hysteresis_db: float = 0.0):
        self.env, self.rsus, self.radio, self.trace = env, rsus, radio, trace
        self.association, self.hysteresis_db = association, hysteresis_db
        self.num_clients, self.hysteresis_m, self.step_s = num_clients, hysteresis_m, step_s
        self.vehicles: dict[str, Vehicle] = {}
        self.appeared = 0                       # distinct vehicles seen so far
        self._clients: dict[str, int] = {}      # client (data partition) of each vehicle seen
        self.round = 0
        self.rsu_listeners: list = []           # fn(vehicle_id, old_rsu, new_rsu) at each coverage change
        self.tick_listeners: list = []          # fn() after each snapshot is applied (the first one too)
        self.t_tick_s = 0.0
        self.snapshot = MobilitySnapshot.empty(0.0)
        self._id_set: set[str] = set()
        self._rsu_idx = np.zeros(0, dtype=int)
        self._d_assoc = np.zeros(0)
        self._gain = np.zeros(0)
        self._v_smooth = np.zeros((0, 2))      # each vehicle's smoothed velocity from its ticks (NaN: unknown)
        self.radio_state = RadioState(env, radio, len(rsus.ids), step_s, rsus.xy_m, rsus.radius_m)

    def _row_of(self, vid: str) -> int:
        """Row of a present vehicle in the snapshot's arrays (ids are sorted: a binary search, no dict)."""
        ids = self.snapshot.ids
        i = bisect_left(ids, vid)
        if i == len(ids) or ids[i] != vid:
            raise KeyError(f"vehicle {vid!r} is not in the World")
        return i

    def _field(self, k: int, row: int):
        if k == 0:
            return self.snapshot.xy_m[row]
        if k == 1:
            return self.snapshot.velocity_mps([row])[0]
        if k == 2:
            return int(self._rsu_idx[row])
        return float((self._d_assoc if k == 3 else self._gain)[row])

    @property
    def next_tick_s(self) -> float:
        """When the state next changes (the next mobility tick)."""
        return self.t_tick_s + self.step_s

    def apply(self, snap: MobilitySnapshot) -> None:
        """Take a new snapshot: arrivals, departures, association, coverage events, channel gains.

        Vectorized over vehicles; Python loops only touch vehicles that arrive, leave or change RSU.
        """
        t = snap.t_s
        self.t_tick_s = t
        ids, old_ids = snap.ids, self.snapshot.ids
        arrived: list[str] = []
        if ids == old_ids:
            previous, prev = self._rsu_idx, None
        else:                                   # set differences of sorted ids: rows map by position
            new_set = set(ids)
            departed = sorted(self._id_set.difference(new_set))
            arrived = sorted(new_set.difference(self._id_set))
            for vid in departed:
                self._depart(t, vid)
            kept_old = np.ones(len(old_ids), dtype=bool)
            kept_old[[bisect_left(old_ids, v) for v in departed]] = False
            at = [bisect_left(ids, v) for v in arrived]
            if any(i == len(ids) or ids[i] != v for i, v in zip(at, arrived)):   # cheap partial check
                raise MobilityError(f"the mobility source's snapshot at t={t:g} s does not list its vehicle ids "
                                    "in sorted order (MobilitySnapshot's contract)")
            is_new = np.zeros(len(ids), dtype=bool)
            is_new[at] = True
            prev_rows = np.full(len(ids), -1, dtype=int)      # each vehicle's row in the last tick, -1 if new
            prev_rows[~is_new] = np.flatnonzero(kept_old)
            previous = np.full(len(ids), -1, dtype=int)
            previous[~is_new] = self._rsu_idx[prev_rows[~is_new]]
            self._id_set = new_set
            prev = (old_ids, prev_rows)
        for vid in arrived:
            client = self._clients.get(vid)
            if client is None:      # a vehicle back after a teleport (or a gap in a trace) keeps its data
                client = self._clients[vid] = self.appeared % self.num_clients
                self.appeared += 1
            veh = self.vehicles[vid] = Vehicle(vid, client, self.env.event(), self)
            self.trace.instant(t, self.round, vid, "vehicle.enter", f"client={veh.client}")
        dist = self.rsus.distances_m(snap.xy_m)
        self.radio_state.advance(ids, snap.xy_m, dist, prev)
        if self.association == "strongest":
            in_range = dist <= self.rsus.radius_m
            with np.errstate(divide="ignore"):
                power_db = np.where(in_range, 10.0 * np.log10(self.radio_state.path_gains(dist, in_range)), -np.inf)
            rsu_idx = associate_strongest(power_db, previous, self.hysteresis_db)
        else:
            rsu_idx = associate(dist, self.rsus.radius_m, previous, self.hysteresis_m)
        rows = np.arange(len(ids))
        d_assoc = np.where(rsu_idx >= 0, dist[rows, np.maximum(rsu_idx, 0)] if len(rows) else 0.0, np.inf)
        gain = self.radio_state.gains(dist, rsu_idx)
        for i in np.flatnonzero(previous != rsu_idx):
            self._coverage_event(t, ids[i], int(previous[i]), int(rsu_idx[i]))
        self._smooth_velocity(snap, prev)
        self.snapshot = snap
        self._rsu_idx, self._d_assoc, self._gain = rsu_idx, d_assoc, gain
        for listener in self.tick_listeners:
            listener()

    @property
    def rsu_indices(self) -> np.ndarray:
        """Each vehicle's RSU index (-1: uncovered), in the snapshot's row order."""
        return self._rsu_idx

    @property
    def serving_distances_m(self) -> np.ndarray:
        """Each vehicle's distance to its RSU (inf: uncovered), in the snapshot's row order."""
        return self._d_assoc

    def _smooth_velocity(self, snap: MobilitySnapshot, prev: Optional[tuple]) -> None:
        """Each vehicle's velocity from its displacement since the last tick, smoothed with an exponential
        filter of time constant SMOOTHING_S (what the kinematic dwell rule falls back on for a vehicle that
        has stopped); a new vehicle's is unknown (NaN) until its second tick."""
        old = self.snapshot
        dt = snap.t_s - old.t_s
        if not len(old.ids) or dt <= 0:
            self._v_smooth = np.full((len(snap.ids), 2), np.nan)
            return
        alpha = 1.0 - np.exp(-dt / SMOOTHING_S)
        if prev is None:                       # the same vehicles in the same rows: no gathers
            held = self._v_smooth
            inst = (snap.xy_m - old.xy_m) / dt
            held += alpha * (inst - held)       # in place; NaN (new last tick) stays NaN here...
            fresh = np.isnan(held[:, 0])
            if fresh.any():                     # ...and takes its first displacement instead
                held[fresh] = inst[fresh]
            return
        rows = prev[1]
        has = rows >= 0
        smooth = np.full((len(snap.ids), 2), np.nan)
        inst = (snap.xy_m[has] - old.xy_m[rows[has]]) / dt
        held = self._v_smooth[rows[has]]
        smooth[has] = np.where(np.isnan(held), inst, held + alpha * (inst - held))
        self._v_smooth = smooth

    def _depart(self, t: float, vid: str) -> None:
        veh = self.vehicles.pop(vid)
        veh.freeze()
        veh.present = False
        if veh.rsu >= 0:
            self.trace.instant(t, self.round, vid, "coverage.leave", self.rsus.ids[veh.rsu])
        self.trace.instant(t, self.round, vid, "vehicle.leave", "")
        veh.departed.succeed(t)

    def _coverage_event(self, t: float, vid: str, old: int, new: int) -> None:
        ids = self.rsus.ids
        if old < 0:
            self.trace.instant(t, self.round, vid, "coverage.enter", ids[new])
        elif new < 0:
            self.trace.instant(t, self.round, vid, "coverage.leave", ids[old])
        else:
            self.trace.instant(t, self.round, vid, "handover", f"{ids[old]}->{ids[new]}")
        for listener in self.rsu_listeners:
            listener(vid, old, new)

    def links(self, vehicles: list[Vehicle]) -> tuple[list[int], list[float], list[float], np.ndarray]:
        """Each vehicle's (RSU index, distance to it, channel gain) as Python numbers and its position as an
        (n, 2) array: one gather for all of them instead of a lookup per field and vehicle (a departed one
        keeps its last values)."""
        n = len(vehicles)
        live, gone = [], []
        for i, v in enumerate(vehicles):
            (live if v._frozen is None else gone).append(i)
        rows = [self._row_of(vehicles[i].id) for i in live]
        rsu, dist, gain, xy = [0] * n, [0.0] * n, [0.0] * n, np.empty((n, 2))
        for i, r, d, g in zip(live, self._rsu_idx[rows].tolist(), self._d_assoc[rows].tolist(),
                              self._gain[rows].tolist()):
            rsu[i], dist[i], gain[i] = r, d, g
        xy[live] = self.snapshot.xy_m[rows]
        for i in gone:
            held = vehicles[i]._frozen
            rsu[i], dist[i], gain[i], xy[i] = int(held[2]), float(held[3]), float(held[4]), held[0]
        return rsu, dist, gain, xy

    def count_covered(self) -> int:
        """How many vehicles are associated with some RSU."""
        return int(np.count_nonzero(self._rsu_idx >= 0))

    def covered(self) -> list[Vehicle]:
        """Vehicles associated with some RSU, in sorted id order."""
        ids = self.snapshot.ids
        return [self.vehicles[ids[i]] for i in np.flatnonzero(self._rsu_idx >= 0)]

    def dwell_s(self, vehicles: list[Vehicle]) -> np.ndarray:
        """Kinematic remaining dwell time in the current RSU's coverage, per vehicle: a straight line at its
        velocity; a stopped vehicle (below STOPPED_MPS) along its smoothed velocity at no less than
        FLOOR_MPS, so that one waiting at a light or in a queue gets a finite dwell. Only a vehicle that has
        not moved since it appeared (no direction to go) keeps an infinite one."""
        if not vehicles:
            return np.zeros(0)
        xy, vel = self.kinematic_velocity(vehicles)
        centers = self.rsus.xy_m[[v.rsu for v in vehicles]]
        return kinematic_dwell_s(xy, vel, centers, self.rsus.radius_m)

    def history_velocity(self, vehicles: list[Vehicle]) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) for the history rule: each vehicle's velocity smoothed over its recent
        ticks (exponential filter, SMOOTHING_S) at no less than FLOOR_MPS, its instantaneous one until it
        has two ticks; zero if it never moved."""
        rows = [self._row_of(v.id) for v in vehicles]
        xy, smooth = self.snapshot.xy_m[rows], self._v_smooth[rows]
        unknown = np.isnan(smooth[:, 0])
        if unknown.any():
            smooth = smooth.copy()
            smooth[unknown] = self.snapshot.velocity_mps(np.asarray(rows)[unknown])
        return xy, _floored(smooth, np.zeros_like(smooth))

    def kinematic_velocity(self, vehicles: list[Vehicle]) -> tuple[np.ndarray, np.ndarray]:
        """(positions, velocities) as of the last tick that the kinematic rule extrapolates: the velocity, or
        for a stopped vehicle its smoothed one at no less than FLOOR_MPS (zero if it never moved)."""
        rows = [self._row_of(v.id) for v in vehicles]
        xy, vel = self.snapshot.xy_m[rows], self.snapshot.velocity_mps(rows)
        stopped = np.hypot(vel[:, 0], vel[:, 1]) < STOPPED_MPS
        if stopped.any():
            vel = vel.copy()
            vel[stopped] = _floored(self._v_smooth[rows][stopped], vel[stopped])
        return xy, vel

    def snr_linear(self, veh: Vehicle, tx_power_w: float, bandwidth_hz: float, direction: str,
                   fading: float = 1.0) -> float:
        """SNR of the vehicle's link to its RSU as of the last tick in `direction` ('ul' or 'dl'; SINR when
        interference is on), its gain times `fading` (a subchannel's block fading)."""
        return self.radio_state.snr_linear(veh.id, veh.gain_linear * fading, tx_power_w, bandwidth_hz, direction)

    def rate_bps(self, veh: Vehicle, tx_power_w: float, bandwidth_hz: float, direction: str,
                 fading: float = 1.0) -> float:
        """Rate of the vehicle's link to its RSU as of the last tick (0 when uncovered): Shannon (ergodic
        under fading with mode 'ergodic') or the MCS table's, per the scenario's rate_mode."""
        if not veh.present or veh.rsu < 0:
            return 0.0
        return self.radio_state.rate_bps(bandwidth_hz, self.snr_linear(veh, tx_power_w, bandwidth_hz, direction, fading))


def _floored(velocity: np.ndarray, otherwise: np.ndarray) -> np.ndarray:
    """Each (smoothed) velocity at no less than FLOOR_MPS in its direction; `otherwise` where it has no
    direction (zero, or NaN: not known yet)."""
    speed = np.hypot(velocity[:, 0], velocity[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = velocity * (np.maximum(speed, FLOOR_MPS) / speed)[:, None]
    return np.where((speed > 0)[:, None], scaled, otherwise)
