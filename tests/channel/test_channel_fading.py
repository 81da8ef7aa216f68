"""Small-scale fading draws and the ergodic rate."""
import numpy as np
import pytest
from scipy import integrate, stats

from channel import fading
from channel.seed import shannon_rate_bps

KS_P_MIN = 0.01
N_DRAWS = 20_000
MEAN_RTOL = 0.03        # ~3 standard errors of a unit-variance mean at N_DRAWS
ERGODIC_MC_RTOL = 0.01  # ergodic rate vs Monte Carlo (the brief's 1 %)
N_MC = 400_000
N_FIT = 5_000
K_FIT_RTOL = 0.1    # MLE spread of K at N_FIT samples
K_FIT_ATOL = 0.1
BANDWIDTH_HZ = 20e6


def test_none_is_one():
    assert np.all(fading.power_fading(5, "none") == 1.0)


def test_rayleigh_is_unit_exponential():
    x = fading.power_fading(N_DRAWS, "rayleigh", np.random.default_rng(5))
    assert stats.kstest(x, stats.expon().cdf).pvalue > KS_P_MIN


@pytest.mark.parametrize("k_factor", [0.5, 3.0, 10.0])
def test_rician_unit_mean_and_amplitude_is_rice(k_factor):
    x = fading.power_fading(N_DRAWS, "rician", np.random.default_rng(6), k_factor)
    assert x.mean() == pytest.approx(1.0, rel=MEAN_RTOL)
    rice = stats.rice(b=np.sqrt(2 * k_factor), scale=np.sqrt(1 / (2 * (k_factor + 1))))
    assert stats.kstest(np.sqrt(x), rice.cdf).pvalue > KS_P_MIN
    # K back from a maximum-likelihood Rice fit of the amplitude: K = b^2 / 2
    b_fit, _, _ = stats.rice.fit(np.sqrt(x[:N_FIT]), floc=0.0)
    assert b_fit**2 / 2 == pytest.approx(k_factor, rel=K_FIT_RTOL, abs=K_FIT_ATOL)


@pytest.mark.parametrize("k_factor", [0.5, 3.0, 10.0, 50.0])
def test_rician_pdf_integrates_to_one_with_unit_mean(k_factor):
    assert integrate.quad(lambda x: fading.rician_power_pdf(x, k_factor), 0, np.inf)[0] \
        == pytest.approx(1.0, abs=1e-6)
    assert integrate.quad(lambda x: x * fading.rician_power_pdf(x, k_factor), 0, np.inf)[0] \
        == pytest.approx(1.0, abs=1e-6)


FADINGS = [("none", None), ("rayleigh", None), ("rician", 0.0), ("rician", 1.0), ("rician", 10.0)]
MEAN_SNRS_DB = [-10.0, 0.0, 10.0, 20.0, 30.0]


@pytest.mark.parametrize("kind, k_factor", FADINGS, ids=[f"{k}-{kf}" for k, kf in FADINGS])
def test_ergodic_rate_matches_monte_carlo(kind, k_factor):
    snr = 10 ** (np.array(MEAN_SNRS_DB) / 10)
    got = fading.ergodic_rate_bps(BANDWIDTH_HZ, snr, kind, k_factor)
    h2 = fading.power_fading(N_MC, kind, np.random.default_rng(7), k_factor)
    mc = [BANDWIDTH_HZ * np.mean(np.log2(1 + s * h2)) for s in snr]
    np.testing.assert_allclose(got, mc, rtol=ERGODIC_MC_RTOL)
    # Jensen: fading never beats the AWGN rate at the same mean SNR
    assert np.all(got <= shannon_rate_bps(BANDWIDTH_HZ, snr) * (1 + 1e-12))
    assert np.all(np.diff(got) > 0)


def test_ergodic_rate_deterministic_and_edge_values():
    snr = np.array([0.0, 1e-4, 1.0, 1e3])
    a = fading.ergodic_rate_bps(1.0, snr, "rayleigh")
    assert np.array_equal(a, fading.ergodic_rate_bps(1.0, snr, "rayleigh"))
    assert a[0] == 0.0
    assert a[1] == pytest.approx(1e-4 / np.log(2), rel=1e-3)  # low-SNR limit snr E|h|^2 / ln 2


def test_fading_argument_errors():
    with pytest.raises(ValueError, match="kind"):
        fading.power_fading(3, "nakagami", np.random.default_rng(0))
    with pytest.raises(ValueError, match="k_factor"):
        fading.power_fading(3, "rician", np.random.default_rng(0))
    with pytest.raises(ValueError, match="k_factor"):
        fading.ergodic_rate_bps(1.0, 1.0, "rayleigh", k_factor=3.0)
    with pytest.raises(ValueError, match="rng"):
        fading.power_fading(3, "rayleigh")
