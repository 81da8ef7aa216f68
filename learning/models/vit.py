"""Vision Transformer with timm's parameter names, split as embed | blocks.0 .. blocks.{depth-1} | head.

Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021. Names and shapes follow
timm.models.vision_transformer.VisionTransformer (class token, global_pool="token", qkv_bias=True,
LayerNorm eps 1e-6, no layer scale), so a timm state dict of the same config loads with strict=True.
No dropout: every forward is deterministic.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import SplitModel


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens (B, N, D) by a strided conv (`proj`, as in timm)."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention; can also return the softmax weights (B, heads, N, N)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, return_attn: bool = False):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return (out, attn) if return_attn else out


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, return_cls_attn: bool = False):
        a, attn = self.attn(self.norm1(x), return_attn=True)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return (x, cls_attention(attn)) if return_cls_attn else x

    def forward_cls_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its head-averaged CLS attention over the patch tokens (`cls_scores`)."""
        h = self.norm1(x)
        scores = cls_scores(self.attn, h)
        x = x + self.attn(h)
        return x + self.mlp(self.norm2(x)), scores


def cls_attention(attn: torch.Tensor) -> torch.Tensor:
    """Head-averaged CLS row softmax(q_0 k_n / sqrt(d)) over the other tokens: (B, H, N+1, N+1) -> (B, N).

    The softmax runs over all N+1 keys, as in the block itself; the CLS column is then dropped
    (as in EViT, Liang et al., ICLR 2022).
    """
    return attn[:, :, 0, 1:].mean(dim=1)


def cls_scores(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """`cls_attention` from q_cls and K alone: (B, N+1, D) block input (after norm1) -> (B, N).

    softmax_n(q_0 k_n / sqrt(d)) needs the query of the CLS token and every key: O(N D) per head, where the
    attention matrix is (N+1)^2 (ST-SFLora's token importance, SCHEMES.md). Uses the layer's effective
    weight (a LoRA layer's merged one).
    """
    b, n, d = x.shape
    qkv = attn.qkv
    w = qkv.merged_weight() if hasattr(qkv, "merged_weight") else qkv.weight
    bias = qkv.bias if qkv.bias is not None else x.new_zeros(3 * d)
    q0 = F.linear(x[:, :1], w[:d], bias[:d]).reshape(b, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
    k = F.linear(x, w[d:2 * d], bias[d:2 * d]).reshape(b, n, attn.num_heads, attn.head_dim).transpose(1, 2)
    weights = ((q0 * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)       # (B, H, 1, N+1)
    return weights[:, :, 0, 1:].mean(dim=1)


class VisionTransformer(SplitModel):
    """ViT with a class token; stages: embed (patch_embed + cls + pos), blocks.i, head (norm + CLS + head).

    Raises ValueError when image_size is not a multiple of patch_size or embed_dim of num_heads.
    """

    def __init__(self, in_channels: int = 3, image_size: int = 224, num_classes: int = 1000,
                 patch_size: int = 16, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0):
        super().__init__()
        if patch_size < 1 or image_size % patch_size:
            raise ValueError(f"image_size {image_size} must be a positive multiple of patch_size {patch_size}")
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be a multiple of num_heads {num_heads}")
        if depth < 1:
            raise ValueError(f"ViT depth must be >= 1, got {depth}")
        self.num_patches = (image_size // patch_size) ** 2
        self.embed_dim = embed_dim
        self.depth = depth
        self.patch_embed = PatchEmbed(in_channels, embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        self.stage_names = ("embed", *(f"blocks.{i}" for i in range(depth)), "head")
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's default init: trunc_normal(0.02) for pos_embed and Linear weights, normal(1e-6) for cls
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return x + self.pos_embed

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(x)[:, 0])

    def forward_stages(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return self.forward_stages_with_cls_attn(x, start, stop, need_attn=False)[0]

    def forward_stages_with_cls_attn(self, x: torch.Tensor, start: int, stop: int,
                                     need_attn: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run stages [start, stop); also return the CLS attention (B, N) of the last block run.

        Raises ValueError when need_attn and no block lies in the range.
        """
        self.check_stage_range(start, stop)
        attn = None
        last_block = min(stop, self.depth + 1) - 1  # stage index of the last block in range
        if need_attn and last_block < max(start, 1):
            raise ValueError(f"stage range [{start}, {stop}) holds no transformer block")
        for i in range(start, stop):
            if i == 0:
                x = self._embed(x)
            elif i <= self.depth:
                if need_attn and i == last_block:
                    x, attn = self.blocks[i - 1](x, return_cls_attn=True)
                else:
                    x = self.blocks[i - 1](x)
            else:
                x = self._head(x)
        return x, attn

    def forward_tokens(self, x: torch.Tensor, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Stages [0, stop) (the embedding and stop - 1 blocks, at least one) and the last block's CLS
        attention from q_cls and K (`cls_scores`): (tokens (B, N+1, D), scores (B, N)). The tokens equal
        `forward_stages(x, 0, stop)`'s."""
        if not 2 <= stop <= self.depth + 1:
            raise ValueError(f"forward_tokens needs 2 <= stop <= {self.depth + 1} (a block), got {stop}")
        x = self._embed(x)
        for block in self.blocks[:stop - 2]:
            x = block(x)
        return self.blocks[stop - 2].forward_cls_scores(x)

    def stage_param_prefixes(self) -> list[tuple[str, ...]]:
        return [("cls_token", "pos_embed", "patch_embed"), *((f"blocks.{i}",) for i in range(self.depth)),
                ("norm", "head")]


VIT_CONFIGS = {
    "vit_tiny": dict(patch_size=16, embed_dim=192, depth=12, num_heads=3),
    "vit_small": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "vit_base": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "vit_micro": dict(patch_size=4, embed_dim=64, depth=4, num_heads=4),  # ours, for CPU tests
}


def _factory(name: str):
    def build(in_channels: int = 3, image_size: int = 224, num_classes: int = 1000,
              **overrides) -> VisionTransformer:
        return VisionTransformer(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                                 **{**VIT_CONFIGS[name], **overrides})
    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"VisionTransformer with {VIT_CONFIGS[name]} (any of them can be overridden)."
    return build


vit_tiny = _factory("vit_tiny")
vit_small = _factory("vit_small")
vit_base = _factory("vit_base")
vit_micro = _factory("vit_micro")
