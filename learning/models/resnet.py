"""CIFAR-style ResNet-18 with ten stages (nine cut points): stem, block1..block8, head.

He et al., "Deep Residual Learning for Image Recognition", 2016; CIFAR variant: 3x3 stem, no max-pool.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import SplitModel


class BasicBlock(nn.Module):
    """Two 3x3 conv+BN with an identity (or 1x1 conv+BN) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _Stem(nn.Module):
    """3x3 conv + BN + ReLU at `stride`, then a 3x3 stride-2 max-pool when `pool`."""

    def __init__(self, in_channels: int, width: int, stride: int = 1, pool: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)))
        return F.max_pool2d(x, 3, stride=2, padding=1) if self.pool else x


class _Head(nn.Module):
    def __init__(self, features: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNet18(SplitModel):
    """ResNet-18 for small images: widths (w, 2w, 4w, 8w), strides (1, 2, 2, 2), two blocks each.

    Input (in_channels, image_size, image_size); image_size >= 8 keeps every stage non-empty. The default
    stem is CIFAR's (3x3, stride 1, no pool); stem_stride=2, stem_pool=1 is the ASFL authors' downsampling
    stem (SCHEMES.md, github XiankeQiang/AdaptiveSplitFederatedLearning), for which image_size >= 32 keeps
    every stage non-empty. Raises ValueError for a non-positive width or image_size, or a stem stride
    other than 1 or 2.
    """

    stage_names = ("stem", "block1", "block2", "block3", "block4", "block5", "block6", "block7", "block8",
                   "head")

    def __init__(self, in_channels: int = 3, image_size: int = 32, num_classes: int = 10, width: int = 64,
                 stem_stride: int = 1, stem_pool: int = 0):
        super().__init__()
        if width < 1:
            raise ValueError(f"ResNet18 width must be >= 1, got {width}")
        if image_size < 1:
            raise ValueError(f"ResNet18 image_size must be >= 1, got {image_size}")
        if stem_stride not in (1, 2):
            raise ValueError(f"ResNet18 stem_stride must be 1 or 2, got {stem_stride}")
        self.stem = _Stem(in_channels, width, stem_stride, bool(stem_pool))
        plan = [(width, width, 1), (width, width, 1),
                (width, 2 * width, 2), (2 * width, 2 * width, 1),
                (2 * width, 4 * width, 2), (4 * width, 4 * width, 1),
                (4 * width, 8 * width, 2), (8 * width, 8 * width, 1)]
        for i, (cin, cout, stride) in enumerate(plan, start=1):
            setattr(self, f"block{i}", BasicBlock(cin, cout, stride))
        self.head = _Head(8 * width, num_classes)

    def _stage(self, i: int) -> nn.Module:
        return getattr(self, self.stage_names[i])

    def forward_stages(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        self.check_stage_range(start, stop)
        for i in range(start, stop):
            x = self._stage(i)(x)
        return x

    def stage_param_prefixes(self) -> list[tuple[str, ...]]:
        return [(name,) for name in self.stage_names]
