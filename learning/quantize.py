"""Uniform q-bit activation quantization for the uplink (SFLAM), with a straight-through gradient.

Per-tensor min-max: L = 2^q - 1 levels apart by step = (max - min) / L; code = round((a - min) / step);
the receiver rebuilds min + code * step. Deterministic rounding errs by at most step / 2, stochastic
rounding (unbiased) by less than step. Bengio et al., 2013, for the straight-through estimator.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

HEADER_BITS = 64  # min and max as two float32 values
FULL_PRECISION_BITS = 32
MAX_QUANT_BITS = 16


@dataclass(frozen=True)
class Quantized:
    """The dequantized activation (same shape and dtype; gradient passes straight through) and its size."""

    values: torch.Tensor
    bits: int
    payload_bits: int
    min_value: float
    step: float  # quantization step (max - min) / (2^bits - 1); 0 for a constant tensor or 32 bits


def payload_bits(num_elements: int, bits: int, header_bits: int = HEADER_BITS) -> int:
    """Bits on the wire: num_elements * bits + header_bits (32 bits: plain float32, no header)."""
    _check_bits(bits)
    if bits == FULL_PRECISION_BITS:
        return num_elements * FULL_PRECISION_BITS
    return num_elements * bits + header_bits


def _check_bits(bits: int) -> None:
    if not (1 <= bits <= MAX_QUANT_BITS or bits == FULL_PRECISION_BITS):
        raise ValueError(f"quantization bits must be in [1, {MAX_QUANT_BITS}] or {FULL_PRECISION_BITS}, got {bits}")


def quantize(x: torch.Tensor, bits: int, *, stochastic: bool = False, generator: torch.Generator | None = None,
             header_bits: int = HEADER_BITS) -> Quantized:
    """Quantize `x` to `bits` per element (32 = send float32 as is) and return it dequantized.

    Stochastic rounding draws U[0, 1) from `generator` (pass a named stream for reproducibility).
    Raises ValueError for bits outside [1, 16] and not 32.
    """
    _check_bits(bits)
    size = payload_bits(x.numel(), bits, header_bits)
    if bits == FULL_PRECISION_BITS or x.numel() == 0:
        return Quantized(x, bits, size, float(x.detach().min()) if x.numel() else 0.0, 0.0)
    with torch.no_grad():
        xd = x.detach().to(torch.float64)
        lo, hi = xd.min(), xd.max()
        levels = 2 ** bits - 1
        step = (hi - lo) / levels
        if float(step) == 0.0:
            return Quantized(x, bits, size, float(lo), 0.0)
        scaled = (xd - lo) / step
        if stochastic:
            noise = torch.rand(scaled.shape, generator=generator, dtype=torch.float64, device=x.device)
            codes = torch.floor(scaled + noise)
        else:
            codes = torch.round(scaled)
        codes.clamp_(0, levels)
        deq = (lo + codes * step).to(x.dtype)
    # straight-through: the value is exactly deq (x - x is exactly 0), the gradient is the identity
    values = deq + (x - x.detach()) if x.requires_grad else deq
    return Quantized(values, bits, size, float(lo), float(step))
