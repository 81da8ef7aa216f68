"""Executors: `cosim compare` of one scheme over 3 seeds on a local Ray instance vs the local process pool.

In one invocation, interleaved: the compare on the pool (`--jobs` processes, reused from run to run), on Ray
(a task per run, each in a fresh worker process, `--jobs` CPUs in all, one per run) and on Ray with workers
reused (`--ray-reuse-workers`), all writing the same bytes. Ray's start (`ray.init`, once per study) is
timed apart from the runs.
Last line: {"bench": "executors", "value": <(Ray runs wall - pool wall) / runs>, "unit": "s overhead per run", ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cosim.compare import run_compare  # noqa: E402
from cosim.executors import PoolExecutor, RayExecutor  # noqa: E402


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("timings.json", "compare.png")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=str(REPO / "scenarios" / "smoke.yaml"))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2, help="pool processes, and Ray CPUs")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    import ray

    pool_s, ray_s, reuse_s, init_s, same, runs = [], [], [], [], True, 0
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            t0 = time.perf_counter()
            res = run_compare(args.scenario, args.seeds, [], Path(tmp) / f"pool{k}", threads=1,
                              executor=PoolExecutor(args.jobs))
            pool_s.append(time.perf_counter() - t0)
            runs = len(res.statuses)
            t0 = time.perf_counter()
            ray.init(num_cpus=args.jobs, include_dashboard=False, log_to_driver=False, configure_logging=False)
            init_s.append(time.perf_counter() - t0)
            try:
                t0 = time.perf_counter()
                run_compare(args.scenario, args.seeds, [], Path(tmp) / f"ray{k}", threads=1, executor=RayExecutor(cpus=1))
                ray_s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                run_compare(args.scenario, args.seeds, [], Path(tmp) / f"reuse{k}", threads=1,
                            executor=RayExecutor(cpus=1, fresh=False))
                reuse_s.append(time.perf_counter() - t0)
            finally:
                ray.shutdown()
            same = same and _files(Path(tmp) / f"pool{k}") == _files(Path(tmp) / f"ray{k}") == _files(Path(tmp) / f"reuse{k}")
    pool, rayw = min(pool_s), min(ray_s)
    print(f"compare, {runs} runs: pool ({args.jobs} processes) {pool:.2f} s ({', '.join(f'{t:.2f}' for t in pool_s)}); "
          f"Ray ({args.jobs} CPUs, a fresh process per run) {rayw:.2f} s ({', '.join(f'{t:.2f}' for t in ray_s)}) "
          f"+ ray.init {min(init_s):.2f} s; Ray reusing its workers {min(reuse_s):.2f} s")
    print(json.dumps({"bench": "executors", "value": round((rayw - pool) / runs, 3), "unit": "s overhead per run",
                      "runs": runs, "pool_wall_s": round(pool, 3), "ray_wall_s": round(rayw, 3),
                      "ray_init_s": round(min(init_s), 3), "ray_reused_workers_wall_s": round(min(reuse_s), 3),
                      "reused_overhead_per_run_s": round((min(reuse_s) - pool) / runs, 3), "jobs": args.jobs, "cpus": os.cpu_count(),
                      "scenario": Path(args.scenario).name, "outputs_identical": same, "target": 1.0}))


if __name__ == "__main__":
    main()
