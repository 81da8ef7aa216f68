"""ASFL on the clock: each vehicle trains at the cut, power, clock and share the optimizer gave it, the
prediction is the timeline when nothing moves, and its settings are checked where they meet the model."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from cosim.errors import SettingError
from split_testlib import run, tree

VEHICLES = [{"id": "near", "x_m": 60.0}, {"id": "mid", "x_m": 250.0}, {"id": "far", "x_m": 480.0}]
DEVICES = {"vehicle": {"ranges": {"cpu_hz": [1.0e9, 2.0e9]}, "min_cpu_hz": 1.0e9},
           "server": {"flops_per_s": 1e11, "gpu_slots": 3}}
NARROW = {"uplink_bandwidth_hz": 2e6, "downlink_bandwidth_hz": 2e6, "vehicle_tx_power_w": 0.2}


def _asfl(**protocol):
    return tree(vehicles=VEHICLES, devices=DEVICES, channel=NARROW,
                protocol={"scheme": "asfl", "cut": 2, "rounds": 2, "selection": "all", **protocol})


@pytest.mark.parametrize("budget", [None, 0.05])
def test_asfl_runs_every_vehicle_at_its_own_decisions(tmp_path, budget):
    got = run(tmp_path, _asfl(energy_budget_j=budget))
    assert [r["completed"] for r in got.rounds] == [3, 3]
    header = (tmp_path / "run" / "rounds.csv").read_text().splitlines()[0].split(",")
    assert header[-4:] == ["cuts", "bcd_iterations", "objective_s", "infeasible"]
    rows = pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()
    for r in rows:
        dev = got.proto.sim.devices.spec(r["vehicle"])
        assert r["cut"] in (1, 2, 3) and 0.01 <= r["tx_power_w"] <= 0.2 and dev.cpu_hz_min <= r["cpu_hz"] <= dev.cpu_hz
        assert r["measured_latency_s"] == pytest.approx(r["predicted_latency_s"], rel=1e-9)   # nothing moves
        assert r["measured_energy_j"] == pytest.approx(r["predicted_energy_j"], rel=1e-9)
        if budget is not None:
            assert r["measured_energy_j"] <= budget * (1 + 1e-9)
        act = [s for s in got.kind("tx.ul", r["vehicle"]) if s["payload"] == "activations" and s["round"] == r["round"]]
        assert act[0]["bytes"] == 32 * got.proto.context(r["cut"]).profile.activation_elements * 4
    for rnd in (0, 1):                              # the round's shares fill the band
        assert sum(r["bandwidth_share"] for r in rows if r["round"] == rnd) == pytest.approx(1.0)
    if budget is not None:
        assert any(r["cpu_hz"] < got.proto.sim.devices.spec(r["vehicle"]).cpu_hz for r in rows)


def test_fixed_cut_restricts_every_vehicle(tmp_path):
    run(tmp_path, _asfl(cuts=[3], cut=3))
    rows = pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()
    assert {r["cut"] for r in rows} == {3}


@pytest.mark.parametrize("settings,field", [({"cuts": [7]}, "protocol.cuts"),
                                            ({"devices": {"vehicle": {"kind": "gpu"}}}, "devices.vehicle.kind")])
def test_asfl_settings_that_do_not_fit_are_one_line(tmp_path, settings, field):
    t = _asfl(**{k: v for k, v in settings.items() if k != "devices"})
    if "devices" in settings:
        t["devices"] = settings["devices"]
    with pytest.raises(SettingError, match=field):
        run(tmp_path, t)
