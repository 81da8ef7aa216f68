"""Optimizers outside the simulator: random instances, snapshot JSON, `cosim optimize`, a run's snapshot
dump re-solved to the decisions the run made, and the baseline's constraints on random instances."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from cosim import registry
from cosim.cli import main
from cosim.optimizers.api import snapshot_from_json, snapshot_to_json
from cosim.optimizers.baseline import baseline
from cosim.optimizers.constraints import violations
from cosim.optimizers.instances import random_snapshot
from cosim.optimizers.io import read_instance
from cosim.run import run_scenario
from cosim.scenario import validate_tree

TINY = {
    "name": "snap", "seed": 2, "duration_s": 60,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": 120.0, "speed_mps": 10.0}, {"id": "b", "x_m": -200.0, "speed_mps": 5.0},
        {"id": "c", "x_m": 300.0, "y_m": 40.0, "speed_mps": 12.0, "heading_deg": 180.0}]}},
    "rsus": {"positions_m": [[0.0, 0.0], [600.0, 0.0]], "coverage_radius_m": 350.0},
    "channel": {"uplink_bandwidth_hz": 2e6, "downlink_bandwidth_hz": 2e6},
    "devices": {"vehicle": {"ranges": {"cpu_hz": [1.0e9, 2.0e9]}}},
    "learning": {"num_clients": 3},
    "output": {"snapshots": True},
}


@pytest.mark.parametrize("scheme", ["fedavg", "sl", "sfl_v1", "sfl_v2"])
def test_snapshot_json_round_trips_exactly(scheme):
    snap = random_snapshot(12, 5, scheme)
    again = snapshot_from_json(snapshot_to_json(snap))
    assert again == snap
    assert baseline(again) == baseline(snap)


@pytest.mark.parametrize("scheme", ["fedavg", "sl", "sfl_v1", "sfl_v2"])
@pytest.mark.parametrize("seed", range(4))
def test_the_baseline_never_violates_a_constraint(scheme, seed):
    snap = random_snapshot(3 + 7 * seed, seed, scheme, rsus=1 + seed % 3)
    plan = baseline(snap)
    assert violations(snap, plan) == []
    assert list(plan.selected) == [c.id for c in snap.candidates]
    sequential = registry.scheme(scheme).cost.sequential
    lat = [plan.costs[v].latency_s for v in plan.selected]
    assert plan.predicted_latency_s == pytest.approx(sum(lat) if sequential else max(lat), rel=1e-12)
    if not sequential:                       # equal shares: each RSU's band exactly shared out
        for rsu in {c.rsu for c in snap.candidates}:
            shares = [plan.decisions[c.id].bandwidth_share for c in snap.candidates if c.rsu == rsu]
            assert sum(shares) == pytest.approx(1.0) and len(set(shares)) == 1


def test_violations_catches_a_plan_that_breaks_constraints():
    import dataclasses

    snap = random_snapshot(4, 0, "fedavg", rsus=1)
    plan = baseline(snap)
    v = plan.selected[0]
    worse = dataclasses.replace(plan, decisions={**plan.decisions, v: dataclasses.replace(
        plan.decisions[v], bandwidth_share=0.9, tx_power_w=5.0, cpu_hz=0.5e9)})
    lines = violations(snap, worse)
    assert any("tx_power_w" in x for x in lines) and any("cpu_hz" in x for x in lines)
    assert any("shares sum to" in x for x in lines)


def test_cosim_optimize_random_writes_an_instance_that_resolves_to_the_same_plan(tmp_path, capsys):
    inst = tmp_path / "i.json"
    assert main(["optimize", "baseline", "--random", "100", "--seed", "1", "--instance", str(inst)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["violations"] == [] and len(first["selected"]) == 100
    assert set(first["vehicles"]["v0000"]["decision"]) >= {"bandwidth_share", "tx_power_w", "cpu_hz", "cut"}
    assert main(["optimize", "baseline", "--instance", str(inst)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["vehicles"] == first["vehicles"] and again["predicted_latency_s"] == first["predicted_latency_s"]


@pytest.mark.parametrize("argv,needle", [
    (["optimize", "nope", "--random", "3"], "OPTIMIZER = 'nope'"),
    (["optimize", "baseline"], "--instance FILE.json or --random N"),
    (["optimize", "baseline", "--instance", "missing.json"], "--instance = 'missing.json'"),
    (["optimize", "baseline", "--random", "0"], "--random = 0"),
    (["optimize", "baseline", "--random", "3", "--scheme", "nope"], "--scheme = 'nope'"),
    (["optimize", "asfl", "--random", "3", "--scheme", "sl"], "optimizer 'asfl' plans for: asfl"),
])
def test_cosim_optimize_bad_arguments_are_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_a_malformed_instance_is_one_line(tmp_path):
    from cosim.errors import UserError

    bad = tmp_path / "bad.json"
    for text, needle in (("{", "not JSON"), ("[1]", "a JSON list"), ('{"round": 0}', "missing field")):
        bad.write_text(text)
        with pytest.raises(UserError, match=needle):
            read_instance(str(bad))


@pytest.mark.parametrize("scheme", ["fedavg", "sfl_v1"])
def test_a_runs_snapshot_resolves_to_the_decisions_it_made(tmp_path, scheme):
    tree = {**TINY, "protocol": {"scheme": scheme, "rounds": 3, "selection": "all", "round_deadline_s": 20,
                                 **({"cut": 2} if scheme != "fedavg" else {})}}
    out = tmp_path / "run"
    result = run_scenario(validate_tree(tree, "snap.yaml"), out)
    assert result.status == "completed"
    decisions = pq.read_table(out / "decisions.parquet").to_pylist()
    files = sorted((out / "snapshots").glob("round-*.json"))
    assert [f.name for f in files] == ["round-0000.json", "round-0001.json", "round-0002.json"]
    for r, path in enumerate(files):
        snap = read_instance(str(path))
        plan = registry.optimizer("baseline").solve(snap)
        rows = [d for d in decisions if d["round"] == r]
        assert [d["vehicle"] for d in rows] == list(plan.selected)
        for d in rows:
            dec, cost = plan.decisions[d["vehicle"]], plan.costs[d["vehicle"]]
            assert (d["bandwidth_share"], d["tx_power_w"], d["cut"]) == (dec.bandwidth_share, dec.tx_power_w, dec.cut)
            assert d["predicted_latency_s"] == plan.latency_s[d["vehicle"]]
            assert d["predicted_energy_j"] == cost.energy_j
        assert result.rounds[r]["predicted_latency_s"] == plan.predicted_latency_s
    devices = {c.id: c.device.cpu_hz for c in read_instance(str(files[0])).candidates}
    assert len(set(devices.values())) == len(devices) and all(1e9 <= f <= 2e9 for f in devices.values())
