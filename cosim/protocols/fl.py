"""FedAvg on the SimPy clock: select, download, train, upload, aggregate, evaluate.

A round ends when every selected vehicle has uploaded or the round deadline passes; late vehicles are
interrupted (their spans say 'dropped', cause 'deadline') and vehicles whose link broke are
'aborted' with the cause. Only completed uploads are averaged, weights renormalized over them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Optional

import simpy

from learning.fl import LocalResult, aggregate, evaluate, local_train

from ..compute import ServerModel
from ..optimizers.baseline import plan_baseline, select
from ..scenario import ChannelConfig, ProtocolConfig
from ..sim import Simulation
from ..task import LearningTask
from ..world import Vehicle

ROUND_FIELDS = ("round", "t_start_s", "t_end_s", "selected", "completed", "dropped", "aborted", "late", "accuracy",
                "loss", "latency_s", "energy_j", "predicted_latency_s", "predicted_energy_j", "bytes_up",
                "bytes_down")


@dataclass
class _VehicleResult:
    vehicle: str
    client: int
    result: Optional[LocalResult]
    trained: bool = False


class FedAvg:
    """The FedAvg round process. `rounds` collects one dict per round (ROUND_FIELDS)."""

    def __init__(self, sim: Simulation, task: LearningTask, proto: ProtocolConfig, channel: ChannelConfig,
                 server: ServerModel, on_round=None):
        self.sim, self.task, self.proto, self.ch, self.server = sim, task, proto, channel, server
        self.rounds: list[dict] = []
        self.on_round = on_round

    # the cost model shared by the optimizer's prediction and (through the same device model) the simulator
    def predict(self, veh: Vehicle, share: float, power_w: float) -> tuple[float, float]:
        world, ch, task = self.sim.world, self.ch, self.task
        bits = task.model_bytes * 8.0
        r_dl = world.rate_bps(veh, ch.rsu_tx_power_w, share * ch.downlink_bandwidth_hz)
        r_ul = world.rate_bps(veh, power_w, share * ch.uplink_bandwidth_hz)
        flops = self._train_flops(veh.client)
        t = bits / r_dl + self.sim.vehicle_cpu.time_s(flops) + bits / r_ul
        e = self.sim.vehicle_cpu.energy_j(flops) + power_w * bits / r_ul
        return t, e

    def _train_flops(self, client: int) -> float:
        return self.task.train_flops_per_sample * self.task.client_size(client) * self.task.config.local_epochs

    def process(self) -> Generator:
        env, world, trace = self.sim.env, self.sim.world, self.sim.trace
        sel_rng = self.sim.rng("selection")
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
            chosen = select(ids, [v.rsu for v in covered], world.dwell_s(covered), self.proto.vehicles_per_round,
                            self.proto.selection, self.proto.min_dwell_s, sel_rng)
            if not chosen:
                trace.instant(t0, r, "server", "round.skip", "no vehicle met the selection rule")
                yield env.timeout(world.step_s)
                continue
            plan = plan_baseline(chosen, {v.id: v.rsu for v in covered}, self.ch.vehicle_tx_power_w,
                                 lambda vid, s, p: self.predict(world.vehicles[vid], s, p))
            trace.span(t0, t0, r, "server", "optimize", "baseline", status="ok")
            for vid in plan.selected:
                trace.instant(t0, r, vid, "select", f"share={plan.bandwidth_share[vid]:.4f}")
            procs = [env.process(self._vehicle(r, world.vehicles[vid], plan.bandwidth_share[vid],
                                               plan.tx_power_w[vid])) for vid in plan.selected]
            deadline = env.timeout(self.proto.round_deadline_s)
            yield simpy.AllOf(env, procs) | deadline
            for p in procs:
                if p.is_alive:
                    p.interrupt("deadline")
            yield simpy.AllOf(env, procs)          # let interrupted processes record their spans
            results = [p.value for p in procs]
            yield from self._finish_round(r, t0, first_span, plan, results)
            r += 1

    def _vehicle(self, r: int, veh: Vehicle, share: float, power_w: float) -> Generator:
        sim, ch, task = self.sim, self.ch, self.task
        dl = yield from sim.transfer(r, veh, "dl", "model", task.model_bytes, ch.rsu_tx_power_w,
                                     share * ch.downlink_bandwidth_hz)
        if not dl.ok:
            return _VehicleResult(veh.id, veh.client, None)
        cfg = task.config
        # the real PyTorch step runs when its span starts; its duration comes from the device model
        result = local_train(task.model, task.global_state, task.client_data(veh.client), epochs=cfg.local_epochs,
                             batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                             seed=sim.streams.seed_for("local-train", r, veh.client))
        ok = yield from sim.compute(r, veh, "compute.train", self._train_flops(veh.client))
        if not ok:
            return _VehicleResult(veh.id, veh.client, None, trained=True)
        ul = yield from sim.transfer(r, veh, "ul", "model", task.model_bytes, power_w, share * ch.uplink_bandwidth_hz)
        return _VehicleResult(veh.id, veh.client, result if ul.ok else None, trained=True)

    def _finish_round(self, r: int, t0: float, first_span: int, plan, results: list[_VehicleResult]) -> Generator:
        env, trace, task = self.sim.env, self.sim.trace, self.task
        done = [x for x in results if x.result is not None]
        if done:
            t_agg = env.now
            flops = 2.0 * sum(v.numel() for v in task.global_state.values()) * len(done)
            yield env.timeout(self.server.time_s(flops))
            task.global_state = aggregate([(x.result.state, x.result.num_samples) for x in done])
            trace.span(t_agg, env.now, r, "server", "aggregate", "model", status="ok")
        acc, loss = evaluate(task.model, task.global_state, task.test)
        t1 = env.now
        trace.instant(t1, r, "server", "round.end", f"accuracy={acc:.4f}")
        spans = [s for s in trace.spans[first_span:] if s.actor != "server"]
        row = {
            "round": r, "t_start_s": float(t0), "t_end_s": float(t1), "selected": len(plan.selected), "completed": len(done),
            "dropped": len(plan.selected) - len(done),
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
        row["clients_aggregated"] = [x.client for x in done]
        self.rounds.append(row)
        if self.on_round is not None:
            self.on_round(row)
