"""Mobility overhead at steady state: the co-simulator's SUMO coupling against SUMO alone.

A 10 km SUMO highway (3 lanes each way, 10 RSUs) is first filled (`--warmup-s`, untimed: SUMO runs it
before simulated t = 0), then `--measure-s` simulated seconds with ~800+ concurrent vehicles are timed,
in one invocation, by
  (a) the project's SUMO source alone (libsumo stepping with the same subscriptions, no World): the headline
      baseline, what any libsumo client pays to get every position;
  (b) the co-simulator (the source plus association with hysteresis, coverage events and the channel of
      every vehicle-RSU link in range, on the SimPy clock), with SUMO in a worker process computing its
      next step while the World processes this one (`mobility.sumo.worker`); also with SUMO in process;
  (c) the SUMO binary alone, with and without FCD output (the cheapest way SUMO itself hands out every
      position), timed as the full run minus the warm-up run.
Last line: {"bench": "mobility", "value": <(b) / (a)>, ...}. `--channel tr37885` evaluates TR 37.885
highway path loss with LOS states, NLOSv blockage and correlated shadowing instead of the seed path loss.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosim.build import build_radio, build_rsus, build_source  # noqa: E402
from cosim.rng import RngStreams  # noqa: E402
from cosim.scenario import validate_tree  # noqa: E402
from cosim.sim import Simulation  # noqa: E402
from cosim.compute import device_models  # noqa: E402
from cosim.trace import Trace  # noqa: E402
from cosim.world import World  # noqa: E402
from mobility.builders import build_highway  # noqa: E402
from mobility.sumo_live import _import_libsumo, sumo_binary  # noqa: E402


CHANNELS = {"seed": {"model": "seed"},
            "tr37885": {"model": "tr37885_highway", "shadowing": {"enabled": True}}}


def run_sumo_alone(cfg: Path, end_s: float, fcd: Path | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(sumo_binary("sumo")), "-c", str(cfg), "--end", f"{end_s:g}", "--step-length", "1",
                    "--no-step-log", "--no-warnings", "--seed", "1", *(["--fcd-output", str(fcd)] if fcd else [])],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_libsumo_floor(cfg: Path, warmup_s: float, measure_s: float) -> tuple[float, dict]:
    """What any libsumo client pays: stepping SUMO and reading every vehicle's position through subscriptions
    (the SumoLive source alone, no World), timed after the warm-up."""
    from mobility.sumo_live import SumoLive

    src = SumoLive(1.0, sumocfg=cfg, seed=1, warmup_s=warmup_s)
    counts = []
    try:
        counts.append(len(src.start().ids))
        t0 = time.perf_counter()
        for _ in range(int(measure_s)):
            counts.append(len(src.step().ids))
        wall = time.perf_counter() - t0
    finally:
        src.close()
    return wall, {"mean_vehicles": round(sum(counts) / len(counts), 1), "min_vehicles": min(counts),
                  "peak_vehicles": max(counts)}


def run_cosim(cfg: Path, warmup_s: float, measure_s: float, channel: dict, worker: bool) -> tuple[float, dict]:
    tree = {"name": "bench-mobility", "seed": 1, "duration_s": measure_s, "channel": channel,
            "mobility": {"source": "sumo", "step_s": 1.0,
                         "sumo": {"config": str(cfg), "warmup_s": warmup_s, "worker": worker}},
            "rsus": {"placement": {"spacing_m": 1000.0, "edges": ["fwd"]}, "coverage_radius_m": 500.0,
                     "hysteresis_m": 20.0},
            "output": {"trace_level": "rounds"}}
    sc = validate_tree(tree, "bench_mobility", base_dir=cfg.parent)
    streams = RngStreams(sc.seed)
    trace = Trace(sc.output.trace_level)
    rsus, radio = build_rsus(sc), build_radio(sc, streams)
    source = build_source(sc, streams)
    cpu, _ = device_models(sc.devices)
    peak = {"covered": 0}
    first_tick = []

    def world_factory(env, tr):
        return World(env, rsus, radio, tr, 1000, sc.rsus.hysteresis_m, sc.mobility.step_s)

    sim = Simulation(streams, source, world_factory, trace, 1500, "batched", cpu, measure_s + 0.5)

    def watch():
        if not first_tick:
            first_tick.append(time.perf_counter())     # the warm-up is over: timing starts here
        peak["covered"] = max(peak["covered"], sim.world.count_covered())

    sim.tick_hooks.append(watch)

    def idle():
        yield sim.env.timeout(measure_s)

    try:
        sim.run(idle())
    finally:
        source.close()
    wall = time.perf_counter() - first_tick[0]
    return wall, {"peak_covered": peak["covered"], "rsus": len(rsus.ids), "coverage_events": len(trace.instants),
                  "status": sim.status}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warmup-s", type=float, default=600.0, help="untimed: until the road is full")
    p.add_argument("--measure-s", type=float, default=1800.0, help="timed steady state")
    p.add_argument("--vehicles-per-hour", type=float, default=9000.0)
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs of each side; the best of each is taken")
    p.add_argument("--channel", default="seed", choices=sorted(CHANNELS),
                   help="seed: the papers' path loss; tr37885: TR 37.885 highway with LOS states and shadowing")
    args = p.parse_args()
    channel = CHANNELS[args.channel]
    end_s = args.warmup_s + args.measure_s
    _import_libsumo()   # a one-time import (loading the SUMO library), like the binary's exec: not timed
    with tempfile.TemporaryDirectory() as tmp:
        files = build_highway(Path(tmp) / "hw", length_m=10000.0, lanes=3, vehicles_per_hour=args.vehicles_per_hour,
                              duration_s=end_s, seed=1)
        sumo_s, fcd_s, cosim_s, floor_s, inproc_s = [], [], [], [], []
        for _ in range(args.repeats):          # interleaved, best of n
            warm = run_sumo_alone(files.sumocfg, args.warmup_s)
            sumo_s.append(run_sumo_alone(files.sumocfg, end_s) - warm)
            warm = run_sumo_alone(files.sumocfg, args.warmup_s, Path(tmp) / "warm.fcd.xml")
            fcd_s.append(run_sumo_alone(files.sumocfg, end_s, Path(tmp) / "all.fcd.xml") - warm)
            wall, traffic = run_libsumo_floor(files.sumocfg, args.warmup_s, args.measure_s)
            floor_s.append(wall)
            wall, info = run_cosim(files.sumocfg, args.warmup_s, args.measure_s, channel, worker=True)
            cosim_s.append(wall)
            inproc_s.append(run_cosim(files.sumocfg, args.warmup_s, args.measure_s, channel, worker=False)[0])
    sumo, fcd, floor, cosim, inproc = min(sumo_s), min(fcd_s), min(floor_s), min(cosim_s), min(inproc_s)
    print(f"SUMO binary alone:     {sumo:.3f} s wall for the steady {args.measure_s:g} s ({', '.join(f'{t:.3f}' for t in sumo_s)})")
    print(f"SUMO binary with FCD:  {fcd:.3f} s wall")
    print(f"SUMO source (libsumo): {floor:.3f} s wall (stepping + subscriptions, no World); vehicles {traffic}")
    print(f"co-simulator:          {cosim:.3f} s wall ({', '.join(f'{t:.3f}' for t in cosim_s)}), "
          f"peak {info['peak_covered']} covered, {info['rsus']} RSUs; SUMO in a worker, pipelined")
    print(f"  same, SUMO in process: {inproc:.3f} s wall ({', '.join(f'{t:.3f}' for t in inproc_s)})")
    print(json.dumps({"bench": "mobility", "value": round(cosim / floor, 4), "unit": "x SUMO source alone",
                      "channel": args.channel, "steady_s": args.measure_s, "warmup_s": args.warmup_s, **traffic,
                      "cosim_wall_s": round(cosim, 4), "sumo_source_wall_s": round(floor, 4),
                      "cosim_sumo_in_process_over_source": round(inproc / floor, 4),
                      "over_sumo_binary": round(cosim / sumo, 4), "over_sumo_binary_fcd": round(cosim / fcd, 4),
                      "sumo_binary_wall_s": round(sumo, 4), "sumo_binary_fcd_wall_s": round(fcd, 4), **info,
                      "target": 1.25 if args.channel == "seed" else 1.5}))


if __name__ == "__main__":
    main()
