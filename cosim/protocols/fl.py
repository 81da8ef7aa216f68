"""FedAvg on the SimPy clock: select, download, train, upload, aggregate, evaluate.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data", 2017.
A round ends when every selected vehicle has uploaded or the round deadline passes; late vehicles are
interrupted (their spans say 'dropped', cause 'deadline') and vehicles whose link broke are
'aborted' with the cause. Only completed uploads are averaged, weights renormalized over them.
"""
from __future__ import annotations

from typing import Generator, Literal

import simpy

from learning.fl import aggregate, evaluate, local_train

from ..optimizers.api import Plan
from ..optimizers.costs import FedAvgCost
from ..registry import register_scheme
from ..world import Vehicle
from .common import ROUND_FIELDS, RoundProtocol, VehicleResult
from .config import ProtocolConfig

__all__ = ["FedAvg", "FedAvgConfig", "ROUND_FIELDS"]


class FedAvgConfig(ProtocolConfig):
    """FedAvg: every selected vehicle trains the whole model for learning.local_epochs."""
    scheme: Literal["fedavg"] = "fedavg"


def _fedavg_baselines(sc) -> dict[str, list[str]]:
    """FedAvg against its other selection rules."""
    own = sc.protocol.selection
    return {f"{rule}_selection": [f"protocol.selection={rule}"] for rule in ("random", "all", "dwell", "dwell_fit")
            if rule != own}


@register_scheme("fedavg", config=FedAvgConfig, cost=FedAvgCost(), baselines=_fedavg_baselines)
class FedAvg(RoundProtocol):
    """FedAvg (McMahan et al. 2017): download, local SGD, upload, sample-weighted average."""

    train_pool = None       # a cosim.trainpool.TrainPool (cosim run --workers N), for schemes that train as FedAvg

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        world = self.sim.world
        if self.train_pool is not None and type(self).local_result is FedAvg.local_result:
            # every selected vehicle trains from this global model: all of them at once, in the workers
            self.train_pool.submit_round(r, self.task.global_state, [world.vehicles[v].client for v in plan.selected])
        return [self.sim.spawn(self._vehicle(r, world.vehicles[vid])) for vid in plan.selected]

    payload = "model"           # what goes down and up (a LoRA scheme's adapters: 'lora'): task.model_bytes

    def train_flops(self, client: int) -> float:
        return self.task.train_flops_per_sample * self.task.client_size(client) * self.task.config.local_epochs

    def local_result(self, r: int, veh: Vehicle, start: dict):
        """The vehicle's real local training from `start` (seeded per round and client)."""
        task, cfg = self.task, self.task.config
        if self.train_pool is not None and start is task.global_state:
            done = self.train_pool.result(r, veh.client)    # the same bytes, trained meanwhile in a worker
            if done is not None:
                return done
        return local_train(task.model, start, task.client_data(veh.client), epochs=cfg.local_epochs,
                           batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                           seed=self.sim.streams.seed_for("local-train", r, veh.client))

    def _vehicle(self, r: int, veh: Vehicle) -> Generator:
        sim, ch, task = self.sim, self.ch, self.task
        if not (yield from self.before_download(r, veh)):
            return VehicleResult(veh.id, veh.client, None)
        dl = yield from sim.transfer(r, veh, "dl", self.payload, task.model_bytes, None,
                                     self.decision(veh.id).bandwidth_share * ch.downlink_bandwidth_hz)
        if not dl.ok:
            return VehicleResult(veh.id, veh.client, None)
        # the real PyTorch step runs when its span starts; its duration comes from the device model
        result = self.local_result(r, veh, task.global_state)
        ok = yield from sim.compute(r, veh, "compute.train", self.train_flops(veh.client), self.decision(veh.id).cpu_hz)
        if not ok:
            return VehicleResult(veh.id, veh.client, None, trained=True)
        dec = self.decision(veh.id)
        ul = yield from sim.transfer(r, veh, "ul", self.payload, task.model_bytes, dec.tx_power_w,
                                     dec.bandwidth_share * ch.uplink_bandwidth_hz)
        return VehicleResult(veh.id, veh.client, result if ul.ok else None, trained=True)

    def finish_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list[VehicleResult]) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        if done:
            yield from self.aggregate_span(r, 2.0 * sum(v.numel() for v in task.global_state.values()) * len(done))
            task.global_state = aggregate([(x.result.state, x.result.num_samples) for x in done])
        acc, loss = evaluate(task.model, task.global_state, task.test)
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss)
