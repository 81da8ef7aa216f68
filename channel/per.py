"""Bit and packet error rates as functions of the (linear) SNR."""
from __future__ import annotations

import numpy as np
from scipy import special

from channel._validate import choice, nonnegative_array, positive_array

PER_MODELS = ("bpsk", "qpsk", "waterfall")


def q_function(x) -> np.ndarray:
    """Gaussian tail Q(x) = P(N(0, 1) > x)."""
    return 0.5 * special.erfc(np.asarray(x, dtype=float) / np.sqrt(2.0))


def bit_error_rate(snr_linear, modulation: str = "bpsk") -> np.ndarray:
    """Uncoded AWGN BER: BPSK Q(sqrt(2 snr)); Gray QPSK Q(sqrt(snr)), snr = Es/N0 per symbol."""
    choice("modulation", modulation, ("bpsk", "qpsk"))
    snr = nonnegative_array("snr_linear", snr_linear)
    # Proakis & Salehi, Digital Communications 5th ed., ch. 4 (BPSK: Eb = Es; QPSK: Eb = Es / 2)
    return q_function(np.sqrt(2.0 * snr)) if modulation == "bpsk" else q_function(np.sqrt(snr))


def _scale_to_length(per_ref, packet_bits, reference_bits):
    # independent errors per block: 1 - (1 - PER)^(L / L_ref), computed stably
    exponent = packet_bits / reference_bits
    with np.errstate(divide="ignore"):
        return -np.expm1(exponent * np.log1p(-np.minimum(per_ref, 1.0)))


def packet_error_rate(snr_linear, packet_bits, model: str = "bpsk", *, a=None, g=None,
                      snr_threshold_linear=0.0, reference_bits=None) -> np.ndarray:
    """Packet error rate in [0, 1], non-increasing in SNR.

    model 'bpsk' / 'qpsk': uncoded, independent bit errors, PER = 1 - (1 - BER)^packet_bits.
    model 'waterfall': PER_ref = 1 below snr_threshold_linear, else min(1, a exp(-g snr)), fitted for
    packets of reference_bits (Liu, Zhou, Giannakis, IEEE TWC 3(5) 2004); a, g and
    reference_bits are required (fit them to your MCS), and PER_ref is scaled to packet_bits.
    """
    choice("model", model, PER_MODELS)
    snr = nonnegative_array("snr_linear", snr_linear)
    bits = positive_array("packet_bits", packet_bits)
    if model != "waterfall":
        if a is not None or g is not None or reference_bits is not None:
            raise ValueError(f"a, g and reference_bits apply only to model='waterfall', got model={model!r}")
        return _scale_to_length(bit_error_rate(snr, model), bits, 1.0)
    if a is None or g is None or reference_bits is None:
        raise ValueError(f"model='waterfall' needs a, g and reference_bits, got a={a!r}, g={g!r}, "
                         f"reference_bits={reference_bits!r}")
    a = positive_array("a", a)
    g = positive_array("g", g)
    ref = positive_array("reference_bits", reference_bits)
    thr = nonnegative_array("snr_threshold_linear", snr_threshold_linear)
    # Liu, Zhou, Giannakis 2004 (PER approximation per transmission mode)
    per_ref = np.where(snr < thr, 1.0, np.minimum(1.0, a * np.exp(-g * snr)))
    return _scale_to_length(per_ref, bits, ref)
