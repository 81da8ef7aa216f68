"""What split learning puts on the air: the cut activations up, their gradient down.

A codec gives both sizes from element counts (what the cost models predict with) and the tensor the
server receives with its size, from the real tensor (what the timeline sends); a test checks they agree.
`ActivationCodec` sends float32 as is at 32 bits and quantizes uniformly below (learning.quantize);
`QuantizingCodec` (SFLAM) also quantizes the gradient coming back, optionally with stochastic rounding;
schemes with another encoding (token selection) subclass `WireCodec`.
"""
from __future__ import annotations

import math

import torch

from learning.quantize import FULL_PRECISION_BITS, payload_bits, quantize

FLOAT32_BYTES = 4


def activation_bytes(elements: int, bits: int = FULL_PRECISION_BITS) -> int:
    """Bytes of `elements` activation values at `bits` each, plus the quantization header below 32 bits."""
    if bits == FULL_PRECISION_BITS:
        return elements * FLOAT32_BYTES
    return math.ceil(payload_bits(elements, bits) / 8)


def gradient_bytes(elements: int) -> int:
    """Bytes of the activation gradient sent back (float32)."""
    return elements * FLOAT32_BYTES


class WireCodec:
    """Extension points: `upload_bytes(samples, profile, decision)` (prediction) and `encode(activation,
    decision)` -> (what the server receives, bytes on the wire) (timeline); `download_bytes` likewise."""

    name = "identity"

    def upload_bytes(self, samples: int, profile, decision) -> int:
        return activation_bytes(samples * profile.activation_elements)

    def download_bytes(self, samples: int, profile, decision) -> int:
        return gradient_bytes(samples * profile.activation_elements)

    def encode(self, activation: torch.Tensor, decision, generator=None) -> tuple[torch.Tensor, int]:
        """`generator`: draws for stochastic rounding (codecs that round; None: to nearest)."""
        return activation, activation.numel() * activation.element_size()

    def encode_gradient(self, grad: torch.Tensor, decision, generator=None) -> tuple[torch.Tensor, int]:
        """(what the vehicle receives, bytes on the wire) of the activation gradient: float32 as is."""
        return grad, grad.numel() * grad.element_size()


class ActivationCodec(WireCodec):
    """The cut activation at the decision's `activation_bits`: as is at 32, uniformly quantized (per-tensor
    min and step in a 64-bit header, straight-through gradient) at 1..16, rounded to nearest or, with a
    torch.Generator, stochastically."""

    name = "activations"

    def upload_bytes(self, samples: int, profile, decision) -> int:
        return activation_bytes(samples * profile.activation_elements, decision.activation_bits)

    @staticmethod
    def _code(x: torch.Tensor, bits: int, generator) -> tuple[torch.Tensor, int]:
        if bits == FULL_PRECISION_BITS:
            return x, x.numel() * x.element_size()
        q = quantize(x, bits, stochastic=generator is not None, generator=generator)
        return q.values, math.ceil(q.payload_bits / 8)

    def encode(self, activation: torch.Tensor, decision, generator=None) -> tuple[torch.Tensor, int]:
        return self._code(activation, decision.activation_bits, generator)


class QuantizingCodec(ActivationCodec):
    """SFLAM's wire: ActivationCodec's uplink, and the activation gradient down at the decision's
    `gradient_bits` (32 when it has none), quantized the same way below 32 bits. With a torch.Generator,
    rounding is stochastic (unbiased) with draws from it; without, to nearest."""

    name = "quantized"

    def download_bytes(self, samples: int, profile, decision) -> int:
        return activation_bytes(samples * profile.activation_elements, getattr(decision, "gradient_bits", 32))

    def encode_gradient(self, grad: torch.Tensor, decision, generator=None) -> tuple[torch.Tensor, int]:
        return self._code(grad, getattr(decision, "gradient_bits", 32), generator)
