"""The split-model interface: a model is a sequence of stages that can be cut between any two.

Subclasses implement `forward_stages(x, start, stop)` and `stage_param_prefixes()`; cut k puts
stages [0, k) on the client and [k, n) on the server. Cut 0 is all-server, cut n all-client (FL).
"""
from __future__ import annotations

import torch
from torch import nn


class SplitModel(nn.Module):
    """Base class. Extension points: `stage_names`, `forward_stages`, `stage_param_prefixes`."""

    stage_names: tuple[str, ...] = ()

    @property
    def num_stages(self) -> int:
        return len(self.stage_names)

    @property
    def split_points(self) -> tuple[int, ...]:
        """Valid cut positions 1..n-1 (client keeps at least one stage, server at least one)."""
        return tuple(range(1, self.num_stages))

    def forward_stages(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        raise NotImplementedError

    def check_stage_range(self, start: int, stop: int) -> None:
        """Raise ValueError unless 0 <= start <= stop <= num_stages."""
        if not 0 <= start <= stop <= self.num_stages:
            raise ValueError(f"stage range [{start}, {stop}) is not within [0, {self.num_stages}]")

    def stage_param_prefixes(self) -> list[tuple[str, ...]]:
        """For each stage, the parameter-name prefixes it owns (timm-style names stay intact)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x, 0, self.num_stages)

    def client_param_names(self, cut: int) -> list[str]:
        """Names in state_dict() that belong to the client side of cut `cut`."""
        prefixes = [p for stage in self.stage_param_prefixes()[:cut] for p in stage]
        return [k for k in self.state_dict() if any(k == p or k.startswith(p + ".") for p in prefixes)]
