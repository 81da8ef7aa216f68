"""`cosim sweep`: a grid of runs, each the same as its `cosim run`, a table of them, errors before any run."""
from __future__ import annotations

import csv

import yaml

from cosim.cli import main
from cosim.sweep import parse_vary
from tests.conftest import TWO_VEHICLES as TINY


def _scenario(tmp_path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return str(path)


def test_sweep_runs_the_grid_in_order_and_each_run_is_its_cosim_run(tmp_path, capsys):
    sc = _scenario(tmp_path)
    code = main(["sweep", sc, "--vary", "protocol.dwell_predictor=kinematic,oracle", "--vary", "seed=[1, 2]",
                 "--set", "protocol.rounds=12", "--out", str(tmp_path / "sw")])
    assert code == 0
    with open(tmp_path / "sw" / "sweep.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["protocol.dwell_predictor"], r["seed"]) for r in rows] == [
        ("kinematic", "1"), ("kinematic", "2"), ("oracle", "1"), ("oracle", "2")]
    assert all(r["status"] == "completed" and r["rounds_completed"] == "12" for r in rows)
    assert float(rows[2]["dwell_median_abs_error_s"]) == 0.0          # the oracle knows the future
    # the third run, again by hand, writes the same bytes
    assert main(["run", sc, "--quiet", "--set", "protocol.rounds=12", "--set", "protocol.dwell_predictor=oracle",
                 "--set", "seed=1", "--out", str(tmp_path / "single")]) == 0
    for name in ("spans.parquet", "instants.parquet", "rounds.csv", "dwell.csv"):
        assert (tmp_path / "sw" / rows[2]["run"] / name).read_bytes() == (tmp_path / "single" / name).read_bytes()
    assert "[4/4]" in capsys.readouterr().err
    # cosim plot on the sweep directory draws every run
    assert main(["plot", str(tmp_path / "sw")]) == 0
    png = (tmp_path / "sw" / "plots" / "sweep.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_every_bad_combination_is_reported_before_anything_runs(tmp_path, capsys):
    sc = _scenario(tmp_path)
    code = main(["sweep", sc, "--vary", "protocol.rounds=2,-1,zero", "--out", str(tmp_path / "sw")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not (tmp_path / "sw").exists()
    assert len(lines) == 2 and "protocol.rounds = -1" in lines[0] and "protocol.rounds = 'zero'" in lines[1]


def test_vary_syntax():
    assert parse_vary(["a.b=1,x", "c=[[1, 2], 'p,q']"]) == [("a.b", ["a.b=1", "a.b=x"]),
                                                          ("c", ["c=[1, 2]", 'c="p,q"'])]
    for bad in (["seed"], ["seed="], ["seed=1,,2"], ["seed=1", "seed=2"], ["seed=[1, 2"], ["seed=[]"]):
        try:
            parse_vary(bad)
        except Exception as err:        # noqa: BLE001
            assert type(err).__name__ == "UserError" and "\n" not in str(err)
        else:
            raise AssertionError(bad)


def test_resume_keeps_finished_runs_and_redoes_the_rest(tmp_path, capsys):
    sc = _scenario(tmp_path)
    args = ["sweep", sc, "--vary", "seed=1,2", "--set", "protocol.rounds=2", "--out", str(tmp_path / "sw")]
    assert main(args) == 0
    first = (tmp_path / "sw" / "sweep.csv").read_bytes()
    (tmp_path / "sw" / "001-seed=2" / "summary.json").unlink()          # as if interrupted
    stamp = (tmp_path / "sw" / "000-seed=1" / "spans.parquet").stat().st_mtime_ns
    capsys.readouterr()
    assert main([*args, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "000-seed=1: completed (kept from before)" in err and "001-seed=2: completed," in err
    assert (tmp_path / "sw" / "000-seed=1" / "spans.parquet").stat().st_mtime_ns == stamp
    assert (tmp_path / "sw" / "sweep.csv").read_bytes() == first
    # another setting is another run: nothing is kept
    assert main([*args[:-2], "--set", "learning.lr=0.1", "--out", str(tmp_path / "sw"), "--resume"]) == 0
    assert "kept" not in capsys.readouterr().err


def test_parallel_jobs_write_what_serial_runs_write_with_as_many_threads(tmp_path, capsys):
    sc = _scenario(tmp_path)
    common = ["sweep", sc, "--vary", "seed=[1, 2, 3]", "--set", "protocol.rounds=4", "--threads", "1"]
    assert main([*common, "--out", str(tmp_path / "serial")]) == 0
    assert main([*common, "--jobs", "2", "--out", str(tmp_path / "parallel")]) == 0
    names = sorted(p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*")
                   if p.is_file() and p.name != "timings.json")     # wall-clock solve times: never identical
    assert len(names) > 20
    for name in names:
        assert (tmp_path / "serial" / name).read_bytes() == (tmp_path / "parallel" / name).read_bytes(), name
    assert "[3/3]" in capsys.readouterr().err


def _fcd_scenario(tmp_path, speed_mps: float) -> str:
    """TINY on an FCD file: a parked vehicle and one driving at `speed_mps`."""
    steps = "".join(f'<timestep time="{t}.00"><vehicle id="a" x="100" y="0" angle="90" speed="0"/>'
                    f'<vehicle id="b" x="{400 - speed_mps * t:.2f}" y="0" angle="270" speed="{speed_mps}"/></timestep>'
                    for t in range(61))
    (tmp_path / "tiny.fcd.xml").write_text(f"<fcd-export>{steps}</fcd-export>")
    tree = {**TINY, "mobility": {"source": "fcd", "step_s": 1.0, "fcd": {"file": "tiny.fcd.xml"}}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def test_resume_runs_again_what_is_damaged_or_read_inputs_that_changed(tmp_path, capsys):
    sc = _fcd_scenario(tmp_path, 5.0)
    args = ["sweep", sc, "--vary", "seed=1,2,3", "--out", str(tmp_path / "sw"), "--resume"]
    assert main(args) == 0
    manifest = (tmp_path / "sw" / "000-seed=1" / "manifest.json").read_text()
    assert '"mobility.fcd.file": "' in manifest
    spans = tmp_path / "sw" / "000-seed=1" / "spans.parquet"
    spans.write_bytes(spans.read_bytes()[:-20])                           # truncated (a kill, a full disk)
    (tmp_path / "sw" / "001-seed=2" / "rounds.csv").unlink()              # lost
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "000-seed=1: completed," in err and "001-seed=2: completed," in err
    assert "002-seed=3: completed (kept from before)" in err
    _fcd_scenario(tmp_path, 6.0)                                          # the same scenario, another FCD file
    assert main(args) == 0
    assert "kept" not in capsys.readouterr().err


def test_a_bad_vary_value_is_named_as_vary(tmp_path, capsys):
    assert main(["sweep", _scenario(tmp_path), "--vary", "protocol.rounds=2,abc", "--out", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--vary: protocol.rounds = 'abc'") and err.count("\n") == 1
