"""What a device holds to train or run its part of a model: its parameters, the tensors autograd keeps for
the backward, and the output it sends, measured from the tensors of one batch (the lecture's device-side
GPU memory of the LoRA fine-tuning schemes, ST-SFLora, arXiv 2605.26120)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def _storage_bytes(tensors) -> dict[int, int]:
    out = {}
    for t in tensors:
        s = t.untyped_storage()
        out[s.data_ptr()] = s.nbytes()
    return out


def kept_bytes(model: nn.Module, forward: Callable[[], torch.Tensor]) -> tuple[int, int]:
    """(bytes autograd saves for the backward during `forward()`, bytes of its output), each storage counted
    once and the model's parameters left out (they are counted as parameters). With no trainable tensor on
    the way (a frozen side under no_grad) nothing is saved."""
    params = set(_storage_bytes(model.parameters()))
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        if s.data_ptr() not in params:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    return sum(saved.values()), out.numel() * out.element_size()

