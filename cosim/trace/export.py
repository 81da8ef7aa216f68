"""Trace exporters: Parquet (pyarrow), CSV, and Chrome trace-event JSON that opens in Perfetto."""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .recorder import COUNTER_FIELDS, INSTANT_FIELDS, PACKET_FIELDS, SPAN_FIELDS, Trace

_TYPES = {
    "t_start_s": pa.float64(), "t_end_s": pa.float64(), "t_s": pa.float64(), "round": pa.int32(),
    "actor": pa.string(), "kind": pa.string(), "payload": pa.string(), "bytes": pa.int64(),
    "packets": pa.int64(), "retransmissions": pa.int64(), "energy_j": pa.float64(), "status": pa.string(),
    "cause": pa.string(), "detail": pa.string(), "name": pa.string(), "value": pa.float64(),
    "transfer": pa.int64(), "seq": pa.int64(), "attempts": pa.int64(),
}


def schema(fields: tuple[str, ...]) -> pa.Schema:
    return pa.schema([(f, _TYPES[f]) for f in fields])


def to_table(rows: list, fields: tuple[str, ...]) -> pa.Table:
    columns = {f: [r[i] for r in rows] for i, f in enumerate(fields)}
    return pa.Table.from_pydict(columns, schema=schema(fields))


def _tables(trace: Trace) -> dict[str, pa.Table]:
    out = {
        "spans": to_table(trace.spans, SPAN_FIELDS),
        "instants": to_table(trace.instants, INSTANT_FIELDS),
        "counters": to_table(trace.counters, COUNTER_FIELDS),
    }
    if trace.wants_packets:
        out["packets"] = to_table(trace.packets, PACKET_FIELDS)
    return out


def write_parquet(trace: Trace, run_dir: Path) -> list[Path]:
    """spans/instants/counters(/packets).parquet; written without timestamps, so byte-reproducible."""
    paths = []
    for name, table in _tables(trace).items():
        path = run_dir / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd", store_schema=True)
        paths.append(path)
    return paths


def write_csv(trace: Trace, run_dir: Path) -> list[Path]:
    paths = []
    for name, table in _tables(trace).items():
        path = run_dir / f"{name}.csv"
        write_rows_csv(path, table.column_names, zip(*(c.to_pylist() for c in table.columns)))
        paths.append(path)
    return paths


def write_rows_csv(path: Path, header, rows) -> None:
    """CSV with repr-exact floats (so reruns are byte-identical)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([repr(float(v)) if isinstance(v, float) else v for v in row])


def finite(obj):
    """`obj` with every NaN or infinite float replaced by None (JSON has no such numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def strict_dumps(obj, **kwargs) -> str:
    """json.dumps that writes strict JSON: NaN and infinities become null (strict readers, Perfetto among
    them, reject the NaN that json.dumps writes by default). The common case, all finite, costs one pass."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:
        return json.dumps(finite(obj), allow_nan=False, **kwargs)


def natural_key(name: str) -> tuple:
    """Sort key that puts "v2" before "v10" (digit runs compared as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part)


def chrome_trace(trace: Trace) -> dict:
    """Chrome trace-event format (JSON object form): one thread track per actor, times in us.

    Spans are complete events ("X"), instants "i", counters "C"; tracks sort naturally (v2 before v10,
    thread_sort_index). Spec: Trace Event Format (Google).
    """
    actors = sorted({s.actor for s in trace.spans} | {i.actor for i in trace.instants}
                    | {c.actor for c in trace.counters}, key=natural_key)
    tid = {a: n + 1 for n, a in enumerate(actors)}
    events: list[dict] = [{"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": "cosim"}}]
    for a in actors:
        events.append({"ph": "M", "pid": 1, "tid": tid[a], "name": "thread_name", "args": {"name": a}})
        events.append({"ph": "M", "pid": 1, "tid": tid[a], "name": "thread_sort_index", "args": {"sort_index": tid[a]}})
    for s in trace.spans:
        events.append({
            "ph": "X", "pid": 1, "tid": tid[s.actor], "name": s.kind, "cat": s.payload or s.kind,
            "ts": s.t_start_s * 1e6, "dur": (s.t_end_s - s.t_start_s) * 1e6,
            "args": {"round": s.round, "bytes": s.bytes, "packets": s.packets,
                     "retransmissions": s.retransmissions, "energy_j": s.energy_j,
                     "status": s.status, "cause": s.cause},
        })
    for i in trace.instants:
        events.append({"ph": "i", "s": "t", "pid": 1, "tid": tid[i.actor], "name": i.kind,
                       "ts": i.t_s * 1e6, "args": {"round": i.round, "detail": i.detail}})
    for c in trace.counters:
        events.append({"ph": "C", "pid": 1, "tid": tid[c.actor], "name": f"{c.actor}.{c.name}",
                       "ts": c.t_s * 1e6, "args": {c.name: c.value}})
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_chrome_trace(trace: Trace, path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        # dumps, not dump: json.dump streams through the pure-Python encoder, dumps uses the C one (~5x)
        fh.write(strict_dumps(chrome_trace(trace), separators=(",", ":")))
    return path
