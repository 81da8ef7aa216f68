"""Run checkpoints (output.checkpoint_every_rounds) and cosim run --resume: a run stopped after a checkpoint
and resumed writes the bytes of the run never stopped, for SUMO live, an FCD replay and a split scheme."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cosim.checkpoint import CHECKPOINT_FILE, checkpoint_dir
from cosim.cli import main
from cosim.errors import UserError
from cosim.run import resume_run, run_scenario
from cosim.scenario import load_scenario, validate_tree
from mobility.sumo_live import SumoLive

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "scenarios" / "smoke.yaml"


def _outputs(run_dir: Path) -> dict[str, bytes]:
    """Every output file but the wall-clock timings and the manifest (it says the run was resumed)."""
    return {p.name: p.read_bytes() for p in run_dir.iterdir()
            if p.is_file() and p.name not in ("timings.json", "manifest.json")}


def _stop_at(round_: int):
    def on_round(row, t_s):
        if row["round"] == round_:
            raise KeyboardInterrupt("stopped by the test")
    return on_round


def _stopped_and_resumed(sc, tmp_path: Path, stop_round: int) -> tuple[Path, Path]:
    full = run_scenario(sc, tmp_path / "full")
    assert full.status == "completed" and not checkpoint_dir(tmp_path / "full").exists()   # done: none kept
    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, tmp_path / "cut", on_round=_stop_at(stop_round))
    ckpt = torch.load(checkpoint_dir(tmp_path / "cut") / CHECKPOINT_FILE, weights_only=True)  # no code in it
    assert 0 < ckpt["next_round"] <= stop_round
    resumed = resume_run(tmp_path / "cut")
    assert resumed.status == "completed" and len(resumed.rounds) == len(full.rounds)
    return tmp_path / "full", tmp_path / "cut"


def _fcd_scenario(tmp_path: Path):
    """An FCD file recorded from the bundled SUMO highway, and the smoke scenario replaying it."""
    fcd = tmp_path / "highway.fcd.xml"
    src = SumoLive(1.0, sumocfg=REPO / "scenarios" / "highway" / "highway.sumocfg", seed=1, fcd_output=fcd,
                   fcd_precision=6)
    src.start()
    for _ in range(120):
        src.step()
    src.close()
    sc = load_scenario(SMOKE, ["protocol.rounds=5", "output.checkpoint_every_rounds=2", "rsus.placement=null",
                               "rsus.positions_m=[[500.0, -10.0], [1500.0, -10.0], [2500.0, -10.0]]",
                               "protocol.dwell_predictor=kinematic"])
    tree = {**sc.model_dump(mode="json"), "mobility": {"source": "fcd", "step_s": 1.0, "fcd": {"file": str(fcd)}}}
    return validate_tree(tree, str(tmp_path / "replay.yaml")), fcd


@pytest.mark.parametrize("case", ["sumo-live", "fcd-replay", "split-sfl"])
def test_a_run_stopped_after_a_checkpoint_and_resumed_writes_the_same_bytes(tmp_path, case):
    if case == "sumo-live":
        sc = load_scenario(SMOKE, ["output.checkpoint_every_rounds=2"])
    elif case == "fcd-replay":
        sc, _ = _fcd_scenario(tmp_path)
    else:           # SplitFed V1: per-batch activations and gradients, server-side copies, momentum kept
        sc = load_scenario(REPO / "scenarios" / "sfl_v1_digits.yaml",
                           ["protocol.rounds=5", "output.checkpoint_every_rounds=2"])
    full, cut = _stopped_and_resumed(sc, tmp_path, stop_round=3)
    a, b = _outputs(full), _outputs(cut)
    assert {"spans.parquet", "rounds.csv", "trace.json", "instants.parquet", "dwell.csv"} <= set(a)
    for name in a:
        assert a[name] == b[name], name


def test_a_killed_cli_run_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL once the first checkpoint is on disk: nothing but the checkpoint survives; --resume finishes
    the run with the bytes of an unbroken one."""
    args = ["run", str(SMOKE), "--quiet", "--set", "output.checkpoint_every_rounds=1", "--set", "protocol.rounds=5"]
    assert main(args + ["--out", str(tmp_path / "full")]) == 0
    ckpt = checkpoint_dir(tmp_path / "cut") / CHECKPOINT_FILE
    proc = subprocess.Popen([sys.executable, "-m", "cosim", *args, "--out", str(tmp_path / "cut")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (tmp_path / "cut").exists()
    assert main(["run", "--resume", str(tmp_path / "cut"), "--quiet"]) == 0
    assert _outputs(tmp_path / "full") == _outputs(tmp_path / "cut")
    assert not checkpoint_dir(tmp_path / "cut").exists()


def test_resume_refuses_changed_inputs_and_misuse_in_one_line(tmp_path, capsys):
    sc, fcd = _fcd_scenario(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        run_scenario(sc, tmp_path / "cut", on_round=_stop_at(3))
    fcd.write_text(fcd.read_text().replace("<timestep", "<timestep ", 1))      # same data, other bytes
    with pytest.raises(UserError, match="input files the run started with .changed: mobility.fcd.file"):
        resume_run(tmp_path / "cut")
    for argv, what in ((["run", "--resume", str(tmp_path / "nothing")], "a run that left a checkpoint"),
                       (["run", "--resume", str(tmp_path / "cut"), "--set", "seed=2"], "--set"),
                       (["run"], "expected a scenario file")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and what in err, err


def test_an_interrupted_cli_run_says_how_to_go_on(tmp_path, capsys, monkeypatch):
    import cosim.run as run_module

    real = run_module.run_scenario

    def stopping(*args, **kwargs):
        return real(*args, **{**kwargs, "on_round": _stop_at(2)})

    monkeypatch.setattr(run_module, "run_scenario", stopping)
    out = tmp_path / "r"
    assert main(["run", str(SMOKE), "--quiet", "--set", "output.checkpoint_every_rounds=1", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cosim run --resume {out}" in err
    monkeypatch.undo()
    assert main(["run", "--resume", str(out), "--quiet"]) == 0 and not checkpoint_dir(out).exists()


def test_a_trace_spilled_to_chunks_before_the_checkpoint_comes_back_whole(tmp_path, monkeypatch):
    import cosim.trace.recorder as recorder

    monkeypatch.setattr(recorder, "SPILL_ROWS", 300)         # packets and counters go to chunk files early on
    sc = load_scenario(SMOKE, ["output.checkpoint_every_rounds=2", "output.trace_level=packets"])
    full, cut = _stopped_and_resumed(sc, tmp_path, stop_round=3)
    import pyarrow.parquet as pq

    assert pq.read_metadata(full / "packets.parquet").num_row_groups > 3      # it did spill
    assert _outputs(full) == _outputs(cut)
