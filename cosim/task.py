"""The learning task of a run: data, partitions, the one reused model, its measured costs."""
from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from learning import partition as part
from learning.data import TensorDataset, load_digits, train_test_split
from learning.datasets import load_dataset
from learning.fl import StateDict, state_nbytes
from learning.flops import train_flops_per_sample
from learning.pretrain import cached_pretrain, load_pretrained, read_checkpoint
from learning.models import SplitModel, build_model
from learning.profile import CutProfile, measure_cut

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
    server_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))   # no client holds them
    _histograms: dict = field(default_factory=dict, repr=False)
    _adapted: Optional[dict] = field(default=None, repr=False)        # cut -> profile of the adapted model

    def client_data(self, client: int) -> TensorDataset:
        return self.train.subset(self.client_indices[client])

    def server_data(self) -> TensorDataset:
        """The training samples the edge server holds and no vehicle does (empty unless a scheme asks)."""
        return self.train.subset(self.server_indices)

    def client_size(self, client: int) -> int:
        return int(len(self.client_indices[client]))

    def label_histogram(self, client: int) -> tuple[int, ...]:
        """Samples per class in the client's partition."""
        hist = self._histograms.get(client)
        if hist is None:
            labels = self.train.y[self.client_indices[client]].numpy()
            hist = self._histograms[client] = tuple(int(n) for n in np.bincount(labels, minlength=self.train.num_classes))
        return hist

    def profiles(self) -> tuple[CutProfile, ...]:
        """The measured profile of every split point of the model (see `cut_profile`)."""
        return tuple(self.cut_profile(c) for c in self.model.split_points)

    def cut_profile(self, cut: int) -> CutProfile:
        """The measured per-sample costs of split point `cut` (cached per model and input shape).

        Raises SettingError naming protocol.cut when `cut` is not a split point of the model.
        """
        points = self.model.split_points
        if cut not in points:
            raise SettingError("protocol.cut", cut, f"a split point of {self.config.model}: one of "
                               f"{list(points)} (stages {list(self.model.stage_names)})")
        if self._adapted is not None:
            if cut not in self._adapted:
                prof = measure_cut(self.model, cut, self.train.input_shape)
                frozen = set(self.frozen_names())
                sent = [k for k in self.model.client_param_names(cut) if k not in frozen]
                self._adapted[cut] = dataclasses.replace(
                    prof, client_param_bytes=state_nbytes({k: self.global_state[k] for k in sent}))
            return self._adapted[cut]
        c, size = self.train.input_shape[0], self.train.input_shape[-1]
        return _cut_profile(self.config.model, c, size, self.train.num_classes, cut,
                            tuple(sorted(self.config.arch.items())))

    def adapted(self) -> None:
        """The model was adapted (LoRA put on it, only some parameters train): from now on its profiles are
        measured on it as it is, with the client side's bytes those of its trainable tensors (what travels);
        the global state, training FLOPs per sample and model bytes (the trainable tensors) follow it."""
        model = self.model
        self.global_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.train_flops_per_sample = train_flops_per_sample(model, self.train.input_shape)
        model.load_state_dict(self.global_state)               # measuring ran a training step
        frozen = set(self.frozen_names())
        self.model_bytes = state_nbytes({k: v for k, v in self.global_state.items() if k not in frozen})
        self._adapted = {}

    def frozen_names(self) -> list[str]:
        """The model's frozen parameters (requires_grad off): they never change, so they travel at most once."""
        return [n for n, p in self.model.named_parameters() if not p.requires_grad]


@functools.lru_cache(maxsize=64)
def _cut_profile(name: str, in_channels: int, image_size: int, num_classes: int, cut: int,
                 arch: tuple[tuple[str, object], ...]) -> CutProfile:
    """learning.profile.measure_cut of one cut on a meta-device model (shapes only: no weights, no RNG draw)."""
    with torch.device("meta"):
        model = build_model(name, in_channels, image_size, num_classes, **dict(arch))
    return measure_cut(model, cut, (in_channels, image_size, image_size))


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
                           "a larger alpha or fewer clients: Dirichlet left a client with < 2 samples") from None


def _load(cfg: LearningConfig, streams: RngStreams, base_dir: Optional[Path]) -> tuple[TensorDataset, TensorDataset]:
    """(train, test): digits split by test_fraction; the other data sets from their files in data_dir."""
    if cfg.dataset == "digits":
        data = load_digits(cfg.image_size if cfg.image_size is not None else 8)
        return train_test_split(data, cfg.test_fraction, seed=streams.seed_for("split") % (2 ** 31))
    root = Path(cfg.data_dir)
    if not root.is_absolute() and base_dir is not None:
        root = base_dir / root
    try:
        return (load_dataset(cfg.dataset, root, train=True, image_size=cfg.image_size),
                load_dataset(cfg.dataset, root, train=False, image_size=cfg.image_size))
    except FileNotFoundError as exc:
        raise SettingError("learning.data_dir", cfg.data_dir,
                           f"the {cfg.dataset} files ({' '.join(str(exc).split())})") from None
    except (ValueError, OSError) as exc:       # corrupt, truncated or unreadable files (the loaders name them)
        raise SettingError("learning.data_dir", cfg.data_dir,
                           f"readable {cfg.dataset} files ({' '.join(str(exc).split())})") from None


def server_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A stratified `fraction` of the samples (at least one of each class), sorted: the edge server's own."""
    out = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        out.append(rng.choice(idx, size=max(1, int(round(fraction * len(idx)))), replace=False))
    return np.sort(np.concatenate(out)).astype(np.int64)


def build_task(cfg: LearningConfig, streams: RngStreams, base_dir: Optional[Path] = None,
               server_fraction: float = 0.0, measure_flops: bool = True) -> LearningTask:
    """Load data, split train/test, hold out `server_fraction` of the training set for the edge server (from
    the stream 'server-data'; none by default), partition the rest among clients, init the model (seeded),
    measure FLOPs.

    `base_dir` resolves a relative learning.data_dir (the scenario's folder). Raises SettingError naming
    learning.data_dir when the data set's files are missing or unreadable.
    """
    train, test = _load(cfg, streams, base_dir)
    labels = train.y.numpy()
    pre = cfg.pretrained
    if pre is not None and pre.fraction > 0:
        if server_fraction > 0:
            raise SettingError("learning.pretrained.fraction", pre.fraction,
                               f"0: the scheme already holds out {server_fraction} of the training set for the server")
        server_fraction = pre.fraction
    server_idx = np.zeros(0, dtype=np.int64)
    if server_fraction > 0:
        server_idx = server_split(labels, server_fraction, streams.get("server-data"))
        rest = np.setdiff1d(np.arange(len(labels)), server_idx)
        parts = [rest[p] for p in _partition(cfg, labels[rest], streams.get("partition"))]
    else:
        parts = _partition(cfg, labels, streams.get("partition"))
    torch.manual_seed(streams.seed_for("model-init"))
    try:
        model = build_model(cfg.model, in_channels=train.input_shape[0], image_size=train.input_shape[-1],
                            num_classes=train.num_classes, **dict(cfg.arch))
    except ValueError as exc:
        raise SettingError("learning.arch", dict(cfg.arch),
                           f"a {cfg.model} that fits {tuple(train.input_shape)} inputs ({exc})") from None
    if pre is not None:
        _pretrained(model, pre, train.subset(server_idx), streams, base_dir)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    flops = train_flops_per_sample(model, train.input_shape) if measure_flops else float("nan")  # a training worker needs none
    return LearningTask(cfg, model, train, test, parts, state, flops, state_nbytes(state), server_idx)


def cache_dir(configured: Optional[str], base_dir: Optional[Path]) -> Path:
    """Where set-up work is cached: the configured folder (relative: to the scenario), $COSIM_CACHE_DIR, or
    ~/.cache/cosim."""
    if configured is not None:
        return _resolve(configured, base_dir)
    return Path(os.environ.get("COSIM_CACHE_DIR") or Path.home() / ".cache" / "cosim")


def _resolve(path: str, base_dir: Optional[Path]) -> Path:
    """A scenario's path: absolute as is, else relative to the scenario's folder."""
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def pretrain_hyper(pre, streams: RngStreams) -> dict:
    """learning.pretrain's settings from learning.pretrained, the seed from the stream 'pretrain'."""
    return dict(epochs=pre.epochs, lr=pre.lr, batch_size=pre.batch_size, weight_decay=pre.weight_decay,
                seed=streams.seed_for("pretrain"))


def _pretrained(model: SplitModel, pre, held_out: TensorDataset, streams: RngStreams, base_dir: Optional[Path]) -> None:
    """Put the pretrained weights in `model`: the checkpoint's, or trained on the held-out split (cached)."""
    if pre.checkpoint is None:
        if pre.classes is not None:
            bad = [c for c in pre.classes if c >= held_out.num_classes]
            if bad:
                raise SettingError("learning.pretrained.classes", list(pre.classes),
                                   f"labels of the data set (0..{held_out.num_classes - 1})")
            held_out = held_out.subset(np.flatnonzero(np.isin(held_out.y.numpy(), pre.classes)))
        state, _ = cached_pretrain(model, held_out, cache_dir(pre.cache_dir, base_dir), **pretrain_hyper(pre, streams))
        model.load_state_dict(state)
        return
    path = _resolve(pre.checkpoint, base_dir)
    if not path.is_file():
        raise SettingError("learning.pretrained.checkpoint", pre.checkpoint, f"an existing file ({path} is not one)")
    try:
        load_pretrained(model, read_checkpoint(path))
    except ValueError as exc:
        raise SettingError("learning.pretrained.checkpoint", pre.checkpoint,
                           f"weights of this {type(model).__name__} ({exc})") from None


# (channels, image size, classes) of each data set as loaded (learning.data, learning.datasets)
DATASET_SHAPES = {"digits": (1, 8, 10), "mnist": (1, 28, 10), "fashion_mnist": (1, 28, 10), "cifar10": (3, 32, 10),
                  "cifar100": (3, 32, 100), "gtsrb": (3, 32, 43)}


def split_points(cfg: LearningConfig) -> tuple[int, ...]:
    """The split points of the configured model (built on the meta device, without loading data)."""
    c, size, classes = DATASET_SHAPES[cfg.dataset]
    return _split_points(cfg.model, c, cfg.image_size or size, classes, tuple(sorted(cfg.arch.items())))


@functools.lru_cache(maxsize=16)
def _split_points(name: str, in_channels: int, image_size: int, num_classes: int, arch) -> tuple[int, ...]:
    with torch.device("meta"):
        return tuple(build_model(name, in_channels, image_size, num_classes, **dict(arch)).split_points)
