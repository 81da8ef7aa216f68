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
from mobility.dwell import kinematic_dwell_s, serving_dwell_s
from mobility.fcd import FcdTracks

from .world import Vehicle, World

DWELL_FIELDS = ("t_s", "round", "vehicle", "rsu", "predictor", "predicted_s", "realized_s", "censored",
                "lower_bound_s", "selected", "boundary_exit", "predicted_serving_s", "realized_serving_s", "parked")
_REALIZED, _CENSORED, _LOWER, _SELECTED, _BOUNDARY, _SERVING = 6, 7, 8, 9, 10, 12
MAX_TRACK_TICKS = 3600          # how far ahead the serving dwell's predicted track goes
_SERVING_CHUNK = 4_000_000      # vehicles x ticks x RSUs per vectorized block (~100 MB of float64 temporaries)


@dataclass
class _Open:
    index: int
    t_s: float


class DwellBook:
    """Makes predictions with one predictor and closes them as the World moves.

    Two definitions of a dwell, both predicted and realized: until the vehicle leaves its RSU's coverage
    disc (`predicted_s`, `realized_s`), and until its serving RSU changes (`predicted_serving_s`,
    `realized_serving_s`: a handover, or the coverage lost; what a transfer survives under
    `on_handover: abort`). The serving one is predicted from the predictor's track of the vehicle's future
    positions at the mobility ticks (a straight line, the SUMO route, the recorded future) with the World's
    association rule (nearest in range, `hysteresis_m`), and realized at the tick of the change.
    `definition` says which one `predict` returns for selection.
    """

    def __init__(self, world: World, predictor: str, route_fn: Optional[Callable] = None,
                 tracks: Optional[FcdTracks] = None, definition: str = "coverage",
                 plan_fn: Optional[Callable] = None, duration_s: float = float("inf")):
        self.world, self.predictor, self.definition = world, predictor, definition
        self.duration_s = float(duration_s)
        self.route_fn, self.tracks, self.plan_fn = route_fn, tracks, plan_fn
        self.rows: list[list] = []
        self._open: dict[tuple[str, int], list[_Open]] = {}
        self._serving_open: dict[tuple[str, int], list[_Open]] = {}
        self._by_round: dict[tuple[int, str], int] = {}     # (round, vehicle) -> its latest row
        self._last: dict[tuple[str, int], tuple[float, np.ndarray]] = {}   # (t, xy) at the previous tick
        world.rsu_listeners.append(self._serving_changed)

    def predict(self, round_: int, vehicles: list[Vehicle]) -> np.ndarray:
        """Remaining dwell (s) of each vehicle by `definition` (in its RSU's coverage, or until its serving RSU
        changes); records both predictions."""
        w = self.world
        t = w.env.now
        since_tick_s = t - w.t_tick_s          # positions are as of the last tick; the clock has moved on
        kin = self._velocity(vehicles) if self.predictor in ("kinematic", "history") and vehicles else None
        rsus, _, _, here_xy = w.links(vehicles)
        if self.predictor in ("kinematic", "history"):
            centers = w.rsus.xy_m[rsus]
            pred = np.maximum(kinematic_dwell_s(*kin, centers, w.rsus.radius_m) - since_tick_s, 0.0) \
                if vehicles else np.zeros(0)
        elif self.predictor == "route":
            pred = np.array([max(self.route_fn(v.id, w.rsus.xy_m[k], w.rsus.radius_m) - since_tick_s, 0.0)
                             for v, k in zip(vehicles, rsus)])
        else:
            pred = np.array([self.tracks.oracle_dwell_s(v.id, t, w.rsus.xy_m[k], w.rsus.radius_m)
                             for v, k in zip(vehicles, rsus)])
        serving = self._serving(vehicles, kin, pred + since_tick_s, t, (here_xy, np.asarray(rsus, dtype=int)))
        # a vehicle with nowhere to go (it never moved, or SUMO has it parked): flagged, and predicted to stay
        # to the end of the run rather than forever
        parked = ~np.isfinite(pred)
        rest_s = max(self.duration_s - t, 0.0)
        pred, serving = np.where(parked, rest_s, pred), np.where(~np.isfinite(serving), rest_s, serving)
        # one pass over Python numbers (the cohort is ~1,000 vehicles a round): rows, open predictions, trace
        rows, name, nan, ids, trace = self.rows, self.predictor, float("nan"), w.rsus.ids, w.trace
        counters, t_tick, t_s = trace.wants_counters, w.t_tick_s, float(t)
        for v, k, xy, p, q, park in zip(vehicles, rsus, here_xy, pred.tolist(), serving.tolist(), parked.tolist()):
            vid, rsu_id, i = v.id, ids[k], len(rows)
            key = (vid, k)
            rows.append([t_s, round_, vid, rsu_id, name, p, nan, True, nan, False, False, q, nan, park])
            self._serving_open.setdefault(key, []).append(_Open(i, t))
            self._by_round[(round_, vid)] = i
            trace.instant(t, round_, vid, "dwell.predict", f"{rsu_id} {name} predicted_s={p:.6g}")
            if counters:
                trace.counter(t, vid, "dwell_predicted_s", p)
            self._open.setdefault(key, []).append(_Open(i, t))
            self._last.setdefault(key, (t_tick, xy))
        return serving if self.definition == "serving" else pred

    def _velocity(self, vehicles: list[Vehicle]) -> tuple[np.ndarray, np.ndarray]:
        """The straight-line predictors' (positions, velocities): the current velocity (kinematic) or the one
        smoothed over the recent ticks (history)."""
        w = self.world
        return w.history_velocity(vehicles) if self.predictor == "history" else w.kinematic_velocity(vehicles)

    def _serving(self, vehicles: list[Vehicle], kin, coverage_from_tick_s: np.ndarray, t_now: float,
                 here: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Each vehicle's predicted time from now to the tick its serving RSU changes, on its predicted track
        (`kin`: the straight-line predictors' (positions, velocities), None for the others; `here`: their
        positions and RSUs as of the last tick)."""
        if kin is not None:
            return self._serving_straight(kin, coverage_from_tick_s, t_now, here)
        return self._serving_each(vehicles, kin, coverage_from_tick_s, t_now)

    def _serving_each(self, vehicles: list[Vehicle], kin, coverage_from_tick_s: np.ndarray, t_now: float) -> np.ndarray:
        """`_serving` one vehicle at a time (the route and oracle predictors' tracks differ in kind)."""
        w = self.world
        step, t0 = w.step_s, w.t_tick_s
        out = np.full(len(vehicles), np.inf)
        for i, v in enumerate(vehicles):
            horizon = coverage_from_tick_s[i]
            if not np.isfinite(horizon):            # it stays in coverage: no change to predict either
                if self.predictor != "oracle":
                    continue
                horizon = MAX_TRACK_TICKS * step
            k = np.arange(1, min(int(np.ceil(horizon / step)) + 2, MAX_TRACK_TICKS) + 1)
            ticks = t0 + k * step
            xy = self._track(v, i, kin, ticks)
            if xy is None:
                continue
            change = serving_dwell_s(np.concatenate([[t0], ticks]), np.vstack([v.xy_m, xy]), v.rsu, w.rsus.xy_m,
                                     w.rsus.radius_m, w.hysteresis_m)
            out[i] = max(t0 + change - t_now, 0.0)
        return out

    def _serving_straight(self, kin, coverage_from_tick_s: np.ndarray, t_now: float,
                          here: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """`_serving` for the straight-line predictors, many vehicles at once: their tracks as one (vehicles,
        ticks, RSUs) array, each cut at its own horizon, in chunks of bounded size. The same numbers as
        `mobility.dwell.serving_dwell_s` on each track alone (the same elementwise operations)."""
        w = self.world
        step = w.step_s
        out = np.full(len(coverage_from_tick_s), np.inf)
        rows = np.flatnonzero(np.isfinite(coverage_from_tick_s))   # the others stay: no change to predict
        n_ticks = (np.minimum(np.ceil(coverage_from_tick_s[rows] / step), MAX_TRACK_TICKS) + 2).clip(
            max=MAX_TRACK_TICKS).astype(int)
        order = rows[np.argsort(n_ticks, kind="stable")]
        n_ticks = np.sort(n_ticks, kind="stable")
        n_rsus = len(w.rsus.ids)
        start = 0
        while start < len(order):       # a chunk: as many vehicles as fit the budget at its longest track
            end = start + 1
            while end < len(order) and (end + 1 - start) * (n_ticks[end] + 1) * n_rsus <= _SERVING_CHUNK:
                end += 1
            self._serving_chunk(kin, here, order[start:end], n_ticks[start:end], t_now, out)
            start = end
        return out

    def _serving_chunk(self, kin, here, rows: np.ndarray, n_ticks: np.ndarray, t_now: float,
                       out: np.ndarray) -> None:
        w = self.world
        step, t0 = w.step_s, w.t_tick_s
        ticks = t0 + np.arange(1, n_ticks.max() + 1) * step
        xy0, vel = kin[0][rows], kin[1][rows]
        now_xy = here[0][rows]
        track = np.concatenate([now_xy[:, None, :], xy0[:, None, :] + (ticks - t0)[None, :, None] * vel[:, None, :]],
                               axis=1)
        current = here[1][rows]
        rsu_xy, cur_col = _rsus_near_tracks(track, n_ticks, w.rsus.xy_m, w.rsus.radius_m, current)
        d = np.sqrt(((track[:, :, None, :] - rsu_xy[:, None, :, :]) ** 2).sum(axis=3))
        d_near = np.where(d <= w.rsus.radius_m, d, np.inf).min(axis=2)
        d_cur = np.take_along_axis(d, cur_col[:, None, None], axis=2)[:, :, 0]
        leaves = ~((d_cur <= w.rsus.radius_m) & (d_cur <= d_near + w.hysteresis_m))
        leaves &= np.arange(leaves.shape[1])[None, :] <= n_ticks[:, None]     # within each one's own track
        times = np.concatenate([[t0], ticks])
        has = leaves.any(axis=1)
        first = leaves.argmax(axis=1)[has]
        out[rows[has]] = np.maximum(t0 + (times[first] - times[0]) - t_now, 0.0)

    def _track(self, v: Vehicle, i: int, kin, ticks: np.ndarray) -> Optional[np.ndarray]:
        """The predictor's positions of vehicle v at `ticks` (far away once it would have vanished)."""
        t0 = self.world.t_tick_s
        gone = np.full(2, 1e12)
        if kin is not None:
            xy0, vel = kin[0][i], kin[1][i]
            return xy0 + np.outer(ticks - t0, vel)
        if self.predictor == "route":
            if self.plan_fn is None:
                return None
            path, speed, wait = self.plan_fn(v.id)
            seg = np.sqrt((np.diff(path, axis=0) ** 2).sum(axis=1))
            at = np.concatenate([[0.0], np.cumsum(seg)])
            s = np.maximum(ticks - t0 - wait, 0.0) * speed
            xy = np.column_stack([np.interp(s, at, path[:, 0]), np.interp(s, at, path[:, 1])])
            xy[s > at[-1]] = gone                     # past its route's end: it has vanished
            return xy
        try:
            times, track = self.tracks.track(v.id)
        except KeyError:                              # never recorded
            return None
        xy = np.column_stack([np.interp(ticks, times, track[:, 0]), np.interp(ticks, times, track[:, 1])])
        xy[ticks > times[-1] + 1e-9] = gone
        return xy

    def _serving_changed(self, vid: str, old: int, new: int) -> None:
        """World.rsu_listeners: the vehicle's serving RSU changed from `old` at this tick."""
        if old < 0:
            return
        for item in self._serving_open.pop((vid, old), []):
            self.rows[item.index][_SERVING] = max(self.world.t_tick_s - item.t_s, 0.0)

    @property
    def pending(self) -> bool:
        """Whether some prediction is still open (either definition)."""
        return bool(self._open) or any(self._serving_open.values())

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
                for item in self._serving_open.pop(key, []):     # gone at this tick: its association too
                    self.rows[item.index][_SERVING] = max(t_now - item.t_s, 0.0)
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


def _rsus_near_tracks(track: np.ndarray, n_ticks: np.ndarray, rsu_xy_m: np.ndarray, radius_m: float,
                      current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per straight track (vehicles, samples, 2), the RSUs it can come within `radius_m` of (its current one
    always), as (vehicles, C, 2) positions padded with far-away points, and the current one's column. Only
    those can be in range, so distances to them alone decide the association (a few instead of all RSUs)."""
    a, b = track[:, 1], track[np.arange(len(track)), n_ticks]         # the track's first and last tick
    ab = b - a
    ap = rsu_xy_m[None, :, :] - a[:, None, :]
    den = (ab ** 2).sum(axis=1)[:, None]
    u = np.clip(np.divide((ap * ab[:, None, :]).sum(axis=2), den, out=np.zeros_like(den * ap[..., 0]),
                          where=den > 0), 0.0, 1.0)
    d_seg = np.sqrt(((ap - u[..., None] * ab[:, None, :]) ** 2).sum(axis=2))
    d_now = np.sqrt(((rsu_xy_m[None, :, :] - track[:, :1]) ** 2).sum(axis=2))
    slack = 1e-6 * (1.0 + radius_m)                                      # a superset is exact; never miss one
    near = (np.minimum(d_seg, d_now) <= radius_m + slack)
    near[np.arange(len(track)), current] = True
    order = np.argsort(~near, axis=1, kind="stable")[:, :near.sum(axis=1).max()]
    xy = rsu_xy_m[order]
    xy[~np.take_along_axis(near, order, axis=1)] = 1e15
    return xy, np.argmax(order == current[:, None], axis=1)


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
