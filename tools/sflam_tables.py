"""The README's SFLAM tables, from a round of scenarios/sflam_vit.yaml and a `cosim compare` of it.

    python tools/sflam_tables.py [COMPARE_DIR]

Re-solves one real round snapshot (round 5 of the scenario, written by output.snapshots) with the
optimizer at other bandwidths and T_max (bits chosen, objective), prints its per-iteration convergence,
and, given a compare directory, each method's mean objective sum O(q)/E per round (rounds.csv).
"""
from __future__ import annotations

import csv
import dataclasses
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosim.optimizers.api import snapshot_from_json  # noqa: E402
from cosim.optimizers.sflam import solve  # noqa: E402
from cosim.run import run_scenario  # noqa: E402
from cosim.scenario import load_scenario  # noqa: E402


def round_snapshot(r: int = 5):
    with tempfile.TemporaryDirectory() as tmp:
        sc = load_scenario(ROOT / "scenarios" / "sflam_vit.yaml", [f"protocol.rounds={r + 1}", "output.snapshots=true"])
        run_scenario(sc, Path(tmp) / "run")
        return snapshot_from_json((Path(tmp) / "run" / "snapshots" / f"round-{r:04d}.json").read_text())


def _row(snap) -> tuple:
    plan, hist = solve(snap)
    bits = [plan.decisions[v].activation_bits for v in plan.selected]
    return (len(plan.selected), statistics.fmean(bits) if bits else float("nan"), min(bits, default=0),
            max(bits, default=0), hist[-1].objective)


def main() -> None:
    torch.set_num_threads(1)
    snap = round_snapshot()
    print("| total bandwidth [MHz] | vehicles served | mean bits | min | max | objective [1/J] |\n|---|---|---|---|---|---|")
    for mhz in (10, 20, 50, 100, 200):
        radio = dataclasses.replace(snap.radio, uplink_bandwidth_hz=mhz * 1e6, downlink_bandwidth_hz=mhz * 1e6)
        n, mean, lo, hi, obj = _row(dataclasses.replace(snap, radio=radio))
        print(f"| {mhz} | {n} | {mean:.2f} | {lo} | {hi} | {obj:.1f} |")
    print("\n| T_max [s] | vehicles served | mean bits | min | max | objective [1/J] |\n|---|---|---|---|---|---|")
    for t_max in (0.03, 0.05, 0.1, 0.3, 1.0):
        n, mean, lo, hi, obj = _row(dataclasses.replace(snap, settings={**snap.settings, "max_latency_s": t_max}))
        print(f"| {t_max} | {n} | {mean:.2f} | {lo} | {hi} | {obj:.1f} |")
    print("\n| iteration | objective [1/J] | mean bits | mean power [W] | SCA iterations | assigned |\n|---|---|---|---|---|---|")
    for i, it in enumerate(solve(snap)[1], 1):
        print(f"| {i} | {it.objective:.3f} | {it.bits_mean:.2f} | {it.power_mean_w:.4f} | {it.sca_iterations} | {it.assigned} |")
    if len(sys.argv) > 1:
        out = Path(sys.argv[1])
        per: dict[str, list[float]] = {}
        for run in sorted(out.iterdir()):
            if (run / "rounds.csv").is_file():
                with open(run / "rounds.csv", newline="") as fh:
                    vals = [float(r["objective"]) for r in csv.DictReader(fh) if r.get("objective")]
                per.setdefault(run.name.rsplit("-seed", 1)[0], []).append(statistics.fmean(vals))
        print("\n| method | mean objective per round [1/J] (seeds) |\n|---|---|")
        for m, v in per.items():
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            print(f"| {m} | {statistics.fmean(v):.1f} ± {sd:.1f} |")


if __name__ == "__main__":
    main()
