"""Mobility overhead: the co-simulator's SUMO coupling against the SUMO binary alone.

A SUMO highway with a few hundred concurrent vehicles and 10 RSUs for 300 simulated seconds,
(a) by the SUMO binary alone and (b) through the co-simulator (libsumo in lock-step with the
SimPy clock, association with hysteresis, coverage events and per-tick channel evaluation for every
vehicle), in one invocation. Last line: {"bench": "mobility", "value": <(b) / (a) wall time>, ...}.
The channel is the seed papers' path loss by default; `--channel tr37885` evaluates TR 37.885 highway
path loss with LOS states, NLOSv blockage and correlated shadowing instead.
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


def run_sumo_alone(cfg: Path, duration_s: float) -> float:
    t0 = time.perf_counter()
    subprocess.run([str(sumo_binary("sumo")), "-c", str(cfg), "--end", f"{duration_s:g}", "--step-length", "1",
                    "--no-step-log", "--no-warnings", "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_libsumo_floor(cfg: Path, duration_s: float) -> float:
    """What any libsumo client pays: stepping SUMO and reading every vehicle's position, speed, angle and
    road through subscriptions (the SumoLive source alone, no World)."""
    from mobility.sumo_live import SumoLive

    t0 = time.perf_counter()
    src = SumoLive(1.0, sumocfg=cfg, seed=1)
    try:
        src.start()
        for _ in range(int(duration_s)):
            src.step()
    finally:
        src.close()
    return time.perf_counter() - t0


def run_cosim(cfg: Path, duration_s: float, channel: dict) -> tuple[float, dict]:
    tree = {"name": "bench-mobility", "seed": 1, "duration_s": duration_s, "channel": channel,
            "mobility": {"source": "sumo", "step_s": 1.0, "sumo": {"config": str(cfg)}},
            "rsus": {"placement": {"spacing_m": 1000.0, "edges": ["fwd"]}, "coverage_radius_m": 500.0,
                     "hysteresis_m": 20.0},
            "output": {"trace_level": "rounds"}}
    sc = validate_tree(tree, "bench_mobility", base_dir=cfg.parent)
    t0 = time.perf_counter()
    streams = RngStreams(sc.seed)
    trace = Trace(sc.output.trace_level)
    rsus, radio = build_rsus(sc), build_radio(sc, streams)
    source = build_source(sc, streams)
    cpu, _ = device_models(sc.devices)
    peak = {"vehicles": 0, "covered": 0}

    def world_factory(env, tr):
        return World(env, rsus, radio, tr, 1000, sc.rsus.hysteresis_m, sc.mobility.step_s)

    sim = Simulation(streams, source, world_factory, trace, 1500, "batched", cpu, duration_s + 1.0)

    def watch():
        peak["vehicles"] = max(peak["vehicles"], len(sim.world.vehicles))
        peak["covered"] = max(peak["covered"], sim.world.count_covered())

    sim.tick_hooks.append(watch)

    def idle():
        yield sim.env.timeout(duration_s)

    try:
        sim.run(idle())
    finally:
        source.close()
    wall = time.perf_counter() - t0
    return wall, {"peak_vehicles": peak["vehicles"], "peak_covered": peak["covered"], "rsus": len(rsus.ids),
                  "coverage_events": len(trace.instants), "status": sim.status}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration-s", type=float, default=300.0)
    p.add_argument("--vehicles-per-hour", type=float, default=8000.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--channel", default="seed", choices=sorted(CHANNELS),
                   help="seed: the papers' path loss; tr37885: TR 37.885 highway with LOS states and shadowing")
    args = p.parse_args()
    channel = CHANNELS[args.channel]
    _import_libsumo()   # a one-time import (loading the SUMO library), like the binary's exec: not timed
    with tempfile.TemporaryDirectory() as tmp:
        files = build_highway(Path(tmp) / "hw", length_m=10000.0, lanes=3, vehicles_per_hour=args.vehicles_per_hour,
                              duration_s=args.duration_s, seed=1)
        sumo_s, cosim_s, floor_s = [], [], []
        for _ in range(args.repeats):          # interleaved, best of n
            sumo_s.append(run_sumo_alone(files.sumocfg, args.duration_s))
            floor_s.append(run_libsumo_floor(files.sumocfg, args.duration_s))
            wall, info = run_cosim(files.sumocfg, args.duration_s, channel)
            cosim_s.append(wall)
    ratio = min(cosim_s) / min(sumo_s)
    print(f"SUMO binary alone: {min(sumo_s):.3f} s wall ({', '.join(f'{t:.3f}' for t in sumo_s)})")
    print(f"libsumo source:    {min(floor_s):.3f} s wall (stepping + subscriptions, no World)")
    print(f"co-simulator:      {min(cosim_s):.3f} s wall ({', '.join(f'{t:.3f}' for t in cosim_s)}), "
          f"peak {info['peak_vehicles']} vehicles, {info['peak_covered']} covered, {info['rsus']} RSUs")
    print(json.dumps({"bench": "mobility", "value": round(ratio, 4), "unit": "x SUMO binary alone",
                      "sumo_wall_s": round(min(sumo_s), 4), "cosim_wall_s": round(min(cosim_s), 4),
                      "libsumo_source_wall_s": round(min(floor_s), 4),
                      "cosim_over_libsumo_source": round(min(cosim_s) / min(floor_s), 4),
                      "simulated_s": args.duration_s, **info, "channel": args.channel, "target": 1.5}))


if __name__ == "__main__":
    main()
