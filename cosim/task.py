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


def build_task(cfg: LearningConfig, streams: RngStreams) -> LearningTask:
    """Load data, split train/test, partition among clients, init the model (seeded), measure FLOPs."""
    data = load_digits(cfg.image_size)
    train, test = train_test_split(data, cfg.test_fraction, seed=streams.seed_for("split") % (2 ** 31))
    rng = streams.get("partition")
    labels = train.y.numpy()
    if cfg.partition.kind == "iid":
        parts = part.partition_iid(labels, cfg.num_clients, rng)
    elif cfg.partition.kind == "dirichlet":
        parts = part.partition_dirichlet(labels, cfg.num_clients, cfg.partition.alpha, rng)
    else:
        parts = part.partition_shards(labels, cfg.num_clients, cfg.partition.shards_per_client, rng)
    torch.manual_seed(streams.seed_for("model-init"))
    model = build_model(cfg.model, in_channels=train.input_shape[0], image_size=cfg.image_size,
                        num_classes=train.num_classes)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flops = train_flops_per_sample(model, train.input_shape)
    return LearningTask(cfg, model, train, test, parts, state, flops, state_nbytes(state))
