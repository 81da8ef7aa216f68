"""The round skeleton every scheme shares: wait for coverage, select, plan, start the round's processes,
wait for them or the deadline, finish (aggregate, evaluate, one row of ROUND_FIELDS).

Extension points of `RoundProtocol`: `predict` (the cost function the plan and the simulator share),
`make_plan`, `start_round` (spawn the round's processes, in a fixed order) and `finish_round`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Optional

import simpy

from ..compute import ServerModel
from ..dwell import DwellBook
from ..optimizers.baseline import Plan, fit_to_dwell, plan_baseline, select
from ..scenario import ChannelConfig, ProtocolConfig
from ..sim import Simulation
from ..task import LearningTask
from ..world import Vehicle

ROUND_FIELDS = ("round", "t_start_s", "t_end_s", "selected", "completed", "dropped", "aborted", "late", "accuracy",
                "loss", "latency_s", "energy_j", "predicted_latency_s", "predicted_energy_j", "bytes_up",
                "bytes_down")


def airtime_s(bits: float, rate_bps: float) -> float:
    """bits / rate, or inf over a link that cannot send now (a prediction, not an error)."""
    return bits / rate_bps if rate_bps > 0 else float("inf")


def tx_energy_j(power_w: float, bits: float, rate_bps: float) -> float:
    """power x bits / rate, or inf over a link that cannot send now."""
    return power_w * bits / rate_bps if rate_bps > 0 else float("inf")


@dataclass
class VehicleResult:
    """What one vehicle's round produced: `result` is None unless its update reached the server."""

    vehicle: str
    client: int
    result: Optional[object]
    trained: bool = False


def is_server_actor(actor: str) -> bool:
    """The server's own tracks ('server' and its GPU slots 'server.gpuN'), not charged to vehicles."""
    return actor == "server" or actor.startswith("server.gpu")


class RoundProtocol:
    """The round process. `rounds` collects one dict per round (ROUND_FIELDS plus who trained and who
    was aggregated, in order)."""

    def __init__(self, sim: Simulation, task: LearningTask, proto: ProtocolConfig, channel: ChannelConfig,
                 server: ServerModel, dwell: DwellBook, on_round=None):
        self.sim, self.task, self.proto, self.ch, self.server = sim, task, proto, channel, server
        self.dwell = dwell
        self.rounds: list[dict] = []
        self.on_round = on_round

    # ---- extension points -------------------------------------------------------------------
    def predict(self, veh: Vehicle, share: float, power_w: float) -> tuple[float, float]:
        """(latency_s, energy_j) of one vehicle's round with bandwidth `share` and power `power_w`."""
        raise NotImplementedError

    def make_plan(self, chosen: list[str], covered: list[Vehicle]) -> Plan:
        """The baseline plan: equal bandwidth shares per RSU, maximum power."""
        world = self.sim.world
        return plan_baseline(chosen, {v.id: v.rsu for v in covered}, self.ch.vehicle_tx_power_w,
                             lambda vid, s, p: self.predict(world.vehicles[vid], s, p))

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        """Spawn the round's processes (their values go to `finish_round`)."""
        raise NotImplementedError

    def finish_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list) -> Generator:
        raise NotImplementedError

    # ---- the skeleton -----------------------------------------------------------------------
    def process(self) -> Generator:
        env, world, trace = self.sim.env, self.sim.world, self.sim.trace
        sel_rng = self.sim.rng("selection")
        if env.now < self.proto.start_s:
            yield env.timeout(self.proto.start_s - env.now)
        r = 0
        while r < self.proto.rounds:
            covered = world.covered()
            if not covered:
                yield env.timeout(world.step_s)
                continue
            world.round = r
            t0, first_span = env.now, len(trace.spans)
            trace.instant(t0, r, "server", "round.start", "")
            ids = [v.id for v in covered]
            dwell_s = self.dwell.predict(r, covered)
            chosen = select(ids, dwell_s, self.proto.vehicles_per_round, self.proto.selection,
                            self.proto.min_dwell_s, sel_rng)
            if self.proto.selection == "dwell_fit":
                by_id = dict(zip(ids, dwell_s.tolist()))
                chosen, late = fit_to_dwell(chosen, by_id, lambda c: self.make_plan(c, covered))
                for vid, t_s in sorted(late.items()):
                    trace.instant(t0, r, vid, "select.drop", f"predicted_latency_s={t_s:.6g} > dwell_s={by_id[vid]:.6g}")
            if not chosen:
                trace.instant(t0, r, "server", "round.skip", "no vehicle met the selection rule")
                yield env.timeout(world.step_s)
                continue
            plan = self.make_plan(chosen, covered)
            trace.span(t0, t0, r, "server", "optimize", "baseline", status="ok")
            for vid in plan.selected:
                trace.instant(t0, r, vid, "select", f"share={plan.bandwidth_share[vid]:.4f}")
            procs = self.start_round(r, plan)
            deadline = env.timeout(self.proto.round_deadline_s)
            yield simpy.AllOf(env, procs) | deadline
            for p in procs:
                if p.is_alive:
                    p.interrupt("deadline")
            yield simpy.AllOf(env, procs)          # let interrupted processes record their spans
            results = [p.value for p in procs]
            yield from self.finish_round(r, t0, first_span, plan, results)
            r += 1

    # ---- shared pieces of finish_round -------------------------------------------------------
    def aggregate_span(self, r: int, flops: float) -> Generator:
        """The server's averaging work on the clock: `flops` at its throughput, an 'aggregate' span."""
        env = self.sim.env
        t_agg = env.now
        yield env.timeout(self.server.time_s(flops))
        self.sim.trace.span(t_agg, env.now, r, "server", "aggregate", "model", status="ok")

    def record_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list[VehicleResult],
                     completed: int, acc: float, loss: float, **extra) -> dict:
        """Close the round at env.now: the round.end instant, the row from this round's vehicle spans."""
        env, trace = self.sim.env, self.sim.trace
        t1 = env.now
        trace.instant(t1, r, "server", "round.end", f"accuracy={acc:.4f}")
        spans = [s for s in trace.spans[first_span:] if not is_server_actor(s.actor)]
        row = {
            "round": r, "t_start_s": float(t0), "t_end_s": float(t1), "selected": len(plan.selected),
            "completed": completed, "dropped": len(plan.selected) - completed,
            "aborted": sum(1 for s in spans if s.status == "aborted"),
            "late": sum(1 for s in spans if s.status == "dropped"),
            "accuracy": acc, "loss": loss, "latency_s": float(t1 - t0),
            "energy_j": float(sum(s.energy_j for s in spans)),
            "predicted_latency_s": plan.predicted_latency_s, "predicted_energy_j": plan.predicted_energy_j,
            "bytes_up": sum(s.bytes for s in spans if s.kind == "tx.ul"),
            "bytes_down": sum(s.bytes for s in spans if s.kind == "tx.dl"),
        }
        # not in rounds.csv: who trained and who was averaged, in order (lets a bare loop replay the run)
        row["clients_trained"] = [x.client for x in results if x.trained]
        row["clients_aggregated"] = [x.client for x in results if x.result is not None]
        row["vehicles_trained"] = [x.vehicle for x in results if x.trained]
        row["vehicles_aggregated"] = [x.vehicle for x in results if x.result is not None]
        row.update(extra)
        self.rounds.append(row)
        if self.on_round is not None:
            self.on_round(row)
        return row
