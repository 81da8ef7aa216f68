"""`cosim compare`: a scheme against the baselines its module declares (named sets of overrides), over
seeds, as a sweep: a run directory per method and seed, compare.csv, compare.md (means and spreads) and
compare.png. This is how the lecture's comparisons are made from runs."""
from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import registry
from .errors import ScenarioError, UserError, field_error, writable_dir
from .scenario import load_scenario
from .sweep import SweepRun, execute

COMPARE_FIELDS = ("method", "seed", "status", "final_accuracy", "mean_round_latency_s", "mean_round_energy_j",
                  "bytes_up", "bytes_down")
_NUMERIC = COMPARE_FIELDS[3:]
# compare_breakdown.csv: per round, from decisions.parquet, the vehicles' mean computation, communication and
# server time, and the sum of their computation and communication energy
BREAKDOWN_FIELDS = ("method", "seed", "mean_round_latency_s", "mean_vehicle_compute_s", "mean_vehicle_comm_s",
                    "mean_vehicle_server_s", "round_compute_energy_j", "round_comm_energy_j", "mean_round_energy_j",
                    "median_latency_prediction_gap")


@dataclass(frozen=True)
class CompareResult:
    csv_path: Path
    table_md: str
    statuses: list[str]


def methods(scenario: str | Path, base: list[str], only: Optional[list[str]] = None) -> dict[str, list[str]]:
    """The scheme's own run (no extra overrides) first, then its declared baselines (all, or `only`)."""
    sc = load_scenario(scenario, base)
    entry = registry.scheme(sc.protocol.scheme)
    declared = entry.baselines(sc)
    if only is not None:
        unknown = [b for b in only if b not in declared]
        if unknown:
            raise UserError(field_error("cosim compare", "--baselines", ",".join(unknown),
                                        f"baselines scheme {entry.name!r} declares: {', '.join(declared) or 'none'}"))
        declared = {b: declared[b] for b in only}
    return {entry.name: [], **declared}


def _metrics(run_dir: Path) -> dict:
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "rounds.csv", newline="") as fh:
        rounds = list(csv.DictReader(fh))

    def mean(key):
        values = [float(r[key]) for r in rounds]
        return statistics.fmean(values) if values else None

    return {"status": summary["status"], "detail": summary.get("detail", ""),
            "final_accuracy": summary.get("final_accuracy"), "mean_round_latency_s": mean("latency_s"),
            "mean_round_energy_j": mean("energy_j"), "bytes_up": sum(int(r["bytes_up"]) for r in rounds),
            "bytes_down": sum(int(r["bytes_down"]) for r in rounds), **_breakdown(run_dir)}


def _breakdown(run_dir: Path) -> dict:
    """Per round, the vehicles' mean computation / communication / server time and their summed energies
    (decisions.parquet), averaged over rounds; the median relative latency prediction gap of the vehicles."""
    import pyarrow.parquet as pq

    path = run_dir / "decisions.parquet"
    if not path.is_file():
        return {}
    rows = pq.read_table(path).to_pylist()
    by_round: dict[int, list[dict]] = {}
    for r in rows:
        by_round.setdefault(r["round"], []).append(r)

    def per_round(fn):
        vals = [fn(rs) for rs in by_round.values()]
        return statistics.fmean(vals) if vals else None

    gaps = [(r["measured_latency_s"] - r["predicted_latency_s"]) / r["predicted_latency_s"] for r in rows
            if r["status"] == "completed" and r["predicted_latency_s"] > 0]
    return {"mean_vehicle_compute_s": per_round(lambda rs: statistics.fmean(r["measured_compute_s"] for r in rs)),
            "mean_vehicle_comm_s": per_round(lambda rs: statistics.fmean(r["measured_comm_s"] for r in rs)),
            "mean_vehicle_server_s": per_round(lambda rs: statistics.fmean(r["measured_server_s"] for r in rs)),
            "round_compute_energy_j": per_round(lambda rs: sum(r["measured_compute_energy_j"] for r in rs)),
            "round_comm_energy_j": per_round(lambda rs: sum(r["measured_comm_energy_j"] for r in rs)),
            "median_latency_prediction_gap": statistics.median(gaps) if gaps else None}


def plan_compare(scenario: str | Path, seeds: int, base: list[str], out_dir: Path,
                 only: Optional[list[str]] = None) -> tuple[list[SweepRun], list[tuple[str, int]]]:
    """The runs (method x seed, validated first) and each one's (method, seed)."""
    first = load_scenario(scenario, base).seed
    runs, keys, errors = [], [], []
    for method, overrides in methods(scenario, base, only).items():
        for seed in range(first, first + seeds):
            combo = (*overrides, f"seed={seed}")
            try:
                sc = load_scenario(scenario, base + list(combo))
            except ScenarioError as err:
                errors += [f"{line} (baseline {method})" for line in err.lines if line not in errors]
                continue
            runs.append(SweepRun(len(runs), combo, out_dir / f"{method}-seed{seed}", sc))
            keys.append((method, seed))
    if errors:
        raise ScenarioError(errors)
    return runs, keys


def run_compare(scenario: str | Path, seeds: int, base: list[str], out_dir: Optional[str | Path] = None,
                only: Optional[list[str]] = None, on_done: Optional[Callable] = None, resume: bool = False,
                jobs: int = 1, threads: Optional[int] = None, executor=None) -> CompareResult:
    """Run every method x seed (on `executor`, cosim.executors; default the pool of `jobs`); write
    out_dir/compare.csv, compare.md and compare.png."""
    out = Path(out_dir) if out_dir else Path("runs") / f"{load_scenario(scenario, base).name}-compare"
    runs, keys = plan_compare(scenario, seeds, base, out, only)
    writable_dir(out, "cosim compare")
    rows = execute(runs, scenario, base, resume, jobs, threads, on_done, metrics=_metrics, executor=executor)
    out.mkdir(parents=True, exist_ok=True)
    table = [{"method": m, "seed": s, **{f: rows[r.index].get(f) for f in COMPARE_FIELDS[2:]}}
             for r, (m, s) in zip(runs, keys)]
    path = out / "compare.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COMPARE_FIELDS)
        for row in table:
            w.writerow([repr(v) if isinstance(v, float) else v for v in (row[f] for f in COMPARE_FIELDS)])
    with open(out / "compare_breakdown.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(BREAKDOWN_FIELDS)
        for r, (m, seed) in zip(runs, keys):
            row = {"method": m, "seed": seed, **rows[r.index]}
            w.writerow([repr(v) if isinstance(v, float) else v for v in (row.get(f) for f in BREAKDOWN_FIELDS)])
    breakdown = [{"method": m, **rows[r.index]} for r, (m, _) in zip(runs, keys)]
    md = markdown_table(table) + "\n\n" + breakdown_table(breakdown)
    (out / "compare.md").write_text(md + "\n")
    _plot(table, out / "compare.png")
    return CompareResult(path, md, [row["status"] for row in table])


def _spread(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def summarize(table: list[dict]) -> dict[str, dict]:
    """Per method, in order: runs, how many completed, and (mean, standard deviation) of each figure."""
    out: dict[str, dict] = {}
    for row in table:
        out.setdefault(row["method"], {"rows": []})["rows"].append(row)
    for m, entry in out.items():
        rs = entry.pop("rows")
        entry["runs"] = len(rs)
        entry["ok"] = sum(1 for r in rs if r["status"] in ("completed", "duration-reached"))
        for f in _NUMERIC:
            entry[f] = _spread([r[f] for r in rs])
    return out


def markdown_table(table: list[dict]) -> str:
    """Means ± standard deviations over seeds, one line per method."""
    lines = ["| method | runs ok | final accuracy | round latency [s] | round energy [J] | MB up | MB down |",
             "|---|---|---|---|---|---|---|"]
    for m, e in summarize(table).items():
        def pm(key, scale=1.0, digits=3):
            mu, sd = e[key]
            return "-" if math.isnan(mu) else f"{mu * scale:.{digits}f} ± {sd * scale:.{digits}f}"
        lines.append(f"| {m} | {e['ok']}/{e['runs']} | {pm('final_accuracy')} | {pm('mean_round_latency_s')} | "
                     f"{pm('mean_round_energy_j', digits=4)} | {pm('bytes_up', 1e-6, 2)} | {pm('bytes_down', 1e-6, 2)} |")
    return "\n".join(lines)


def breakdown_table(rows: list[dict]) -> str:
    """Per method, means over seeds of the per-round latency and energy split (compare_breakdown.csv)."""
    cols = (("mean_round_latency_s", "round latency [s]", 1.0, 3), ("mean_vehicle_compute_s", "vehicle compute [s]", 1.0, 3),
            ("mean_vehicle_comm_s", "vehicle comm [s]", 1.0, 3), ("mean_vehicle_server_s", "server [s]", 1.0, 3),
            ("round_compute_energy_j", "compute energy [J]", 1.0, 4), ("round_comm_energy_j", "comm energy [J]", 1.0, 4),
            ("mean_round_energy_j", "round energy [J]", 1.0, 4), ("median_latency_prediction_gap", "prediction gap", 100.0, 2))
    lines = ["| method | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for m in methods:
        cells = []
        for key, _, scale, digits in cols:
            mu, _sd = _spread([r.get(key) for r in rows if r["method"] == m])
            cells.append("-" if math.isnan(mu) else f"{mu * scale:.{digits}f}" + ("%" if scale == 100.0 else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(table)
    names = list(summary)
    panels = (("final_accuracy", "final accuracy", 1.0), ("mean_round_latency_s", "round latency [s]", 1.0),
              ("mean_round_energy_j", "round energy [J]", 1.0), ("bytes_up", "uplink [MB]", 1e-6))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    for ax, (key, label, scale) in zip(axes, panels):
        mu = [summary[n][key][0] * scale for n in names]
        sd = [summary[n][key][1] * scale for n in names]
        ax.bar(range(len(names)), mu, yerr=sd, color=["tab:red"] + ["tab:gray"] * (len(names) - 1), capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
