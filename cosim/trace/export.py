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


def _names(trace: Trace) -> tuple[str, ...]:
    return ("spans", "instants", "counters", "packets") if trace.wants_packets else ("spans", "instants", "counters")


_FIELDS = {"spans": SPAN_FIELDS, "instants": INSTANT_FIELDS, "counters": COUNTER_FIELDS, "packets": PACKET_FIELDS}


def write_parquet(trace: Trace, run_dir: Path) -> list[Path]:
    """spans/instants/counters(/packets).parquet; written without timestamps, so byte-reproducible. A kind
    spilled during the run (Trace.spill) is its chunks as row groups, then the rest; the chunks are removed."""
    paths = []
    for name in _names(trace):
        path = run_dir / f"{name}.parquet"
        tail = to_table(getattr(trace, name), _FIELDS[name])
        chunks = trace.chunks.get(name, [])
        if not chunks:
            pq.write_table(tail, path, compression="zstd", store_schema=True)
        else:
            with pq.ParquetWriter(path, tail.schema, compression="zstd", store_schema=True) as writer:
                for chunk in chunks:
                    writer.write_table(pq.read_table(chunk))
                writer.write_table(tail)
        paths.append(path)
    return paths


def drop_chunks(trace: Trace) -> None:
    """Remove the spilled chunk files (once every output that reads them is written)."""
    for chunks in trace.chunks.values():
        for chunk in chunks:
            chunk.unlink(missing_ok=True)


def write_csv(trace: Trace, run_dir: Path) -> list[Path]:
    paths = []
    for name in _names(trace):
        path = run_dir / f"{name}.csv"
        write_rows_csv(path, _FIELDS[name], trace.rows(name))
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


def _chrome_events(trace: Trace):
    """The trace's events in Chrome trace-event form, in order (metadata, spans, instants, counters)."""
    actors = {s.actor for s in trace.spans}
    for name in ("instants", "counters"):
        for chunk in trace.chunks.get(name, []):
            actors.update(pq.read_table(chunk, columns=["actor"]).column("actor").to_pylist())
        actors.update(r.actor for r in getattr(trace, name))
    tid = {a: n + 1 for n, a in enumerate(sorted(actors, key=natural_key))}
    yield {"ph": "M", "pid": 1, "tid": 0, "name": "process_name", "args": {"name": "cosim"}}
    for a, n in tid.items():
        yield {"ph": "M", "pid": 1, "tid": n, "name": "thread_name", "args": {"name": a}}
        yield {"ph": "M", "pid": 1, "tid": n, "name": "thread_sort_index", "args": {"sort_index": n}}
    for s in trace.spans:
        yield {
            "ph": "X", "pid": 1, "tid": tid[s.actor], "name": s.kind, "cat": s.payload or s.kind,
            "ts": s.t_start_s * 1e6, "dur": (s.t_end_s - s.t_start_s) * 1e6,
            "args": {"round": s.round, "bytes": s.bytes, "packets": s.packets,
                     "retransmissions": s.retransmissions, "energy_j": s.energy_j,
                     "status": s.status, "cause": s.cause},
        }
    for i in trace.rows("instants"):
        yield {"ph": "i", "s": "t", "pid": 1, "tid": tid[i.actor], "name": i.kind,
               "ts": i.t_s * 1e6, "args": {"round": i.round, "detail": i.detail}}
    for c in trace.rows("counters"):
        yield {"ph": "C", "pid": 1, "tid": tid[c.actor], "name": f"{c.actor}.{c.name}",
               "ts": c.t_s * 1e6, "args": {c.name: c.value}}


def chrome_trace(trace: Trace) -> dict:
    """Chrome trace-event format (JSON object form): one thread track per actor, times in us.

    Spans are complete events ("X"), instants "i", counters "C"; tracks sort naturally (v2 before v10,
    thread_sort_index). Spec: Trace Event Format (Google).
    """
    return {"traceEvents": list(_chrome_events(trace)), "displayTimeUnit": "ms"}


_BATCH = 1 << 14        # events encoded at once: the C encoder's speed, memory bounded by the batch


def write_chrome_trace(trace: Trace, path: Path) -> Path:
    """`chrome_trace(trace)` as compact strict JSON, written in batches of events so that a long run never
    holds all of them (the same bytes as one json.dumps of the whole)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"traceEvents":[')
        batch, first = [], True
        for event in _chrome_events(trace):
            batch.append(event)
            if len(batch) == _BATCH:
                fh.write(("" if first else ",") + strict_dumps(batch, separators=(",", ":"))[1:-1])
                batch, first = [], False
        if batch:
            fh.write(("" if first else ",") + strict_dumps(batch, separators=(",", ":"))[1:-1])
        fh.write('],"displayTimeUnit":"ms"}')
    return path
