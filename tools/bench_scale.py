"""Scale: a 20 km SUMO highway with ~1,000 concurrent vehicles, 50 RSUs and 100 FedAvg learners a round.

In one invocation:
  (a) the co-simulator: SUMO (filled by an untimed-in-SUMO-terms but timed warm-up, as a user's run is),
      association and channel for every vehicle, dwell prediction and selection over the whole covered
      cohort, the plan, per-packet uplink and downlink of real model bytes, real local training;
  (b) its baseline: the project's SUMO source alone stepping the same simulated time (warm-up included)
      plus the bare PyTorch loop doing the same training (`bench_overhead.run_bare`: the same clients, the
      same seeds, the same final model).
Last line: {"bench": "scale", "value": <(a) / (b) wall>, ...}, with the co-simulator's own per-round costs
that grow with the cohort (dwell prediction, snapshot and selection over the covered vehicles, planning, start
of the learners' processes; from timings.json) in the details, per round and per vehicle; `--scaling` adds
them at a quarter and half of the traffic and learners, to show they grow linearly.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from bench_overhead import run_bare  # noqa: E402
from benchlib import run_cosim  # noqa: E402
from cosim.scenario import validate_tree  # noqa: E402
from mobility.builders import build_highway  # noqa: E402
from mobility.sumo_live import SumoLive, _import_libsumo  # noqa: E402


def scenario(cfg: Path, rounds: int, learners: int, warmup_s: float, worker: bool, local_epochs: int = 1):
    tree = {"name": "bench-scale", "seed": 1, "duration_s": 3600,
            "mobility": {"source": "sumo", "step_s": 1.0,
                         "sumo": {"config": str(cfg), "warmup_s": warmup_s, "worker": worker}},
            "rsus": {"placement": {"spacing_m": 400.0, "edges": ["fwd"]}, "coverage_radius_m": 250.0,
                     "hysteresis_m": 10.0},
            "channel": {"uplink_bandwidth_hz": 20e6, "downlink_bandwidth_hz": 20e6},
            "learning": {"dataset": "digits", "num_clients": learners, "model": "cnn", "batch_size": 16,
                         "local_epochs": local_epochs, "lr": 0.05},
            "protocol": {"scheme": "fedavg", "rounds": rounds, "vehicles_per_round": learners,
                         "selection": "dwell", "dwell_predictor": "kinematic", "round_deadline_s": 30},
            "output": {"trace_level": "rounds"}}
    return validate_tree(tree, "bench_scale", base_dir=cfg.parent)


def run_source(cfg: Path, warmup_s: float, sim_s: float) -> tuple[float, float]:
    """Wall time of the SUMO source alone over the same simulated span (warm-up included); mean vehicles."""
    t0 = time.perf_counter()
    src = SumoLive(1.0, sumocfg=cfg, seed=1, warmup_s=warmup_s)
    counts = []
    try:
        counts.append(len(src.start().ids))
        for _ in range(int(round(sim_s))):
            counts.append(len(src.step().ids))
    finally:
        src.close()
    return time.perf_counter() - t0, sum(counts) / len(counts)


def per_round_costs(phases: list[dict]) -> dict:
    """The co-simulator's own per-round set-up costs (timings.json's round_phases) as mean ms per round, and
    per covered vehicle (predict, snapshot, select: they run over the whole covered cohort) or per learner
    (plan, start) in us, the figures that must not grow faster than the cohort."""
    out = {}
    for name, per in (("predict", "covered"), ("snapshot", "covered"), ("select", "covered"),
                      ("plan", "selected"), ("start", "selected")):
        ms = [p[f"{name}_ms"] for p in phases]
        out[f"{name}_ms"] = round(sum(ms) / len(ms), 3)
        out[f"{name}_us_per_{'vehicle' if per == 'covered' else 'learner'}"] = round(
            1e3 * sum(ms) / sum(p[per] for p in phases), 2)
    out["covered"] = round(sum(p["covered"] for p in phases) / len(phases), 1)
    return out


def scaling(tmp: Path, warmup_s: float) -> list[dict]:
    """The per-round costs at a quarter, half and all of the road's traffic and learners (3 rounds of one local
    epoch each, best of 2): per vehicle and per learner they should stay flat as the cohort grows 4x."""
    rows = []
    for vph, learners in ((1350.0, 25), (2700.0, 50), (5400.0, 100)):
        files = build_highway(tmp / f"hw{int(vph)}", length_m=20000.0, lanes=3, vehicles_per_hour=vph,
                              duration_s=warmup_s + 3600, seed=1)
        sc = scenario(files.sumocfg, 3, learners, warmup_s, True, 1)
        runs = [run_cosim(sc) for _ in range(2)]
        rows.append({"vehicles_per_hour": vph, "learners": learners,
                     **per_round_costs(min(runs, key=lambda run: run[0])[1].timings["round_phases"])})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--learners", type=int, default=100, help="vehicles per round (and data partitions)")
    p.add_argument("--vehicles-per-hour", type=float, default=5400.0, help="~1,000 on the road at 20 km")
    p.add_argument("--warmup-s", type=float, default=700.0, help="until the 20 km road is full")
    p.add_argument("--local-epochs", type=int, default=5,
                   help="each vehicle's local epochs (5: FedAvg's usual E; at 1 a vehicle takes 2 SGD steps on its 18 samples)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs of each side; the best of each is taken")
    p.add_argument("--no-worker", action="store_true", help="SUMO in process (default: in its worker)")
    p.add_argument("--scaling", action="store_true",
                   help="also the per-round costs at 1/4, 1/2 and all of the traffic and learners (linear: flat per vehicle)")
    p.add_argument("--workers", type=int, default=1,
                   help="training processes; > 1 also times --workers 1 and checks the outputs are the same bytes")
    args = p.parse_args()
    _import_libsumo()
    with tempfile.TemporaryDirectory() as tmp:
        files = build_highway(Path(tmp) / "hw", length_m=20000.0, lanes=3, vehicles_per_hour=args.vehicles_per_hour,
                              duration_s=args.warmup_s + 3600, seed=1)
        sc = scenario(files.sumocfg, args.rounds, args.learners, args.warmup_s, not args.no_worker, args.local_epochs)
        cosim_s, source_s, bare_s, one_s, same, best = [], [], [], [], True, None
        for _ in range(args.repeats):                    # interleaved, best of n for each side
            wall, result = run_cosim(sc, args.workers)
            if not cosim_s or wall < min(cosim_s):
                best = result
            cosim_s.append(wall)
            if args.workers > 1:
                wall, single = run_cosim(sc, 1)
                one_s.append(wall)
                same = same and single.digest == result.digest
            sim_s = result.summary["sim_time_s"]
            wall, vehicles = run_source(files.sumocfg, args.warmup_s, sim_s)
            source_s.append(wall)
            wall, bare_acc = run_bare(sc, result.rounds)
            bare_s.append(wall)
        grows = scaling(Path(tmp), args.warmup_s) if args.scaling else None
    rounds = result.rounds
    cosim, base = min(cosim_s), min(source_s) + min(bare_s)
    phases = per_round_costs(best.timings["round_phases"])
    acc = rounds[-1]["accuracy"]
    print(f"co-simulator: {cosim:.2f} s wall ({', '.join(f'{t:.2f}' for t in cosim_s)}): {len(rounds)} rounds, "
          f"{sum(r['selected'] for r in rounds)} vehicle-rounds, {sim_s:.0f} s simulated, ~{vehicles:.0f} vehicles")
    print(f"SUMO source alone: {min(source_s):.2f} s; bare PyTorch: {min(bare_s):.2f} s")
    print(json.dumps({"bench": "scale", "value": round(cosim / base, 4), "unit": "x (SUMO source + bare PyTorch)",
                      "cosim_wall_s": round(cosim, 3), "sumo_source_wall_s": round(min(source_s), 3),
                      "bare_pytorch_wall_s": round(min(bare_s), 3), "rounds": len(rounds),
                      "learners_per_round": [r["selected"] for r in rounds], "mean_vehicles": round(vehicles, 1),
                      "rsus": 50, "simulated_s": round(sim_s, 1), "cosim_accuracy": acc, "bare_accuracy": bare_acc,
                      "accuracy_equal": acc == bare_acc, "per_round_ms": phases, "sumo_worker": not args.no_worker,
                      "workers": args.workers,
                      **({"workers_1_wall_s": round(min(one_s), 3), "speedup_over_workers_1": round(min(one_s) / cosim, 3),
                          "outputs_identical_to_workers_1": same} if one_s else {}),
                      **({"scaling": grows} if grows else {}), "target": 1.2}))


if __name__ == "__main__":
    main()
