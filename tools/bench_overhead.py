"""Co-simulator overhead: co-simulated FedAvg against a bare PyTorch loop doing the same work.

The same FedAvg training (a) through the co-simulator with mobility and channel on and (b) as a bare
PyTorch loop doing the identical numeric work, in one invocation.

The bare loop replays who trained and who was averaged in each co-simulated round, with the same
seeds, so both end with the same model; the ratio of wall times is what the simulation costs.
Last line: {"bench": "overhead", "value": <cosim / bare wall time>, "unit": "x bare PyTorch", ...}
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from benchlib import run_cosim  # noqa: E402
from cosim.rng import RngStreams  # noqa: E402
from cosim.scenario import load_scenario  # noqa: E402
from cosim.task import build_task  # noqa: E402
from learning.fl import aggregate, evaluate, local_train  # noqa: E402


def run_bare(sc, rounds_log):
    """The numeric work alone: data, partition, init, then per round local SGD, average, evaluate."""
    t0 = time.perf_counter()
    streams = RngStreams(sc.seed)
    task = build_task(sc.learning, streams)
    cfg = task.config
    state, acc = task.global_state, None
    for row in rounds_log:
        r = row["round"]
        results = {c: local_train(task.model, state, task.client_data(c), epochs=cfg.local_epochs,
                                  batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                                  seed=streams.seed_for("local-train", r, c))
                   for c in row["clients_trained"]}
        agg = [(results[c].state, results[c].num_samples) for c in row["clients_aggregated"]]
        if agg:
            state = aggregate(agg)
        acc, _ = evaluate(task.model, state, task.test)
    return time.perf_counter() - t0, acc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(REPO / "scenarios" / "quickstart.yaml"))
    p.add_argument("--vehicles", type=int, default=10)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    sc = load_scenario(args.scenario, [f"protocol.rounds={args.rounds}",
                                                 f"protocol.vehicles_per_round={args.vehicles}"])
    torch.set_num_threads(torch.get_num_threads())
    run_cosim(sc)                      # warm-up: imports, allocator, first-call costs
    cosim_s, bare_s = [], []
    for _ in range(args.repeats):                # interleaved, best of n for each side
        t, result = run_cosim(sc)
        cosim_s.append(t)
        t, bare_acc = run_bare(sc, result.rounds)
        bare_s.append(t)
    cosim_acc = result.rounds[-1]["accuracy"]
    ratio = min(cosim_s) / min(bare_s)
    print(f"co-simulator: {min(cosim_s):.3f} s wall (runs: {', '.join(f'{t:.3f}' for t in cosim_s)}), "
          f"final accuracy {cosim_acc:.4f}, {result.summary['sim_time_s']:.1f} s simulated")
    print(f"bare PyTorch: {min(bare_s):.3f} s wall (runs: {', '.join(f'{t:.3f}' for t in bare_s)}), "
          f"final accuracy {bare_acc:.4f}")
    print(json.dumps({"bench": "overhead", "value": round(ratio, 4), "unit": "x bare PyTorch",
                      "cosim_wall_s": round(min(cosim_s), 4), "bare_wall_s": round(min(bare_s), 4),
                      "cosim_accuracy": cosim_acc, "bare_accuracy": bare_acc,
                      "accuracy_equal": cosim_acc == bare_acc, "vehicles_per_round": args.vehicles,
                      "rounds": args.rounds, "target": 1.25}))


if __name__ == "__main__":
    main()
