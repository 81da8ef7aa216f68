"""Data sets as in-memory tensors; the default is scikit-learn's digits set (ships offline)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TensorDataset:
    """Images `x` (N, C, H, W) float32 and labels `y` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, idx: np.ndarray) -> "TensorDataset":
        index = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        return TensorDataset(self.x[index], self.y[index], self.num_classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


def load_digits(image_size: int = 8) -> TensorDataset:
    """sklearn's 1,797 8x8 digit images scaled to [0, 1], optionally resized (bilinear) to image_size."""
    from sklearn.datasets import load_digits as _load

    bunch = _load()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:
        x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear",
                                            align_corners=False)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return TensorDataset(x.contiguous(), y, 10)


def train_test_split(data: TensorDataset, test_fraction: float, seed: int) -> tuple[TensorDataset, TensorDataset]:
    """Stratified split into (train, test) with a fixed seed."""
    from sklearn.model_selection import train_test_split as _split

    idx = np.arange(len(data))
    train_idx, test_idx = _split(idx, test_size=test_fraction, random_state=seed,
                                 stratify=data.y.numpy())
    return data.subset(np.sort(train_idx)), data.subset(np.sort(test_idx))
