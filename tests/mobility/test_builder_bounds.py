"""`cosim scenario build` option bounds (issue 16): each out-of-range or non-finite option gives one line with
the bound and why, exit code 2, before any SUMO tool runs (nothing is written)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from cosim.cli import main
from mobility import builders
from mobility.builders import BuildParameterError, build_highway, build_routes, build_urban_grid

REPO = Path(__file__).resolve().parents[2]
NET = str(REPO / "scenarios" / "highway" / "highway.net.xml")

CASES = [
    # (id, arguments after `scenario build`, substrings the one line must contain)
    ("length-inf", ["highway", "--length-m", "inf"], ["--length-m = inf", "a finite number >= 100 and <= 100000 m"]),
    ("length-nan", ["highway", "--length-m", "nan"], ["--length-m = nan", "a finite number"]),
    ("length-short", ["highway", "--length-m", "5"], ["--length-m = 5.0", ">= 100", "in seconds"]),
    ("speed-negative", ["highway", "--speed-mps", "-5"], ["--speed-mps = -5.0", "> 0 and <= 70 m/s", "km/h"]),
    ("speed-nan", ["urban_grid", "--speed-mps", "nan"], ["--speed-mps = nan", "a finite number"]),
    ("rate-and-duration", ["highway", "--duration-s", "1e7", "--vehicles-per-hour", "1e9"],
     ["--vehicles-per-hour = 1000000000.0", "< 14400 vehicles/h", "not honoured"]),
    ("rate-at-the-cap", ["highway", "--vehicles-per-hour", "14400"], ["--vehicles-per-hour = 14400.0", "--binomial 4"]),
    ("rate-nan", ["routes", "--net", NET, "--name", "t", "--vehicles-per-hour", "nan"],
     ["cosim scenario build routes: --vehicles-per-hour = nan", "a finite number"]),
    ("duration-long", ["highway", "--duration-s", "1e7"], ["--duration-s = 10000000.0", "<= 86400 s"]),
    ("duration-nan", ["urban_grid", "--duration-s", "nan"], ["--duration-s = nan", "a finite number"]),
    ("too-many-vehicles", ["highway", "--duration-s", "86400", "--vehicles-per-hour", "10000"],
     ["--vehicles-per-hour = 10000.0", "with --duration-s 86400", "at most 100000 vehicles", "240000"]),
    ("grid-huge", ["urban_grid", "--grid-n", "5000"], ["--grid-n = 5000", ">= 2 and <= 50 junctions a side",
                                                       "minutes"]),
    ("block-nan", ["urban_grid", "--block-m", "nan"], ["--block-m = nan", "a finite number"]),
    ("lanes-huge", ["highway", "--lanes", "1000000"], ["--lanes = 1000000", ">= 1 and <= 8 lanes a direction"]),
    ("lanes-grid", ["urban_grid", "--lanes", "0"], ["--lanes = 0", ">= 1"]),
    ("seed-negative", ["highway", "--seed", "-1"], ["--seed = -1", "32-bit"]),
    ("routes-duration", ["routes", "--net", NET, "--name", "t", "--duration-s", "inf"],
     ["--duration-s = inf", "a finite number"]),
]


@pytest.mark.parametrize("case_id,args,needles", CASES, ids=[c[0] for c in CASES])
def test_build_option_out_of_bounds_gives_one_line(tmp_path, capsys, monkeypatch, case_id, args, needles):
    def no_tools(*a, **k):
        raise AssertionError("a SUMO tool ran before the options were checked")

    monkeypatch.setattr(builders, "_run", no_tools)
    out = tmp_path / "b"
    assert main(["scenario", "build", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"cosim scenario build {args[0]}: --"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists()


@pytest.mark.parametrize("call", [
    lambda d: build_highway(d, length_m=math.nan),
    lambda d: build_highway(d, lanes=2.5),
    lambda d: build_highway(d, lanes=math.nan),
    lambda d: build_urban_grid(d, grid_n=1),
    lambda d: build_urban_grid(d, speed_mps=math.inf),
    lambda d: build_routes(d, "t", NET, vehicles_per_hour=100.0, duration_s=60.0, min_distance_m=math.nan),
])
def test_builder_functions_check_their_parameters(tmp_path, call):
    with pytest.raises(BuildParameterError):
        call(tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_the_default_options_are_within_the_bounds():
    for name, value in (("length_m", 5000.0), ("lanes", 3), ("vehicles_per_hour", 1800.0), ("duration_s", 600.0),
                        ("seed", 0), ("speed_mps", 33.33), ("grid_n", 5), ("block_m", 200.0)):
        builders._check(name, value)
    builders._check_volume(1800.0, 600.0)
