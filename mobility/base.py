"""The MobilitySource interface and the snapshot it yields each step."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


class MobilityError(RuntimeError):
    """A mobility source failed mid-run (SUMO died, a trace ended early, ...)."""


@dataclass(frozen=True)
class MobilitySnapshot:
    """Vehicles present at time t_s, sorted by id.

    xy_m: (n, 2) positions; speed_mps: (n,); heading_rad: (n,) direction of travel, counter-clockwise
    from the +x axis (SUMO's compass angle is converted by the SUMO sources).
    """

    t_s: float
    ids: tuple[str, ...]
    xy_m: np.ndarray
    speed_mps: np.ndarray
    heading_rad: np.ndarray

    def __post_init__(self) -> None:
        assert list(self.ids) == sorted(self.ids), "snapshot ids must be sorted"
        assert self.xy_m.shape == (len(self.ids), 2)

    @staticmethod
    def empty(t_s: float) -> "MobilitySnapshot":
        return MobilitySnapshot(t_s, (), np.zeros((0, 2)), np.zeros(0), np.zeros(0))

    def velocity_mps(self) -> np.ndarray:
        """(n, 2) velocity vectors."""
        return self.speed_mps[:, None] * np.stack([np.cos(self.heading_rad), np.sin(self.heading_rad)], axis=1)


class MobilitySource(ABC):
    """A stepped source of vehicle positions.

    Extension points: `start()` returns the snapshot at t = 0, `step()` advances by `step_s` and returns
    the new snapshot, `close()` releases external processes (safe to call twice). Raise MobilityError
    for a failure mid-run.
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
