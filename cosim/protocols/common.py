"""The round skeleton every scheme shares: wait for coverage, predict dwell times, an optional metadata
phase, snapshot, select, an optional prepare phase, plan (the optimizer), start the round's processes, wait
for them or the deadline, finish (aggregate, evaluate, one row of rounds.csv and one row per vehicle of
decisions.parquet).

Extension points of `RoundProtocol` (a scheme overrides what it needs):
- `start_round(r, plan)`: spawn the round's processes, in a fixed order (their values go to finish_round);
- `finish_round(r, t0, first_span, plan, results)`: aggregate, evaluate, `record_round`;
- `metadata(r, vehicles)`: a phase before selection, e.g. `upload_metadata` (small real transfers);
- `prepare(r, chosen)`: a phase after selection and before the plan (the snapshot is taken again after it);
- `before_download(r, vehicle)`: what a vehicle does before its round's first download;
- `snapshot_extra(r, vehicles)`: scheme data the optimizer sees in `RoundSnapshot.extra`;
- class attributes `round_fields` (extra rounds.csv columns, passed to `record_round`) and `replan_on`
  ("vehicle-left", "handover": re-plan the rest of the round at those events; `replan` can also be called
  by the scheme itself).
Vehicle processes read their current decisions with `decision(vehicle_id)` and their link with
`link_of(vehicle_id, direction)`; `server_job` runs work on the edge server's GPU queue.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Generator, Optional

import simpy

from mobility.base import MobilityError

from .. import registry
from ..decisions import round_rows
from ..dwell import DwellBook
from ..optimizers.api import Decision, Plan, RoundSnapshot
from ..scenario import Scenario
from ..server import EdgeServer
from ..sim import Simulation
from ..snapshot import SnapshotBuilder
from ..task import LearningTask
from ..world import Vehicle
from .config import warn_once

ROUND_FIELDS = ("round", "t_start_s", "t_end_s", "selected", "completed", "dropped", "aborted", "late", "accuracy",
                "loss", "latency_s", "energy_j", "predicted_latency_s", "predicted_energy_j", "bytes_up",
                "bytes_down")


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


# the wall-clock phases of a round's set-up, between the marks `process` takes (None: a phase the clock
# runs through, metadata uploads and a scheme's prepare step, not timed)
_PHASES = ("predict", None, "snapshot", "select", None, "plan", "start")


class RoundProtocol:
    """The round process. `rounds` collects one dict per round (ROUND_FIELDS, the scheme's and optimizer's
    columns, and who trained and who was aggregated, in order); `decision_rows` one dict per vehicle and
    round; `snapshots` the optimizer's inputs (when output.snapshots is on); `solve_ms` its wall times;
    `phase_ms` the wall time of each round's set-up phases (the co-simulator's own per-round costs)."""

    round_fields: tuple[str, ...] = ()
    replan_on: tuple[str, ...] = ()

    def __init__(self, sim: Simulation, task: LearningTask, scenario: Scenario, dwell: DwellBook, on_round=None):
        self.sim, self.task, self.scenario = sim, task, scenario
        self.proto, self.ch, self.server = scenario.protocol, scenario.channel, sim.server
        self.dwell = dwell
        self.on_round = on_round
        self.edge = EdgeServer(sim.env, sim.trace, sim.server)
        self.cost_model = registry.scheme(self.proto.scheme).cost
        self.optimizer = registry.optimizer(self.proto.optimizer)
        self.select_rule = registry.selection(self.proto.selection)
        self.snapshots_on = scenario.output.snapshots
        self.builder = SnapshotBuilder(sim, task, scenario)
        self.rounds: list[dict] = []
        self.decision_rows: list[dict] = []
        self.snapshots: list[tuple[str, RoundSnapshot]] = []
        self.solve_ms: list[dict] = []
        self.phase_ms: list[dict] = []
        self.plan: Optional[Plan] = None
        self._t0 = self._t_plan = 0.0

    @property
    def csv_fields(self) -> tuple[str, ...]:
        """The columns of rounds.csv."""
        extra = [f for f in (*self.round_fields, *self.optimizer.round_fields) if f not in ROUND_FIELDS]
        return ROUND_FIELDS + tuple(dict.fromkeys(extra))

    # ---- extension points -------------------------------------------------------------------
    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        raise NotImplementedError

    def finish_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list) -> Generator:
        raise NotImplementedError

    def metadata(self, r: int, vehicles: list[Vehicle]) -> Generator:
        """The phase before selection; returns the vehicles that took part (default: all, no time passes)."""
        return vehicles
        yield  # noqa: unreachable - makes this a generator

    def prepare(self, r: int, vehicles: list[Vehicle]) -> Generator:
        """The phase after selection and before the plan (e.g. the chosen vehicles' own forward pass and an
        upload the plan depends on); returns the vehicles that completed it (default: all, no time passes).
        Decision rows and predictions count from the plan, after it."""
        return vehicles
        yield  # noqa: unreachable - makes this a generator

    def before_download(self, r: int, veh: Vehicle) -> Generator:
        """What a vehicle does before its round's first download (a LoRA scheme: fetch the frozen backbone
        once); False stops its round (default: True, no time passes)."""
        return True
        yield  # noqa: unreachable - makes this a generator

    def snapshot_extra(self, r: int, vehicles: list[Vehicle]) -> dict:
        """Scheme data for the optimizer (RoundSnapshot.extra)."""
        return {}

    def outputs(self) -> dict[str, str]:
        """Files of the scheme's own for the run directory, by name (text); written with the others."""
        return {}

    # ---- planning ---------------------------------------------------------------------------
    def solve(self, snap: RoundSnapshot, label: str = "") -> Plan:
        """Run the optimizer on `snap`, timing it (wall clock, to timings.json only)."""
        t = time.perf_counter()
        plan = self.optimizer.solve(snap)
        self.solve_ms.append({"round": snap.round, "label": label, "vehicles": len(snap.candidates),
                              "ms": (time.perf_counter() - t) * 1e3})
        return plan

    def decision(self, vid: str) -> Decision:
        """The decisions in force now for a vehicle of the current round."""
        return self.plan.decisions[vid]

    def link_of(self, vid: str, direction: str) -> tuple[Optional[float], float, Optional[int]]:
        """(transmit power, bandwidth, subchannel) of the vehicle's decided link in `direction` ('ul'/'dl'):
        its subchannel (band / M) when it was given one, else its share of the band. The power is None on
        'dl' (the RSU's follows the bandwidth)."""
        dec, ch = self.plan.decisions[vid], self.ch
        up = direction == "ul"
        band = ch.uplink_bandwidth_hz if up else ch.downlink_bandwidth_hz
        power = dec.tx_power_w if up else None
        if dec.subchannel is not None:
            return power, band / ch.subchannels.count, dec.subchannel
        return power, dec.bandwidth_share * band, None

    def _optimize_span(self, r: int, label: str) -> None:
        name = self.optimizer.name
        t = self.sim.env.now
        self.sim.trace.span(t, t, r, "server", "optimize", f"{name} {label}" if label else name, status="ok")

    def replan(self, r: int, cause: str, vehicles: list[Vehicle]) -> Plan:
        """Plan again for `vehicles` (a subset of the round's) now; their decisions, costs and predicted ends
        (from the round's plan) replace the old ones. Returns the optimizer's plan for them."""
        world, old = self.sim.world, self.plan
        elapsed = self.sim.env.now - self._t_plan
        dwell = [max(self._dwell_at_start.get(v.id, 0.0) - elapsed, 0.0) for v in vehicles]
        snap = self.builder.build(r, vehicles, dwell, self.snapshot_extra(r, vehicles))
        n = sum(1 for label, _ in self.snapshots if label.startswith(f"round-{r:04d}"))
        label = f"replan ({cause})"
        new = self.solve(snap, label)
        if self.snapshots_on:
            self.snapshots.append((f"round-{r:04d}-replan-{n}", snap))
        self.plan = dataclasses.replace(
            old, decisions={**old.decisions, **new.decisions}, costs={**old.costs, **new.costs},
            latency_s={**old.latency_s, **{v: elapsed + t for v, t in new.latency_s.items()}})
        self._optimize_span(r, label)
        for vid in new.selected:
            world.trace.instant(self.sim.env.now, r, vid, "replan", f"share={new.decisions[vid].bandwidth_share:.4f}")
        return new

    def _replanner(self, r: int, over: simpy.Event) -> Generator:
        """Re-plan for the vehicles still in the round when one of them leaves or hands over (replan_on)."""
        env, world = self.sim.env, self.sim.world
        moved: list[simpy.Event] = [env.event()]
        selected = set(self.plan.selected)

        def on_rsu_change(vid, old, new):
            if vid in selected and old >= 0 and new >= 0 and not moved[0].triggered:
                moved[0].succeed(vid)

        if "handover" in self.replan_on:
            world.rsu_listeners.append(on_rsu_change)
        try:
            while not over.triggered:
                live = [world.vehicles[v] for v in self.plan.selected if v in world.vehicles]
                wait = [over, moved[0]] + ([v.departed for v in live] if "vehicle-left" in self.replan_on else [])
                yield simpy.AnyOf(env, wait)
                if over.triggered:
                    return
                cause = "handover" if moved[0].triggered else "vehicle-left"
                if moved[0].triggered:
                    moved[0] = env.event()
                rest = [v for v in live if v.present and v.rsu >= 0]
                if rest:
                    self.replan(r, cause, rest)
        except simpy.Interrupt:             # the run ended mid-round
            return
        finally:
            if on_rsu_change in world.rsu_listeners:
                world.rsu_listeners.remove(on_rsu_change)

    # ---- the skeleton -----------------------------------------------------------------------
    at_boundary = None      # called as at_boundary(next_round, t0) after each round (cosim.checkpoint)

    def process(self, resume: Optional[tuple[int, float]] = None) -> Generator:
        """The rounds; `resume=(r, t0)`: a resumed run's, from round r (the last one started at t0)."""
        env, world, trace = self.sim.env, self.sim.world, self.sim.trace
        sel_rng = self.sim.rng("selection")
        if resume is None:
            if env.now < self.proto.start_s:
                yield env.timeout(self.proto.start_s - env.now)
            r = 0
        else:
            r, t0 = resume
            yield from self._until_next_round(t0)
        while r < self.proto.rounds:
            covered = world.covered()
            if not covered:
                yield env.timeout(world.step_s)
                continue
            world.round = r
            t0, first_span = env.now, len(trace.spans)
            self._t0 = t0
            trace.instant(t0, r, "server", "round.start", "")
            wall = [time.perf_counter()]
            try:                        # the route predictor asks SUMO, which may have died at this tick
                dwell_s = dict(zip((v.id for v in covered), self.dwell.predict(r, covered).tolist()))
            except MobilityError as exc:
                self.sim.finish("mobility-failed", str(exc))
                return
            wall.append(time.perf_counter())
            vehicles = yield from self.metadata(r, covered)
            wall.append(time.perf_counter())
            elapsed = env.now - t0
            if elapsed > 0:
                dwell_s = {v: max(d - elapsed, 0.0) for v, d in dwell_s.items()}
                vehicles = [v for v in vehicles if v.present and v.rsu >= 0]
            self._dwell_at_start = dwell_s
            self._t_plan = env.now       # predictions count from the plan (after the metadata phase)
            snap = self.builder.build(r, vehicles, [dwell_s[v.id] for v in vehicles], self.snapshot_extra(r, vehicles))
            wall.append(time.perf_counter())
            if len(vehicles) < self.proto.vehicles_per_round and "vehicles_per_round" in self.proto.model_fields_set:
                warn_once(self, "vehicles_per_round", f"protocol.vehicles_per_round = {self.proto.vehicles_per_round}: "
                          f"round {r} had only {len(vehicles)} covered vehicles to choose from, and selects at most "
                          f"those (said once per run)")
            choice = self.select_rule.select(snap, sel_rng, lambda ids: self.solve(snap.restrict(ids), "selection"))
            for vid, why in choice.dropped.items():
                trace.instant(env.now, r, vid, "select.drop", why)
            if not choice.chosen:
                trace.instant(env.now, r, "server", "round.skip", "no vehicle met the selection rule")
                yield env.timeout(world.step_s)
                continue
            snap = snap.restrict(choice.chosen)
            wall.append(time.perf_counter())
            if type(self).prepare is not RoundProtocol.prepare:
                snap = yield from self._prepared(r, snap, dwell_s)
            wall.append(time.perf_counter())
            self.plan = plan = self.solve(snap)
            wall.append(time.perf_counter())
            if self.snapshots_on:
                self.snapshots.append((f"round-{r:04d}", snap))
            for vid in (v for v in choice.chosen if v not in plan.decisions):
                trace.instant(env.now, r, vid, "select.drop", "the optimizer has no feasible plan for it")
            if not plan.selected:
                trace.instant(env.now, r, "server", "round.skip", "the optimizer planned for no vehicle")
                yield env.timeout(world.step_s)
                continue
            self._optimize_span(r, "")
            for vid in plan.selected:
                trace.instant(env.now, r, vid, "select", f"share={plan.decisions[vid].bandwidth_share:.4f}")
            self.dwell.mark_selected(r, plan.selected)
            procs = self.start_round(r, plan)
            wall.append(time.perf_counter())
            self.phase_ms.append({"round": r, "covered": len(covered), "selected": len(plan.selected),
                                  **{f"{name}_ms": (b - a) * 1e3 for name, a, b in zip(_PHASES, wall, wall[1:])
                                     if name is not None}})
            over = env.event()
            if self.replan_on:
                self.sim.spawn(self._replanner(r, over))
            deadline = env.timeout(max(self.proto.round_deadline_s - (env.now - t0), 0.0))
            yield simpy.AllOf(env, procs) | deadline
            for p in procs:
                if p.is_alive:
                    p.interrupt("deadline")
            yield simpy.AllOf(env, procs)          # let interrupted processes record their spans
            if self.replan_on:
                over.succeed()
            results = [p.value for p in procs]
            yield from self.finish_round(r, t0, first_span, self.plan, results)
            if self.sim.done.triggered:        # the round diverged (record_round ended the run)
                return
            r += 1
            if self.at_boundary is not None and r < self.proto.rounds:
                self.at_boundary(r, t0)
            yield from self._until_next_round(t0)

    def _until_next_round(self, t0: float) -> Generator:
        """Rounds on a period (round_interval_s): wait until the next one is due, the last having started at t0."""
        env = self.sim.env
        if self.proto.round_interval_s is not None and t0 + self.proto.round_interval_s > env.now:
            yield env.timeout(t0 + self.proto.round_interval_s - env.now)

    def _prepared(self, r: int, snap: RoundSnapshot, dwell_s: dict) -> Generator:
        """Run `prepare` on the chosen vehicles; the snapshot again, of those that completed it and are still
        covered, with their dwell counted from now (and the scheme's extra as it is now)."""
        env, world = self.sim.env, self.sim.world
        t = env.now
        chosen = [world.vehicles[c.id] for c in snap.candidates]
        done = yield from self.prepare(r, chosen)
        elapsed = env.now - t
        self._dwell_at_start = {v: max(d - elapsed, 0.0) for v, d in dwell_s.items()}
        self._t_plan = env.now
        live = [v for v in done if v.present and v.rsu >= 0]
        return self.builder.build(r, live, [self._dwell_at_start[v.id] for v in live], self.snapshot_extra(r, live))

    # ---- shared pieces of finish_round -------------------------------------------------------
    def aggregate_span(self, r: int, flops: float) -> Generator:
        """The server's averaging work on the clock: `flops` at its throughput, an 'aggregate' span."""
        env = self.sim.env
        t_agg = env.now
        yield env.timeout(self.server.time_s(flops))
        self.sim.trace.span(t_agg, env.now, r, "server", "aggregate", "model", status="ok")

    def server_job(self, r: int, kind: str, flops: float, work=None, owner: str = "server",
                   seconds: Optional[float] = None) -> Generator:
        """Work on the edge server's GPU queue (a `kind` span on server.gpuN, payload `owner`): waits for a
        slot, runs `work()` when granted, holds the slot flops / flops_per_s (or `seconds`); returns (ok,
        work's result)."""
        return (yield from self.edge.compute(r, owner, flops, work, kind, seconds))

    def upload_metadata(self, r: int, vehicles: list[Vehicle], payload: str, nbytes_of, deadline_s: float
                        ) -> Generator:
        """Each vehicle uploads `nbytes_of(vehicle)` bytes of `payload` at once, its RSU's band shared equally
        among them, at maximum power; returns, in order, those whose upload arrived within `deadline_s`."""
        sim, ch = self.sim, self.ch

        def one(veh: Vehicle, sharing: int) -> Generator:
            out = yield from sim.transfer(r, veh, "ul", payload, int(nbytes_of(veh)), ch.vehicle_tx_power_w,
                                          ch.uplink_bandwidth_hz / sharing)
            return out.ok

        return (yield from self.each_vehicle(vehicles, one, deadline_s))

    def each_vehicle(self, vehicles: list[Vehicle], work, deadline_s: float) -> Generator:
        """Run `work(vehicle, sharing)` (a generator; `sharing`: how many of `vehicles` share its RSU) for
        every vehicle at once until all end or `deadline_s` passes, the rest interrupted ('deadline');
        returns, in order, the vehicles whose work returned True."""
        sim, env = self.sim, self.sim.env
        per_rsu: dict[int, int] = {}
        for v in vehicles:
            per_rsu[v.rsu] = per_rsu.get(v.rsu, 0) + 1
        procs = [sim.spawn(work(v, per_rsu[v.rsu])) for v in vehicles]
        yield simpy.AllOf(env, procs) | env.timeout(deadline_s)
        for p in procs:
            if p.is_alive:
                p.interrupt("deadline")
        yield simpy.AllOf(env, procs)
        return [v for v, p in zip(vehicles, procs) if p.value]

    def record_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list[VehicleResult],
                     completed: int, acc: float, loss: float, **extra) -> dict:
        """Close the round at env.now: the round.end instant, the row from this round's vehicle spans (with
        `extra` columns, e.g. the scheme's round_fields, and the plan's stats), the decision rows."""
        env, trace = self.sim.env, self.sim.trace
        t1 = env.now
        trace.instant(t1, r, "server", "round.end", f"accuracy={acc:.4f}")
        round_spans = trace.spans[first_span:]
        spans = [s for s in round_spans if not is_server_actor(s.actor)]
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
        row.update(plan.stats)
        # not in rounds.csv: who trained and who was averaged, in order (lets a bare loop replay the run)
        row["clients_trained"] = [x.client for x in results if x.trained]
        row["clients_aggregated"] = [x.client for x in results if x.result is not None]
        row["vehicles_trained"] = [x.vehicle for x in results if x.trained]
        row["vehicles_aggregated"] = [x.vehicle for x in results if x.result is not None]
        row.update(extra)
        self.rounds.append(row)
        if not math.isfinite(loss):     # training blew up: later rounds would only average NaN
            self.sim.finish("diverged", f"round {r}: the global model's loss is {loss}")
        self.decision_rows += round_rows(r, self._t_plan, plan, round_spans, set(row["vehicles_aggregated"]))
        if self.on_round is not None:
            self.on_round(row)
        return row
