"""The README's GenFV tables, from a `cosim compare` and two `cosim sweep`s of scenarios/genfv_digits.yaml.

    python tools/genfv_tables.py COMPARE_DIR ALPHA_SWEEP FEDAVG_SWEEP

ALPHA_SWEEP varies learning.partition.alpha, protocol.generator.kind and seed; FEDAVG_SWEEP alpha and seed
with protocol.augmentation=false (README, GenFV). Prints: final accuracy per alpha (GenFV with each
generator against FedAvg) with the clients' EMD per alpha; accuracy per round of GenFV's selection against
random and all selection; generated samples per round; and one real round (round 5 of seed 1, re-solved)
at other maximum powers, stage by stage.
"""
from __future__ import annotations

import csv
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosim.optimizers.api import snapshot_from_json  # noqa: E402
from cosim.optimizers.genfv import emd, label_distribution, solve  # noqa: E402
from cosim.rng import RngStreams  # noqa: E402
from cosim.run import run_scenario  # noqa: E402
from cosim.scenario import load_scenario  # noqa: E402
from cosim.task import build_task  # noqa: E402

SCENARIO = ROOT / "scenarios" / "genfv_digits.yaml"
ALPHAS = ("0.1", "0.3", "0.5", "1.0")


def _rows(run: Path) -> list[dict]:
    with open(run / "rounds.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _sweep(path: Path) -> list[dict]:
    with open(path / "sweep.csv", newline="") as fh:
        return [{**r, "dir": path / r["run"]} for r in csv.DictReader(fh)]


def _ms(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def client_emds(alpha: str, seed: int) -> list[float]:
    """Every client's EMD to the global label distribution of the clients' data, as the scenario partitions it."""
    sc = load_scenario(SCENARIO, [f"learning.partition.alpha={alpha}", f"seed={seed}"])
    task = build_task(sc.learning, RngStreams(sc.seed), sc.base_dir, sc.protocol.server_data_fraction)
    hists = [task.label_histogram(c) for c in range(sc.learning.num_clients)]
    p = label_distribution(np.sum(hists, axis=0))
    return [emd(h, p) for h in hists]


def alpha_table(alpha_sweep: Path, fedavg_sweep: Path) -> None:
    gen, fed = _sweep(alpha_sweep), _sweep(fedavg_sweep)
    print("| alpha | FedAvg | GenFV (pool) | GenFV (cvae) | clients' EMD | selected vehicles' EMD | kappa2 |")
    print("|---|---|---|---|---|---|---|")
    for a in ALPHAS:
        def acc(rows, **match):
            return [float(r["final_accuracy"]) for r in rows if r["learning.partition.alpha"] == a
                    and all(r[k] == v for k, v in match.items())]
        pool_runs = [r["dir"] for r in gen if r["learning.partition.alpha"] == a
                     and r["protocol.generator.kind"] == "pool"]
        cohort = [statistics.fmean(float(x["mean_emd"]) for x in _rows(d)) for d in pool_runs]
        kappa = [statistics.fmean(float(x["kappa2"]) for x in _rows(d)) for d in pool_runs]
        seeds = sorted({int(r["seed"]) for r in gen})
        clients = [e for s in seeds for e in client_emds(a, s)]
        print(f"| {a} | {_ms(acc(fed))} | {_ms(acc(gen, **{'protocol.generator.kind': 'pool'}))} | "
              f"{_ms(acc(gen, **{'protocol.generator.kind': 'cvae'}))} | {_ms(clients, 2)} | {_ms(cohort, 2)} | "
              f"{_ms(kappa, 3)} |")


def per_round(compare: Path, methods: tuple[str, ...], column: str, every: int = 5, digits: int = 3) -> None:
    runs = {m: sorted(compare.glob(f"{m}-seed*")) for m in methods}
    curves = {m: [[float(x[column]) for x in _rows(d)] for d in ds] for m, ds in runs.items()}
    n = min(len(c) for cs in curves.values() for c in cs)
    print("| round | " + " | ".join(methods) + " |\n|---|" + "---|" * len(methods))
    for r in [*range(0, n, every), n - 1] if (n - 1) % every else range(0, n, every):
        cells = [_ms([c[r] for c in curves[m]], digits) for m in methods]
        print(f"| {r + 1} | " + " | ".join(cells) + " |")


def round_snapshot(r: int = 5):
    with tempfile.TemporaryDirectory() as tmp:
        sc = load_scenario(SCENARIO, [f"protocol.rounds={r + 1}", "output.snapshots=true"])
        run_scenario(sc, Path(tmp) / "run")
        return snapshot_from_json((Path(tmp) / "run" / "snapshots" / f"round-{r:04d}.json").read_text())


def stages(snap) -> None:
    """max_n T_n of one round at other maximum powers: after selection (equal shares, maximum power within the
    budget), with KKT bandwidth at maximum power, and GenFV's bandwidth and SCA power together."""
    print("| p_max [W] | selected | equal shares, SCA power [s] | KKT shares, p_max [s] | GenFV: KKT + SCA [s] | b |")
    print("|---|---|---|---|---|---|")
    for p_max in (0.05, 0.1, 0.2, 0.5, 1.0):
        s = dataclasses.replace(snap, radio=dataclasses.replace(snap.radio, vehicle_tx_power_w=p_max))
        plans = [solve(dataclasses.replace(s, settings={**s.settings, **o}))
                 for o in ({"bandwidth_allocation": "equal"}, {"power_control": "max"}, {})]
        cells = " | ".join(f"{p.predicted_latency_s:.4f} ({len(p.selected)})" for p in plans)
        print(f"| {p_max} | {len(plans[2].selected)} | {cells} | {plans[2].round['b']} |")


def main() -> None:
    torch.set_num_threads(1)
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    compare, alpha_sweep, fedavg_sweep = map(Path, sys.argv[1:])
    alpha_table(alpha_sweep, fedavg_sweep)
    print("\nAccuracy per round (alpha 0.1, seeds 1-3):\n")
    per_round(compare, ("genfv", "random_selection", "all_selection", "fedavg"), "accuracy")
    print("\nSamples generated so far (GenFV's closed-form b against fixed_b):\n")
    per_round(compare, ("genfv", "fixed_b"), "generated_total", every=5, digits=0)
    print("\nOne round (round 5 of seed 1) re-solved at other maximum powers; in brackets, vehicles served:\n")
    stages(round_snapshot())


if __name__ == "__main__":
    main()
