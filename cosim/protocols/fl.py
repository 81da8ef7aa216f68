"""FedAvg on the SimPy clock: select, download, train, upload, aggregate, evaluate.

A round ends when every selected vehicle has uploaded or the round deadline passes; late vehicles are
interrupted (their spans say 'dropped', cause 'deadline') and vehicles whose link broke are
'aborted' with the cause. Only completed uploads are averaged, weights renormalized over them.
"""
from __future__ import annotations

from typing import Generator

import simpy

from learning.fl import aggregate, evaluate, local_train

from ..optimizers.baseline import Plan
from ..world import Vehicle
from .common import ROUND_FIELDS, RoundProtocol, VehicleResult, airtime_s, tx_energy_j

_VehicleResult = VehicleResult          # the former name

__all__ = ["FedAvg", "ROUND_FIELDS"]


class FedAvg(RoundProtocol):
    """The FedAvg round process. `rounds` collects one dict per round (ROUND_FIELDS)."""

    # the cost model shared by the optimizer's prediction and (through the same device model) the simulator
    def predict(self, veh: Vehicle, share: float, power_w: float) -> tuple[float, float]:
        world, ch, task = self.sim.world, self.ch, self.task
        bits = task.model_bytes * 8.0
        r_dl = world.rate_bps(veh, ch.rsu_tx_power_w, share * ch.downlink_bandwidth_hz, "dl")
        r_ul = world.rate_bps(veh, power_w, share * ch.uplink_bandwidth_hz, "ul")
        flops = self._train_flops(veh.client)
        t = airtime_s(bits, r_dl) + self.sim.vehicle_cpu.time_s(flops) + airtime_s(bits, r_ul)
        e = self.sim.vehicle_cpu.energy_j(flops) + tx_energy_j(power_w, bits, r_ul)
        return t, e

    def _train_flops(self, client: int) -> float:
        return self.task.train_flops_per_sample * self.task.client_size(client) * self.task.config.local_epochs

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        world = self.sim.world
        return [self.sim.spawn(self._vehicle(r, world.vehicles[vid], plan.bandwidth_share[vid], plan.tx_power_w[vid]))
                for vid in plan.selected]

    def _vehicle(self, r: int, veh: Vehicle, share: float, power_w: float) -> Generator:
        sim, ch, task = self.sim, self.ch, self.task
        dl = yield from sim.transfer(r, veh, "dl", "model", task.model_bytes, ch.rsu_tx_power_w,
                                     share * ch.downlink_bandwidth_hz)
        if not dl.ok:
            return VehicleResult(veh.id, veh.client, None)
        cfg = task.config
        # the real PyTorch step runs when its span starts; its duration comes from the device model
        result = local_train(task.model, task.global_state, task.client_data(veh.client), epochs=cfg.local_epochs,
                             batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                             seed=sim.streams.seed_for("local-train", r, veh.client))
        ok = yield from sim.compute(r, veh, "compute.train", self._train_flops(veh.client))
        if not ok:
            return VehicleResult(veh.id, veh.client, None, trained=True)
        ul = yield from sim.transfer(r, veh, "ul", "model", task.model_bytes, power_w, share * ch.uplink_bandwidth_hz)
        return VehicleResult(veh.id, veh.client, result if ul.ok else None, trained=True)

    def finish_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list[VehicleResult]) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        if done:
            yield from self.aggregate_span(r, 2.0 * sum(v.numel() for v in task.global_state.values()) * len(done))
            task.global_state = aggregate([(x.result.state, x.result.num_samples) for x in done])
        acc, loss = evaluate(task.model, task.global_state, task.test)
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss)
