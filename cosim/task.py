"""The learning task of a run: data, partitions, the one reused model, its measured costs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from learning import partition as part
from learning.data import TensorDataset, load_digits, train_test_split
from learning.fl import StateDict, state_nbytes
from learning.flops import train_flops_per_sample
from learning.models import SplitModel, build_model

from .errors import SettingError
from .rng import RngStreams
from .scenario import LearningConfig


@dataclass
class LearningTask:
    """Everything numeric a protocol needs; built once per run."""

    config: LearningConfig
    model: SplitModel
    train: TensorDataset
    test: TensorDataset
    client_indices: list[np.ndarray]
    global_state: StateDict
    train_flops_per_sample: float
    model_bytes: int

    def client_data(self, client: int) -> TensorDataset:
        return self.train.subset(self.client_indices[client])

    def client_size(self, client: int) -> int:
        return int(len(self.client_indices[client]))


def _partition(cfg: LearningConfig, labels: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    p = cfg.partition
    if p.kind == "shards" and cfg.num_clients * p.shards_per_client > len(labels):
        raise SettingError("learning.partition.shards_per_client", p.shards_per_client,
                           f"num_clients x shards_per_client <= {len(labels)} training samples")
    if cfg.num_clients * 2 > len(labels):
        raise SettingError("learning.num_clients", cfg.num_clients,
                           f"at most {len(labels) // 2} (2 samples per client from {len(labels)} training samples)")
    if p.kind == "iid":
        return part.partition_iid(labels, cfg.num_clients, rng)
    if p.kind == "shards":
        return part.partition_shards(labels, cfg.num_clients, p.shards_per_client, rng)
    try:
        return part.partition_dirichlet(labels, cfg.num_clients, p.alpha, rng)
    except ValueError:
        raise SettingError("learning.partition.alpha", p.alpha,
                           f"a larger alpha or fewer clients: Dirichlet left a client with < 2 samples") from None


def build_task(cfg: LearningConfig, streams: RngStreams) -> LearningTask:
    """Load data, split train/test, partition among clients, init the model (seeded), measure FLOPs."""
    data = load_digits(cfg.image_size)
    train, test = train_test_split(data, cfg.test_fraction, seed=streams.seed_for("split") % (2 ** 31))
    parts = _partition(cfg, train.y.numpy(), streams.get("partition"))
    torch.manual_seed(streams.seed_for("model-init"))
    model = build_model(cfg.model, in_channels=train.input_shape[0], image_size=cfg.image_size,
                        num_classes=train.num_classes)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flops = train_flops_per_sample(model, train.input_shape)
    return LearningTask(cfg, model, train, test, parts, state, flops, state_nbytes(state))
