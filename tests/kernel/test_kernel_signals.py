"""Faults from outside: SIGTERM and a second Ctrl-C end a `cosim run` subprocess with its run directory
whole (interrupted, or the previous run's untouched); two runs on one directory; a full disk."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cosim.cli import main

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = str(REPO / "scenarios" / "quickstart.yaml")
QUICK = ["--set", "protocol.rounds=2", "--set", "protocol.vehicles_per_round=4", "--quiet"]


def _start(run_dir: Path, *extra: str, tmpdir: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return subprocess.Popen([sys.executable, "-m", "cosim", "run", QUICKSTART, "--out", str(run_dir), "--quiet",
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_running(proc: subprocess.Popen, run_dir: Path, after_s: float) -> None:
    """Until the run writes its staging folder (the scenario is loaded, the simulation starting), then `after_s`."""
    staging = run_dir.parent / f".{run_dir.name}.partial"
    deadline = time.monotonic() + 60
    while not staging.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(after_s)


def _valid_run(run_dir: Path) -> dict:
    for name in ("spans", "instants", "counters", "decisions"):
        pq.read_table(run_dir / f"{name}.parquet")
    json.loads((run_dir / "trace.json").read_text())
    json.loads((run_dir / "manifest.json").read_text())
    return json.loads((run_dir / "summary.json").read_text())


def test_sigterm_ends_the_run_interrupted_with_valid_tables(tmp_path):
    run, tmp = tmp_path / "run", tmp_path / "tmp"
    tmp.mkdir()
    proc = _start(run, "--set", "protocol.rounds=30", tmpdir=tmp)
    _wait_running(proc, run, after_s=0.0)
    deadline = time.monotonic() + 60
    while not list(tmp.glob("sumo_live_*")):                               # SUMO's working folder: it runs
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err and "SIGTERM" in err
    summary = _valid_run(run)
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["detail"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tmp"]   # no staging folder or lock left
    assert not list(tmp.glob("sumo_live_*"))                                # nor SUMO's temporary folder


def test_two_sigints_50_ms_apart_leave_the_previous_run_or_a_whole_new_one(tmp_path):
    run = tmp_path / "run"
    assert main(["run", QUICKSTART, "--out", str(run), *QUICK]) == 0
    previous = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    proc = _start(run, "--force", "--set", "protocol.rounds=30", "--set", "output.trace_level=packets")
    _wait_running(proc, run, after_s=2.0)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, (proc.returncode, err)
    now = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    if now != previous:             # the new run replaced it: then whole, and interrupted
        assert _valid_run(run)["status"] == "interrupted"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_second_run_on_a_directory_being_written_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    proc = _start(run, "--set", "protocol.rounds=30")
    try:
        _wait_running(proc, run, after_s=0.0)
        assert main(["run", QUICKSTART, "--out", str(run), *QUICK, "--force"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"no other run is writing (process {proc.pid} is)" in err
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_a_full_disk_is_one_line_and_the_older_run_stays(tmp_path, capsys, monkeypatch):
    import cosim.run

    run = tmp_path / "run"
    assert main(["run", QUICKSTART, "--out", str(run), *QUICK]) == 0
    previous = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    def full(*_args, **_kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cosim.run, "write_chrome_trace", full)
    capsys.readouterr()
    assert main(["run", QUICKSTART, "--out", str(run), *QUICK, "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the disk is full; the older run there is kept" in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_diverging_run_ends_diverged_with_strict_json_and_quiet_says_why(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["run", QUICKSTART, "--out", str(run), *QUICK, "--set", "learning.lr=9.9"]) == 1
    captured = capsys.readouterr()
    assert not captured.out and captured.err.count("\n") == 1
    assert "run ended diverged: round 0: the global model's loss is nan" in captured.err
    text = (run / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))
    assert summary["status"] == "diverged" and summary["final_loss"] is None and summary["rounds_completed"] == 1
    json.loads((run / "trace.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in trace.json"))
