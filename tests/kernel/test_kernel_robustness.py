"""What a new user meets: the run directory is never silently replaced, threads and overrides are recorded,
results go to stdout, a damaged run cannot crash `cosim plot`, JSON is strict."""
import json
import math

import pytest
import torch
import yaml

from cosim.cli import main
from cosim.trace.export import natural_key, strict_dumps
from tests.conftest import TWO_VEHICLES as TINY


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)             # the default run directory is runs/<name>-seed<seed> here
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return "tiny.yaml"


def test_the_default_run_directory_is_never_silently_replaced(tiny, tmp_path, capsys):
    for _ in range(2):
        assert main(["run", tiny, "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny-seed3", "tiny-seed3-2"]
    assert main(["run", tiny, "--quiet", "--force"]) == 0           # --force: the first one, replaced
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny-seed3", "tiny-seed3-2"]


def test_a_folder_of_other_files_is_never_replaced_even_with_force(tiny, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["run", tiny, "--out", str(mine), "--force"]) == 2
    assert "a folder of other files, which a run will not replace" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_threads_and_overrides_are_in_the_manifest_and_results_on_stdout(tiny, tmp_path, capsys):
    assert main(["run", tiny, "--out", "r", "--threads", "2", "--set", "protocol.rounds=1"]) == 0
    out, err = capsys.readouterr()
    assert "run directory: r" in out and "│ --set            │ protocol.rounds=1" in out
    assert "run directory" not in err
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["torch_threads"] == 2 and manifest["overrides"] == ["protocol.rounds=1"]
    assert manifest["versions"]["sumo"] and manifest["inputs"] == {}      # scripted: no input file
    assert main(["run", tiny, "--out", "r2", "--threads", "0"]) == 2
    assert "--threads = 0: expected >= 1" in capsys.readouterr().err


def test_one_thread_is_the_default(tiny, tmp_path):
    import torch

    torch.set_num_threads(2)
    try:
        assert main(["run", tiny, "--out", "r", "--quiet"]) == 0
    finally:
        torch.set_num_threads(1)
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["torch_threads"] == 1


@pytest.mark.parametrize("damage", ["truncated", "binary", "no column"])
def test_cosim_plot_on_a_damaged_run_is_one_line(tiny, tmp_path, capsys, damage):
    assert main(["run", tiny, "--out", "r", "--quiet"]) == 0
    rounds = tmp_path / "r" / "rounds.csv"
    text = rounds.read_text()
    rounds.write_bytes({"truncated": text[: len(text) // 2].encode(), "binary": b"round,acc\n\xff\x00\n",
                        "no column": b"round\n0\n"}[damage])
    capsys.readouterr()
    assert main(["plot", "r"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("rounds.csv: unreadable" in err or "r: unreadable" in err)


def test_strict_json_writes_nan_and_inf_as_null_and_tracks_sort_naturally():
    assert strict_dumps({"a": [1.0, math.nan, {"b": -math.inf}], "c": "x"}) == '{"a": [1.0, null, {"b": null}], "c": "x"}'
    assert strict_dumps({"a": 1.5}) == '{"a": 1.5}'
    assert sorted(["v10", "v2", "server", "v1", "rsu0"], key=natural_key) == ["rsu0", "server", "v1", "v2", "v10"]


def test_a_run_directory_that_cannot_be_made_is_one_line(tiny, tmp_path, capsys):
    # a file where a folder of the path should be: no user, root included, can make it
    (tmp_path / "taken").write_text("a file")
    assert main(["run", tiny, "--out", str(tmp_path / "taken" / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and not list(tmp_path.glob(".*"))


def test_training_in_worker_processes_writes_the_same_bytes(tiny, tmp_path, monkeypatch):
    import cosim.protocols.fl as fl

    in_process = []
    train = fl.local_train
    monkeypatch.setattr(fl, "local_train", lambda *a, **k: (in_process.append(1), train(*a, **k))[1])
    tree = {**TINY, "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": f"v{k}", "x_m": 40.0 * k, "speed_mps": 1.0} for k in range(6)]}},
        "learning": {"num_clients": 6}, "protocol": {**TINY["protocol"], "rounds": 3, "vehicles_per_round": 6}}
    (tmp_path / "six.yaml").write_text(yaml.safe_dump(tree))
    counts = {}
    for workers in ("1", "2"):
        in_process.clear()
        assert main(["run", "six.yaml", "--out", f"w{workers}", "--quiet", "--workers", workers]) == 0
        counts[workers] = len(in_process)
    assert counts == {"1": 18, "2": 0}          # with workers, every vehicle trained in one of them
    names = [p.name for p in (tmp_path / "w1").iterdir() if p.name not in ("manifest.json", "timings.json")]
    assert len(names) >= 9
    for name in names:
        assert (tmp_path / "w1" / name).read_bytes() == (tmp_path / "w2" / name).read_bytes(), name
    import csv
    with open(tmp_path / "w2" / "rounds.csv") as fh:
        assert [int(r["completed"]) for r in csv.DictReader(fh)] == [6, 6, 6]


def test_spawned_training_workers_build_the_task_again_and_train_the_same_bytes(tmp_path):
    # the path off Linux (no fork): each worker builds the task from the scenario's learning settings
    from cosim.rng import RngStreams
    from cosim.scenario import validate_tree
    from cosim.task import build_task
    from cosim.trainpool import TrainPool
    from learning.fl import local_train

    sc = validate_tree(TINY, "tiny", base_dir=tmp_path)
    task = build_task(sc.learning, RngStreams(sc.seed), tmp_path, 0.0)
    pool = TrainPool(sc.learning, sc.seed, tmp_path, 0.0, workers=2)        # no task given: spawned
    try:
        pool.submit_round(1, task.global_state, [0, 3])
        got = {c: pool.result(1, c) for c in (0, 3)}
    finally:
        pool.close()
    cfg = task.config
    for c in (0, 3):
        want = local_train(task.model, task.global_state, task.client_data(c), epochs=cfg.local_epochs,
                           batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                           seed=RngStreams(sc.seed).seed_for("local-train", 1, c))
        assert got[c] is not None and got[c].num_samples == want.num_samples and got[c].mean_loss == want.mean_loss
        assert all(torch.equal(got[c].state[k], want.state[k]) for k in want.state)


def test_a_run_thaws_the_heap_it_froze_and_leaves_a_callers_freeze_alone(tmp_path):
    import gc

    from cosim.run import run_scenario
    from cosim.scenario import validate_tree
    sc = validate_tree(TINY, "tiny.yaml")
    seen = []
    gc.unfreeze()
    run_scenario(sc, tmp_path / "a", on_round=lambda row, t: seen.append(gc.get_freeze_count()))
    assert seen and min(seen) > 0 and gc.get_freeze_count() == 0      # frozen while it ran, thawed after
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        run_scenario(sc, tmp_path / "b")
        assert 0 < gc.get_freeze_count() <= frozen      # the caller's freeze kept, and nothing of the run's added
    finally:
        gc.unfreeze()


def test_timings_hold_each_rounds_set_up_phases_beside_the_solves(tmp_path):
    from cosim.run import run_scenario
    from cosim.scenario import validate_tree
    result = run_scenario(validate_tree(TINY, "tiny.yaml"), tmp_path / "run")
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())
    phases = timings["round_phases"]
    assert [p["round"] for p in phases] == [r["round"] for r in result.rounds] == [0, 1]
    assert all(p["covered"] == 2 and p["selected"] == 2 for p in phases)
    assert all(set(p) == {"round", "covered", "selected", "predict_ms", "snapshot_ms", "select_ms", "plan_ms",
                          "start_ms"} and min(v for k, v in p.items() if k.endswith("_ms")) >= 0 for p in phases)
    assert len(timings["solves"]) == 2
