"""SFLAM's system model, shared by its optimizer (cosim.optimizers.sflam) and its round process
(cosim.protocols.sflam): the accuracy curve O(q) and the per-vehicle decision.

SCHEMES.md "SFLAM" (arXiv 2504.09114): O(q) = a (1 - exp(-b q)) + c, fitted to accuracies measured at a
set of activation bit widths q (`cosim calibrate quant`); a vehicle's efficiency is O(q) / E(q), E its
predicted round energy (compute + transmission) at q bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .api import Decision, RoundSnapshot


@dataclass(frozen=True)
class AccuracyCurve:
    """O(q) = a (1 - exp(-b q)) + c: the accuracy a run reaches with q-bit activations."""

    a: float
    b: float
    c: float

    def __call__(self, bits):
        """O at `bits` (a number or an array)."""
        q = np.asarray(bits, dtype=float)
        out = self.a * (1.0 - np.exp(-self.b * q)) + self.c
        return float(out) if out.ndim == 0 else out

    @classmethod
    def from_mapping(cls, m: Mapping) -> "AccuracyCurve":
        """From {"a": .., "b": .., "c": ..}; raises ValueError when a key is missing or not finite."""
        try:
            a, b, c = (float(m[k]) for k in ("a", "b", "c"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"an accuracy curve needs numbers a, b and c (got {dict(m)!r})") from exc
        if not all(map(math.isfinite, (a, b, c))):
            raise ValueError(f"an accuracy curve needs finite a, b and c (got {a}, {b}, {c})")
        return cls(a, b, c)


def accuracy_curve(snap: RoundSnapshot) -> AccuracyCurve:
    """The round's accuracy curve: snapshot extra["accuracy_model"] (the scheme puts the resolved fit there)."""
    if "accuracy_model" not in snap.extra:
        raise ValueError("the snapshot has no extra['accuracy_model'] ({'a', 'b', 'c'} of O(q))")
    return AccuracyCurve.from_mapping(snap.extra["accuracy_model"])


@dataclass(frozen=True)
class SflamDecision(Decision):
    """SFLAM's per-vehicle decision: subchannel, power and activation bits (Decision's fields), the bits of
    the gradient sent back, and the prediction the optimizer judged it by: O(q) and O(q) / E."""

    gradient_bits: int = 32
    predicted_accuracy: float = 0.0       # O(q) of the accuracy curve
    efficiency_per_j: float = 0.0         # O(q) / predicted round energy [1/J]
