"""decisions.parquet and per-vehicle decisions on the timeline: with a static channel and no queueing the
prediction is the timeline; each vehicle computes with its own device at the clock it was given."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cosim.compute import DeviceSpec, VehicleDevices, device_model
from cosim.optimizers.api import Plan, RoundSnapshot
from cosim.optimizers.baseline import assemble, baseline
from cosim.registry import register_optimizer, scheme
from cosim.rng import RngStreams
from cosim.scenario import CpuDeviceConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "split"))
from split_testlib import run, tree  # noqa: E402

STILL = [{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": 200.0}]


@register_optimizer("test_slowest_clock")
def slowest_clock(snap: RoundSnapshot) -> Plan:
    """The baseline, every vehicle at the lowest clock it allows."""
    plan, model = baseline(snap), scheme(snap.scheme).cost
    decisions = {v: dataclasses.replace(d, cpu_hz=snap.candidate(v).device.cpu_hz_min) for v, d in plan.decisions.items()}
    costs = {v: model.cost(snap, snap.candidate(v), d) for v, d in decisions.items()}
    return assemble(list(plan.selected), decisions, costs, model.sequential)


@pytest.mark.parametrize("scheme", ["fedavg", "sl", "sfl_v1", "sfl_v2"])
def test_with_a_static_channel_the_prediction_is_the_timeline(tmp_path, scheme):
    got = run(tmp_path, tree(vehicles=STILL, protocol={"scheme": scheme, "cut": 2, "rounds": 2}))
    rows = pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()
    assert [(r["round"], r["vehicle"]) for r in rows] == [(0, "a"), (0, "b"), (1, "a"), (1, "b")]
    for r in rows:
        assert r["status"] == "completed"
        for what in ("latency_s", "energy_j", "compute_s", "comm_s", "server_s", "compute_energy_j", "comm_energy_j"):
            assert r[f"measured_{what}"] == pytest.approx(r[f"predicted_{what}"], rel=1e-9, abs=1e-12), what
    gap = json.loads((tmp_path / "run" / "summary.json").read_text())["prediction"]
    assert gap["vehicles"] == 4 and abs(gap["latency_s_mean_rel_gap"]) < 1e-9
    assert got.rounds[0]["predicted_latency_s"] == max(r["predicted_latency_s"] for r in rows if r["round"] == 0)


def test_an_unfinished_vehicle_is_marked_with_what_stopped_it(tmp_path):
    vehicles = [{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": 100.0, "arrive_s": 0.5}]
    narrow = {"uplink_bandwidth_hz": 2e5, "downlink_bandwidth_hz": 2e5, "vehicle_tx_power_w": 0.1}
    run(tmp_path, tree(vehicles=vehicles, channel=narrow, protocol={"scheme": "fedavg", "rounds": 1}))
    rows = {r["vehicle"]: r for r in pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()}
    assert rows["a"]["status"] == "completed" and rows["b"]["status"] == "aborted:vehicle-left"


def test_vehicle_devices_are_drawn_per_vehicle_id_whatever_the_order():
    cfg = CpuDeviceConfig(ranges={"cpu_hz": [1.0e9, 2.0e9], "kappa": [1e-28, 3e-28]}, min_cpu_hz=0.8e9)
    one, two = VehicleDevices(cfg, RngStreams(4)), VehicleDevices(cfg, RngStreams(4))
    first = [one.spec(v) for v in ("x", "y", "z")]
    assert [two.spec(v) for v in ("z", "y", "x")][::-1] == first
    assert all(1e9 <= s.cpu_hz <= 2e9 and 1e-28 <= s.kappa <= 3e-28 and s.cpu_hz_min == 0.8e9 for s in first)
    assert len({s.cpu_hz for s in first}) == 3
    assert VehicleDevices(cfg, RngStreams(5)).spec("x") != first[0]
    fixed = VehicleDevices(CpuDeviceConfig(cpu_hz=1.2e9))
    assert fixed.spec("q") == DeviceSpec("cpu", 1.2e9, 1.2e9) and fixed.model("q") == device_model(fixed.spec("q"))


def test_compute_spans_use_the_vehicles_device_at_the_clock_the_optimizer_set(tmp_path):
    devices = {"vehicle": {"ranges": {"cpu_hz": [1.0e9, 2.0e9]}, "min_cpu_hz": 0.5e9}}
    fast = run(tmp_path, tree(vehicles=STILL, devices=devices, protocol={"scheme": "fedavg", "rounds": 1}), "own")
    slow = run(tmp_path, tree(vehicles=STILL, devices=devices,
                              protocol={"scheme": "fedavg", "rounds": 1, "optimizer": "test_slowest_clock"}), "slow")
    specs = {v: fast.proto.sim.devices.spec(v) for v in ("a", "b")}
    for v, spec in specs.items():
        own, low = fast.kind("compute.train", v)[0], slow.kind("compute.train", v)[0]
        flops = fast.proto.train_flops(fast.proto.sim.world.vehicles[v].client)
        assert own["t_end_s"] - own["t_start_s"] == pytest.approx(device_model(spec).time_s(flops), rel=1e-12)
        assert low["t_end_s"] - low["t_start_s"] == pytest.approx(device_model(spec, 0.5e9).time_s(flops), rel=1e-12)
        assert low["energy_j"] < own["energy_j"]                 # E = kappa cycles f^2
    rows = pq.read_table(tmp_path / "slow" / "decisions.parquet").to_pylist()
    assert {r["cpu_hz"] for r in rows} == {0.5e9}
    assert all(r["measured_compute_s"] == pytest.approx(r["predicted_compute_s"], rel=1e-12) for r in rows)


@pytest.mark.parametrize("scheme", ["fedavg", "sfl_v1"])
def test_rounds_on_a_period_start_interval_apart_and_train_the_same(tmp_path, scheme):
    base = {"scheme": scheme, "cut": 2, "rounds": 3, "start_s": 2.0}
    plain = run(tmp_path, tree(vehicles=STILL, protocol=base), "plain")
    timed = run(tmp_path, tree(vehicles=STILL, protocol={**base, "round_interval_s": 7.5}), "timed")
    assert [r["t_start_s"] for r in timed.rounds] == [2.0, 9.5, 17.0]
    assert plain.rounds[1]["t_start_s"] < 9.5                      # back to back without it
    for a, b in zip(plain.rounds, timed.rounds):                   # the same work, later
        assert (a["accuracy"], a["loss"]) == (b["accuracy"], b["loss"])
        assert (a["latency_s"], a["energy_j"]) == pytest.approx((b["latency_s"], b["energy_j"]), rel=1e-9)
