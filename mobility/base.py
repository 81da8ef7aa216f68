"""The MobilitySource interface and the snapshot it yields each step."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Sequence

import numpy as np


class MobilityError(RuntimeError):
    """A mobility source failed mid-run (SUMO died, a trace ended early, ...)."""


class MobilitySnapshot:
    """Vehicles present at time t_s, sorted by id (each source's contract; not re-checked per step).

    xy_m: (n, 2) positions; speed_mps: (n,); heading_rad: (n,) direction of travel, counter-clockwise
    from the +x axis (SUMO's compass angle is converted by the SUMO sources). A source may give
    `kinematics` instead of speed and heading: a function of row indices returning their (speed, heading),
    read on demand (live SUMO reads them from SUMO, so only while the snapshot is its current step).
    Treat a snapshot as immutable.
    """

    __slots__ = ("t_s", "ids", "xy_m", "_speed", "_heading", "_kinematics")

    def __init__(self, t_s: float, ids: tuple[str, ...], xy_m: np.ndarray, speed_mps: np.ndarray | None = None,
                 heading_rad: np.ndarray | None = None, *,
                 kinematics: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None):
        if (speed_mps is None) != (heading_rad is None) or (speed_mps is None) == (kinematics is None):
            raise ValueError("give speed_mps and heading_rad, or kinematics")
        if xy_m.shape != (len(ids), 2):
            raise ValueError(f"xy_m has shape {xy_m.shape}, expected ({len(ids)}, 2)")
        self.t_s, self.ids, self.xy_m = t_s, ids, xy_m
        self._speed, self._heading, self._kinematics = speed_mps, heading_rad, kinematics

    @staticmethod
    def empty(t_s: float) -> "MobilitySnapshot":
        return MobilitySnapshot(t_s, (), np.zeros((0, 2)), np.zeros(0), np.zeros(0))

    def _load(self) -> None:
        if self._speed is None:
            self._speed, self._heading = self._kinematics(np.arange(len(self.ids)))

    def loaded(self) -> "MobilitySnapshot":
        """This snapshot with speed and heading read now (to keep one past its source's next step)."""
        self._load()
        return self

    @property
    def speed_mps(self) -> np.ndarray:
        self._load()
        return self._speed

    @property
    def heading_rad(self) -> np.ndarray:
        self._load()
        return self._heading

    def velocity_mps(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(n, 2) velocity vectors, or (len(rows), 2) of the given rows only."""
        if rows is None:
            speed, heading = self.speed_mps, self.heading_rad
        elif self._speed is not None:
            speed, heading = self._speed[rows], self._heading[rows]
        else:
            speed, heading = self._kinematics(np.asarray(rows, dtype=int))
        return speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)


class MobilitySource(ABC):
    """A stepped source of vehicle positions.

    Extension points: `start()` returns the snapshot at t = 0, `step()` advances by `step_s` and returns
    the new snapshot, `close()` releases external processes (safe to call twice). Raise MobilityError
    for a failure mid-run. Snapshots list vehicle ids in sorted order: the World maps rows between ticks
    by it (and ends the run with mobility-failed where it sees otherwise).
    """

    step_s: float

    @abstractmethod
    def start(self) -> MobilitySnapshot: ...

    @abstractmethod
    def step(self) -> MobilitySnapshot: ...

    def close(self) -> None:
        """Release resources; the default has none."""

    def __enter__(self) -> "MobilitySource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
