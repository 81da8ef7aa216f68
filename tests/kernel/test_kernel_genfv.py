"""GenFV on the clock: label histograms up first, the server's generation and augmented training on its GPU
queue, the prediction equal to the timeline when nothing moves, kappa-weighted aggregation that a bare
PyTorch loop replays exactly, and FedAvg bit for bit without augmentation."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cosim.errors import ScenarioError, SettingError
from cosim.optimizers.genfv import emd, kappa_weights, label_distribution
from cosim.rng import RngStreams
from cosim.task import build_task
from learning.data import TensorDataset
from learning.fl import augmented_aggregate, evaluate, local_train
from learning.generators import PoolGenerator, deficit_labels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "split"))
from split_testlib import run, tree  # noqa: E402

VEHICLES = [{"id": "a", "x_m": 60.0}, {"id": "b", "x_m": 200.0}, {"id": "c", "x_m": 350.0}, {"id": "d", "x_m": 450.0}]
T0_S = 1e-3


def _genfv(**protocol):
    t = tree(vehicles=VEHICLES, learning={"num_clients": 4, "partition": {"kind": "dirichlet", "alpha": 0.3},
                                          "local_epochs": 1, "batch_size": 32},
             protocol={"scheme": "genfv", "rounds": 3, "vehicles_per_round": 3, "round_deadline_s": 50,
                       "server_data_fraction": 0.2, "generator": {"kind": "pool", "seconds_per_sample": T0_S},
                       **protocol})
    t["protocol"].pop("cut", None)
    t["devices"] = {"server": {"flops_per_s": 1e11, "gpu_slots": 2}}
    return t


def test_round_timeline_metadata_then_training_and_server_work(tmp_path):
    got = run(tmp_path, _genfv())
    task = got.task
    labels = got.kind("tx.ul")
    meta = [s for s in labels if s["payload"] == "labels"]
    assert len(meta) == 3 * len(VEHICLES)                  # every covered vehicle, every round
    assert {s["bytes"] for s in meta} == {task.train.num_classes * 4}
    for r, row in enumerate(got.rounds):
        assert row["selected"] == 3 and row["completed"] == 3
        first = min(s["t_start_s"] for s in got.spans if s["round"] == r and s["kind"] == "tx.dl")
        assert first == max(s["t_end_s"] for s in meta if s["round"] == r)   # selection after the histograms
        gen = [s for s in got.kind("server.generate") if s["round"] == r]
        train = [s for s in got.kind("server.train") if s["round"] == r]
        assert len(gen) == len(train) == 1 and row["b"] > 0
        assert gen[0]["t_end_s"] - gen[0]["t_start_s"] == pytest.approx(row["b"] * T0_S, rel=1e-12)
        # w_a trains on everything generated so far
        flops = task.train_flops_per_sample * row["generated_total"] * task.config.local_epochs
        assert train[0]["t_end_s"] - train[0]["t_start_s"] == pytest.approx(flops / 1e11, rel=1e-12)
        assert train[0]["t_start_s"] == gen[0]["t_end_s"]
        # the server's work fits in the vehicles' round but for what training this round's b samples takes: the
        # closed form budgets with the training on the b_s^{t-1} generated before
        last_up = max(s["t_end_s"] for s in got.spans if s["round"] == r and s["kind"] == "tx.ul"
                      and s["payload"] == "model")
        over = task.train_flops_per_sample * row["b"] * task.config.local_epochs / 1e11
        assert train[0]["t_end_s"] <= last_up + over + 1e-9
    assert [row["generated_total"] for row in got.rounds] == list(np.cumsum([row["b"] for row in got.rounds]))


def test_prediction_is_the_timeline_when_nothing_moves(tmp_path):
    got = run(tmp_path, _genfv())
    import pyarrow.parquet as pq

    rows = pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()
    assert len(rows) == 9
    for row in rows:
        # from the plan on: the histogram's upload before it is in rounds.csv's energy, not in the row
        meta_j = sum(s["energy_j"] for s in got.kind("tx.ul", row["vehicle"])
                     if s["round"] == row["round"] and s["payload"] == "labels")
        assert 0 < meta_j < 1e-3 * row["measured_energy_j"]
        assert row["measured_latency_s"] == pytest.approx(row["predicted_latency_s"], rel=1e-9)
        assert row["measured_energy_j"] == pytest.approx(row["predicted_energy_j"], rel=1e-9)
    for r, round_row in enumerate(got.rounds):
        spans = [s for s in got.spans if s["round"] == r and not s["actor"].startswith(("server", "rsu"))]
        assert round_row["energy_j"] == pytest.approx(sum(s["energy_j"] for s in spans), rel=1e-12)
        assert any(s["payload"] == "labels" and s["energy_j"] > 0 for s in spans)


def _replay(t, got, augment: bool):
    """The run's rounds as a bare PyTorch loop: local SGD of the aggregated clients, the pool's samples for the
    labels the cohort lacks added to those of earlier rounds, w_a trained on them all from the round's global
    model, kappa-weighted average."""
    streams = RngStreams(t["seed"])
    task = build_task(got.task.config, streams, server_fraction=t["protocol"]["server_data_fraction"])
    cfg = task.config
    pool = PoolGenerator(task.server_data())
    state, generated = task.global_state, []
    p = label_distribution(np.sum([task.label_histogram(c) for c in range(cfg.num_clients)], axis=0))
    for r, row in enumerate(got.rounds):
        locals_ = [local_train(task.model, state, task.client_data(c), epochs=cfg.local_epochs,
                               batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                               seed=streams.seed_for("local-train", r, c)) for c in row["clients_aggregated"]]
        mean_emd = float(np.mean([emd(task.label_histogram(c), p) for c in row["clients_aggregated"]]))
        assert row["mean_emd"] == pytest.approx(mean_emd, rel=1e-12)
        w_a, kappa2 = None, 0.0
        if augment:
            counts = np.sum([task.label_histogram(c) for c in row["clients_trained"]], axis=0)
            y = torch.as_tensor(deficit_labels(p, counts, row["b"]), dtype=torch.int64)
            generated.append((pool.sample(y, torch.Generator().manual_seed(streams.seed_for("generate", r))), y))
            x, y = torch.cat([x for x, _ in generated]), torch.cat([y for _, y in generated])
            assert len(y) == row["generated_total"]
            w_a = local_train(task.model, state, TensorDataset(x, y, task.train.num_classes), epochs=cfg.local_epochs,
                              batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                              seed=streams.seed_for("augmented-train", r)).state
            kappa2 = kappa_weights(mean_emd)[1]
        assert row["kappa2"] == kappa2
        state = augmented_aggregate([(x.state, x.num_samples) for x in locals_], w_a, kappa2)
        assert (row["accuracy"], row["loss"]) == evaluate(task.model, state, task.test)
    return state


def test_augmented_rounds_replay_bit_for_bit(tmp_path):
    t = _genfv()
    got = run(tmp_path, t)
    assert all(row["kappa2"] > 0 for row in got.rounds)
    final = _replay(t, got, augment=True)
    assert all(torch.equal(final[k], got.task.global_state[k]) for k in final)


def test_without_augmentation_it_is_fedavg_bit_for_bit(tmp_path):
    t = _genfv(augmentation=False)
    got = run(tmp_path, t)
    assert [row["b"] for row in got.rounds] == [0, 0, 0] and not got.kind("server.generate")
    final = _replay(t, got, augment=False)
    assert all(torch.equal(final[k], got.task.global_state[k]) for k in final)


def test_same_seed_same_bytes(tmp_path):
    t = _genfv(rounds=2)
    run(tmp_path, t, "one")
    run(tmp_path, t, "two")
    for name in ("rounds.csv", "spans.parquet", "decisions.parquet", "trace.json", "summary.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_emd_threshold_and_fixed_b(tmp_path):
    got = run(tmp_path, _genfv(emd_max=0.0, rounds=1))
    assert got.rounds == [] or got.rounds[0]["selected"] == 0
    got = run(tmp_path, _genfv(generation_amount="fixed", fixed_b=7, rounds=2), "fixed")
    assert [row["b"] for row in got.rounds] == [7, 7]
    assert all(s["t_end_s"] - s["t_start_s"] == pytest.approx(7 * T0_S) for s in got.kind("server.generate"))


@pytest.mark.parametrize("protocol, field", [
    ({"server_data_fraction": 0.0}, "protocol.server_data_fraction"),
    ({"generator": {"kind": "plugin"}}, "protocol.generator.path"),
    ({"generator": {"kind": "plugin", "path": "missing.py"}}, "protocol.generator.path"),
    ({"emd_max": 2.5}, "protocol.emd_max"),
])
def test_bad_settings_are_one_line(tmp_path, protocol, field):
    with pytest.raises((ScenarioError, SettingError)) as err:
        run(tmp_path, _genfv(**protocol))
    msg = str(err.value)
    assert field in msg and "\n" not in msg.strip()


def _fake_cifar100(root: Path, train_per_class: int = 6, test: int = 50) -> None:
    """The cifar-100-python layout (pickled dicts of uint8 rows and fine labels) with random pixels."""
    import pickle

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, labels in (("train", np.repeat(np.arange(100), train_per_class)), ("test", rng.integers(0, 100, test))):
        batch = {b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8), b"fine_labels": labels.tolist(),
                 b"coarse_labels": (labels // 5).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar100_from_local_files_with_the_cvae(tmp_path):
    """The paper's data sets are options: CIFAR-100 read from a local folder, 100 labels in the histograms, the
    cvae trained on the server's split at set-up (cached by content hash) and generating for the deficit."""
    _fake_cifar100(tmp_path / "data")
    t = _genfv(rounds=2, generator={"kind": "cvae", "seconds_per_sample": T0_S, "cache_dir": str(tmp_path / "cache"),
                                    "options": {"epochs": 1, "hidden": 16, "latent_dim": 4}})
    t["learning"].update(dataset="cifar100", data_dir=str(tmp_path / "data"), partition={"kind": "iid"})
    got = run(tmp_path, t)
    assert len(got.task.server_indices) == 100 and got.task.train.num_classes == 100     # one of each class
    meta = [s for s in got.kind("tx.ul") if s["payload"] == "labels"]
    assert {s["bytes"] for s in meta} == {100 * 4}
    assert [row["completed"] for row in got.rounds] == [3, 3] and all(row["b"] > 0 for row in got.rounds)
    assert len(got.kind("server.train")) == 2 and len(list((tmp_path / "cache").glob("cvae-*.pt"))) == 1
