"""Shannon and CQI-table rates, packet error rates (each MCS's BLER, a waterfall fit)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from channel import per, rate

SNR_DB = np.linspace(-20, 40, 601)
SNR = 10 ** (SNR_DB / 10)


def test_shannon_monotone_and_value():
    r = rate.shannon_rate_bps(1e6, SNR)
    assert np.all(np.diff(r) > 0)
    assert rate.shannon_rate_bps(1e6, 1.0) == pytest.approx(1e6)


def test_cqi_table_efficiency_is_qm_times_code_rate():
    for cqi, qm, r1024, eff in rate.CQI_TABLE:
        assert round(qm * r1024 / 1024, 4) == pytest.approx(eff, abs=1e-4), cqi


def test_mcs_rate_monotone_bounded_by_shannon_and_saturates():
    r = rate.mcs_rate_bps(1e6, SNR)
    assert np.all(np.diff(r) >= 0)
    assert np.all(r <= rate.shannon_rate_bps(1e6, SNR))
    assert r[0] == 0.0 and r[-1] == pytest.approx(5.5547e6)


def test_cqi_thresholds_follow_the_gap_rule():
    gamma = -np.log(5 * 5e-5) / 1.5
    th = rate.cqi_snr_thresholds_db()
    np.testing.assert_allclose(th, 10 * np.log10(gamma * (2 ** rate.CQI_EFFICIENCY_BPS_PER_HZ - 1)))
    assert np.all(np.diff(th) > 0)
    snr_at = 10 ** (th / 10)
    assert np.array_equal(rate.cqi_index(snr_at * 1.001), np.arange(1, 16))
    assert np.array_equal(rate.cqi_index(snr_at * 0.999), np.arange(0, 15))


PER_CASES = [("mcs", {}),
             ("waterfall", {"a": 67.6, "g": 1.69, "snr_threshold_linear": 2.5, "reference_bits": 1080})]


@pytest.mark.parametrize("model, kw", PER_CASES, ids=[c[0] for c in PER_CASES])
@pytest.mark.parametrize("packet_bits", [1, 1080, 12_000])
def test_per_in_unit_interval(model, kw, packet_bits):
    p = per.packet_error_rate(SNR, packet_bits, model, **kw)
    assert np.all((p >= 0) & (p <= 1))
    assert p[0] > 0.3 and p[-1] < 1e-6


def test_waterfall_decreases_with_snr_and_grows_with_length():
    kw = PER_CASES[1][1]
    assert np.all(np.diff(per.packet_error_rate(SNR, 1080, "waterfall", **kw)) <= 0)
    assert np.all(per.packet_error_rate(SNR, 12_000, "waterfall", **kw) >= per.packet_error_rate(SNR, 1080, "waterfall", **kw))


def test_mcs_bler_is_ten_percent_at_every_switching_snr():
    switching = 10 ** (rate.cqi_snr_thresholds_db() / 10)
    np.testing.assert_allclose(per.mcs_bler(switching, np.arange(1, 16)), 0.1, rtol=1e-12)
    # just above: link adaptation picks that CQI; just below: the one before, far down its waterfall
    above = per.packet_error_rate(switching * (1 + 1e-9), 12_000)
    below = per.packet_error_rate(switching[1:] * (1 - 1e-9), 12_000)
    np.testing.assert_allclose(above, 0.1, rtol=1e-6)
    assert np.all(below < 0.02)
    assert per.packet_error_rate(switching[0] * 0.99, 1500) == 1.0       # below CQI 1: nothing gets through


def test_mcs_bler_decreases_within_each_mcs_with_the_cited_slope():
    a, g = per.mcs_bler_params()
    switching_db = rate.cqi_snr_thresholds_db()
    for cqi in range(1, 16):
        snr_db = switching_db[cqi - 1] + np.linspace(-1.0, 2.0, 61)
        bler = per.mcs_bler(10 ** (snr_db / 10), cqi)
        assert np.all(np.diff(bler) <= 0)
        # steepness at the 10% point: ln(10 a) / 10 decades per dB (Liu, Zhou, Giannakis 2004 fit)
        eps = 1e-4
        up, down = (per.mcs_bler(10 ** ((switching_db[cqi - 1] + d) / 10), cqi) for d in (eps, -eps))
        slope = (np.log10(down) - np.log10(up)) / (2 * eps)
        assert slope == pytest.approx(np.log(10 * a[cqi - 1]) / 10, rel=1e-4)


def test_waterfall_reference_length_and_threshold():
    kw = {"a": 67.6, "g": 1.69, "snr_threshold_linear": 2.5, "reference_bits": 1080}
    assert per.packet_error_rate(2.0, 1080, "waterfall", **kw) == 1.0
    assert per.packet_error_rate(5.0, 1080, "waterfall", **kw) == pytest.approx(67.6 * np.exp(-1.69 * 5))


@given(snr=st.floats(0, 1e6), bits=st.floats(1, 1e6))
def test_per_is_probability_property(snr, bits):
    assert 0.0 <= per.packet_error_rate(snr, bits, "mcs") <= 1.0


def test_per_argument_errors():
    with pytest.raises(ValueError, match="model"):
        per.packet_error_rate(1.0, 100, "64qam")
    with pytest.raises(ValueError, match="reference_bits"):
        per.packet_error_rate(1.0, 100, "waterfall", a=1.0, g=1.0)
    with pytest.raises(ValueError, match="waterfall"):
        per.packet_error_rate(1.0, 100, "mcs", a=1.0)
    with pytest.raises(ValueError, match="packet_bits"):
        per.packet_error_rate(1.0, 0, "mcs")
    with pytest.raises(ValueError, match="target_ber"):
        rate.mcs_rate_bps(1e6, 1.0, target_ber=0.5)
