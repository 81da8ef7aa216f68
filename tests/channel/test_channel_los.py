"""LOS probabilities (TR 37.885 Table 6.2.1-2, TR 38.901 Table 7.4.2-1) and NLOSv blockage loss."""
import math

import numpy as np
import pytest
from scipy import stats

from channel import conditions, v2i, v2v

KS_P_MIN = 0.01
N_DRAWS = 20_000
FRACTION_ATOL = 0.01  # ~3 standard errors at N_DRAWS


def highway_ref(d):
    if d <= 475:
        return min(1.0, 2.1013e-6 * d * d - 0.002 * d + 1.0193)
    return max(0.0, 0.54 - 0.001 * (d - 475))


def urban_ref(d):
    return min(1.0, 1.05 * math.exp(-0.0114 * d))


def umi_ref(d):
    return 1.0 if d <= 18 else 18 / d + math.exp(-d / 36) * (1 - 18 / d)


LOS_PROBABILITIES = [("highway", v2v.highway_los_probability, highway_ref),
                     ("urban", v2v.urban_los_probability, urban_ref),
                     ("umi", v2i.umi_los_probability, umi_ref)]
EDGE_DISTANCES_M = [0.0, 1.0, 4.0, 10.0, 18.0, 18.01, 50.0, 100.0, 300.0, 475.0, 475.01, 1000.0, 1015.0,
                    1016.0, 5000.0]


@pytest.mark.parametrize("name, fn, ref", LOS_PROBABILITIES, ids=[p[0] for p in LOS_PROBABILITIES])
def test_los_probability_matches_reference_and_is_a_probability(name, fn, ref):
    got = fn(np.array(EDGE_DISTANCES_M))
    np.testing.assert_allclose(got, [ref(d) for d in EDGE_DISTANCES_M], rtol=0, atol=1e-12)
    assert np.all((got >= 0) & (got <= 1))
    assert fn(0.0) == 1.0


def test_los_probability_edges():
    assert v2v.highway_los_probability(1015.0) == pytest.approx(0.0)
    assert v2v.highway_los_probability(2000.0) == 0.0
    # the two highway branches nearly meet at 475 m (0.5434 vs 0.54)
    assert v2v.highway_los_probability(475.0) == pytest.approx(0.5434, abs=1e-3)
    assert v2v.urban_los_probability(math.log(1.05) / 0.0114) == pytest.approx(1.0)
    assert v2i.umi_los_probability(18.0) == 1.0
    assert np.all(np.diff(v2i.umi_los_probability(np.linspace(18, 2000, 500))) < 0)


def test_draw_los_frequency():
    rng = np.random.default_rng(1)
    los = conditions.draw_los(np.full(N_DRAWS, 0.3), rng)
    assert los.dtype == bool and abs(los.mean() - 0.3) < FRACTION_ATOL


@pytest.mark.parametrize("d_m, heights, mu, sigma", [
    (100.0, (1.5, 1.5, 1.6), 9.0, 4.5),                           # both antennas below the blocker
    (100.0, (1.5, 2.0, 1.6), 5.0, 4.0),                           # one above, one below
    (2000.0, (1.5, 1.5, 3.0), 9.0 + 15 * math.log10(2000) - 41, 4.5),  # distance term active
])
def test_nlosv_blockage_is_clipped_gaussian(d_m, heights, mu, sigma):
    rng = np.random.default_rng(2)
    loss = v2v.nlosv_blockage_db(np.full(N_DRAWS, d_m), rng, *heights)
    assert abs(np.mean(loss == 0.0) - stats.norm.cdf(0.0, mu, sigma)) < FRACTION_ATOL
    positive = loss[loss > 0]
    a = (0.0 - mu) / sigma
    assert stats.kstest(positive, stats.truncnorm(a, np.inf, loc=mu, scale=sigma).cdf).pvalue > KS_P_MIN


def test_nlosv_blockage_zero_when_both_antennas_above_blocker():
    loss = v2v.nlosv_blockage_db(np.full(10, 100.0), np.random.default_rng(0), 2.0, 2.5, 1.6)
    assert np.all(loss == 0.0)


def test_nlosv_blockage_needs_rng():
    with pytest.raises(ValueError, match="rng"):
        v2v.nlosv_blockage_db(100.0, None)
