"""Kernel scenario tests: tiny scripted worlds whose whole event log is known in closed form."""
from __future__ import annotations

import math

import numpy as np
import pytest

from channel.seed import free_space_gain_at_1m, noise_power_w
from cosim.run import run_scenario
from cosim.scenario import validate_tree
from learning.fl import local_train

BASE = {
    "name": "tiny", "seed": 3, "duration_s": 100,
    "mobility": {"source": "scripted", "step_s": 1.0,
                 "scripted": {"vehicles": [{"id": "a", "x_m": 100.0, "speed_mps": 0.0}]}},
    "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0},
    "channel": {"uplink_bandwidth_hz": 1e6, "downlink_bandwidth_hz": 2e6, "vehicle_tx_power_w": 0.1,
                "rsu_tx_power_w": 1.0},
    "learning": {"num_clients": 4, "local_epochs": 1, "batch_size": 32},
    "protocol": {"rounds": 2, "vehicles_per_round": 5, "selection": "all", "round_deadline_s": 50},
}


def _rate_bps(distance_m, power_w, bandwidth_hz, noise_figure_db):
    gain = free_space_gain_at_1m(5.9e9) * distance_m ** -2.5
    return bandwidth_hz * math.log2(1 + power_w * gain / noise_power_w(bandwidth_hz, noise_figure_db=noise_figure_db))


def _run(tmp_path, tree):
    sc = validate_tree(tree, "tiny.yaml")
    return run_scenario(sc, tmp_path / "run")


def test_one_stationary_vehicle_whole_event_log(tmp_path):
    result = _run(tmp_path, BASE)
    import pyarrow.parquet as pq

    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    instants = pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()

    from cosim.rng import RngStreams
    from cosim.task import build_task
    task = build_task(validate_tree(BASE, "tiny.yaml").learning, RngStreams(3))
    bits = task.model_bytes * 8
    t_dl = bits / _rate_bps(100.0, 1.0, 2e6, 9.0)     # the whole band: the RSU's whole power; the vehicle's NF
    t_ul = bits / _rate_bps(100.0, 0.1, 1e6, 5.0)     # the RSU's NF
    flops = task.train_flops_per_sample * task.client_size(0)
    t_cp = flops / 4.0 / 1.5e9
    t_agg = 2.0 * sum(v.numel() for v in task.global_state.values()) / 1e12

    expected, t = [], 0.0
    for r in range(2):
        expected += [
            (r, "server", "optimize", t, t, "ok"),
            (r, "a", "tx.dl", t, t + t_dl, "ok"),
            (r, "a", "compute.train", t + t_dl, t + t_dl + t_cp, "ok"),
            (r, "a", "tx.ul", t + t_dl + t_cp, t + t_dl + t_cp + t_ul, "ok"),
            (r, "server", "aggregate", t + t_dl + t_cp + t_ul, t + t_dl + t_cp + t_ul + t_agg, "ok"),
        ]
        t += t_dl + t_cp + t_ul + t_agg
    got = [(s["round"], s["actor"], s["kind"], s["t_start_s"], s["t_end_s"], s["status"]) for s in spans]
    assert [g[:3] + g[5:] for g in got] == [e[:3] + e[5:] for e in expected]
    np.testing.assert_allclose([g[3:5] for g in got], [e[3:5] for e in expected], rtol=1e-12, atol=1e-12)

    assert [(i["actor"], i["kind"], i["round"]) for i in instants] == [
        ("a", "vehicle.enter", 0), ("a", "coverage.enter", 0),
        ("server", "round.start", 0), ("a", "dwell.predict", 0), ("a", "select", 0), ("server", "round.end", 0),
        ("server", "round.start", 1), ("a", "dwell.predict", 1), ("a", "select", 1), ("server", "round.end", 1),
    ]
    assert result.status == "completed"
    assert [r["completed"] for r in result.rounds] == [1, 1]
    # the uplink span carries the real payload: all bytes of the state dict, cut into MTU packets
    ul = [s for s in spans if s["kind"] == "tx.ul"][0]
    assert ul["bytes"] == task.model_bytes and ul["packets"] == math.ceil(task.model_bytes / 1500)
    assert ul["energy_j"] == pytest.approx(0.1 * t_ul, rel=1e-12)


def test_vehicle_leaving_coverage_mid_upload_is_dropped_from_aggregation(tmp_path):
    tree = {**BASE, "protocol": {**BASE["protocol"], "rounds": 1},
            "channel": {**BASE["channel"], "uplink_bandwidth_hz": 1e5, "downlink_bandwidth_hz": 20e6},
            "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
                {"id": "a", "x_m": 100.0, "speed_mps": 0.0},
                {"id": "b", "x_m": 495.0, "speed_mps": 10.0},       # leaves the 500 m disc before t = 1 s
            ]}}}
    result = _run(tmp_path, tree)
    import pyarrow.parquet as pq

    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    ul_b = [s for s in spans if s["actor"] == "b" and s["kind"] == "tx.ul"]
    assert len(ul_b) == 1
    assert (ul_b[0]["status"], ul_b[0]["cause"], ul_b[0]["t_end_s"]) == ("aborted", "coverage-lost", 1.0)
    assert 0 < ul_b[0]["bytes"] < [s for s in spans if s["actor"] == "a" and s["kind"] == "tx.ul"][0]["bytes"]
    row = result.rounds[0]
    assert (row["selected"], row["completed"], row["dropped"], row["aborted"]) == (2, 1, 1, 1)
    assert row["clients_aggregated"] == [0]

    # the new global model is vehicle a's local model alone (weights renormalized over the survivors)
    from cosim.rng import RngStreams
    from cosim.task import build_task
    streams = RngStreams(3)
    task = build_task(validate_tree(tree, "tiny.yaml").learning, streams)
    cfg = task.config
    alone = local_train(task.model, task.global_state, task.client_data(0), epochs=cfg.local_epochs,
                        batch_size=cfg.batch_size, lr=cfg.lr, seed=streams.seed_for("local-train", 0, 0))
    from learning.fl import evaluate
    acc, loss = evaluate(task.model, alone.state, task.test)
    assert (row["accuracy"], row["loss"]) == (acc, loss)


def test_round_deadline_drops_late_vehicle(tmp_path):
    tree = {**BASE, "protocol": {**BASE["protocol"], "rounds": 1, "round_deadline_s": 0.5},
            "channel": {**BASE["channel"], "uplink_bandwidth_hz": 1e4}}
    result = _run(tmp_path, tree)
    import pyarrow.parquet as pq

    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    ul = [s for s in spans if s["kind"] == "tx.ul"][0]
    assert (ul["status"], ul["cause"], ul["t_end_s"]) == ("dropped", "deadline", 0.5)
    row = result.rounds[0]
    assert (row["completed"], row["dropped"], row["late"]) == (0, 1, 1)
    assert row["t_end_s"] == 0.5


def test_vehicle_vanishing_during_compute_aborts_with_vehicle_left(tmp_path):
    tree = {**BASE, "protocol": {**BASE["protocol"], "rounds": 1},
            "devices": {"vehicle": {"cpu_hz": 1e6}},     # a slow CPU: training spans several ticks
            "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
                {"id": "a", "x_m": 100.0, "arrive_s": 3.0}]}}}
    _run(tmp_path, tree)
    import pyarrow.parquet as pq

    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    cp = [s for s in spans if s["kind"] == "compute.train"][0]
    assert (cp["status"], cp["cause"], cp["t_end_s"]) == ("aborted", "vehicle-left", 3.0)
    assert not [s for s in spans if s["kind"] == "tx.ul"]


TWO_RSUS = {**BASE, "protocol": {**BASE["protocol"], "rounds": 1},
            "rsus": {"positions_m": [[0.0, 0.0], [600.0, 0.0]], "coverage_radius_m": 400.0, "hysteresis_m": 0.0},
            "channel": {**BASE["channel"], "uplink_bandwidth_hz": 1e5, "downlink_bandwidth_hz": 20e6},
            "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
                {"id": "a", "x_m": 290.0, "speed_mps": 20.0}]}}}   # nearest RSU flips from rsu0 to rsu1 at x = 300


def test_handover_aborts_transfer_by_default(tmp_path):
    _run(tmp_path, TWO_RSUS)
    import pyarrow.parquet as pq

    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    ul = [s for s in spans if s["kind"] == "tx.ul"][0]
    assert (ul["status"], ul["cause"], ul["t_end_s"]) == ("aborted", "handover", 1.0)
    instants = pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()
    assert [(i["t_s"], i["detail"]) for i in instants if i["kind"] == "handover"] == [(1.0, "rsu0->rsu1")]


def test_handover_continue_resumes_after_delay_through_new_rsu(tmp_path):
    tree = {**TWO_RSUS, "rsus": {**TWO_RSUS["rsus"], "on_handover": "continue", "handover_delay_s": 0.25}}
    result = _run(tmp_path, tree)
    import pyarrow.parquet as pq

    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    ul = [s for s in spans if s["kind"] == "tx.ul"][0]
    assert ul["status"] == "ok" and ul["t_end_s"] > 1.25
    instants = pq.read_table(tmp_path / "run" / "instants.parquet").to_pylist()
    assert [(i["t_s"], i["detail"]) for i in instants if i["kind"] == "transfer.handover"] == [(1.0, "ul rsu0->rsu1")]
    # airtime excludes the silent handover delay: energy = p x (span length - delay)
    assert ul["energy_j"] == pytest.approx(0.1 * (ul["t_end_s"] - ul["t_start_s"] - 0.25), rel=1e-9)
    assert result.rounds[0]["completed"] == 1


def _handovers(run_dir):
    import pyarrow.parquet as pq

    return [(i["t_s"], i["detail"]) for i in pq.read_table(run_dir / "instants.parquet").to_pylist()
            if i["kind"] == "handover"]


def test_strongest_association_equals_nearest_under_the_seed_model(tmp_path):
    strongest = {**TWO_RSUS, "rsus": {**TWO_RSUS["rsus"], "association": "strongest"}}
    _run(tmp_path / "n", TWO_RSUS)
    _run(tmp_path / "s", strongest)
    assert _handovers(tmp_path / "n" / "run") == _handovers(tmp_path / "s" / "run") == [(1.0, "rsu0->rsu1")]


def test_strongest_association_hysteresis_db_delays_handover_until_out_of_range(tmp_path):
    tree = {**TWO_RSUS, "rsus": {**TWO_RSUS["rsus"], "association": "strongest", "hysteresis_db": 100.0},
            "channel": {**TWO_RSUS["channel"], "uplink_bandwidth_hz": 1e4}}     # a long upload keeps the run going
    _run(tmp_path, tree)
    # x = 290 + 20 t leaves rsu0's 400 m disc after t = 5.5: the first tick out of range is t = 6
    assert _handovers(tmp_path / "run") == [(6.0, "rsu0->rsu1")]


@pytest.mark.filterwarnings("error::RuntimeWarning")      # a zero rate would divide by zero
def test_mcs_with_per_packet_fading_has_finite_airtimes(tmp_path):
    """Faded attempts below CQI 1 fail at the outage floor's (positive) rate: nothing takes forever."""
    tree = {**BASE, "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
                {"id": "a", "x_m": 350.0}, {"id": "b", "x_m": 420.0}]}},
            "channel": {**BASE["channel"], "model": "tr38901_umi", "rate_mode": "mcs", "max_retransmissions": 8,
                        "fading": {"kind": "rayleigh", "mode": "per_packet"}},
            "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0}}
    _run(tmp_path, tree)
    import pyarrow.parquet as pq

    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    tx = [s for s in spans if s["kind"].startswith("tx.")]
    assert tx and sum(s["retransmissions"] for s in tx) > 0
    assert all(math.isfinite(s["t_end_s"]) and math.isfinite(s["energy_j"]) for s in spans)
