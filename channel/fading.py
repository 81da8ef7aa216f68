"""Small-scale fading: unit-mean power gains |h|^2 and the ergodic rate E[W log2(1 + snr |h|^2)]."""
from __future__ import annotations

import numpy as np
from scipy import integrate, special

from channel._validate import choice, generator, nonnegative_array, positive_array

FADING_KINDS = ("none", "rayleigh", "rician")


def _check_kind(kind, k_factor):
    choice("kind", kind, FADING_KINDS)
    if kind == "rician":
        if k_factor is None:
            raise ValueError("k_factor must be given (linear, >= 0) for kind='rician', got None")
        return float(nonnegative_array("k_factor", k_factor))
    if k_factor is not None:
        raise ValueError(f"k_factor applies only to kind='rician', got k_factor={k_factor!r} "
                         f"for kind={kind!r}")
    return None


def power_fading(size, kind: str, rng=None, k_factor=None) -> np.ndarray:
    """Unit-mean power gains |h|^2: 'none' (1.0), 'rayleigh' (Exp(1)), 'rician' (linear K factor)."""
    k = _check_kind(kind, k_factor)
    if kind == "none":
        return np.ones(size)
    rng = generator("rng", rng, f"{kind} fading is random")
    if kind == "rayleigh":
        # |h|^2 of h ~ CN(0, 1) is Exp(1) (Rappaport, Wireless Communications, 2nd ed., ch. 5)
        return rng.exponential(1.0, size)
    # h = sqrt(K/(K+1)) + sqrt(1/(K+1)) CN(0, 1)  (Simon & Alouini 2005, 2.2.1.3, Nakagami-n / Rice)
    scatter = (rng.standard_normal(size) + 1j * rng.standard_normal(size)) / np.sqrt(2.0)
    h = np.sqrt(k / (k + 1.0)) + np.sqrt(1.0 / (k + 1.0)) * scatter
    return np.abs(h) ** 2


def rician_power_pdf(x, k_factor) -> np.ndarray:
    """PDF of the unit-mean Rician power gain at x >= 0."""
    x = np.asarray(x, dtype=float)
    k = float(k_factor)
    z = 2.0 * np.sqrt(k * (k + 1.0) * x)
    # Simon & Alouini 2005, 2.2.1.3: (K+1) e^-K e^-(K+1)x I0(2 sqrt(K(K+1)x)); i0e(z) = I0(z) e^-z
    return (k + 1.0) * special.i0e(z) * np.exp(-k - (k + 1.0) * x + z)


def _rayleigh_mean_ln(mean_snr):
    # Alouini & Goldsmith 1999 (IEEE TVT 48(4)), Rayleigh ORA capacity: e^(1/snr) E1(1/snr) nats
    s = np.asarray(mean_snr, dtype=float)
    small = s * 700.0 >= 1.0  # x = 1 / snr <= 700: e^x stays finite
    x = 1.0 / np.where(small, s, 1.0)
    exact = np.exp(x) * special.exp1(x)
    asym = s * (1.0 - s + 2.0 * s**2 - 6.0 * s**3)  # e^x E1(x) asymptotic series in 1/x = snr
    return np.where(small, exact, asym)


def _rician_mean_ln(mean_snr, k):
    def one(snr):
        if snr == 0.0:
            return 0.0
        f = lambda x: np.log1p(snr * x) * rician_power_pdf(x, k)  # noqa: E731
        # the pdf peaks near x = 1 for large K: split there so quad sees the peak
        return integrate.quad(f, 0.0, 1.0)[0] + integrate.quad(f, 1.0, np.inf)[0]
    return np.vectorize(one, otypes=[float])(mean_snr)


def ergodic_rate_bps(bandwidth_hz, mean_snr, kind: str = "rayleigh", k_factor=None) -> np.ndarray:
    """Ergodic rate E[W log2(1 + mean_snr |h|^2)] [bit/s]; deterministic (closed form or quadrature).

    mean_snr is linear; k_factor is the linear Rician K (only for kind='rician'). Rayleigh is closed
    form; Rician runs one scipy quadrature per element (about 1 ms each).
    """
    w = positive_array("bandwidth_hz", bandwidth_hz)
    snr = nonnegative_array("mean_snr", mean_snr)
    k = _check_kind(kind, k_factor)
    if kind == "none":
        mean_ln = np.log1p(snr)
    elif kind == "rayleigh" or k == 0.0:
        mean_ln = _rayleigh_mean_ln(snr)
    else:
        mean_ln = _rician_mean_ln(snr, k)
    return w * mean_ln / np.log(2.0)
