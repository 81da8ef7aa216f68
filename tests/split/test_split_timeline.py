"""The split timeline on the clock: per-batch spans in closed form (GPU device model), real activation bytes
on the wire, the edge server's FIFO queue, and what a departure or the deadline does to a round."""
from __future__ import annotations

import math

import numpy as np
import pytest

from split_testlib import rate_bps, run, states_equal, tree

GPU = {"kind": "gpu", "gpu": {"t0_s": 0.002, "c1": 1.5, "c2": 0.5, "mem_cycles_per_flop": 0.01,
                              "core_cycles_per_flop": 0.02, "f_mem_hz": 1e9, "f_core_hz": 5e8, "p_cp_w": 7.0}}


def _gpu_s(flops):
    g = GPU["gpu"]
    return g["t0_s"] + g["c1"] * flops * g["mem_cycles_per_flop"] / g["f_mem_hz"] \
        + g["c2"] * flops * g["core_cycles_per_flop"] / g["f_core_hz"]


def _log(spans):
    return [(s["actor"], s["kind"], s["payload"], s["t_start_s"], s["t_end_s"], s["status"]) for s in spans]


def _assert_log(got, expected):
    assert [g[:3] + g[5:] for g in got] == [e[:3] + e[5:] for e in expected]
    np.testing.assert_allclose([g[3:5] for g in got], [e[3:5] for e in expected], rtol=1e-12, atol=1e-12)


def test_one_vehicle_whole_event_log_with_a_gpu(tmp_path):
    t = tree(protocol={"scheme": "sfl_v1", "cut": 2, "rounds": 1, "batches_per_round": 2},
             devices={"vehicle": GPU, "server": {"flops_per_s": 1e9}})
    got = run(tmp_path, t)
    prof, task = got.proto.profile, got.task
    b, act_bytes = 32, 32 * prof.activation_elements * 4
    r_dl, r_ul = rate_bps(100.0, 1.0, 20e6, "dl"), rate_bps(100.0, 0.1, 20e6)
    model_bytes = got.proto.client_model_bytes
    t_fwd, t_bwd = _gpu_s(prof.client_fwd_flops * b), _gpu_s(prof.client_bwd_flops * b)
    t_srv = prof.server_flops * b / 1e9
    expected, now = [("server", "optimize", "baseline", 0.0, 0.0, "ok")], 0.0

    def step(actor, kind, payload, dur):
        nonlocal now
        expected.append((actor, kind, payload, now, now + dur, "ok"))
        now += dur

    step("a", "tx.dl", "model", model_bytes * 8 / r_dl)
    for _ in range(2):
        step("a", "compute.fwd", "", t_fwd)
        step("a", "tx.ul", "activations", act_bytes * 8 / r_ul)
        step("server.gpu0", "server.compute", "a", t_srv)
        step("a", "tx.dl", "gradients", act_bytes * 8 / r_dl)
        step("a", "compute.bwd", "", t_bwd)
    step("a", "tx.ul", "model", model_bytes * 8 / r_ul)
    step("server", "aggregate", "model", 2.0 * sum(v.numel() for v in task.global_state.values()) / 1e9)
    _assert_log(_log(got.spans), expected)

    fwd = got.kind("compute.fwd")[0]
    assert fwd["energy_j"] == pytest.approx(7.0 * t_fwd, rel=1e-12)
    row = got.rounds[0]
    assert (row["selected"], row["completed"], row["dropped"]) == (1, 1, 0)
    assert row["bytes_up"] == 2 * act_bytes + model_bytes and row["bytes_down"] == 2 * act_bytes + model_bytes
    assert row["energy_j"] == pytest.approx(sum(s["energy_j"] for s in got.spans), rel=1e-12)
    # nothing waited: the one-slot server never had a queue
    assert not [c for c in got.counters if c["name"] == "queue_len"]
    # the plan predicted the same timeline (no queueing, the same cost functions)
    assert row["predicted_latency_s"] == pytest.approx(expected[-2][4], rel=1e-12)


@pytest.mark.parametrize("bits", [32, 8])
def test_activation_bytes_on_the_wire_are_the_real_tensors(tmp_path, bits):
    got = run(tmp_path, tree(protocol={"scheme": "sfl_v2", "cut": 1, "rounds": 1, "activation_bits": bits}))
    task, proto = got.task, got.proto
    sizes = proto.batch_sizes(task.client_size(0))
    assert len(sizes) > 5 and sizes[-1] != sizes[0]                 # a short last batch too
    x = task.client_data(0).x
    elements = [task.model.forward_stages(x[:n], 0, 1).numel() for n in sizes]    # the real activations
    payload = [math.ceil((e * bits + (64 if bits < 32 else 0)) / 8) for e in elements]   # + min/max header
    assert [s["bytes"] for s in got.kind("tx.ul") if s["payload"] == "activations"] == payload
    assert [s["bytes"] for s in got.kind("tx.dl") if s["payload"] == "gradients"] == [e * 4 for e in elements]
    assert [s["packets"] for s in got.kind("tx.ul") if s["payload"] == "activations"] == \
        [math.ceil(p / 1500) for p in payload]


def test_one_slot_server_serializes_work_in_arrival_order(tmp_path):
    """Three vehicles 100 m from the RSU: their activations arrive together and wait for the one slot."""
    vehicles = [{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": -100.0}, {"id": "c", "x_m": 0.0, "y_m": 100.0}]
    t = tree(vehicles=vehicles, protocol={"scheme": "sfl_v1", "cut": 2, "rounds": 1, "batches_per_round": 2},
             devices={"server": {"flops_per_s": 1e7, "gpu_slots": 1}})
    got = run(tmp_path, t)
    prof, b = got.proto.profile, 32
    act_bits = b * prof.activation_elements * 32
    r_dl, r_ul = rate_bps(100.0, 1.0, 20e6 / 3, "dl"), rate_bps(100.0, 0.1, 20e6 / 3)
    t_fwd, t_bwd = prof.client_fwd_flops * b / 6e9, prof.client_bwd_flops * b / 6e9
    arrive = got.proto.client_model_bytes * 8 / r_dl + t_fwd + act_bits / r_ul     # first activations, all three
    s = prof.server_flops * b / 1e7                                                   # one server job
    g = act_bits / r_dl + t_bwd + t_fwd + act_bits / r_ul                            # job end -> next arrival
    assert g < s
    expected = [("server.gpu0", "server.compute", v, arrive + k * s, arrive + (k + 1) * s, "ok")
                for k, v in enumerate("abcabc")]
    _assert_log(_log(got.kind("server.compute")), expected)
    queue = [(c["t_s"], c["value"]) for c in got.counters if c["name"] == "queue_len"]
    assert [c["actor"] for c in got.counters if c["name"] == "queue_len"] == ["server"] * 10
    exp_q = [(arrive, 1), (arrive, 2), (arrive + s, 1), (arrive + s + g, 2), (arrive + 2 * s, 1),
             (arrive + 2 * s + g, 2), (arrive + 3 * s, 1), (arrive + 3 * s + g, 2), (arrive + 4 * s, 1),
             (arrive + 5 * s, 0)]
    assert [q[1] for q in queue] == [e[1] for e in exp_q]
    np.testing.assert_allclose([q[0] for q in queue], [e[0] for e in exp_q], rtol=1e-12, atol=1e-12)
    # the static prediction does not see the queue; the simulated round does
    row = got.rounds[0]
    assert row["latency_s"] > row["predicted_latency_s"] + 3 * s


def test_two_slots_run_two_jobs_at_once_first_come_first_served(tmp_path):
    vehicles = [{"id": v, "x_m": 100.0 + 20 * i} for i, v in enumerate("abcd")]
    t = tree(vehicles=vehicles, protocol={"scheme": "sfl_v2", "cut": 2, "rounds": 1, "batches_per_round": 3},
             devices={"server": {"flops_per_s": 1e7, "gpu_slots": 2}})
    got = run(tmp_path, t)
    jobs = got.kind("server.compute")
    assert len(jobs) == 12 and {j["actor"] for j in jobs} == {"server.gpu0", "server.gpu1"}
    for actor in ("server.gpu0", "server.gpu1"):          # a slot runs one job at a time
        mine = sorted((j["t_start_s"], j["t_end_s"]) for j in jobs if j["actor"] == actor)
        assert all(e0 <= s1 for (_, e0), (s1, _) in zip(mine, mine[1:]))
    # first come, first served: jobs start in the order their activations arrived
    arrivals = sorted((s["t_end_s"], i) for i, s in enumerate(got.spans) if s["payload"] == "activations")
    owners = [got.spans[i]["actor"] for _, i in arrivals]
    assert [j["payload"] for j in sorted(jobs, key=lambda j: j["t_start_s"])] == owners
    assert max(c["value"] for c in got.counters if c["name"] == "queue_len") >= 1


def test_vehicle_leaving_coverage_mid_round_is_dropped_from_aggregation(tmp_path):
    slow = {"uplink_bandwidth_hz": 2e5, "downlink_bandwidth_hz": 20e6}
    both = tree(vehicles=[{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": 495.0, "speed_mps": 10.0}],
                channel={**tree()["channel"], **slow}, protocol={"scheme": "sfl_v1", "cut": 2, "rounds": 1})
    got = run(tmp_path, both, "both")
    aborted = [s for s in got.spans if s["status"] == "aborted"]
    assert [(s["actor"], s["kind"], s["cause"], s["t_end_s"]) for s in aborted] == \
        [("b", "tx.ul", "coverage-lost", 1.0)]
    row = got.rounds[0]
    assert (row["selected"], row["completed"], row["dropped"], row["aborted"]) == (2, 1, 1, 1)
    assert row["clients_aggregated"] == [0]
    alone = run(tmp_path, {**both, "mobility": {"source": "scripted", "scripted": {"vehicles": [
        {"id": "a", "x_m": 100.0}]}}}, "alone")
    assert states_equal(got.task.global_state, alone.task.global_state)


def test_sl_chain_stops_at_the_deadline(tmp_path):
    vehicles = [{"id": v, "x_m": 100.0 + 10 * i} for i, v in enumerate("abc")]
    t = tree(vehicles=vehicles, channel={**tree()["channel"], "uplink_bandwidth_hz": 2e6},
             protocol={"scheme": "sl", "cut": 2, "rounds": 1, "round_deadline_s": 50})
    full = run(tmp_path, t, "full")
    turns = [s["t_end_s"] for s in full.spans if s["kind"] == "tx.ul" and s["payload"] == "model"]
    assert len(turns) == 3 and full.rounds[0]["completed"] == 3
    # the model is relayed: each vehicle downloads what the previous one uploaded, one after another
    dl = [s for s in full.spans if s["kind"] == "tx.dl" and s["payload"] == "model"]
    assert [s["actor"] for s in dl] == ["a", "b", "c"] and [s["t_start_s"] for s in dl[1:]] == turns[:2]
    deadline = turns[0] + 0.5 * (turns[1] - turns[0])
    cut = run(tmp_path, {**t, "protocol": {**t["protocol"], "round_deadline_s": deadline}}, "cut")
    row = cut.rounds[0]
    assert (row["completed"], row["dropped"], row["late"]) == (1, 2, 1)
    assert row["t_end_s"] == pytest.approx(deadline, rel=1e-12)
    assert not [s for s in cut.spans if s["actor"] == "c"]
    late = [s for s in cut.spans if s["status"] == "dropped"]
    assert [(s["actor"], s["cause"]) for s in late] == [("b", "deadline")]
