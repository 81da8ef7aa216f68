"""SplitFed (SFL) on the SimPy clock: vehicles train their client sides in parallel.

Thapa et al., "SplitFed: When Federated Learning Meets Split Learning", AAAI 2022.
Each selected vehicle downloads the client side ('tx.dl', payload 'model'), trains its batches with the
per-batch split timeline of cosim.protocols.sl (their server work queues on the shared edge server) and
uploads its client side ('tx.ul', payload 'model'). The client sides that reached the server are averaged
with weights rho_n = |D_n| / sum |D| over them (SCHEMES.md); vehicles that failed are left out, as in FedAvg.
- SFL-V1: one server-side copy per vehicle, averaged with the same weights at round end;
- SFL-V2: one shared server-side model, stepped in the order the activations reach the server.
"""
from __future__ import annotations

from typing import Generator

import simpy

from learning.fl import aggregate, evaluate
from learning.split import server_step

from ..optimizers.baseline import Plan
from ..world import Vehicle
from .common import VehicleResult
from .sl import Momentum, SplitRounds, SplitUpdate


class _Sfl(SplitRounds):
    """The SFL round: per-vehicle processes in sorted-id order, then aggregation."""

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        self.forget_departed(*self._stores())
        self.task.model.train()
        world = self.sim.world
        return [self.sim.spawn(self._vehicle(r, world.vehicles[vid], plan.bandwidth_share[vid], plan.tx_power_w[vid]))
                for vid in plan.selected]

    def _stores(self) -> tuple[Momentum, ...]:
        return (self.client_momentum,)

    def _server_work(self, veh: Vehicle):
        """(server_work for train_batch, the vehicle's server-side copy or None)."""
        raise NotImplementedError

    def _vehicle(self, r: int, veh: Vehicle, share: float, power_w: float) -> Generator:
        work, server_copy = self._server_work(veh)
        res, _ = yield from self.train_vehicle(r, veh, share, power_w, self.task.global_state, work)
        if res.result is not None and server_copy is not None:
            server = {k: v.detach() for k, v in server_copy.items()}
            res = VehicleResult(res.vehicle, res.client, SplitUpdate(res.result.client, res.result.weight, server),
                                res.trained)
        return res

    def _aggregate(self, done: list[VehicleResult]) -> dict:
        """The averaged parts of the model (client side; V1 also the server side)."""
        return aggregate([(x.result.client, x.result.weight) for x in done])

    def _aggregate_flops(self, done: list[VehicleResult]) -> float:
        g = self.task.global_state
        return 2.0 * sum(g[k].numel() for k in self.client_names) * len(done)

    def finish_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list[VehicleResult]) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        parts = {}
        if done:
            yield from self.aggregate_span(r, self._aggregate_flops(done))
            parts = self._aggregate(done)
        parts = self._with_server_part(parts)
        task.global_state = self.merged_state(parts)
        acc, loss = evaluate(task.model, task.global_state, task.test)
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss)

    def _with_server_part(self, parts: dict) -> dict:
        return parts


class SflV1(_Sfl):
    """SFL-V1: a server-side copy per vehicle (its own optimizer state across rounds), both sides averaged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_momentum: Momentum = {}

    def _stores(self) -> tuple[Momentum, ...]:
        return (self.client_momentum, self.server_momentum)

    def _server_work(self, veh: Vehicle):
        state, opt = self.side(self.task.global_state, self.server_names, self.server_momentum, veh.id)
        model, cut = self.task.model, self.cut

        def work(activation, y):
            grad = server_step(model, cut, activation, y, opt, state=state)[1]
            self.keep(state, opt, self.server_momentum, veh.id)
            return grad
        return work, state

    def _aggregate(self, done: list[VehicleResult]) -> dict:
        parts = super()._aggregate(done)
        parts.update(aggregate([(x.result.server, x.result.weight) for x in done]))
        return parts

    def _aggregate_flops(self, done: list[VehicleResult]) -> float:
        return 2.0 * sum(v.numel() for v in self.task.global_state.values()) * len(done)


class SflV2(_Sfl):
    """SFL-V2: one shared server-side model, stepped in arrival order; client sides averaged."""

    def _server_work(self, veh: Vehicle):
        return self.shared_server_work, None

    def _with_server_part(self, parts: dict) -> dict:
        return {**parts, **self.shared_server_part()}
