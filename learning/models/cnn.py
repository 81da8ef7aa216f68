"""A small CNN for digits/MNIST-sized images, with four stages (three cut points)."""
from __future__ import annotations

import torch
from torch import nn

from .base import SplitModel


class SmallCNN(SplitModel):
    """conv(16) -> conv(32)+pool -> fc(64) -> head; input (C, H, W) with H, W >= 4."""

    stage_names = ("conv1", "conv2", "fc1", "head")

    def __init__(self, in_channels: int = 1, image_size: int = 8, num_classes: int = 10, width: int = 16):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.AdaptiveAvgPool2d(4))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 16, 64), nn.ReLU())
        self.head = nn.Linear(64, num_classes)
        self._stages = [self.conv1, self.conv2, self.fc1, self.head]

    def forward_stages(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for stage in self._stages[start:stop]:
            x = stage(x)
        return x

    def stage_param_prefixes(self) -> list[tuple[str, ...]]:
        return [(name,) for name in self.stage_names]
