"""Executors (serial, pool, ray): the same sweep.csv and run directories byte for byte; a sweep stopped midway
resumes without redoing its finished runs, on each; a failed run leaves its traceback and stops nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

from cosim.cli import main
from cosim.errors import UserError
from cosim.executors import PoolExecutor, RayExecutor, SerialExecutor, make_executor
from cosim.sweep import parse_vary, run_sweep
from tests.conftest import TWO_VEHICLES as TINY, write_yaml

ray = pytest.importorskip("ray")

GRID = ["seed=1,2", "protocol.rounds=1,2"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (an executor joins it rather than starting its own)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             object_store_memory=100 * 2**20)
    yield
    ray.shutdown()


def _scenario(tmp_path) -> str:
    return str(write_yaml(tmp_path / "tiny.yaml", TINY))


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a study folder but the wall-clock timings, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "timings.json"}


def _sweep(sc: str, out: Path, executor, **kw) -> Path:
    return run_sweep(sc, parse_vary(GRID), [], out, executor=executor, threads=1, **kw)


def test_serial_pool_and_ray_give_the_same_table_and_the_same_run_directories(tmp_path, local_ray):
    sc = _scenario(tmp_path)
    studies = {"serial": SerialExecutor(), "pool": PoolExecutor(2), "ray": RayExecutor(cpus=1),
               "ray-shipped": RayExecutor(cpus=1, ship=True)}
    files = {}
    for name, executor in studies.items():
        _sweep(sc, tmp_path / name, executor)
        files[name] = _files(tmp_path / name)
    assert len(files["serial"]) == 1 + 4 * 10 and "sweep.csv" in files["serial"]     # manifests included
    for name in studies:
        assert files[name] == files["serial"], name
    assert not list(tmp_path.glob("*/.cosim-shared-fs")) and not list(tmp_path.glob("*/.*.partial"))


class _Stop(Exception):
    pass


@pytest.mark.parametrize("kind", ["serial", "pool", "ray"])
def test_a_sweep_stopped_midway_resumes_without_redoing_finished_runs(tmp_path, local_ray, kind):
    sc = _scenario(tmp_path)
    out = tmp_path / "sw"

    def stop_after_two(run, row, finished, total):
        if finished == 2:
            raise KeyboardInterrupt          # Ctrl-C in the driver, two runs in

    executor = make_executor(kind, jobs=2 if kind == "pool" else 1)
    with pytest.raises(KeyboardInterrupt):
        _sweep(sc, out, executor, on_done=stop_after_two)
    done_before = sorted(p.parent.name for p in out.glob("*/summary.json"))
    assert len(done_before) >= 2 and not (out / "sweep.csv").exists()
    stamps = {name: (out / name / "summary.json").stat().st_mtime_ns for name in done_before}
    kept = []
    _sweep(sc, out, executor, resume=True, on_done=lambda run, row, f, t: kept.append(run.run_dir.name)
           if row.get("kept") else None)
    assert sorted(kept) == done_before                          # finished runs are not run again
    assert all((out / n / "summary.json").stat().st_mtime_ns == stamps[n] for n in done_before)
    fresh = tmp_path / "fresh"
    _sweep(sc, fresh, SerialExecutor())
    assert _files(out) == _files(fresh)                         # and the study is what an unbroken one writes


@pytest.mark.parametrize("kind", ["serial", "pool", "ray"])
def test_a_failed_run_leaves_its_traceback_and_the_others_finish(tmp_path, local_ray, kind):
    sc = _scenario(tmp_path)
    out = tmp_path / "sw"
    # 4 clients fit the digits; 5000 validate but cannot be partitioned: that run fails as it builds
    run_sweep(sc, parse_vary(["learning.num_clients=4,5000"]), [], out, threads=1,
              executor=make_executor(kind, jobs=2 if kind == "pool" else 1))
    rows = (out / "sweep.csv").read_text().splitlines()
    assert len(rows) == 3 and ",completed," in rows[1] and ",input-error," in rows[2]
    tb = out / "001-num_clients=5000.traceback.txt"
    assert tb.is_file() and "Traceback (most recent call last)" in tb.read_text()
    assert not (out / "000-num_clients=4.traceback.txt").exists()


def test_ray_missing_or_misused_is_one_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    sc = _scenario(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UserError, match=r"pip install 'cosim\[ray\]'"):
        RayExecutor()
    monkeypatch.undo()
    with pytest.raises(UserError, match="a Ray cluster it can reach"):      # at once, not after Ray's retries
        RayExecutor(address="ray://127.0.0.1:1")._check_reachable()
    for argv, flag in ((["--executor", "pool", "--address", "auto"], "--address"),
                       (["--executor", "ray", "--jobs", "2"], "--jobs"),
                       (["--executor", "ray", "--cpus-per-run", "0"], "--cpus-per-run")):
        assert main(["sweep", sc, "--vary", "seed=1,2", "--out", str(tmp_path / "x"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err, err


@pytest.mark.parametrize("kind", ["serial", "ray"])
def test_sweep_resume_continues_an_interrupted_run_from_its_checkpoint(tmp_path, local_ray, kind):
    import json

    from cosim.run import run_scenario
    from cosim.sweep import plan_sweep

    sc = _scenario(tmp_path)
    base = ["output.checkpoint_every_rounds=1", "protocol.rounds=4"]
    out = tmp_path / "sw"
    grid = parse_vary(["seed=1,2"])
    runs = plan_sweep(sc, grid, base, out)

    def stop(row, t_s):
        if row["round"] == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):              # the last run of the grid, cut after its round 2
        run_scenario(runs[-1].scenario, runs[-1].run_dir, on_round=stop, overrides=base + list(runs[-1].overrides))
    run_sweep(sc, grid, base, out, executor=make_executor(kind), threads=1, resume=True)
    manifest = json.loads((runs[-1].run_dir / "manifest.json").read_text())
    assert manifest["resumed_from_round"] == 2                  # it went on from its checkpoint
    fresh = tmp_path / "fresh"
    run_sweep(sc, grid, base, fresh, executor=SerialExecutor(), threads=1)
    strip = {k: v for k, v in _files(out).items() if not k.endswith("manifest.json")}
    assert strip == {k: v for k, v in _files(fresh).items() if not k.endswith("manifest.json")}
