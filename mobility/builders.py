"""Small SUMO scenario bundles (net, routes, sumocfg; building polygons for the urban grid) built with
netconvert / netgenerate, randomTrips.py and duarouter. The same arguments and seed give byte-identical files.
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from xml.sax.saxutils import quoteattr

import sumolib

from .errors import one_line
from .sumo_live import sumo_binary, sumo_home

__all__ = ["ScenarioFiles", "build_highway", "build_urban_grid", "build_from_plain", "build_routes", "write_sumocfg",
           "write_block_buildings"]

# SUMO tools stamp their outputs with a comment holding the date and the command line: dropped
_HEADER_COMMENT = re.compile(rb"<!--.*?-->\s*", re.DOTALL)


@dataclass(frozen=True)
class ScenarioFiles:
    """A bundle's files: the net, the routes, the .sumocfg naming both, and `buildings`, a SUMO polygon file
    of building footprints (channel.buildings.Buildings.from_file), written only by build_urban_grid."""
    net: Path
    routes: Path
    sumocfg: Path
    buildings: Optional[Path] = None


def _run(cmd: list[str], what: str) -> None:
    env = dict(os.environ, SUMO_HOME=str(sumo_home()))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        errors = [ln for ln in (proc.stderr + proc.stdout).splitlines() if "rror" in ln] or [proc.stderr[-300:]]
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {one_line(errors[0])}")


def _strip_header(path: Path) -> None:
    data = path.read_bytes()
    head_end = data.find(b"<", data.find(b"?>") + 2) if data.startswith(b"<?xml") else 0
    body = data[head_end:]
    while body.startswith(b"<!--"):
        body = _HEADER_COMMENT.sub(b"", body, count=1)
    path.write_bytes(data[:head_end] + body)


class BuildParameterError(ValueError):
    """A scenario-builder parameter out of range: `name`, `value` and what was `expected` (the bounds, and why)."""

    def __init__(self, name: str, value: float, expected: str):
        self.name, self.value, self.expected = name, value, expected
        super().__init__(f"{name} must be {expected}, got {value}")


# randomTrips.py draws each second's departures as Binomial(BINOMIAL_N, rate / 3600 / BINOMIAL_N) (--binomial):
# at most BINOMIAL_N a second, so a rate of BINOMIAL_N * 3600 an hour or more cannot be honoured (it warns and
# inserts exactly BINOMIAL_N every second)
BINOMIAL_N = 4
MAX_VEHICLES_PER_HOUR = BINOMIAL_N * 3600.0
MAX_VEHICLES = 100_000          # vehicles a bundle's routes may hold in all (expected: rate x duration)

# name: (low, high, open, unit, why), open: which ends are excluded ('low', 'high', 'both', ''); each check's
# message says both bounds and why they are there
BOUNDS = {
    "length_m": (100.0, 100_000.0, "", "m", "a vehicle crosses a shorter road in seconds, and a longer edge is a "
                                              "unit mistake: metres expected"),
    "lanes": (1, 8, "", "lanes a direction", "the widest roads have about 6 to 8"),
    "grid_n": (2, 50, "", "junctions a side", "50 x 50 traffic-light junctions already take netgenerate and "
                                                 "SUMO minutes"),
    "block_m": (10.0, 5000.0, "", "m", "a street block; a longer one is no city grid"),
    "speed_mps": (0.0, 70.0, "low", "m/s", "252 km/h, faster than road traffic: km/h given as m/s?"),
    "vehicles_per_hour": (0.0, MAX_VEHICLES_PER_HOUR, "both", "vehicles/h",
                          f"randomTrips.py, with --binomial {BINOMIAL_N}, inserts at most {BINOMIAL_N} vehicles a "
                          f"second, exactly that many from {MAX_VEHICLES_PER_HOUR:.0f} an hour: a rate there or "
                          f"above is not honoured"),
    "duration_s": (1.0, 86400.0, "", "s", "departures are drawn second by second, for at most a day"),
    "min_distance_m": (0.0, 100_000.0, "", "m", "a trip longer than 100 km fits no bundled net"),
    "seed": (0, 2**31 - 1, "", "", "duarouter's and SUMO's --seed is a 32-bit signed integer"),
}


def _g(x) -> str:
    if isinstance(x, int):
        return str(x)
    return f"{x:g}".replace("e+0", "e").replace("e+", "e")


def _check(name: str, value) -> None:
    """Raise BuildParameterError unless `value` is a finite number within BOUNDS[name]."""
    low, high, open_, unit, why = BOUNDS[name]
    low_open, high_open = open_ in ("low", "both"), open_ in ("high", "both")
    unit = f" {unit}" if unit else ""
    expected = f"{'>' if low_open else '>='} {_g(low)} and {'<' if high_open else '<='} {_g(high)}{unit} ({why})"
    integer = isinstance(low, int)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BuildParameterError(name, value, ("an integer " if integer else "a number ") + expected)
    if not math.isfinite(value):
        raise BuildParameterError(name, value, f"a finite number {expected}")
    if integer and value != int(value):
        raise BuildParameterError(name, value, f"an integer {expected}")
    if (value <= low if low_open else value < low) or (value >= high if high_open else value > high):
        raise BuildParameterError(name, value, expected)


def _check_volume(vehicles_per_hour: float, duration_s: float) -> None:
    """At most MAX_VEHICLES expected vehicles in all (each one is routed by duarouter and simulated by SUMO)."""
    expected_vehicles = vehicles_per_hour * duration_s / 3600.0
    if expected_vehicles > MAX_VEHICLES:
        raise BuildParameterError(
            "vehicles_per_hour", vehicles_per_hour,
            f"<= {_g(MAX_VEHICLES * 3600.0 / duration_s)} with --duration-s {_g(duration_s)} (at most {MAX_VEHICLES} "
            f"vehicles in all, each routed by duarouter and simulated by SUMO; this asks for "
            f"{_g(round(expected_vehicles))})")


def write_sumocfg(path: Path, net: Path, routes: Path, duration_s: float, seed: int) -> Path:
    """A .sumocfg naming `net` and `routes` relative to its folder."""
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<configuration>\n'
        f'    <input>\n        <net-file value={quoteattr(os.path.relpath(net, path.parent))}/>\n'
        f'        <route-files value={quoteattr(os.path.relpath(routes, path.parent))}/>\n    </input>\n'
        f'    <time>\n        <begin value="0"/>\n        <end value="{duration_s:g}"/>\n    </time>\n'
        f'    <random_number>\n        <seed value="{seed}"/>\n    </random_number>\n'
        '    <report>\n        <no-step-log value="true"/>\n    </report>\n</configuration>\n')
    return path


def write_block_buildings(net: str | Path, path: str | Path, setback_m: float) -> Path:
    """A SUMO polygon file with one building (type "building", id "block_<i>_<j>") per block of a grid net:
    between consecutive sorted junction x (index i) and y (index j) coordinates of `net`, inset by `setback_m`
    from the street centre lines. Fixed formatting, so the same net and setback give the same bytes."""
    nodes = sumolib.net.readNet(str(net), withInternal=False).getNodes()
    xs = sorted({round(n.getCoord()[0], 2) for n in nodes})
    ys = sorted({round(n.getCoord()[1], 2) for n in nodes})
    lines = ['<?xml version="1.0" encoding="UTF-8"?>\n', "<additional>\n"]
    for i, (x0, x1) in enumerate(zip(xs, xs[1:])):
        for j, (y0, y1) in enumerate(zip(ys, ys[1:])):
            left, right, bottom, top = x0 + setback_m, x1 - setback_m, y0 + setback_m, y1 - setback_m
            shape = " ".join(f"{x:.2f},{y:.2f}" for x, y in
                             ((left, bottom), (right, bottom), (right, top), (left, top), (left, bottom)))
            lines.append(f'    <poly id="block_{i}_{j}" type="building" color="255,230,230" fill="1" layer="-1" '
                         f'shape="{shape}"/>\n')
    lines.append("</additional>\n")
    Path(path).write_text("".join(lines))
    return Path(path)


def _random_routes(net: Path, routes: Path, vehicles_per_hour: float, duration_s: float, seed: int, tmp: Path,
                   extra: list[str]) -> None:
    """Trips from randomTrips.py (Binomial arrivals at `vehicles_per_hour` over the net), routed by duarouter."""
    trips = tmp / "trips.xml"
    _run([sys.executable, str(sumo_home() / "tools" / "randomTrips.py"), "-n", str(net), "-o", str(trips),
          "-r", str(tmp / "validated.rou.xml"),
          "--seed", str(seed), "-b", "0", "-e", f"{duration_s:g}", "--insertion-rate", f"{vehicles_per_hour:g}",
          "--binomial", "4", "--validate", "--trip-attributes", 'departLane="best" departSpeed="max"', *extra],
         "randomTrips.py")
    _run([str(sumo_binary("duarouter")), "-n", str(net), "-r", str(trips), "-o", str(routes),
          "--alternatives-output", str(tmp / "routes.alt.xml"), "--seed", str(seed), "--ignore-errors",
          "--no-warnings", "--no-step-log"], "duarouter")
    _strip_header(routes)


def build_routes(out_dir: str | Path, name: str, net_file: str | Path, vehicles_per_hour: float, duration_s: float,
                 seed: int = 0, min_distance_m: float = 500.0) -> Path:
    """`<name>.rou.xml` in out_dir: random passenger-car trips (randomTrips.py, Binomial arrivals at
    `vehicles_per_hour`, trips at least `min_distance_m` long, starting and ending mostly at the net's fringe)
    on an existing net, e.g. one of the OSM-derived nets SUMO ships, routed by duarouter."""
    for key, value in (("vehicles_per_hour", vehicles_per_hour), ("duration_s", duration_s), ("seed", seed),
                       ("min_distance_m", min_distance_m)):
        _check(key, value)
    _check_volume(vehicles_per_hour, duration_s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    routes = out / f"{name}.rou.xml"
    with tempfile.TemporaryDirectory(prefix="build_scenario_") as t:
        _random_routes(Path(net_file), routes, vehicles_per_hour, duration_s, seed, Path(t),
                       ["--vehicle-class", "passenger", "--min-distance", f"{min_distance_m:g}", "--fringe-factor", "5"])
    return routes


def build_from_plain(out_dir: str | Path, name: str, nodes_xml: str, edges_xml: str, vehicles_per_hour: float,
                     duration_s: float, seed: int, netconvert_args: tuple[str, ...] = ()) -> ScenarioFiles:
    """A bundle from plain SUMO node and edge XML (netconvert), with random trips."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ScenarioFiles(out / f"{name}.net.xml", out / f"{name}.rou.xml", out / f"{name}.sumocfg")
    with tempfile.TemporaryDirectory(prefix="build_scenario_") as t:
        tmp = Path(t)
        (tmp / "plain.nod.xml").write_text(nodes_xml)
        (tmp / "plain.edg.xml").write_text(edges_xml)
        _run([str(sumo_binary("netconvert")), "--node-files", str(tmp / "plain.nod.xml"), "--edge-files",
              str(tmp / "plain.edg.xml"), "-o", str(files.net), "--no-warnings", *netconvert_args], "netconvert")
        _strip_header(files.net)
        _random_routes(files.net, files.routes, vehicles_per_hour, duration_s, seed, tmp, ["--allow-fringe"])
    write_sumocfg(files.sumocfg, files.net, files.routes, duration_s, seed)
    return files


def build_highway(out_dir: str | Path, length_m: float = 5000.0, lanes: int = 3, vehicles_per_hour: float = 1800.0,
                  duration_s: float = 600.0, seed: int = 0, speed_mps: float = 33.33) -> ScenarioFiles:
    """A straight road along +x from (0, 0) to (length_m, 0): edge "fwd" eastbound and "bwd" westbound,
    `lanes` lanes each. Vehicles drive the whole road in either direction; `vehicles_per_hour` is the
    total over both directions. Files: highway.net.xml, highway.rou.xml, highway.sumocfg."""
    for key, value in (("length_m", length_m), ("lanes", lanes), ("vehicles_per_hour", vehicles_per_hour),
                       ("duration_s", duration_s), ("seed", seed), ("speed_mps", speed_mps)):
        _check(key, value)
    _check_volume(vehicles_per_hour, duration_s)
    nodes = (f'<nodes>\n    <node id="w" x="0" y="0"/>\n    <node id="e" x="{length_m:g}" y="0"/>\n</nodes>\n')
    edges = ('<edges>\n'
             f'    <edge id="fwd" from="w" to="e" numLanes="{int(lanes)}" speed="{speed_mps:g}"/>\n'
             f'    <edge id="bwd" from="e" to="w" numLanes="{int(lanes)}" speed="{speed_mps:g}"/>\n</edges>\n')
    return build_from_plain(out_dir, "highway", nodes, edges, vehicles_per_hour, duration_s, seed,
                            ("--no-turnarounds",))


def build_urban_grid(out_dir: str | Path, grid_n: int = 5, block_m: float = 200.0, lanes: int = 1,
                     vehicles_per_hour: float = 900.0, duration_s: float = 600.0, seed: int = 0,
                     speed_mps: float = 13.89, building_setback_m: float = 10.0) -> ScenarioFiles:
    """A `grid_n` x `grid_n` junction grid with `block_m` streets (netgenerate --grid), traffic lights at
    the junctions, `lanes` lanes per direction; random trips mostly between the grid's border edges; one
    building per block, `building_setback_m` back from the street centre lines (write_block_buildings).
    Files: urban_grid.net.xml, urban_grid.rou.xml, urban_grid.sumocfg, urban_grid.poly.xml."""
    for key, value in (("grid_n", grid_n), ("block_m", block_m)):
        _check(key, value)
    if not 0 < building_setback_m < block_m / 2:
        raise BuildParameterError("building_setback_m", building_setback_m, f"> 0 and < {block_m / 2:g}")
    for key, value in (("lanes", lanes), ("vehicles_per_hour", vehicles_per_hour), ("duration_s", duration_s),
                       ("seed", seed), ("speed_mps", speed_mps)):
        _check(key, value)
    _check_volume(vehicles_per_hour, duration_s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ScenarioFiles(out / "urban_grid.net.xml", out / "urban_grid.rou.xml", out / "urban_grid.sumocfg",
                          out / "urban_grid.poly.xml")
    with tempfile.TemporaryDirectory(prefix="build_scenario_") as t:
        tmp = Path(t)
        _run([str(sumo_binary("netgenerate")), "--grid", "--grid.number", str(int(grid_n)), "--grid.length",
              f"{block_m:g}", "--default.lanenumber", str(int(lanes)), "--default.speed", f"{speed_mps:g}",
              "--default-junction-type", "traffic_light", "--no-turnarounds", "--no-warnings",
              "-o", str(files.net)], "netgenerate")
        _strip_header(files.net)
        write_block_buildings(files.net, files.buildings, building_setback_m)
        _random_routes(files.net, files.routes, vehicles_per_hour, duration_s, seed, tmp,
                       ["--fringe-factor", "10", "--min-distance", f"{2 * block_m:g}"])
    write_sumocfg(files.sumocfg, files.net, files.routes, duration_s, seed)
    return files
