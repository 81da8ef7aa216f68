"""The README's ST-SFLora tables, from a `cosim compare` and a `cosim sweep` of scenarios/st_sflora_vit.yaml.

    python tools/st_sflora_tables.py COMPARE_DIR ENERGY_SWEEP

Prints the lecture's comparison table (device memory, model / LoRA / token traffic, accuracy) from the
compare's runs, and the convergence under the sweep's energy limits (protocol.energy_budget_j) beside
ST-SFLora-Full, with the token counts the optimizer chose.
"""
from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

import pyarrow.parquet as pq

METHODS = ("local_lora", "fed_lora", "split_lora", "sflora", "st_sflora_full", "st_sflora_full_budget", "st_sflora")
MB = 1e6


def _rows(run: Path) -> list[dict]:
    with open(run / "rounds.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _ms(values: list[float], digits: int = 3) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {sd:.{digits}f}"


def traffic(run: Path) -> dict[str, float]:
    """Bytes on the air over the run by what they carried (spans.parquet payloads), in MB."""
    spans = pq.read_table(run / "spans.parquet", columns=["kind", "payload", "bytes"]).to_pylist()
    out: dict[str, float] = {}
    for s in spans:
        if s["kind"] in ("tx.ul", "tx.dl"):
            out[s["payload"]] = out.get(s["payload"], 0.0) + s["bytes"] / MB
    return out


def comparison(compare: Path) -> None:
    print("| method | device memory [MB] | model [MB] | LoRA [MB] | tokens / activations up [MB] | gradients down "
          "[MB] | importance [MB] | final accuracy | mean of the last 5 rounds | round latency [s] |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in METHODS:
        runs = sorted(compare.glob(f"{m}-seed*"))
        if not runs:
            continue
        rows = [_rows(r) for r in runs]
        tr = [traffic(r) for r in runs]
        mem = statistics.fmean(float(x[0]["device_memory_bytes"]) for x in rows) / MB

        def mb(*keys):
            return f"{statistics.fmean(sum(t.get(k, 0.0) for k in keys) for t in tr):.1f}"

        final = [float(x[-1]["accuracy"]) for x in rows]
        tail = [statistics.fmean(float(r["accuracy"]) for r in x[-5:]) for x in rows]
        lat = [statistics.fmean(float(r["latency_s"]) for r in x) for x in rows]
        print(f"| {m} | {mem:.2f} | {mb('model')} | {mb('lora')} | {mb('tokens', 'activations')} | {mb('gradients')} | "
              f"{float(mb('importance')):.3f} | {_ms(final)} | {_ms(tail)} | {_ms(lat, 3)} |")


def convergence(compare: Path, sweep: Path, every: int = 5) -> None:
    with open(sweep / "sweep.csv", newline="") as fh:
        runs = list(csv.DictReader(fh))
    groups: dict[str, list[Path]] = {}
    for r in runs:
        groups.setdefault(f"E_max {float(r['protocol.energy_budget_j']) * 1e3:g} mJ", []).append(sweep / r["run"])
    groups["full (K = N), no budget"] = sorted(compare.glob("st_sflora_full-seed*"))
    curves = {g: [_rows(d) for d in ds] for g, ds in groups.items()}
    n = min(len(c) for cs in curves.values() for c in cs)
    names = list(curves)
    print("| round | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for r in [*range(0, n, every), n - 1] if (n - 1) % every else range(0, n, every):
        print(f"| {r + 1} | " + " | ".join(_ms([float(c[r]["accuracy"]) for c in curves[g]]) for g in names) + " |")
    print("| mean K | " + " | ".join(
        f"{statistics.fmean(float(r.get('tokens_mean') or 64) for c in curves[g] for r in c):.1f}" for g in names) + " |")
    print("| tokens up [MB] | " + " | ".join(
        f"{statistics.fmean(traffic(d).get('tokens', 0.0) for d in groups[g]):.1f}" for g in names) + " |")
    print("| efficiency [1/s] | " + " | ".join(
        f"{statistics.fmean(float(r['efficiency']) for c in curves[g] for r in c if r.get('efficiency')):.1f}"
        if any(r.get("efficiency") for c in curves[g] for r in c) else "-" for g in names) + " |")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    compare, sweep = map(Path, sys.argv[1:])
    comparison(compare)
    print("\nAccuracy per round (through the split with the round's median K) under three energy limits:\n")
    convergence(compare, sweep)


if __name__ == "__main__":
    main()
