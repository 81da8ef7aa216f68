"""Dwell-time predictions and their realized values, for `dwell.csv` and dwell-based selection.

A prediction is made for a vehicle and the RSU it is associated with; it is realized when the vehicle
leaves that RSU's coverage disc (crossing time interpolated linearly between the two ticks around it)
or disappears from the mobility source while still inside (last tick it was seen; `boundary_exit`: it
left the map or ended its route there, so the disc did not end its dwell). A row is `selected` when the
round chose that vehicle. Predictions still open at the end of the run are censored, with the time they
had been open as `lower_bound_s` on the realized value. Both go into the trace too: a `dwell.predict`
instant (and a `dwell_predicted_s` counter) when made, a `dwell.realized` instant at the exit time, naming
the RSU, both values and how it ended (`exit=coverage|boundary`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from mobility.base import MobilitySource
from mobility.fcd import FcdTracks

from .world import Vehicle, World

DWELL_FIELDS = ("t_s", "round", "vehicle", "rsu", "predictor", "predicted_s", "realized_s", "censored",
                "lower_bound_s", "selected", "boundary_exit")
_REALIZED, _CENSORED, _LOWER, _SELECTED, _BOUNDARY = 6, 7, 8, 9, 10


@dataclass
class _Open:
    index: int
    t_s: float


class DwellBook:
    """Makes predictions with one predictor and closes them as the World moves."""

    def __init__(self, world: World, predictor: str, route_fn: Optional[Callable] = None,
                 tracks: Optional[FcdTracks] = None):
        self.world, self.predictor = world, predictor
        self.route_fn, self.tracks = route_fn, tracks
        self.rows: list[list] = []
        self._open: dict[tuple[str, int], list[_Open]] = {}
        self._by_round: dict[tuple[int, str], int] = {}     # (round, vehicle) -> its latest row
        self._last: dict[tuple[str, int], tuple[float, np.ndarray]] = {}   # (t, xy) at the previous tick

    def predict(self, round_: int, vehicles: list[Vehicle]) -> np.ndarray:
        """Remaining dwell (s) of each vehicle in its current RSU's coverage; records each prediction."""
        w = self.world
        t = w.env.now
        since_tick_s = t - w.t_tick_s          # positions are as of the last tick; the clock has moved on
        if self.predictor == "kinematic":
            pred = np.maximum(w.dwell_s(vehicles) - since_tick_s, 0.0)
        elif self.predictor == "route":
            pred = np.array([max(self.route_fn(v.id, w.rsus.xy_m[v.rsu], w.rsus.radius_m) - since_tick_s, 0.0)
                             for v in vehicles])
        else:
            pred = np.array([self.tracks.oracle_dwell_s(v.id, t, w.rsus.xy_m[v.rsu], w.rsus.radius_m)
                             for v in vehicles])
        for v, p in zip(vehicles, pred):
            key, rsu_id = (v.id, v.rsu), w.rsus.ids[v.rsu]
            self.rows.append([float(t), round_, v.id, rsu_id, self.predictor, float(p), float("nan"), True,
                              float("nan"), False, False])
            self._by_round[(round_, v.id)] = len(self.rows) - 1
            w.trace.instant(t, round_, v.id, "dwell.predict", f"{rsu_id} {self.predictor} predicted_s={p:.6g}")
            if w.trace.wants_counters:
                w.trace.counter(t, v.id, "dwell_predicted_s", p)
            self._open.setdefault(key, []).append(_Open(len(self.rows) - 1, t))
            self._last.setdefault(key, (w.t_tick_s, v.xy_m))
        return pred

    def mark_selected(self, round_: int, vehicle_ids) -> None:
        """Mark the rows of round `round_`'s predictions for the vehicles the round selected."""
        for vid in vehicle_ids:
            i = self._by_round.get((round_, vid))
            if i is not None:
                self.rows[i][_SELECTED] = True

    def censor(self, t_end_s: float) -> None:
        """At the end of the run: each still-open prediction's lower bound on its realized dwell."""
        for items in self._open.values():
            for item in items:
                self.rows[item.index][_LOWER] = max(float(t_end_s) - item.t_s, 0.0)

    def tick(self) -> None:
        """After a mobility tick: close predictions whose vehicle left the disc or vanished."""
        w = self.world
        t_now = w.t_tick_s
        for key in list(self._open):
            vid, rsu = key
            t_prev, xy_prev = self._last[key]
            veh = w.vehicles.get(vid)
            boundary = veh is None
            if boundary:
                t_exit = t_prev
            else:
                center = w.rsus.xy_m[rsu]
                if np.linalg.norm(veh.xy_m - center) <= w.rsus.radius_m:
                    self._last[key] = (t_now, veh.xy_m)
                    continue
                frac = _exit_fraction(xy_prev - center, veh.xy_m - center, w.rsus.radius_m)
                t_exit = t_prev + frac * (t_now - t_prev)
            for item in self._open.pop(key):
                row = self.rows[item.index]
                row[_REALIZED], row[_CENSORED], row[_BOUNDARY] = max(t_exit - item.t_s, 0.0), False, boundary
                w.trace.instant(t_exit, row[1], vid, "dwell.realized", f"{row[3]} realized_s={row[6]:.6g} "
                                f"predicted_s={row[5]:.6g} predicted_at_s={item.t_s:.6g} "
                                f"exit={'boundary' if boundary else 'coverage'}")
            del self._last[key]


def _exit_fraction(p0: np.ndarray, p1: np.ndarray, radius_m: float) -> float:
    """Where on the straight segment p0 -> p1 (inside -> outside a disc at the origin) it crosses the circle."""
    d = p1 - p0
    a, b, c = float(d @ d), float(p0 @ d), float(p0 @ p0) - radius_m ** 2
    if a == 0.0:
        return 1.0
    return min(max((-b + np.sqrt(max(b * b - a * c, 0.0))) / a, 0.0), 1.0)


def record_tracks(source: MobilitySource, duration_s: float) -> FcdTracks:
    """Run a (fresh) source through duration_s and keep every vehicle's trajectory: the oracle's future."""
    acc: dict[str, tuple[list, list]] = {}

    def keep(snap):
        for vid, xy in zip(snap.ids, snap.xy_m.tolist()):
            ts, xys = acc.setdefault(vid, ([], []))
            ts.append(snap.t_s)
            xys.append(xy)

    try:
        keep(source.start())
        for _ in range(int(np.ceil(duration_s / source.step_s))):
            keep(source.step())
    finally:
        source.close()
    return FcdTracks({v: (np.asarray(ts, dtype=float), np.asarray(xys, dtype=float).reshape(-1, 2))
                      for v, (ts, xys) in acc.items()})
