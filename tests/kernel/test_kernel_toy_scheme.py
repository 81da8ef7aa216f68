"""A scheme added from this test module alone (settings, decision field, cost model, optimizer, protocol),
with no edit to the kernel: it uses the metadata phase, per-vehicle decisions, re-planning when a vehicle
leaves, a job on the edge server's queue and a column of its own in rounds.csv."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Literal

import pyarrow.parquet as pq
import pytest
import simpy

from cosim.cli import main
from cosim.configbase import PosFloat, PosInt
from cosim.optimizers.api import Cost, Decision, Plan, RoundSnapshot
from cosim.optimizers.baseline import assemble
from cosim.optimizers.costs import CostModel, airtime_s, uplink_rate_bps
from cosim.protocols.common import RoundProtocol, VehicleResult
from cosim.protocols.config import ProtocolConfig
from cosim.registry import register_optimizer, register_scheme
from cosim.run import run_scenario
from cosim.scenario import validate_tree
from tests.conftest import write_yaml


class ToyConfig(ProtocolConfig):
    """Each vehicle uploads `parts` payloads of `part_bytes`; the server then generates."""
    scheme: Literal["toy"] = "toy"
    part_bytes: PosInt = 2_000_000
    parts: PosInt = 2
    metadata_deadline_s: PosFloat = 1.0
    generate_flops: PosFloat = 5e11


@dataclass(frozen=True)
class ToyDecision(Decision):
    priority: int = 0                      # a field only this scheme has


class ToyCost(CostModel):
    def cost(self, snap: RoundSnapshot, cand, dec) -> Cost:
        s = snap.settings
        t = s["parts"] * airtime_s(s["part_bytes"] * 8.0, uplink_rate_bps(snap, cand, dec))
        return Cost(t, dec.tx_power_w * t, comm_s=t, comm_energy_j=dec.tx_power_w * t)


@register_optimizer("toy_proportional", round_fields=("objective",))
def toy_proportional(snap: RoundSnapshot) -> Plan:
    """Each RSU's band in proportion to the vehicles' data, maximum power, priority by data size."""
    total = {}
    for c in snap.candidates:
        total[c.rsu] = total.get(c.rsu, 0) + c.num_samples
    order = sorted(snap.candidates, key=lambda c: (-c.num_samples, c.id))
    decisions = {c.id: ToyDecision(bandwidth_share=c.num_samples / total[c.rsu], tx_power_w=snap.radio.vehicle_tx_power_w,
                                   priority=order.index(c)) for c in snap.candidates}
    costs = {c.id: ToyCost().cost(snap, c, decisions[c.id]) for c in snap.candidates}
    ids = [c.id for c in snap.candidates]
    return assemble(ids, decisions, costs, False, {"generate": 1}, {"objective": max(x.latency_s for x in costs.values())})


@register_scheme("toy", config=ToyConfig, cost=ToyCost())
class Toy(RoundProtocol):
    """A toy scheme: label metadata up, parts up, the server generates."""

    round_fields = ("uploads",)
    replan_on = ("vehicle-left",)

    def metadata(self, r, vehicles) -> Generator:
        classes = self.task.train.num_classes
        return (yield from self.upload_metadata(r, vehicles, "labels", lambda v: 4 * classes,
                                                self.proto.metadata_deadline_s))

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        return [self.sim.spawn(self._vehicle(r, self.sim.world.vehicles[v])) for v in plan.selected]

    def _vehicle(self, r, veh) -> Generator:
        for _ in range(self.proto.parts):
            dec = self.decision(veh.id)                 # read at each step: a re-plan takes effect here
            out = yield from self.sim.transfer(r, veh, "ul", "part", self.proto.part_bytes, dec.tx_power_w,
                                               dec.bandwidth_share * self.ch.uplink_bandwidth_hz)
            if not out.ok:
                return VehicleResult(veh.id, veh.client, None)
        return VehicleResult(veh.id, veh.client, True, trained=True)

    def finish_round(self, r, t0, first_span, plan, results) -> Generator:
        ok, _ = yield from self.server_job(r, "server.generate", self.proto.generate_flops)
        done = sum(1 for x in results if x.result is not None)
        self.record_round(r, t0, first_span, plan, results, done, done / len(results), 0.0, uploads=done)


TREE = {
    "name": "toy", "seed": 1, "duration_s": 60,
    "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": 100.0}, {"id": "b", "x_m": 150.0, "arrive_s": 1.5}]}},
    "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0},
    "channel": {"uplink_bandwidth_hz": 1e6, "downlink_bandwidth_hz": 1e6},
    "learning": {"num_clients": 2, "partition": {"kind": "dirichlet", "alpha": 1.0}},
    "protocol": {"scheme": "toy", "rounds": 1, "selection": "all", "optimizer": "toy_proportional"},
}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "run"
    return run_scenario(validate_tree(TREE, "toy.yaml"), out), out


def test_the_toy_scheme_runs_with_its_own_settings_decisions_and_columns(toy_run):
    result, out = toy_run
    assert result.status == "completed"
    header = (out / "rounds.csv").read_text().splitlines()[0].split(",")
    assert header[-2:] == ["uploads", "objective"]
    assert result.rounds[0]["uploads"] == 1                       # b left during its first part
    rows = pq.read_table(out / "decisions.parquet").to_pylist()
    assert [r["vehicle"] for r in rows] == ["a", "b"] and "priority" in rows[0]
    a, b = rows
    assert b["status"] == "aborted:vehicle-left" and a["status"] == "completed"
    assert a["bandwidth_share"] == 1.0                            # after the re-plan, a has the band alone


def test_metadata_goes_first_then_the_plan_then_a_replan_when_a_vehicle_leaves(toy_run):
    result, out = toy_run
    spans = pq.read_table(out / "spans.parquet").to_pylist()
    labels = [s for s in spans if s["payload"] == "labels"]
    assert [s["actor"] for s in labels] == ["a", "b"] and all(s["status"] == "ok" and s["bytes"] == 40 for s in labels)
    optimize = [s for s in spans if s["kind"] == "optimize"]
    assert [s["payload"] for s in optimize] == ["toy_proportional", "toy_proportional replan (vehicle-left)"]
    assert optimize[0]["t_start_s"] == max(s["t_end_s"] for s in labels) > 0.0
    assert optimize[1]["t_start_s"] == 2.0                        # the tick at which b is gone
    first, second = [s for s in spans if s["actor"] == "a" and s["payload"] == "part"]
    assert second["t_start_s"] > 2.0 and second["t_end_s"] - second["t_start_s"] < first["t_end_s"] - first["t_start_s"]
    gen = [s for s in spans if s["kind"] == "server.generate"]
    assert len(gen) == 1 and gen[0]["actor"] == "server.gpu0"
    assert gen[0]["t_end_s"] - gen[0]["t_start_s"] == pytest.approx(0.5, rel=1e-12)


def test_the_replanned_prediction_counts_from_the_round_start(toy_run):
    result, out = toy_run
    a = pq.read_table(out / "decisions.parquet").to_pylist()[0]
    # two parts: the first mostly at half the band, the second at the whole band after t = 2 s
    assert 2.0 < a["predicted_latency_s"] and a["measured_latency_s"] == pytest.approx(a["predicted_latency_s"], rel=0.3)


def test_the_toy_settings_are_validated_by_its_own_model(tmp_path, capsys):
    bad = {**TREE, "protocol": {**TREE["protocol"], "parts": 0, "colour": "red"}}
    assert main(["validate", str(write_yaml(tmp_path / "t.yaml", bad))]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any("protocol.parts = 0" in line for line in lines)
    assert any("protocol.colour" in line and "no such key" in line for line in lines)


def test_cosim_list_shows_the_toy_scheme_and_optimizer(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "toy  " in out and "A toy scheme" in out and "toy_proportional" in out


class ToyHandoverConfig(ToyConfig):
    scheme: Literal["toy_handover"] = "toy_handover"


@register_scheme("toy_handover", config=ToyHandoverConfig, cost=ToyCost())
class ToyHandover(Toy):
    """The toy scheme, re-planning at handovers instead."""

    replan_on = ("handover",)


def test_a_handover_re_plans_the_rest_of_the_round(tmp_path):
    tree = {**TREE, "mobility": {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": [
        {"id": "a", "x_m": 150.0, "speed_mps": 30.0}, {"id": "b", "x_m": 50.0}]}},
        "rsus": {"positions_m": [[0.0, 0.0], [400.0, 0.0]], "coverage_radius_m": 250.0, "on_handover": "continue"},
        "protocol": {**TREE["protocol"], "scheme": "toy_handover"}}
    result = run_scenario(validate_tree(tree, "toy.yaml"), tmp_path / "run")
    assert result.status == "completed" and result.rounds[0]["uploads"] == 2
    spans = pq.read_table(tmp_path / "run" / "spans.parquet").to_pylist()
    optimize = [(s["payload"], s["t_start_s"]) for s in spans if s["kind"] == "optimize"]
    assert optimize[1] == ("toy_proportional replan (handover)", 2.0)   # a crosses to rsu1 at the t = 2 s tick
    rows = pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()
    assert [r["bandwidth_share"] for r in rows] == [1.0, 1.0]        # then each is alone at its RSU
