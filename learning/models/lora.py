"""LoRA for nn.Linear: W x + (alpha / r) B A x with W frozen (Hu et al., "LoRA", ICLR 2022, arXiv 2106.09685).

`LoRALinear` subclasses nn.Linear, so the frozen weight keeps its name (`blocks.3.attn.qkv.weight`) and a
timm state dict still loads; the adapters add `lora_A` (r, in) and `lora_B` (out, r) beside it.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F


class LoRALinear(nn.Linear):
    """A frozen linear layer plus a trainable rank-`rank` update scaled by alpha / rank.

    lora_A starts Kaiming-uniform and lora_B at zero, so the layer starts equal to the base layer.
    Raises ValueError for rank < 1.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float, bias: bool = True):
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        super().__init__(in_features, out_features, bias=bias)
        self.rank = rank
        self.alpha = float(alpha)
        self.scaling = self.alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)

    @classmethod
    def from_linear(cls, base: nn.Linear, rank: int, alpha: float) -> "LoRALinear":
        """Wrap `base`, sharing (not copying) its weight and bias, which become frozen."""
        layer = cls(base.in_features, base.out_features, rank, alpha, bias=base.bias is not None)
        layer.weight = base.weight
        layer.bias = base.bias
        layer.weight.requires_grad_(False)
        if layer.bias is not None:
            layer.bias.requires_grad_(False)
        return layer.to(device=base.weight.device, dtype=base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    def merged_weight(self) -> torch.Tensor:
        """W + (alpha / r) B A, the weight of an equivalent plain linear layer."""
        return self.weight + self.scaling * (self.lora_B @ self.lora_A)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, rank={self.rank}, alpha={self.alpha}"


def apply_lora(model: nn.Module, blocks: Iterable[int] | None = None, *, rank: int = 4, alpha: float = 8.0,
               targets: tuple[str, ...] = ("attn.qkv", "attn.proj"),
               trainable_prefixes: tuple[str, ...] = ("head",)) -> list[str]:
    """Put LoRA on `targets` of the chosen ViT `blocks` (all when None) and freeze everything else.

    Parameters whose name starts with one of `trainable_prefixes` (default: the classifier head) stay
    trainable. Returns the trainable parameter names. Raises ValueError naming a missing block or target.
    """
    all_blocks = model.blocks
    chosen = range(len(all_blocks)) if blocks is None else list(blocks)
    for i in chosen:
        if not 0 <= i < len(all_blocks):
            raise ValueError(f"LoRA block index {i} out of range [0, {len(all_blocks)})")
    for p in model.parameters():
        p.requires_grad_(False)
    for i in chosen:
        for target in targets:
            parent_path, _, leaf = target.rpartition(".")
            parent = all_blocks[i].get_submodule(parent_path) if parent_path else all_blocks[i]
            base = getattr(parent, leaf, None)
            if isinstance(base, LoRALinear):
                continue
            if not isinstance(base, nn.Linear):
                raise ValueError(f"blocks.{i}.{target} is {type(base).__name__}, expected nn.Linear")
            setattr(parent, leaf, LoRALinear.from_linear(base, rank, alpha))
    for name, p in model.named_parameters():
        if name.endswith((".lora_A", ".lora_B")) or any(
                name == t or name.startswith(t + ".") for t in trainable_prefixes):
            p.requires_grad_(True)
    return trainable_param_names(model)


def lora_param_names(model: nn.Module) -> list[str]:
    """Names of all LoRA adapter parameters (`...lora_A`, `...lora_B`)."""
    return [n for n, _ in model.named_parameters() if n.endswith((".lora_A", ".lora_B"))]


def trainable_param_names(model: nn.Module) -> list[str]:
    """Names of parameters with requires_grad, in named_parameters() order."""
    return [n for n, p in model.named_parameters() if p.requires_grad]
