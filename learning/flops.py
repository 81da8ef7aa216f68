"""FLOPs measured on the real model with torch.utils.flop_counter (never from wall time)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def train_flops_per_sample(model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 8) -> float:
    """Forward + backward FLOPs of one training sample (cross-entropy on random input), measured."""
    x = torch.zeros((batch_size, *input_shape))
    was_training = model.training
    model.train()
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        loss = out.float().logsumexp(dim=1).mean()
        loss.backward()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return counter.get_total_flops() / batch_size


def forward_flops_per_sample(model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 8) -> float:
    """Forward-only FLOPs of one sample, measured."""
    x = torch.zeros((batch_size, *input_shape))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / batch_size
