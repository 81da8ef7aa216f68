"""GenFV's generators: the pool draws the requested labels from the server's split, the cvae's samples are
recognizable digits to a model trained on real ones, its training is cached by content hash, a plug-in
is checked, and the labels to generate follow the cohort's deficit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cosim.rng import RngStreams
from cosim.scenario import LearningConfig
from cosim.task import build_task
from learning.data import TensorDataset
from learning.fl import evaluate, local_train
from learning.generators import (PoolGenerator, cached_cvae, cvae_cache_path, deficit_labels, largest_remainder,
                                 load_plugin, make_generator, train_cvae)


@pytest.fixture(scope="module")
def task():
    cfg = LearningConfig(dataset="digits", num_clients=10, partition={"kind": "dirichlet", "alpha": 0.3}, model="cnn")
    return build_task(cfg, RngStreams(3), server_fraction=0.1)


def test_the_server_split_is_stratified_and_no_client_holds_it(task):
    pool = task.server_data()
    held = np.concatenate(task.client_indices)
    assert np.intersect1d(held, task.server_indices).size == 0
    assert len(held) + len(task.server_indices) == len(task.train)
    counts = np.bincount(pool.y.numpy(), minlength=10)
    assert counts.min() >= 1 and counts.max() - counts.min() <= 3      # 10% of each class, rounded


def test_pool_samples_carry_the_requested_labels(task):
    pool = task.server_data()
    gen = PoolGenerator(pool)
    labels = torch.tensor([3, 3, 0, 9, 1, 3, 7, 7])
    x = gen.sample(labels, torch.Generator().manual_seed(5))
    assert x.shape == (8, *pool.input_shape) and x.dtype == torch.float32
    for img, y in zip(x, labels):
        same = (pool.x == img).flatten(1).all(1)
        assert same.any() and set(pool.y[same].tolist()) == {int(y)}
    again = gen.sample(labels, torch.Generator().manual_seed(5))
    assert torch.equal(x, again)
    assert gen.sample(torch.zeros(0, dtype=torch.int64), torch.Generator()).shape == (0, *pool.input_shape)
    with pytest.raises(ValueError, match="outside"):
        gen.sample(torch.tensor([10]), torch.Generator())


def test_cvae_samples_are_classified_as_their_labels(task):
    """The cvae, trained on the server's 10% only, makes digits that a CNN trained on the clients' real digits
    reads as the requested label at least 80% of the time (100% on this seed)."""
    torch.manual_seed(0)
    gen = train_cvae(task.server_data(), seed=0)
    real = task.train.subset(np.concatenate(task.client_indices))
    clf = local_train(task.model, task.global_state, real, epochs=15, batch_size=32, lr=0.05, momentum=0.9, seed=0)
    assert evaluate(task.model, clf.state, task.test)[0] > 0.9
    labels = torch.arange(10).repeat(30)
    x = gen.sample(labels, torch.Generator().manual_seed(1))
    assert x.shape == (300, *task.train.input_shape) and 0 <= float(x.min()) and float(x.max()) <= 1
    accuracy, _ = evaluate(task.model, clf.state, TensorDataset(x, labels, 10))
    assert accuracy >= 0.8
    assert torch.equal(x, gen.sample(labels, torch.Generator().manual_seed(1)))    # the caller's generator only
    assert not torch.equal(x, gen.sample(labels, torch.Generator().manual_seed(2)))


def test_cvae_is_cached_by_content_hash(task, tmp_path):
    pool = task.server_data()
    path = cvae_cache_path(pool, tmp_path, epochs=3)
    assert not path.exists()
    first = cached_cvae(pool, tmp_path, epochs=3)
    assert path.is_file()
    second = cached_cvae(pool, tmp_path, epochs=3)                 # loaded, not trained again
    assert all(torch.equal(first.state_dict()[k], v) for k, v in second.state_dict().items())
    assert cvae_cache_path(pool, tmp_path, epochs=4) != path       # another setting, another file
    other = TensorDataset(pool.x.flip(0), pool.y.flip(0), pool.num_classes)
    assert cvae_cache_path(other, tmp_path, epochs=3) != path      # other data, another file
    with pytest.raises(ValueError, match="unknown cvae option"):
        make_generator("cvae", pool, cache_dir=tmp_path, options={"depth": 3}, plugin_path=None)
    with pytest.raises(ValueError, match="positive integer"):
        make_generator("cvae", pool, cache_dir=tmp_path, options={"epochs": 0}, plugin_path=None)


def test_cvae_training_does_not_depend_on_the_callers_threads(task):
    before = torch.get_num_threads()
    states = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        states.append(train_cvae(task.server_data(), epochs=2, seed=4).state_dict())
        assert torch.get_num_threads() == threads                  # restored
    torch.set_num_threads(before)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


PLUGIN = """
import torch

class Mean:
    def __init__(self, pool, options):
        self.means = torch.stack([pool.x[pool.y == c].mean(0) for c in range(pool.num_classes)])
        self.shift = float(options.get("shift", 0.0))

    def sample(self, labels, generator):
        return self.means[labels] + self.shift

def make_generator(pool, options):
    return Mean(pool, options)
"""


def test_plugin_generator_from_a_local_file(task, tmp_path):
    pool = task.server_data()
    (tmp_path / "mean.py").write_text(PLUGIN)
    gen = load_plugin(tmp_path / "mean.py", pool, {"shift": 0.5})
    x = gen.sample(torch.tensor([2, 4]), torch.Generator())
    assert torch.allclose(x[1], pool.x[pool.y == 4].mean(0) + 0.5)
    (tmp_path / "bad.py").write_text(PLUGIN.replace("self.means[labels] + self.shift", "self.means[labels][:, :, :4]"))
    with pytest.raises(ValueError, match="expected"):
        load_plugin(tmp_path / "bad.py", pool, {}).sample(torch.tensor([1]), torch.Generator())
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(ValueError, match="make_generator"):
        load_plugin(tmp_path / "none.py", pool, {})
    with pytest.raises(FileNotFoundError):
        load_plugin(tmp_path / "missing.py", pool, {})


def test_deficit_labels_by_hand():
    # target (0.25, 0.25, 0.5), cohort counts (2, 0, 2) -> q = (0.5, 0, 0.5): deficit (0, 0.25, 0): all to class 1
    assert deficit_labels(np.array([0.25, 0.25, 0.5]), np.array([2, 0, 2]), 4).tolist() == [1, 1, 1, 1]
    # deficits (0.2, 0.1, 0) with b = 5: quotas (3.33, 1.67, 0) -> (3, 2, 0) by largest remainder
    assert deficit_labels(np.array([0.4, 0.3, 0.3]), np.array([2, 2, 6]), 5).tolist() == [0, 0, 0, 1, 1]
    # a cohort that matches the target: proportional to it
    assert deficit_labels(np.array([0.5, 0.5]), np.array([3, 3]), 3).tolist() == [0, 0, 1]
    assert deficit_labels(np.zeros(3), np.zeros(3), 3).tolist() == [0, 1, 2]          # nothing heard: uniform
    assert deficit_labels(np.array([0.5, 0.5]), np.array([1, 0]), 0).tolist() == []
    assert largest_remainder(np.array([1.0, 1.0, 1.0]), 7).tolist() == [3, 2, 2]
