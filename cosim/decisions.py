"""decisions.parquet: one row per vehicle and round, the optimizer's decisions and prediction beside what
the timeline measured for that vehicle, and the prediction gap that summary.json reports."""
from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .optimizers.api import Cost, Plan
from .trace.recorder import Span

PREDICTED = tuple(f"predicted_{f.name}" for f in dataclasses.fields(Cost))
MEASURED = ("measured_latency_s", "measured_energy_j", "measured_compute_s", "measured_comm_s", "measured_server_s",
            "measured_compute_energy_j", "measured_comm_energy_j")
# decision field annotations (strings: `from __future__ import annotations`) -> Arrow types
_ARROW = {"float": pa.float64(), "Optional[float]": pa.float64(), "int": pa.int64(), "Optional[int]": pa.int64(),
          "str": pa.string(), "Optional[str]": pa.string(), "bool": pa.bool_(), "Optional[bool]": pa.bool_()}


def _status(vid: str, spans: list[Span], aggregated: set[str]) -> str:
    """completed, or the first of its spans (its own, then the server work run for it) that did not end ok."""
    if vid in aggregated:
        return "completed"
    for s in spans:
        if s.status not in ("ok", "resent"):
            return f"{s.status}:{s.cause}"
    return "not-aggregated" if spans else "not-started"


@functools.cache
def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _flat(obj) -> dict:
    """A decision's or cost's fields (all scalars): dataclasses.asdict without its deep copy, which cost
    ~9 ms a round for 100 vehicles."""
    return {name: getattr(obj, name) for name in _names(type(obj))}


def round_rows(r: int, t0: float, plan: Plan, spans: list[Span], aggregated: set[str]) -> list[dict]:
    """The rows of one round: every selected vehicle's decision, predicted cost and measured cost (its own
    spans from the plan at `t0` on, and the 'server.compute' spans run for it: its latency ends with the
    last of them). What a vehicle did before the plan (a metadata upload, its part of a scheme's prepare
    phase) is in rounds.csv, not here: the prediction does not cover it."""
    own_of: dict[str, list[Span]] = {}
    served_of: dict[str, list[Span]] = {}
    for s in spans:                       # one pass over the round's spans, not one per vehicle
        if s.t_start_s < t0:
            continue
        own_of.setdefault(s.actor, []).append(s)
        if s.kind == "server.compute":
            served_of.setdefault(s.payload, []).append(s)
    rows = []
    for vid in plan.selected:
        own, served = own_of.get(vid, []), served_of.get(vid, [])
        compute = [s for s in own if s.kind.startswith("compute.")]
        comm = [s for s in own if s.kind.startswith("tx.")]
        cost = plan.costs[vid]
        row = {"round": r, "vehicle": vid, "status": _status(vid, own + served, aggregated)}
        row.update(_flat(plan.decisions[vid]))
        row.update({f"predicted_{k}": v for k, v in _flat(cost).items()})
        row["predicted_latency_s"] = float(plan.latency_s[vid])       # from the round's start (turns included)
        row.update({
            "measured_latency_s": max(s.t_end_s for s in own + served) - t0 if own else math.nan,
            "measured_energy_j": float(sum(s.energy_j for s in own)),
            "measured_compute_s": float(sum(s.t_end_s - s.t_start_s for s in compute)),
            "measured_comm_s": float(sum(s.t_end_s - s.t_start_s for s in comm)),
            "measured_server_s": float(sum(s.t_end_s - s.t_start_s for s in served)),
            "measured_compute_energy_j": float(sum(s.energy_j for s in compute)),
            "measured_comm_energy_j": float(sum(s.energy_j for s in comm)),
        })
        rows.append(row)
    return rows


def _schema(rows: list[dict], decision_types: dict[str, str]) -> pa.Schema:
    fields = [("round", pa.int32()), ("vehicle", pa.string()), ("status", pa.string())]
    names = list(rows[0]) if rows else ["round", "vehicle", "status", *decision_types, *PREDICTED, *MEASURED]
    for name in names[3:]:
        if name in decision_types:
            fields.append((name, _ARROW.get(decision_types[name], pa.float64())))
        else:
            fields.append((name, pa.float64()))
    return pa.schema(fields)


def write_decisions(path: Path, rows: list[dict], decision_cls) -> Path:
    """decisions.parquet (zstd, no timestamps: byte-reproducible)."""
    types = {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
             for f in dataclasses.fields(decision_cls)}
    schema = _schema(rows, types)
    table = pa.Table.from_pydict({n: [r.get(n) for r in rows] for n in schema.names}, schema=schema)
    pq.write_table(table, path, compression="zstd", store_schema=True)
    return path


def prediction_gap(rows: list[dict]) -> dict:
    """Over the vehicles that completed their round: the mean relative gap (measured - predicted) / predicted
    of latency and energy, signed (the bias) and absolute."""
    done = [r for r in rows if r["status"] == "completed" and r["predicted_latency_s"] > 0
            and math.isfinite(r["predicted_latency_s"])]
    out = {"vehicles": len(done)}
    for what in ("latency_s", "energy_j"):
        gaps = [(r[f"measured_{what}"] - r[f"predicted_{what}"]) / r[f"predicted_{what}"] for r in done
                if r[f"predicted_{what}"] > 0 and math.isfinite(r[f"predicted_{what}"])]
        out[f"{what}_mean_rel_gap"] = statistics.fmean(gaps) if gaps else None
        out[f"{what}_mean_abs_rel_gap"] = statistics.fmean(abs(g) for g in gaps) if gaps else None
    return out
