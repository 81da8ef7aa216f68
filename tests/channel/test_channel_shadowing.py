"""Correlated log-normal shadowing: marginal N(0, sigma^2) and exp(-dd / d_corr) lag correlation."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import stats

from channel import shadowing

KS_P_MIN = 0.01
N_LINKS = 20_000
CORR_ATOL = 0.025  # ~3.5 standard errors of a sample correlation at N_LINKS
STATES = sorted(shadowing.SHADOWING)


@pytest.mark.parametrize("model_name, state", STATES, ids=[f"{m}-{s}" for m, s in STATES])
def test_marginal_and_lag_correlation(model_name, state):
    sigma_db, d_corr_m, _ = shadowing.shadowing_params(model_name, state)
    rng = np.random.default_rng(3)
    step_m = 0.4 * d_corr_m
    s0 = shadowing.initial_shadowing_db(N_LINKS, sigma_db, rng)
    path = [s0]
    for _ in range(3):
        path.append(shadowing.next_shadowing_db(path[-1], step_m, sigma_db, d_corr_m, rng))
    for s in path:
        assert stats.kstest(s, stats.norm(0.0, sigma_db).cdf).pvalue > KS_P_MIN
    for lag in (1, 3):
        rho = np.corrcoef(path[0], path[lag])[0, 1]
        assert rho == pytest.approx(np.exp(-lag * step_m / d_corr_m), abs=CORR_ATOL)


def test_table_values():
    # TR 37.885 Table 6.2.1-1 (sigma) and Table 6.2.3-1 (decorrelation), as ns-3's three-gpp-v2v model
    v2v = {(m, s): shadowing.shadowing_params(m, s)[:2] for m, s in shadowing.SHADOWING if m.startswith("tr37885")}
    assert v2v == {("tr37885_highway", "los"): (3.0, 10.0), ("tr37885_highway", "nlosv"): (3.0, 13.0),
                   ("tr37885_urban", "los"): (3.0, 10.0), ("tr37885_urban", "nlosv"): (3.0, 13.0),
                   ("tr37885_urban", "nlos"): (4.0, 13.0)}
    assert shadowing.shadowing_params("tr36885_macro", "los")[:2] == (8.0, 50.0)
    assert shadowing.shadowing_params("tr38901_umi", "nlos")[:2] == (7.82, 13.0)
    with pytest.raises(ValueError, match="seed"):
        shadowing.shadowing_params("seed", "los")


def test_vectorized_over_links_with_per_link_parameters():
    rng = np.random.default_rng(4)
    prev = np.array([1.0, -2.0, 3.0])
    out = shadowing.next_shadowing_db(prev, np.array([0.0, 5.0, 1e6]), np.array([3.0, 4.0, 8.0]),
                                      np.array([25.0, 10.0, 50.0]), rng)
    assert out.shape == (3,) and out[0] == 1.0


@given(prev=st.floats(-30, 30), sigma=st.floats(0, 10), d_corr=st.floats(1, 100), seed=st.integers(0, 2**32))
def test_zero_distance_keeps_value(prev, sigma, d_corr, seed):
    out = shadowing.next_shadowing_db(prev, 0.0, sigma, d_corr, np.random.default_rng(seed))
    assert out == prev


def test_errors_name_argument():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="decorrelation_m"):
        shadowing.next_shadowing_db(0.0, 1.0, 3.0, 0.0, rng)
    with pytest.raises(ValueError, match="sigma_db"):
        shadowing.next_shadowing_db(0.0, 1.0, -3.0, 10.0, rng)
    with pytest.raises(ValueError, match="rng"):
        shadowing.initial_shadowing_db(3, 3.0, None)
