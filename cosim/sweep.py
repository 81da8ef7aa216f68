"""`cosim sweep`: one scenario over a grid of settings (and seeds), a run directory each, and sweep.csv.

Every combination is validated before the first run starts, so a typo costs nothing. Runs go one after
another, each byte-identical to the same `cosim run`; or `jobs` at a time in worker processes (libsumo
allows one SUMO per process), each with `threads` PyTorch threads (default: the cores shared out); or as
Ray tasks (cosim.executors).
PyTorch's float reductions depend on its thread count, so a run is byte-identical to a `cosim run` with
as many threads; every manifest records the count.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from .errors import ScenarioError, UserError, field_error, writable_dir
from .scenario import Scenario, load_scenario, safe_load, to_dict

SWEEP_FIELDS = ("status", "rounds_completed", "sim_time_s", "final_accuracy", "final_loss", "total_energy_j",
                "total_bytes_up", "mean_round_latency_s", "dwell_predictions", "dwell_median_abs_error_s", "detail")


@dataclass(frozen=True)
class SweepRun:
    index: int
    overrides: tuple[str, ...]      # the varied settings, as --set strings
    run_dir: Path
    scenario: Scenario              # as resolved with them


def parse_vary(items: list[str]) -> list[tuple[str, list[str]]]:
    """`key=v1,v2,...` or `key=[v1, v2, ...]` (YAML) into (key, ["key=v1", ...]) per item."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UserError(f"--vary {item!r}: expected key.path=value1,value2,... or key.path=[v1, v2]")
        try:
            parsed = safe_load(raw) if raw.lstrip().startswith("[") else None
        except yaml.YAMLError:
            raise UserError(field_error("--vary", key, raw, "a YAML list such as [1, 2, 3]")) from None
        values = [json.dumps(v) for v in parsed] if isinstance(parsed, list) else [v.strip() for v in raw.split(",")]
        if not values or any(v == "" for v in values):
            raise UserError(field_error("--vary", key, raw, "a non-empty list of values"))
        if key in [k for k, _ in out]:
            raise UserError(field_error("--vary", key, raw, "each key varied once (list all its values there)"))
        out.append((key, [f"{key}={v}" for v in values]))
    return out


def _label(overrides: tuple[str, ...]) -> str:
    parts = []
    for item in overrides:
        key, _, value = item.partition("=")
        parts.append(f"{key.split('.')[-1]}={re.sub(r'[^A-Za-z0-9._+-]+', '_', value).strip('_')}")
    return "-".join(parts)[:80]


def plan_sweep(scenario: str | Path, vary: list[tuple[str, list[str]]], base: list[str], out_dir: Path) -> list[SweepRun]:
    """The runs of the grid, in order (the last --vary changes fastest); raises one line per bad run."""
    runs, errors = [], []
    for i, combo in enumerate(itertools.product(*(values for _, values in vary))):
        try:
            sc = load_scenario(scenario, base + list(combo))
        except ScenarioError as err:
            errors += [line for line in err.lines if line not in errors]
            continue
        runs.append(SweepRun(i, tuple(combo), out_dir / f"{i:03d}-{_label(tuple(combo))}", sc))
    if errors:
        varied = {k for k, _ in vary}           # load_scenario names every override --set: these came from --vary
        raise ScenarioError([("--vary" + line[len("--set"):]) if line.startswith("--set: ")
                             and line[len("--set: "):].split(" ", 1)[0] in varied else line for line in errors])
    return runs


def _metrics(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "rounds.csv", newline="") as fh:
        latencies = [float(r["latency_s"]) for r in csv.DictReader(fh)]
    with open(run_dir / "dwell.csv", newline="") as fh:
        dwell = list(csv.DictReader(fh))
    errors = [abs(float(r["predicted_s"]) - float(r["realized_s"])) for r in dwell if r["censored"] == "False"]
    errors = [e for e in errors if math.isfinite(e)]
    return {**{k: summary.get(k) for k in SWEEP_FIELDS if k in summary},
            "mean_round_latency_s": statistics.fmean(latencies) if latencies else None,
            "dwell_predictions": len(dwell),
            "dwell_median_abs_error_s": statistics.median(errors) if errors else None}


def _already_done(run: SweepRun) -> bool:
    """The run directory holds a finished run of this very scenario, on input files of the same content, by
    this version of cosim with as many PyTorch threads (its results depend on them), and every table it lists
    reads back (a run cut short by a full disk or a kill must run again)."""
    import torch

    from . import __version__
    from .fingerprint import fingerprint

    try:
        manifest = json.loads((run.run_dir / "manifest.json").read_text())
        summary = json.loads((run.run_dir / "summary.json").read_text())
        if not (manifest.get("scenario") == to_dict(run.scenario) and manifest["versions"]["cosim"] == __version__
                and manifest.get("torch_threads") == torch.get_num_threads()
                and summary.get("status") in ("completed", "duration-reached", "mobility-failed")
                and manifest.get("inputs") == fingerprint(run.scenario)):
            return False
        return all(_readable(run.run_dir / name) for name in manifest["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _readable(path: Path) -> bool:
    """A table or JSON file of a run reads back whole (Parquet: its footer; CSV: every row; JSON: parses)."""
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".csv":
            with open(path, newline="") as fh:
                rows = list(csv.reader(fh))
            return bool(rows) and all(len(r) == len(rows[0]) for r in rows)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            return path.is_file()
    except Exception:               # noqa: BLE001 - any reader failure means: not readable, run it again
        return False
    return True


def execute(runs: list[SweepRun], scenario: str | Path, base: list[str], resume: bool = False, jobs: int = 1,
            threads: Optional[int] = None, on_done: Optional[Callable[[SweepRun, dict, int, int], None]] = None,
            metrics: Callable[[Path], dict] = None, executor=None) -> dict[int, dict]:
    """Run `runs` on `executor` (cosim.executors; default: the pool of `jobs` spawned processes, serial for one)
    with `threads` PyTorch threads each; with `resume`, keep those whose directory already holds them,
    finished, whatever the executor. Returns each run's row (its `metrics(run_dir)`, or status and detail when
    it failed on its inputs), by index; `on_done(run, row, finished, total)` is called as each ends. A failed
    run's traceback is written beside its directory (NAME.traceback.txt)."""
    from .executors import PoolExecutor, write_traceback

    metrics = metrics or _metrics
    executor = executor if executor is not None else PoolExecutor(jobs)
    if threads is None:
        threads = executor.default_threads()
    rows: dict[int, dict] = {}

    def finished(r: SweepRun, row: dict) -> None:
        if not row.get("kept"):
            write_traceback(r.run_dir, row.get("traceback"))
        if "status" in row and not (r.run_dir / "summary.json").is_file():
            rows[r.index] = {k: v for k, v in row.items() if k != "traceback"}
        else:
            rows[r.index] = {**metrics(r.run_dir), **({"kept": True} if row.get("kept") else {})}
        if on_done:
            on_done(r, rows[r.index], len(rows), len(runs))

    import torch

    before = torch.get_num_threads()
    if threads is not None:             # here too: _already_done compares with the runs' thread count
        torch.set_num_threads(threads)
    try:
        todo = []
        for r in runs:
            if resume and _already_done(r):
                finished(r, {"kept": True})
            else:
                todo.append(r)
        executor.run(todo, str(scenario), base, threads, finished, resume)
    finally:
        torch.set_num_threads(before)
    return rows


def run_sweep(scenario: str | Path, vary: list[tuple[str, list[str]]], base: list[str], out_dir: str | Path,
              on_done: Optional[Callable[[SweepRun, dict, int, int], None]] = None, resume: bool = False,
              jobs: int = 1, threads: Optional[int] = None, executor=None) -> Path:
    """Run every combination; write out_dir/<index>-<label>/ per run and out_dir/sweep.csv; return its path.
    With `resume`, a run directory that already holds this run, finished, is kept instead of run again.
    `jobs` > 1 runs that many at once in spawned processes, or `executor` (cosim.executors: serial, pool, ray)
    runs them; `threads` sets PyTorch's thread count per run (default: this process's for one job, the cores
    shared out for more, a Ray run's CPUs). `on_done(run, row, finished, total)` is called as each run
    finishes."""
    out_dir = Path(out_dir)
    runs = plan_sweep(scenario, vary, base, out_dir)
    writable_dir(out_dir, "cosim sweep")
    rows = execute(runs, scenario, base, resume, jobs, threads, on_done, executor=executor)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "sweep.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["run", *(k for k, _ in vary), *SWEEP_FIELDS])
        for r in runs:
            row = rows[r.index]
            w.writerow([r.run_dir.name, *(o.partition("=")[2] for o in r.overrides), *(row.get(f) for f in SWEEP_FIELDS)])
    return path
