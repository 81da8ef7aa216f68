"""`cosim calibrate quant`: the accuracy curve O(q) = a (1 - exp(-b q)) + c of a split scenario, measured.

The scenario's model is trained at each activation bit width q (the scheme's own training, the baseline
allocation, every vehicle at q bits: `protocol.optimizer=baseline`, `protocol.activation_bits=q`), over
seeds; a run's accuracy is its mean test accuracy over its last `tail` rounds (less noisy than the last
one). scipy's curve_fit fits the curve to the means (SCHEMES.md "SFLAM"); the fit and its data points go
to a small JSON file a scenario references as protocol.accuracy_model_file, with calibrate.csv and a plot
in the output folder.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import ScenarioError, UserError, field_error, writable_dir
from .optimizers.sflam_model import AccuracyCurve
from .protocols.sflam import CALIBRATION_FORMAT
from .scenario import load_scenario
from .sweep import SweepRun, execute

CSV_FIELDS = ("bits", "seed", "status", "accuracy", "final_accuracy")


@dataclass(frozen=True)
class Calibration:
    a: float
    b: float
    c: float
    points: list[dict]              # per bit width: bits, mean accuracy, the runs' accuracies
    file: Path


def curve(q, a: float, b: float, c: float):
    """O(q) = a (1 - exp(-b q)) + c, in curve_fit's form."""
    return AccuracyCurve(a, b, c)(q)


def fit_curve(bits: list[int], accuracy: list[float]) -> tuple[float, float, float]:
    """Least-squares a, b, c (a >= 0, b > 0) by scipy.optimize.curve_fit; raises UserError on too few points."""
    import warnings

    from scipy.optimize import OptimizeWarning, curve_fit

    q, acc = np.asarray(bits, dtype=float), np.asarray(accuracy, dtype=float)
    if len(set(bits)) < 3:
        raise UserError(field_error("cosim calibrate quant", "--bits", ",".join(map(str, bits)),
                                    "at least 3 distinct bit widths (the curve has 3 parameters)"))
    top, low = float(acc.max()), float(acc.min())
    p0 = (max(top - low, 1e-3), 0.5, low)
    with warnings.catch_warnings():     # 3 points fit exactly: no covariance, which is not used here
        warnings.simplefilter("ignore", OptimizeWarning)
        (a, b, c), _ = curve_fit(curve, q, acc, p0=p0, bounds=([0.0, 1e-6, -10.0], [10.0, 50.0, 1.0]),
                                 maxfev=20000)
    return float(a), float(b), float(c)


def _tail_accuracy(tail: int) -> Callable[[Path], dict]:
    def metrics(run_dir: Path) -> dict:
        summary = json.loads((run_dir / "summary.json").read_text())
        with open(run_dir / "rounds.csv", newline="") as fh:
            acc = [float(r["accuracy"]) for r in csv.DictReader(fh)]
        last = acc[-tail:]
        return {"status": summary["status"], "final_accuracy": summary.get("final_accuracy"),
                "accuracy": statistics.fmean(last) if last else None}
    return metrics


def run_calibration(scenario: str | Path, bits: list[int], seeds: int, base: list[str], out_dir: Optional[str | Path],
                    file: Optional[str | Path] = None, tail: int = 5, jobs: int = 1, threads: Optional[int] = None,
                    resume: bool = False, on_done: Optional[Callable] = None, executor=None) -> Calibration:
    """Train at each of `bits` over `seeds` seeds; fit; write the calibration file (default: next to the
    scenario, <stem>.quant.json), out_dir/calibrate.csv and out_dir/calibrate.png."""
    where = "cosim calibrate quant"
    sc0 = load_scenario(scenario, base)
    if not hasattr(sc0.protocol, "activation_bits"):
        raise UserError(field_error(where, "protocol.scheme", sc0.protocol.scheme,
                                    "a split scheme (its activations are what is quantized)"))
    bad = [q for q in bits if not (1 <= q <= 16 or q == 32)]
    if bad or not bits:
        raise UserError(field_error(where, "--bits", ",".join(map(str, bits)), "bit widths in 1..16 or 32"))
    if len(set(bits)) < 3:
        raise UserError(field_error(where, "--bits", ",".join(map(str, bits)),
                                    "at least 3 distinct bit widths (the curve has 3 parameters)"))
    if tail < 1 or seeds < 1:
        raise UserError(field_error(where, "--tail" if tail < 1 else "--seeds", tail if tail < 1 else seeds, ">= 1"))
    out = Path(out_dir) if out_dir else Path("runs") / f"{sc0.name}-calibrate"
    target = Path(file) if file else Path(scenario).with_suffix(".quant.json")
    runs, keys, errors = [], [], []
    for q in bits:
        for seed in range(sc0.seed, sc0.seed + seeds):
            combo = ("protocol.optimizer=baseline", f"protocol.activation_bits={q}", f"seed={seed}")
            try:
                sc = load_scenario(scenario, base + list(combo))
            except ScenarioError as err:
                errors += [line for line in err.lines if line not in errors]
                continue
            runs.append(SweepRun(len(runs), combo, out / f"bits{q}-seed{seed}", sc))
            keys.append((q, seed))
    if errors:
        raise ScenarioError(errors)
    writable_dir(out, where)
    rows = execute(runs, scenario, base, resume, jobs, threads, on_done, metrics=_tail_accuracy(tail),
                   executor=executor)
    out.mkdir(parents=True, exist_ok=True)
    table = [{"bits": q, "seed": s, **{k: rows[r.index].get(k) for k in CSV_FIELDS[2:]}} for r, (q, s) in zip(runs, keys)]
    with open(out / "calibrate.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(CSV_FIELDS)
        for row in table:
            w.writerow([repr(v) if isinstance(v, float) else v for v in (row[f] for f in CSV_FIELDS)])
    failed = [f"bits {row['bits']} seed {row['seed']}: {row['status']}" for row in table
              if row["status"] not in ("completed", "duration-reached") or row["accuracy"] is None]
    if failed:
        raise UserError(f"{where}: runs that did not complete (see {out}): " + "; ".join(failed))
    points = []
    for q in dict.fromkeys(bits):
        accs = [row["accuracy"] for row in table if row["bits"] == q]
        points.append({"bits": q, "accuracy": statistics.fmean(accs), "accuracies": accs})
    a, b, c = fit_curve([p["bits"] for p in points], [p["accuracy"] for p in points])
    data = {"format": CALIBRATION_FORMAT, "curve": "O(q) = a (1 - exp(-b q)) + c", "a": a, "b": b, "c": c,
            "scenario": sc0.name, "rounds": sc0.protocol.rounds, "seeds": seeds, "tail_rounds": tail,
            "rmse": math.sqrt(statistics.fmean((p["accuracy"] - float(curve(p["bits"], a, b, c))) ** 2 for p in points)),
            "points": points}
    target.write_text(json.dumps(data, indent=1) + "\n")
    _plot(points, (a, b, c), out / "calibrate.png")
    return Calibration(a, b, c, points, target)


def _plot(points: list[dict], abc: tuple[float, float, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for p in points:
        ax.scatter([p["bits"]] * len(p["accuracies"]), p["accuracies"], color="tab:gray", s=10)
    ax.scatter([p["bits"] for p in points], [p["accuracy"] for p in points], color="tab:red", label="mean", zorder=3)
    q = np.linspace(1, max(p["bits"] for p in points), 200)
    a, b, c = abc
    ax.plot(q, curve(q, a, b, c), color="tab:red", label=f"{a:.3f}(1-exp(-{b:.3f}q))+{c:.3f}")
    ax.set_xlabel("activation bits q")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
