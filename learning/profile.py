"""Per-cut split profiles (FLOPs, activation size, parameter bytes), measured on the real model.

FLOPs come from torch.utils.flop_counter.FlopCounterMode, which counts matmul/conv-like ops only
(mm, bmm, addmm, convolution, attention kernels); element-wise ops, norms, softmax and the loss
count zero. Backward FLOPs follow the split protocol: the server's backward includes the gradient with
respect to the received activation, the client's backward starts from that gradient and does not
differentiate the input images. Hence client + server equals whole-model training FLOPs at every cut.
By default the copy being measured lives on the meta device: the same modules and ops dispatch, only
shapes are computed, so counts equal a CPU run (tested) and vit_base profiles in well under a second.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from .models import build_model
from .models.base import SplitModel


@dataclass(frozen=True)
class CutProfile:
    """Costs of one cut, per sample: client runs stages [0, cut), server [cut, n)."""

    cut: int
    client_fwd_flops: float
    client_bwd_flops: float
    server_fwd_flops: float
    server_bwd_flops: float
    activation_elements: int          # elements of the cut activation per sample (uplink payload)
    activation_shape: tuple[int, ...]  # per sample, without the batch dimension
    client_param_bytes: int           # state_dict tensors (parameters and buffers) of the client side
    server_param_bytes: int

    @property
    def client_flops(self) -> float:
        return self.client_fwd_flops + self.client_bwd_flops

    @property
    def server_flops(self) -> float:
        return self.server_fwd_flops + self.server_bwd_flops


def _count(fn) -> tuple[float, object]:
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return float(counter.get_total_flops()), out


def measure_cut(model: SplitModel, cut: int, input_shape: tuple[int, ...], batch_size: int = 2,
                device: str = "meta") -> CutProfile:
    """Measure one cut on a copy of `model` in train mode on `device` (the model itself is left untouched).

    Raises ValueError when cut is outside [0, num_stages] or batch_size < 1.
    """
    if not 0 <= cut <= model.num_stages:
        raise ValueError(f"cut {cut} outside [0, {model.num_stages}]")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return _measure(_work_copy(model, device), cut, input_shape, batch_size, device)


def profile_cuts(model: SplitModel, input_shape: tuple[int, ...], batch_size: int = 2,
                 device: str = "meta") -> tuple[CutProfile, ...]:
    """`measure_cut` at every split point of `model` (uncached; one copy of the model for all cuts)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    work = _work_copy(model, device)
    return tuple(_measure(work, cut, input_shape, batch_size, device) for cut in model.split_points)


def _work_copy(model: SplitModel, device: str) -> SplitModel:
    return copy.deepcopy(model).to(device).train()


def _measure(work: SplitModel, cut: int, input_shape: tuple[int, ...], batch_size: int, device: str) -> CutProfile:
    n = work.num_stages
    work.zero_grad(set_to_none=True)
    x = torch.rand((batch_size, *input_shape), device=device)
    client_fwd, act = _count(lambda: work.forward_stages(x, 0, cut))
    sent = act.detach().requires_grad_(act.requires_grad)
    server_fwd, out = _count(lambda: work.forward_stages(sent, cut, n))
    labels = torch.zeros(batch_size, dtype=torch.long, device=device)
    loss = F.cross_entropy(out, labels) if out.dim() == 2 else out.sum()
    server_bwd, _ = _count(lambda: loss.backward() if loss.requires_grad else None)
    client_bwd = 0.0
    if act.requires_grad and sent.grad is not None:
        client_bwd, _ = _count(lambda: act.backward(sent.grad))
    work.zero_grad(set_to_none=True)
    client_names = set(work.client_param_names(cut))
    state = work.state_dict()
    client_bytes = sum(t.numel() * t.element_size() for k, t in state.items() if k in client_names)
    total_bytes = sum(t.numel() * t.element_size() for t in state.values())
    return CutProfile(cut=cut,
                      client_fwd_flops=client_fwd / batch_size, client_bwd_flops=client_bwd / batch_size,
                      server_fwd_flops=server_fwd / batch_size, server_bwd_flops=server_bwd / batch_size,
                      activation_elements=int(act[0].numel()), activation_shape=tuple(act.shape[1:]),
                      client_param_bytes=int(client_bytes), server_param_bytes=int(total_bytes - client_bytes))


@functools.lru_cache(maxsize=64)
def _cached_profile(name: str, in_channels: int, image_size: int, num_classes: int, batch_size: int,
                    config: tuple[tuple[str, object], ...]) -> tuple[CutProfile, ...]:
    with torch.device("meta"):  # no weights, no init work, no draw from the caller's global RNG
        model = build_model(name, in_channels, image_size, num_classes, **dict(config))
    return profile_cuts(model, (in_channels, image_size, image_size), batch_size)


def split_profile(name: str, in_channels: int, image_size: int, num_classes: int, batch_size: int = 2,
                  **config) -> tuple[CutProfile, ...]:
    """Profiles of every split point of registered model `name`, measured once and cached.

    The cache key is (name, input shape, num_classes, batch_size, config); config values must be
    hashable. FLOPs do not depend on weights, so a fresh model is measured.
    """
    return _cached_profile(name, in_channels, image_size, num_classes, batch_size, tuple(sorted(config.items())))


def server_flops_by_length(model: SplitModel, cut: int, dim: int, lengths: tuple[int, int, int] = (3, 9, 27),
                           batch_size: int = 2) -> tuple[float, float, float]:
    """The server side's training FLOPs per sample (forward and backward of stages [cut, n) and the loss, with
    the model's own trainable parameters) on a sequence of L tokens of `dim` elements, as (c0, c1, c2) of
    c0 + c1 L + c2 L^2: a transformer's matmul FLOPs are exactly quadratic in L (attention's scores and mixing
    grow with L^2, the linear layers with L, the head on the class token not at all), so three lengths fix it.
    Measured on a meta-device copy (shapes only)."""
    import numpy as np

    work = _work_copy(model, "meta")
    n = work.num_stages
    flops = []
    for length in lengths:
        work.zero_grad(set_to_none=True)
        x = torch.rand((batch_size, length, dim), device="meta")
        fwd, out = _count(lambda: work.forward_stages(x, cut, n))
        loss = F.cross_entropy(out, torch.zeros(batch_size, dtype=torch.long, device="meta"))
        bwd, _ = _count(lambda: loss.backward() if loss.requires_grad else None)
        flops.append((fwd + bwd) / batch_size)
    coef = np.linalg.solve(np.vander(np.asarray(lengths, dtype=float), 3, increasing=True), np.asarray(flops))
    return tuple(float(c) for c in coef)
