"""Build a SUMO scenario bundle (net, routes, sumocfg).

    python tools/build_scenario.py highway --out scenarios/highway --length-m 5000 --lanes 3
    python tools/build_scenario.py urban_grid --out scenarios/urban_grid --grid-n 5 --block-m 200
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mobility.builders import build_highway, build_urban_grid  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = parser.add_subparsers(dest="kind", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, type=Path, help="output folder")
    common.add_argument("--vehicles-per-hour", type=float, default=None, help="total insertion rate [veh/h]")
    common.add_argument("--duration-s", type=float, default=600.0)
    common.add_argument("--seed", type=int, default=0)
    hw = kinds.add_parser("highway", parents=[common], help="straight road, both directions")
    hw.add_argument("--length-m", type=float, default=5000.0)
    hw.add_argument("--lanes", type=int, default=3, help="lanes per direction")
    hw.add_argument("--speed-mps", type=float, default=33.33)
    grid = kinds.add_parser("urban_grid", parents=[common], help="grid of streets with traffic lights")
    grid.add_argument("--grid-n", type=int, default=5, help="junctions per side")
    grid.add_argument("--block-m", type=float, default=200.0)
    grid.add_argument("--lanes", type=int, default=1, help="lanes per direction")
    grid.add_argument("--speed-mps", type=float, default=13.89)
    a = parser.parse_args(argv)
    if a.kind == "highway":
        files = build_highway(a.out, a.length_m, a.lanes, a.vehicles_per_hour or 1800.0, a.duration_s, a.seed,
                              a.speed_mps)
    else:
        files = build_urban_grid(a.out, a.grid_n, a.block_m, a.lanes, a.vehicles_per_hour or 900.0, a.duration_s,
                                 a.seed, a.speed_mps)
    vehicles = files.routes.read_text().count("<vehicle ")
    print(f"{files.sumocfg}: {vehicles} vehicles; net {files.net.name}, routes {files.routes.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
