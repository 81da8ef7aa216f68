"""Work-conserving bandwidth: a finished transfer's share goes to the others at its RSU, exactly in both modes."""
from __future__ import annotations

import math

import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosim.radio import BandwidthPool
from cosim.transfer import PacketErrors
from transfer_testlib import assert_same, make_sim, run_pool, run_transfers

MODES = ("batched", "explicit")


def test_pool_redistributes_in_proportion_and_forgets_when_idle():
    env = simpy.Environment()
    pool = BandwidthPool(env, 10e6)
    a, b, c = pool.join(5e6), pool.join(3e6), pool.join(2e6)
    first = pool.changed
    pool.leave(a)
    assert first.triggered and not pool.changed.triggered
    assert pool.bandwidth_hz(b) == pytest.approx(6e6) and pool.bandwidth_hz(c) == pytest.approx(4e6)
    pool.leave(b)
    assert pool.bandwidth_hz(c) == pytest.approx(10e6)
    pool.leave(c)
    assert pool.freed_hz == 0.0
    d = pool.join(2e6)
    assert pool.bandwidth_hz(d) == 2e6


@pytest.mark.parametrize("mode", MODES)
def test_work_conserving_finishes_earlier_and_matches_the_fluid_bound(mode):
    # Prepare: a short and a long upload with half the band each, spectral efficiency log2(1 + 15) = 4
    jobs = [(0.0, 300_000, 5e6, 15.0), (0.0, 3_000_000, 5e6, 15.0)]
    # Execute
    static = run_pool(mode, jobs, 10e6, work_conserving=False)
    shared = run_pool(mode, jobs, 10e6, work_conserving=True)
    # Assert: the short one is unaffected; the long one ends when all bits fit through the whole band
    assert static[0].outcome.t_end_s == shared[0].outcome.t_end_s
    assert shared[1].outcome.t_end_s < static[1].outcome.t_end_s
    assert static[1].outcome.t_end_s == pytest.approx(3_000_000 * 8 / 20e6, rel=1e-12)
    assert shared[1].outcome.t_end_s == pytest.approx(3_300_000 * 8 / 40e6, abs=1500 * 8 / 20e6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(1, 200_000), st.floats(1e5, 4e6),
                               st.floats(3.0, 60.0)), min_size=1, max_size=5),
       per=st.sampled_from(["none", "mcs"]), fading=st.sampled_from(["none", "rayleigh"]),
       step_s=st.floats(0.05, 1.0), seed=st.integers(0, 2**31))
def test_work_conserving_is_exact_across_modes(jobs, per, fading, step_s, seed):
    # Prepare
    errors = PacketErrors(per, (), 3, fading, None, 0.5 if fading != "none" else 0.0)
    # Execute
    batched = run_pool("batched", jobs, 1e7, True, errors, step_s=step_s, seed=seed)
    explicit = run_pool("explicit", jobs, 1e7, True, errors, step_s=step_s, seed=seed)
    # Assert
    for a, b in zip(batched, explicit):
        assert_same(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_simulation_work_conserving_at_one_rsu(mode):
    # Prepare: two vehicles at one RSU, equal shares, uploads of different sizes
    frames = [{"v0": (40.0, 0.0), "v1": (60.0, 0.0)}]
    base = {"rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 200.0},
            "channel": {"uplink_bandwidth_hz": 2e6}}
    jobs = [(0.0, "v0", "ul", 200_000, 0.2, 1e6), (0.0, "v1", "ul", 2_000_000, 0.2, 1e6)]
    static = run_transfers(make_sim(frames, base, mode=mode), jobs)
    wc = {**base, "channel": {**base["channel"], "work_conserving": True}}
    shared = run_transfers(make_sim(frames, wc, mode=mode), jobs)
    # Assert
    assert all(o.ok for o in static + shared)
    assert static[0].t_end_s == shared[0].t_end_s
    assert shared[1].t_end_s < static[1].t_end_s
    other = run_transfers(make_sim(frames, wc, mode=MODES[1 - MODES.index(mode)]), jobs)
    assert all(math.isclose(a.t_end_s, b.t_end_s, abs_tol=1e-9) for a, b in zip(shared, other))
