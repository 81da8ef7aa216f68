"""Batched packets are exact: airtime arithmetic, and the same results as one event per packet."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosim.transfer import PacketErrors, packet_sizes_bytes
from transfer_testlib import assert_same, run_one, switching_snr

MODES = ("batched", "explicit")
WATERFALL = (("a", 90.2514), ("g", 3.4998), ("snr_threshold_linear", 10 ** 0.10942), ("reference_bits", 1080.0))


@pytest.mark.parametrize("mode", MODES)
def test_constant_rate_takes_bits_over_rate(mode):
    # Prepare: 1 MB at 3 Mbit/s, ticks every 0.7 s that do not change the rate
    nbytes, rate = 1_000_000, 3e6
    # Execute
    rec = run_one(mode, nbytes, 1500, 0.7, [rate])
    # Assert
    out = rec.outcome
    assert out.status == "ok" and out.bytes_delivered == nbytes and out.retransmissions == 0
    assert out.t_end_s == pytest.approx(nbytes * 8 / rate, rel=1e-12)
    assert out.energy_j == pytest.approx(0.5 * nbytes * 8 / rate, rel=1e-12)
    assert rec.times[-1] == out.t_end_s
    assert rec.attempts == [1] * len(packet_sizes_bytes(nbytes, 1500))


@pytest.mark.parametrize("mode", MODES)
def test_retransmissions_add_their_airtime(mode):
    # Prepare: the MCS BLER at a switching SNR fails a tenth of the attempts, constant rate and SNR
    nbytes, rate = 600_000, 2e6
    errors = PacketErrors("mcs", (), max_retransmissions=6)
    # Execute
    rec = run_one(mode, nbytes, 1500, 1.0, [rate], snrs=[switching_snr(7)], errors=errors)
    # Assert: time = sum over packets of attempts x bits / rate; energy = power x that
    out = rec.outcome
    assert out.status == "ok"
    attempts = np.array(rec.attempts)
    bits = packet_sizes_bytes(nbytes, 1500) * 8.0
    assert out.retransmissions == int((attempts - 1).sum()) > 0
    assert out.t_end_s == pytest.approx(float((attempts * bits).sum()) / rate, rel=1e-12)
    assert out.airtime_s == pytest.approx(out.t_end_s, rel=1e-12)
    assert out.energy_j == pytest.approx(0.5 * out.t_end_s, rel=1e-12)
    assert np.all(np.diff(rec.times) > 0)


def test_rate_zero_intervals_cost_no_energy():
    # Prepare: no rate in the first two ticks
    rec = run_one("batched", 150_000, 1500, 1.0, [0.0, 0.0, 4e6])
    out = rec.outcome
    # Assert: starts sending at the 2 s tick
    assert out.t_end_s == pytest.approx(2.0 + 150_000 * 8 / 4e6, rel=1e-12)
    assert out.airtime_s == pytest.approx(150_000 * 8 / 4e6, rel=1e-12)


def test_arq_limit_aborts_when_a_packet_fails_every_attempt():
    # Prepare: SNR so low that every attempt fails
    errors = PacketErrors("mcs", (), max_retransmissions=2)
    for mode in MODES:
        # Execute
        rec = run_one(mode, 30_000, 1500, 1.0, [1.2e6], snrs=[0.5], errors=errors)
        # Assert: the first packet uses 3 attempts, then the transfer stops at its end
        out = rec.outcome
        assert (out.status, out.cause) == ("aborted", "arq-limit")
        assert out.packets_delivered == 0 and out.retransmissions == 2
        assert out.t_end_s == pytest.approx(3 * 12_000 / 1.2e6, rel=1e-12)
        assert out.energy_j == pytest.approx(0.5 * out.t_end_s, rel=1e-12)


def test_block_draws_equal_single_draws():
    # the property both modes rely on
    a = np.random.Generator(np.random.PCG64(11)).random((50, 6))
    g = np.random.Generator(np.random.PCG64(11))
    b = np.array([g.random(6) for _ in range(50)])
    assert np.array_equal(a, b)


_errors = st.builds(
    lambda per, fading, k, retx, outage_db: PacketErrors(
        per, WATERFALL if per == "waterfall" else (), retx, fading, k if fading == "rician" else None,
        10 ** (outage_db / 10) if fading != "none" else 0.0),
    st.sampled_from(["none", "mcs", "waterfall"]),
    st.sampled_from(["none", "rayleigh", "rician"]),
    st.floats(0.0, 10.0), st.integers(0, 4), st.floats(-10.0, 3.0))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nbytes=st.integers(1, 120_000), mtu=st.integers(64, 1500), step_s=st.floats(0.01, 1.0),
       rates=st.lists(st.one_of(st.just(0.0), st.floats(2e5, 2e7)), min_size=1, max_size=12),
       snrs=st.lists(st.floats(2.0, 40.0), min_size=1, max_size=12), errors=_errors,
       interrupt=st.one_of(st.none(), st.floats(0.0, 1.0)),
       abort=st.one_of(st.none(), st.tuples(st.integers(1, 10), st.sampled_from(["coverage-lost", "handover"]))),
       seed=st.integers(0, 2**32 - 1))
def test_batched_equals_explicit(nbytes, mtu, step_s, rates, snrs, errors, interrupt, abort, seed):
    # Prepare: the same transfer, channel schedule, errors and interruption for both modes
    rates = rates + [1e6]                   # the last rate holds on: not 0, so every transfer ends
    kw = dict(snrs=snrs, errors=errors, seed=seed, aborts=dict([abort]) if abort else None)
    if interrupt is not None:
        kw["interrupt_at"] = interrupt * step_s * len(rates)
    # Execute
    batched = run_one("batched", nbytes, mtu, step_s, rates, **kw)
    explicit = run_one("explicit", nbytes, mtu, step_s, rates, **kw)
    # Assert
    assert_same(batched, explicit)
    out = batched.outcome
    assert out.bytes_delivered == sum(batched.nbytes)
    assert out.retransmissions >= sum(a - 1 for a in batched.attempts)
    assert math.isclose(out.energy_j, 0.5 * out.airtime_s, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_per_packet_fading_gives_each_packet_its_own_rate(fading):
    # Prepare: fading without packet errors (outage far below the mean SNR)
    errors = PacketErrors("none", (), 3, fading, 4.0 if fading == "rician" else None, 1e-6)
    rec = run_one("batched", 300_000, 1500, 10.0, [5e6], snrs=[100.0], errors=errors)
    # Assert: delivery gaps differ packet to packet; both modes agree
    gaps = np.diff(rec.times)
    assert gaps.std() > 0.01 * gaps.mean()
    assert_same(rec, run_one("explicit", 300_000, 1500, 10.0, [5e6], snrs=[100.0], errors=errors))
