"""Packet error rates as functions of the (linear) SNR: the BLER of the MCS in use, or a user's waterfall fit.

A packet is one transport block: its error probability is the block error rate (BLER) of the modulation and
coding it is sent with, whatever its length.
"""
from __future__ import annotations

import functools

import numpy as np

from channel._validate import choice, nonnegative_array, positive_array
from channel.rate import CQI_TABLE, DEFAULT_TARGET_BER, cqi_index, cqi_snr_thresholds_db

PER_MODELS = ("mcs", "waterfall")

BLER_AT_SWITCHING = 0.1     # link adaptation's BLER target at each CQI's switching SNR (TS 38.214 5.2.2.1)
# Liu, Zhou & Giannakis, IEEE TWC 3(5) 2004, Table I: a_n of the fit PER = a_n exp(-g_n snr), per modulation
# order (QPSK 1/2, 16-QAM 1/2, 64-QAM 3/4 modes). a sets the waterfall's steepness at the 10% point,
# ln(10 a) / 10 decades per dB: 0.68 (QPSK), 0.62 (16-QAM), 0.58 (64-QAM).
WATERFALL_A = {2: 90.2514, 4: 50.1222, 6: 35.3508}


@functools.lru_cache(maxsize=16)      # the packet engine asks for every block of packets
def mcs_bler_params(target_ber: float = DEFAULT_TARGET_BER) -> tuple[np.ndarray, np.ndarray]:
    """(a, g) per CQI 1..15 of BLER(snr) = min(1, a exp(-g snr)) with BLER = 0.1 at the CQI's switching SNR
    (read-only arrays)."""
    a = np.array([WATERFALL_A[qm] for _, qm, _, _ in CQI_TABLE])
    switching = 10.0 ** (cqi_snr_thresholds_db(target_ber) / 10.0)
    g = np.log(a / BLER_AT_SWITCHING) / switching
    a.setflags(write=False)
    g.setflags(write=False)
    return a, g


def mcs_bler(snr_linear, cqi, target_ber: float = DEFAULT_TARGET_BER) -> np.ndarray:
    """BLER of CQI `cqi` (1..15; 0: nothing can be sent, BLER 1) at `snr_linear`."""
    snr = nonnegative_array("snr_linear", snr_linear)
    cqi = np.asarray(cqi)
    a, g = mcs_bler_params(target_ber)
    a, g = np.concatenate(([1.0], a)), np.concatenate(([0.0], g))       # CQI 0: BLER 1
    # Liu, Zhou, Giannakis 2004: PER = a exp(-g snr), capped at 1
    return np.minimum(1.0, a[cqi] * np.exp(-g[cqi] * snr))


def _scale_to_length(per_ref, packet_bits, reference_bits):
    # independent errors per block: 1 - (1 - PER)^(L / L_ref), computed stably
    exponent = packet_bits / reference_bits
    with np.errstate(divide="ignore"):
        return -np.expm1(exponent * np.log1p(-np.minimum(per_ref, 1.0)))


def packet_error_rate(snr_linear, packet_bits, model: str = "mcs", *, target_ber=DEFAULT_TARGET_BER, a=None,
                      g=None, snr_threshold_linear=0.0, reference_bits=None) -> np.ndarray:
    """Packet error rate in [0, 1], non-increasing in SNR within one MCS.

    model 'mcs': the BLER of the CQI link adaptation picks at this SNR (`channel.rate.cqi_index`), at this
    SNR: 10% at each switching SNR (`mcs_bler`); the length does not matter (a packet is a transport block).
    model 'waterfall': PER_ref = 1 below snr_threshold_linear, else min(1, a exp(-g snr)), fitted for
    packets of reference_bits (Liu, Zhou, Giannakis, IEEE TWC 3(5) 2004); a, g and reference_bits are
    required, and PER_ref is scaled to packet_bits: a margin model of the user's for Shannon rates.
    """
    choice("model", model, PER_MODELS)
    snr = nonnegative_array("snr_linear", snr_linear)
    bits = positive_array("packet_bits", packet_bits)
    if model == "mcs":
        if a is not None or g is not None or reference_bits is not None:
            raise ValueError(f"a, g and reference_bits apply only to model='waterfall', got model={model!r}")
        per = mcs_bler(snr, cqi_index(snr, target_ber), target_ber)
        return np.broadcast_to(per, np.broadcast_shapes(per.shape, bits.shape))
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
