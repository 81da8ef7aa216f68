"""SINR with co-channel interference."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

from channel.interference import sinr_linear
from channel.seed import noise_power_w, snr_linear


def test_no_interferers_is_snr():
    p = np.array([0.1, 0.2, 0.05])
    g = np.diag([1e-9, 3e-10, 2e-8])
    noise = noise_power_w(20e6, noise_figure_db=9.0)
    np.testing.assert_allclose(sinr_linear(p, g, noise), snr_linear(p, np.diag(g), 20e6, noise_figure_db=9.0))


def test_other_resources_do_not_interfere():
    p = np.array([0.1, 0.2])
    g = np.full((2, 2), 1e-9)
    np.testing.assert_allclose(sinr_linear(p, g, 1e-12, resource=[0, 1]), p * 1e-9 / 1e-12)


def test_two_links_hand_computed():
    p = np.array([1.0, 2.0, 4.0])
    g = np.array([[0.5, 0.1, 0.3],
                  [0.2, 0.4, 0.6],
                  [0.9, 0.8, 0.7]])  # g[j, i]: tx j -> rx i
    got = sinr_linear(p, g, np.array([0.1, 0.1, 0.1]), resource=np.array([0, 0, 1]))
    np.testing.assert_allclose(got, [1 * 0.5 / (0.1 + 2 * 0.2), 2 * 0.4 / (0.1 + 1 * 0.1), 4 * 0.7 / 0.1])


@given(hnp.arrays(float, (4,), elements=st.floats(0, 1)), hnp.arrays(float, (4, 4), elements=st.floats(0, 1)),
       hnp.arrays(int, (4,), elements=st.integers(0, 2)))
def test_sinr_never_exceeds_snr(p, g, resource):
    noise = 1e-3
    assert np.all(sinr_linear(p, g, noise, resource) <= p * np.diagonal(g) / noise * (1 + 1e-12))


def test_shape_errors():
    with pytest.raises(ValueError, match="gain_matrix"):
        sinr_linear(np.ones(3), np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError, match="resource"):
        sinr_linear(np.ones(2), np.ones((2, 2)), 1.0, resource=[0])
    with pytest.raises(ValueError, match="noise_w"):
        sinr_linear(np.ones(2), np.ones((2, 2)), 0.0)
