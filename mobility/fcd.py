"""SUMO FCD traces (`--fcd-output`, plain or gzip): a streaming replay source and per-vehicle tracks.

Only <vehicle> elements with planar x, y are read (persons, containers and geo traces are not).
"""
from __future__ import annotations

import gzip
import xml.etree.ElementTree as ET
import zlib
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from .base import MobilitySnapshot, MobilitySource
from .dwell import oracle_dwell_s
from .errors import MobilityInputError, one_line, require_file
from .sumo_live import sumo_angle_to_heading_rad

__all__ = ["FcdFrame", "FcdReplay", "FcdTracks", "iter_fcd_frames"]

_TIME_TOL_S = 1e-6  # FCD times are written with millisecond resolution


@dataclass(frozen=True)
class FcdFrame:
    """One recorded timestep, vehicles sorted by id; angle in SUMO degrees (clockwise from north)."""

    time_s: float
    ids: np.ndarray  # (n,) str
    xy_m: np.ndarray  # (n, 2)
    speed_mps: np.ndarray
    angle_deg: np.ndarray


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def iter_fcd_frames(path: str | Path) -> Iterator[FcdFrame]:
    """Stream the timesteps of an FCD file in file order; elements are cleared as they are read.

    Raises MobilityFileNotFoundError / MobilityInputError naming the file (missing, not gzip/XML, not
    an FCD export, a vehicle without x/y), also for a file that breaks off part-way; a bad timestep (its
    time not a number or not after the one before, a vehicle listed twice, a position, speed or angle that
    is not finite) is named by its number (1 = the first) and time.
    """
    path = require_file(path, "FCD file")
    f = _open(path)
    root = None
    prev_time_s = -np.inf
    n = 0
    try:
        for event, elem in ET.iterparse(f, events=("start", "end")):
            if root is None:
                root = elem
                if elem.tag != "fcd-export":
                    raise MobilityInputError(path, f"not an FCD file (root element <{elem.tag}>, "
                                                   "expected <fcd-export>)")
                continue
            if event != "end" or elem.tag != "timestep":
                continue
            n += 1
            time_s = _timestep_time_s(path, n, elem.get("time"), prev_time_s)
            where = f"timestep {n} (time {elem.get('time')})"
            vehicles = elem.findall("vehicle")
            try:
                ids = np.array([v.attrib["id"] for v in vehicles], dtype=str)
                rows = np.array([[float(v.get(k)) for k in ("x", "y", "speed", "angle")] for v in vehicles],
                                dtype=float).reshape(len(vehicles), 4)
            except KeyError:
                raise MobilityInputError(path, f"{where}: a vehicle without an id") from None
            except (TypeError, ValueError):
                raise MobilityInputError(path, f"{where}: a vehicle lacks numeric x, y, speed or "
                                               "angle (geo FCD is not supported)") from None
            root.clear()
            order = np.argsort(ids, kind="stable")
            ids, rows = ids[order], rows[order]
            _check_vehicles(path, where, ids, rows)
            prev_time_s = time_s
            yield FcdFrame(time_s, ids, rows[:, :2], rows[:, 2], rows[:, 3])
    except ET.ParseError as e:
        raise MobilityInputError(path, f"malformed XML ({one_line(e)})") from None
    except (OSError, EOFError, zlib.error) as e:  # bad or truncated gzip
        raise MobilityInputError(path, f"unreadable ({type(e).__name__}: {one_line(e)})") from None
    except (LookupError, UnicodeError) as e:      # an unknown or wrong encoding in the XML declaration
        raise MobilityInputError(path, f"unreadable text ({type(e).__name__}: {one_line(e)})") from None
    finally:
        f.close()
    if root is None:
        raise MobilityInputError(path, "empty XML document")


def _timestep_time_s(path: Path, n: int, text: str | None, prev_time_s: float) -> float:
    """The time of timestep `n` (1-based), checked: a finite number, later than the timestep before."""
    try:
        time_s = float(text)
    except (TypeError, ValueError):
        time_s = float("nan")
    if not np.isfinite(time_s):
        shown = "no time attribute" if text is None else f"time {text!r} is not a finite number"
        raise MobilityInputError(path, f"timestep {n}: {shown} (expected seconds, e.g. time=\"12.00\")")
    if time_s <= prev_time_s:
        raise MobilityInputError(path, f"timestep {n} (time {text}): time goes backwards or repeats (the timestep "
                                       f"before is at {prev_time_s:g} s; expected increasing times)")
    return time_s


def _check_vehicles(path: Path, where: str, ids_sorted: np.ndarray, rows: np.ndarray) -> None:
    """MobilityInputError for a vehicle listed twice or a non-finite x, y, speed or angle."""
    twice = np.flatnonzero(ids_sorted[1:] == ids_sorted[:-1])
    if twice.size:
        raise MobilityInputError(path, f"{where}: vehicle {str(ids_sorted[twice[0]])!r} is listed twice "
                                       "(expected each id once per timestep)")
    bad = ~np.isfinite(rows)
    if bad.any():
        i, k = np.argwhere(bad)[0]
        name = ("x", "y", "speed", "angle")[k]
        raise MobilityInputError(path, f"{where}: vehicle {str(ids_sorted[i])!r} has {name}={float(rows[i, k])} "
                                       "(expected finite numbers)")


def _lerp_angle_deg(a0: np.ndarray, a1: np.ndarray, w: float) -> np.ndarray:
    """Interpolate compass angles the short way round (350 -> 10 passes 0, not 180)."""
    diff = (a1 - a0 + 180.0) % 360.0 - 180.0
    return (a0 + w * diff) % 360.0


class FcdReplay(MobilitySource):
    """Replays an FCD file as a source: t = 0 is FCD time `begin_s`, steps of `step_s`.

    Where a requested time falls on a recorded timestep, that timestep is returned as recorded; between
    two timesteps, the vehicles present in both are interpolated linearly (positions, speeds, angles the
    short way round) and vehicles present in only one are left out. Before the first and after the last
    recorded timestep the snapshot is empty. The file is streamed; only two timesteps are held.
    """

    def __init__(self, path: str | Path, step_s: float, begin_s: float = 0.0):
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        self.path, self.step_s, self.begin_s = Path(path), float(step_s), float(begin_s)
        self._frames: Iterator[FcdFrame] | None = None
        self._prev: FcdFrame | None = None
        self._next: FcdFrame | None = None
        self._k = 0

    @property
    def t_s(self) -> float:
        return self._k * self.step_s

    def start(self) -> MobilitySnapshot:
        self.close()
        self._frames = iter_fcd_frames(self.path)
        self._prev, self._next, self._k = None, self._read(), 0
        return self._snapshot()

    def step(self) -> MobilitySnapshot:
        if self._frames is None:
            raise RuntimeError("FcdReplay.step() before start()")
        self._k += 1
        return self._snapshot()

    def close(self) -> None:
        if self._frames is not None:
            self._frames.close()  # closes the file through the generator's finally
            self._frames = None

    def _read(self) -> FcdFrame | None:
        return next(self._frames, None)

    def _snapshot(self) -> MobilitySnapshot:
        t_fcd = self.begin_s + self.t_s
        while self._next is not None and self._next.time_s < t_fcd - _TIME_TOL_S:
            self._prev, self._next = self._next, self._read()
        nxt, prev = self._next, self._prev
        if nxt is not None and abs(nxt.time_s - t_fcd) <= _TIME_TOL_S:
            return self._to_snapshot(nxt.ids, nxt.xy_m, nxt.speed_mps, nxt.angle_deg)
        if nxt is None or prev is None:
            return MobilitySnapshot.empty(self.t_s)
        w = (t_fcd - prev.time_s) / (nxt.time_s - prev.time_s)
        ids, i0, i1 = np.intersect1d(prev.ids, nxt.ids, assume_unique=True, return_indices=True)
        xy = (1.0 - w) * prev.xy_m[i0] + w * nxt.xy_m[i1]
        speed = (1.0 - w) * prev.speed_mps[i0] + w * nxt.speed_mps[i1]
        angle = _lerp_angle_deg(prev.angle_deg[i0], nxt.angle_deg[i1], w)
        return self._to_snapshot(ids, xy, speed, angle)

    def _to_snapshot(self, ids: np.ndarray, xy: np.ndarray, speed: np.ndarray, angle_deg: np.ndarray):
        return MobilitySnapshot(self.t_s, tuple(str(i) for i in ids), xy.reshape(-1, 2).copy(), speed.copy(),
                                sumo_angle_to_heading_rad(angle_deg))


class FcdTracks:
    """Every vehicle's whole recorded trajectory, for the oracle dwell predictor.

    Times are on the replay clock (FCD time minus `begin_s`). Held per vehicle as compact float arrays.
    """

    def __init__(self, tracks: dict[str, tuple[np.ndarray, np.ndarray]], path: Path | None = None):
        self._tracks, self.path = tracks, path

    @classmethod
    def load(cls, path: str | Path, begin_s: float = 0.0) -> "FcdTracks":
        """Read a whole FCD file (streamed; raises like `iter_fcd_frames`)."""
        acc: dict[str, tuple[array, array]] = {}
        for fr in iter_fcd_frames(path):
            t = fr.time_s - begin_s
            for vid, (x, y) in zip(fr.ids.tolist(), fr.xy_m.tolist()):
                ts, xys = acc.setdefault(vid, (array("d"), array("d")))
                ts.append(t)
                xys.extend((x, y))
        tracks = {v: (np.frombuffer(ts, dtype=float), np.frombuffer(xys, dtype=float).reshape(-1, 2))
                  for v, (ts, xys) in acc.items()}
        return cls(tracks, Path(path))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._tracks))

    def track(self, vid: str) -> tuple[np.ndarray, np.ndarray]:
        """(times_s (n,), xy_m (n, 2)) of a vehicle; KeyError naming the id and file if unknown."""
        try:
            return self._tracks[vid]
        except KeyError:
            raise KeyError(f"vehicle {vid!r} not in FCD file {self.path}") from None

    def oracle_dwell_s(self, vid: str, t_now_s: float, rsu_xy_m: np.ndarray, radius_m: float) -> float:
        """`dwell.oracle_dwell_s` on this vehicle's track (0 for a vehicle never recorded)."""
        if vid not in self._tracks:
            return 0.0
        times, xy = self._tracks[vid]
        return oracle_dwell_s(times, xy, t_now_s, rsu_xy_m, radius_m)
