"""Aborts at the tick that breaks the link, with its cause; deadline interrupts with partial accounting."""
from __future__ import annotations

import math

import pytest

from channel.link import RSU_NOISE_FIGURE_DB
from channel.seed import free_space_gain_at_1m, noise_power_w, seed_gain_linear
from cosim.transfer import PacketErrors
from transfer_testlib import make_sim, run_one, run_transfers, switching_snr

MODES = ("batched", "explicit")
RATE = 12_000 * 128.0      # bit/s: a 1500-byte packet takes 1/128 s


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cause", ["coverage-lost", "vehicle-left", "handover"])
def test_abort_at_the_tick_with_its_cause(mode, cause):
    # Prepare: 1500-byte packets of 1/128 s (exact sums); the link breaks at the 3rd tick (t = 1.5 s)
    rec = run_one(mode, 1_000_000, 1500, 0.5, [RATE], aborts={3: cause})
    # Assert
    out = rec.outcome
    assert (out.status, out.cause) == ("aborted", cause)
    assert out.t_end_s == 1.5
    assert out.packets_delivered == len(rec.times) == 192
    assert out.bytes_delivered == 192 * 1500
    assert out.energy_j == pytest.approx(0.5 * 1.5, rel=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_deadline_mid_packet_drops_with_partial_accounting(mode):
    # Prepare: the deadline falls 40% into the 8th packet
    rec = run_one(mode, 1_000_000, 1500, 1.0, [RATE], interrupt_at=7.4 / 128)
    # Assert: 7 packets delivered, the 8th unsent, airtime and energy up to the deadline
    out = rec.outcome
    assert (out.status, out.cause) == ("dropped", "deadline")
    assert out.t_end_s == (7.4 / 128)
    assert out.packets_delivered == 7 and out.bytes_delivered == 7 * 1500
    assert out.airtime_s == pytest.approx((7.4 / 128), rel=1e-12)
    assert out.energy_j == pytest.approx(0.5 * (7.4 / 128), rel=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_deadline_counts_the_retransmissions_started(mode):
    # Prepare: every attempt fails (SNR 0.5) and 5 retransmissions are allowed: 6 attempts of 1/128 s
    errors = PacketErrors("mcs", (), max_retransmissions=5)
    rec = run_one(mode, 30_000, 1500, 1.0, [RATE], snrs=[0.5], errors=errors, interrupt_at=3.5 / 128)
    # Assert: the 4th attempt (3rd retransmission) was on the air at the deadline
    out = rec.outcome
    assert (out.status, out.cause, out.packets_delivered) == ("dropped", "deadline", 0)
    assert out.retransmissions == 3
    assert out.energy_j == pytest.approx(0.5 * 3.5 / 128, rel=1e-12)


# ---- through the Simulation: the World decides when the link breaks ----------------------------------

RSUS = {"rsus": {"positions_m": [[0.0, 0.0], [300.0, 0.0]], "coverage_radius_m": 150.0},
        "channel": {"mtu_bytes": 1500}}


def _frames(xs_by_tick: list[dict]) -> list[dict]:
    return [{v: (x, 0.0) for v, x in frame.items()} for frame in xs_by_tick]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cause, frames", [
    ("coverage-lost", [{"v0": 100.0}, {"v0": 120.0}, {"v0": 140.0}, {"v0": 500.0}]),
    ("vehicle-left", [{"v0": 100.0}, {"v0": 120.0}, {"v0": 140.0}, {}]),
    ("handover", [{"v0": 100.0}, {"v0": 120.0}, {"v0": 140.0}, {"v0": 290.0}]),
])
def test_simulation_aborts_at_the_tick_the_world_changes(mode, cause, frames):
    # Prepare: an upload far longer than 3 s (1 kHz of band)
    sim = make_sim(_frames(frames), RSUS, mode=mode)
    # Execute
    (out,) = run_transfers(sim, [(0.0, "v0", "ul", 10_000_000, 0.2, 1e3)])
    # Assert: aborted at the tick at 3 s, and the span says so
    assert (out.status, out.cause, out.t_end_s) == ("aborted", cause, 3.0)
    span = sim.trace.spans[-1]
    assert (span.kind, span.status, span.cause, span.t_end_s) == ("tx.ul", "aborted", cause, 3.0)
    assert span.packets == out.packets_delivered == len(sim.trace.packets)
    assert math.isclose(span.energy_j, 0.2 * 3.0, rel_tol=1e-12)


def test_simulation_records_retransmissions_and_attempts():
    # Prepare: the power that puts the uplink at 100 m at CQI 7's switching SNR, where its MCS loses a tenth
    gain = seed_gain_linear(100.0, free_space_gain_at_1m(5.9e9), 2.5)
    power_w = switching_snr(7) * float(noise_power_w(1e5, noise_figure_db=RSU_NOISE_FIGURE_DB)) / gain
    scenario = {**RSUS, "channel": {"rate_mode": "mcs", "max_retransmissions": 8}}
    sim = make_sim(_frames([{"v0": 100.0}]), scenario)
    # Execute
    (out,) = run_transfers(sim, [(0.0, "v0", "ul", 200_000, power_w, 1e5)])
    # Assert
    assert out.ok
    span = sim.trace.spans[-1]
    attempts = [p[5] for p in sim.trace.packets]   # Packet fields: ..., attempts
    assert span.retransmissions == out.retransmissions == sum(a - 1 for a in attempts) > 0


def test_simulation_follows_simpy_ticks_when_the_source_clock_is_k_times_step():
    # Prepare: ticks every 0.1 s (a source clock of k * 0.1 differs from SimPy's sums in the last bits);
    # the vehicle moves every tick, so the rate changes at each of them
    frames = _frames([{"v0": 20.0 + 0.5 * k} for k in range(400)])
    outs = {}
    for mode in MODES:
        sim = make_sim(frames, RSUS, step_s=0.1, mode=mode)
        (outs[mode],) = run_transfers(sim, [(0.05, "v0", "ul", 3_000_000, 0.2, 2e5)])
    # Assert: many ticks crossed, both modes agree
    assert outs["batched"].ok and outs["batched"].t_end_s > 5.0
    assert outs["batched"].t_end_s == outs["explicit"].t_end_s


@pytest.mark.parametrize("mode", MODES)
def test_resend_after_the_arq_limit_delivers_everything_as_spans_of_their_own(mode):
    # Prepare: at CQI 7's switching SNR its MCS loses a tenth of the packets; with no retransmission a
    # 200 kB upload loses a packet almost surely (abort), unless a higher layer resends the rest
    gain = seed_gain_linear(100.0, free_space_gain_at_1m(5.9e9), 2.5)
    power_w = switching_snr(7) * float(noise_power_w(1e5, noise_figure_db=RSU_NOISE_FIGURE_DB)) / gain
    outs = {}
    for policy in ("abort", "resend"):
        scenario = {**RSUS, "channel": {"rate_mode": "mcs", "max_retransmissions": 0, "on_arq_limit": policy}}
        sim = make_sim(_frames([{"v0": 100.0}]), scenario, mode=mode)
        (outs[policy],) = run_transfers(sim, [(0.0, "v0", "ul", 200_000, power_w, 1e5)])
        spans = [s for s in sim.trace.spans if s.kind == "tx.ul"]
        packets = sim.trace.packets
    aborted, resent = outs["abort"], outs["resend"]
    # Assert: abort stops at the first lost packet; resend goes on, one span per attempt at the rest
    assert (aborted.status, aborted.cause) == ("aborted", "arq-limit") and aborted.bytes_delivered < 200_000
    assert resent.ok and resent.bytes_delivered == 200_000 and resent.t_start_s == 0.0
    assert len(spans) > 1 and spans[-1].status == "ok"
    assert all((s.status, s.cause) == ("resent", "arq-limit") for s in spans[:-1])
    assert sum(s.bytes for s in spans) == 200_000 == sum(p[4] for p in packets)
    assert [s.t_start_s for s in spans[1:]] == [s.t_end_s for s in spans[:-1]]      # back to back
    assert resent.energy_j == pytest.approx(sum(s.energy_j for s in spans), rel=1e-12)
    assert resent.t_end_s == spans[-1].t_end_s
