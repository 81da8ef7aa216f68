"""Where things are: rsus.csv (every run: each RSU's position, radius and the road edge it was placed along)
and positions.parquet (`output.positions: true`: every vehicle's position, serving RSU, distance and link
state at every mobility tick), so a reviewer can check the radio against the geometry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from channel.conditions import STATE_NAMES

SCHEMA = pa.schema([("t_s", pa.float64()), ("vehicle", pa.string()), ("x_m", pa.float64()), ("y_m", pa.float64()),
                    ("rsu", pa.string()), ("distance_m", pa.float64()), ("los", pa.string())])
RSU_FIELDS = ("rsu", "x_m", "y_m", "radius_m", "edge")


def rsu_rows(rsus) -> list[list]:
    """rsus.csv rows of a mobility.rsu.RsuLayout ('edge' empty unless placed along a SUMO net's roads)."""
    edges = rsus.edges or ("",) * len(rsus.ids)
    return [[rid, float(x), float(y), float(rsus.radius_m), edge]
            for rid, (x, y), edge in zip(rsus.ids, rsus.xy_m.tolist(), edges)]


_STATES = np.array([None, *(STATE_NAMES[k] for k in sorted(STATE_NAMES))], dtype=object)   # index: state + 1


class PositionLog:
    """Listens to the World's ticks (`World.tick_listeners`) and keeps each tick's columns."""

    def __init__(self, world):
        self.world = world
        self._ticks: list[tuple] = []
        world.tick_listeners.append(self.tick)

    def tick(self) -> None:
        w = self.world
        snap, rsu_idx = w.snapshot, w.rsu_indices
        states = w.radio_state.serving_states(rsu_idx)
        self._ticks.append((snap.t_s, snap.ids, np.array(snap.xy_m, dtype=float), rsu_idx.copy(),
                            w.serving_distances_m.copy(), states))

    def table(self) -> pa.Table:
        rsu_names = np.array([None, *self.world.rsus.ids], dtype=object)           # index: rsu + 1
        cols = {name: [] for name in SCHEMA.names}
        for t_s, ids, xy, rsu, dist, state in self._ticks:
            n = len(ids)
            covered = rsu >= 0
            cols["t_s"].append(np.full(n, t_s))
            cols["vehicle"].append(np.array(ids, dtype=object))
            cols["x_m"].append(xy[:, 0] if n else np.zeros(0))
            cols["y_m"].append(xy[:, 1] if n else np.zeros(0))
            cols["rsu"].append(rsu_names[rsu + 1])
            cols["distance_m"].append(pa.array(dist, mask=~covered, type=pa.float64()))
            cols["los"].append(_STATES[state.astype(int) + 1])
        arrays = {}
        for field in SCHEMA:
            parts = cols[field.name]
            if field.name == "distance_m":
                arrays[field.name] = pa.concat_arrays(parts) if parts else pa.array([], pa.float64())
            else:
                joined = np.concatenate(parts) if parts else np.zeros(0, dtype=object)
                arrays[field.name] = pa.array(joined, type=field.type)
        return pa.Table.from_pydict(arrays, schema=SCHEMA)

    def write(self, path: Path) -> Path:
        pq.write_table(self.table(), path, compression="zstd", store_schema=True)
        return path
