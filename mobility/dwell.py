"""Dwell-time predictors: the remaining time a vehicle stays inside its RSU's coverage disc."""
from __future__ import annotations

import numpy as np

STOPPED_MPS = 0.1      # below this a vehicle counts as stopped (SUMO's halting threshold)
# The kinematic rule for a stopped vehicle: its velocity smoothed over the last SMOOTHING_S (exponential
# filter of its displacements per tick), at no less than FLOOR_MPS: a queue moves on at walking pace or more
SMOOTHING_S = 10.0
FLOOR_MPS = 1.0


def kinematic_dwell_s(xy_m: np.ndarray, velocity_mps: np.ndarray, rsu_xy_m: np.ndarray, radius_m: float) -> np.ndarray:
    """Constant velocity until the coverage circle: largest t with |p + v t - c| = r (papers' rule).

    Vectorized over rows; inf for a vehicle at rest inside, 0 for one already outside.
    """
    p = xy_m - rsu_xy_m
    a = (velocity_mps ** 2).sum(axis=1)
    b = (p * velocity_mps).sum(axis=1)
    c = (p ** 2).sum(axis=1) - radius_m ** 2
    disc = b ** 2 - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b + np.sqrt(np.maximum(disc, 0.0))) / a
    t = np.where(a > 0, t, np.inf)
    return np.where(c > 0, 0.0, np.maximum(t, 0.0))


def _first_exit(points_m: np.ndarray, rsu_xy_m: np.ndarray, radius_m: float) -> tuple[int, float] | None:
    """Where a polyline that starts inside the disc first leaves it: (segment index, fraction in [0, 1]).

    None if every vertex is inside (a disc is convex, so the polyline then never leaves it).
    """
    d2 = ((points_m - rsu_xy_m) ** 2).sum(axis=1)
    outside = np.flatnonzero(d2 > radius_m ** 2)
    if outside.size == 0:
        return None
    k = int(outside[0]) - 1  # segment k runs from an inside vertex to the first outside one
    assert k >= 0, "the polyline must start inside the disc"
    p0, p1 = points_m[k], points_m[k + 1]
    d, f = p1 - p0, p0 - rsu_xy_m
    a, b, c = d @ d, 2.0 * (f @ d), f @ f - radius_m ** 2
    frac = (-b + np.sqrt(max(b * b - 4.0 * a * c, 0.0))) / (2.0 * a)
    return k, float(min(max(frac, 0.0), 1.0))


def route_dwell_s(path_xy_m: np.ndarray, speed_mps: float, rsu_xy_m: np.ndarray, radius_m: float) -> float:
    """Time to drive along `path_xy_m` (m, 2) at `speed_mps` until it leaves the coverage disc.

    The path starts at the vehicle (e.g. its remaining SUMO route, `roads.remaining_path_xy`); the end of
    the path counts as leaving (the vehicle arrives and vanishes). 0 if the vehicle is already outside,
    inf if it is at rest inside.
    """
    pts = np.asarray(path_xy_m, dtype=float).reshape(-1, 2)
    c = np.asarray(rsu_xy_m, dtype=float)
    if pts.shape[0] == 0 or ((pts[0] - c) ** 2).sum() > radius_m ** 2:
        return 0.0
    if speed_mps <= 0.0:
        return float("inf")
    seg_m = np.sqrt((np.diff(pts, axis=0) ** 2).sum(axis=1))
    hit = _first_exit(pts, c, radius_m)
    dist_m = seg_m.sum() if hit is None else seg_m[: hit[0]].sum() + hit[1] * seg_m[hit[0]]
    return float(dist_m / speed_mps)


def oracle_dwell_s(track_times_s: np.ndarray, track_xy_m: np.ndarray, t_now_s: float, rsu_xy_m: np.ndarray,
                   radius_m: float) -> float:
    """True remaining time inside the disc from a recorded trajectory (FCD or a SUMO pre-run).

    `track_times_s` (n,) ascending, `track_xy_m` (n, 2); positions between samples are linear. The end
    of the track counts as leaving. 0 if the vehicle is outside or absent at `t_now_s`.
    """
    t = np.asarray(track_times_s, dtype=float)
    xy = np.asarray(track_xy_m, dtype=float).reshape(-1, 2)
    c = np.asarray(rsu_xy_m, dtype=float)
    if t.size == 0 or t_now_s < t[0] or t_now_s > t[-1]:
        return 0.0
    p_now = np.array([np.interp(t_now_s, t, xy[:, 0]), np.interp(t_now_s, t, xy[:, 1])])
    if ((p_now - c) ** 2).sum() > radius_m ** 2:
        return 0.0
    later = t > t_now_s
    times = np.concatenate([[t_now_s], t[later]])
    pts = np.vstack([p_now, xy[later]])
    hit = _first_exit(pts, c, radius_m)
    if hit is None:
        return float(times[-1] - t_now_s)
    k, frac = hit
    return float(times[k] + frac * (times[k + 1] - times[k]) - t_now_s)


def serving_dwell_s(times_s: np.ndarray, xy_m: np.ndarray, current: int, rsu_xy_m: np.ndarray, radius_m: float,
                    hysteresis_m: float = 0.0) -> float:
    """Time from times_s[0] to the first sample at which the association rule (`mobility.rsu.associate`:
    nearest RSU in range, the current one kept while in range and within `hysteresis_m` of the nearest)
    leaves RSU `current`, along a track of positions at `times_s` (n,) -- a vehicle's future positions at
    the mobility ticks, where the World associates. inf if it never does; the end of the track counts as
    a change when the track ends before the vehicle left (it vanishes)."""
    t = np.asarray(times_s, dtype=float)
    xy = np.asarray(xy_m, dtype=float).reshape(-1, 2)
    if t.size == 0:
        return 0.0
    d = np.sqrt(((xy[:, None, :] - np.asarray(rsu_xy_m, dtype=float)[None]) ** 2).sum(axis=2))
    d_near = np.where(d <= radius_m, d, np.inf).min(axis=1)
    d_cur = d[:, current]
    keep = (d_cur <= radius_m) & (d_cur <= d_near + hysteresis_m)
    change = np.flatnonzero(~keep)
    return float(t[change[0]] - t[0]) if change.size else float("inf")
