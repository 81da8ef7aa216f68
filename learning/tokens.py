"""ST-SFLora token selection: keep CLS and the top-K tokens by CLS attention, merge the rest into one.

a_merge = sum_{n not kept} alpha_n a_n / sum_{n not kept} alpha_n (SCHEMES.md, ST-SFLora); the sequence
[CLS, top-K, merge] of K+2 tokens replaces the N+1 tokens (Liang et al., EViT, ICLR 2022, fuse the same way).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TokenSelection:
    """tokens (B, K+2, D): CLS, the kept tokens in their original order, the merged token.

    kept (B, K): indices of the kept tokens among the N patch tokens (0-based, without CLS).
    With K = N nothing is merged: tokens is the input (B, N+1, D) unchanged.
    """

    tokens: torch.Tensor
    kept: torch.Tensor


def _check(tokens: torch.Tensor, cls_attn: torch.Tensor, k: int) -> int:
    if tokens.dim() != 3:
        raise ValueError(f"tokens must be (B, N+1, D), got shape {tuple(tokens.shape)}")
    b, n1, _ = tokens.shape
    if tuple(cls_attn.shape) != (b, n1 - 1):
        raise ValueError(f"cls_attn must be (B, N) = {(b, n1 - 1)}, got {tuple(cls_attn.shape)}")
    if not 0 <= k <= n1 - 1:
        raise ValueError(f"token count K must be in [0, {n1 - 1}], got {k}")
    return n1 - 1


def select_tokens(tokens: torch.Tensor, cls_attn: torch.Tensor, k: int) -> TokenSelection:
    """Keep CLS + top-`k` patch tokens by `cls_attn` (B, N), merge the others weighted by their attention.

    Ties go to the lower index. Raises ValueError on shape mismatch or k outside [0, N].
    """
    n = _check(tokens, cls_attn, k)
    b, _, d = tokens.shape
    if k == n:
        return TokenSelection(tokens, torch.arange(n, device=tokens.device).expand(b, n))
    # stable descending sort so equal scores keep the lower index
    order = torch.sort(cls_attn, dim=1, descending=True, stable=True).indices
    kept = torch.sort(order[:, :k], dim=1).values
    patches = tokens[:, 1:]
    kept_tokens = torch.gather(patches, 1, kept.unsqueeze(-1).expand(b, k, d))
    weights = cls_attn.clone()
    weights.scatter_(1, kept, 0.0)
    denom = weights.sum(dim=1, keepdim=True).clamp_min(torch.finfo(weights.dtype).tiny)
    merged = torch.einsum("bn,bnd->bd", weights / denom, patches).unsqueeze(1)
    return TokenSelection(torch.cat([tokens[:, :1], kept_tokens, merged], dim=1), kept)


def semantic_content(cls_attn: torch.Tensor, k: int) -> float:
    """f(K): the sum of the K largest batch-mean CLS attention scores; cls_attn (B, N) or (N,)."""
    scores = cls_attn.detach().reshape(-1, cls_attn.shape[-1]).mean(dim=0)
    if not 0 <= k <= scores.numel():
        raise ValueError(f"token count K must be in [0, {scores.numel()}], got {k}")
    return float(torch.topk(scores, k).values.sum()) if k else 0.0


def semantic_content_curve(cls_attn: torch.Tensor) -> torch.Tensor:
    """f(K) for K = 0..N at once: cumulative sums of the sorted batch-mean scores, shape (N+1,)."""
    scores = cls_attn.detach().reshape(-1, cls_attn.shape[-1]).mean(dim=0)
    ordered = torch.sort(scores, descending=True).values
    return torch.cat([ordered.new_zeros(1), torch.cumsum(ordered, 0)])


def tokens_sent(k, num_patches: int):
    """Tokens per sample on the air: K + 2 ([CLS, top-K, merge]), or N + 1 when K = N (nothing merged). An int
    K is checked (ValueError outside [0, N]); an array of them, an optimizer's hot path, is not."""
    if isinstance(k, np.ndarray):
        return np.where(k >= num_patches, num_patches + 1, k + 2)
    if not 0 <= k <= num_patches:
        raise ValueError(f"token count K must be in [0, {num_patches}], got {k}")
    return num_patches + 1 if k == num_patches else k + 2


def token_payload_bits(batch: int, k: int, num_patches: int, dim: int, bits_per_element: int = 32) -> int:
    """S = B (K+2) D q0 bits of the sent sequence; B (N+1) D q0 when K = N (nothing merged)."""
    return batch * tokens_sent(k, num_patches) * dim * bits_per_element
