"""Benchmark: every registered optimizer's solve time on random 100-vehicle round snapshots.

Each optimizer solves the same seeded instances (cosim.optimizers.instances: the seed papers' channel,
CPUs of 1-2 GHz, the digits CNN profiled at every cut) of a scheme it plans for (a split scheme when it
plans for any) at that scheme's default settings, best of --repeats per instance; the baseline allocation
is the reference the others are set against. An optimizer may plan on instances of its own shape
(INSTANCES: SFLAM's vehicles share one RSU with a subchannel each). Some are also timed at other settings
(VARIANTS, e.g. ASFL under energy budgets that bind, SFLAM's assignment by LP and exactly), reported beside
the headline. Every plan is checked against its constraints. The last line printed is one JSON object:
value = the slowest optimizer's median solve time [ms] at the defaults.

    python tools/bench_optim.py [--vehicles 100] [--instances 20] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from cosim import registry
from cosim.optimizers.constraints import violations
from cosim.optimizers.instances import random_snapshot

TARGET_MS = 20.0
# settings an optimizer is also timed at (beside its scheme's defaults), reported as details
VARIANTS = {"asfl": {"budget_0.05J": {"energy_budget_j": 0.05}, "budget_0.02J": {"energy_budget_j": 0.02}},
            "sflam": {"lp": {"assignment_solver": "lp"}, "exact": {"assignment_solver": "exact"}},
            "genfv": {"budget_0.05J": {"energy_budget_j": 0.05}, "budget_0.02J": {"energy_budget_j": 0.02}},
            "st_sflora": {"budget_0.05J": {"energy_budget_j": 0.05}, "budget_0.02J": {"energy_budget_j": 0.02},
                          "full": {"token_selection": "full"}}}
# random_snapshot arguments an optimizer's instances take (SFLAM: one RSU, a subchannel per vehicle)
INSTANCES = {"sflam": lambda vehicles: {"rsus": 1, "subchannels": vehicles}}


def _scheme_for(entry) -> str:
    return entry.schemes[0] if entry.schemes else "sfl_v1"


def bench(entry, vehicles: int, instances: int, repeats: int, settings: dict | None = None) -> dict:
    """Median (and 90th percentile) over instances of the best-of-repeats solve time, in ms."""
    scheme = _scheme_for(entry)
    best_ms, broken = [], 0
    for seed in range(instances):
        shape = INSTANCES[entry.name](vehicles) if entry.name in INSTANCES else {}
        snap = random_snapshot(vehicles, seed, scheme, settings=settings, **shape)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            plan = entry.solve(snap)
            times.append((time.perf_counter() - t0) * 1e3)
        best_ms.append(min(times))
        broken += bool(violations(snap, plan))
    best_ms.sort()
    return {"scheme": scheme, "median_ms": statistics.median(best_ms),
            "p90_ms": best_ms[min(len(best_ms) - 1, int(0.9 * len(best_ms)))], "plans_violating": broken}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vehicles", type=int, default=100)
    p.add_argument("--instances", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    results = {name: bench(entry, args.vehicles, args.instances, args.repeats)
               for name, entry in registry.optimizers().items() if not name.startswith("test_")}
    variants = {f"{name}/{label}": bench(registry.optimizer(name), args.vehicles, args.instances, args.repeats, settings)
                for name, table in VARIANTS.items() if name in results for label, settings in table.items()}
    for name, r in {**results, **variants}.items():
        print(f"{name:>22} on {r['scheme']}: median {r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f} ms, "
              f"{r['plans_violating']} plans violating a constraint")
    slowest = max(results, key=lambda n: results[n]["median_ms"])
    ref = results["baseline"]["median_ms"]
    print(json.dumps({
        "bench": "optim", "value": round(results[slowest]["median_ms"], 4), "unit": "ms median solve (slowest)",
        "slowest": slowest, "per_optimizer_ms": {n: round(r["median_ms"], 4) for n, r in results.items()},
        "per_optimizer_x_baseline": {n: round(r["median_ms"] / ref, 2) for n, r in results.items()},
        "variants_ms": {n: round(r["median_ms"], 4) for n, r in variants.items()},
        "vehicles": args.vehicles, "instances": args.instances,
        "plans_violating": sum(r["plans_violating"] for r in (*results.values(), *variants.values())),
        "target_ms": TARGET_MS}))


if __name__ == "__main__":
    main()
