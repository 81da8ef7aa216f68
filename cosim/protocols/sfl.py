"""SplitFed (SFL) on the SimPy clock: vehicles train their client sides in parallel.

Thapa et al., "SplitFed: When Federated Learning Meets Split Learning", AAAI 2022.
Each selected vehicle downloads the client side ('tx.dl', payload 'model'), trains its batches with the
per-batch split timeline of cosim.protocols.sl (their server work queues on the shared edge server) and
uploads its client side ('tx.ul', payload 'model'). The client sides that reached the server are averaged
with weights rho_n = |D_n| / sum |D| over them (SCHEMES.md); vehicles that failed are left out, as in FedAvg.
- SFL-V1: one server-side copy per vehicle; each vehicle's two halves are averaged per layer over the
  vehicles that hold it (with one cut for all, both sides averaged with the same weights). Vehicles may
  have different cuts in the same round (an optimizer's per-vehicle decision).
- SFL-V2: one shared server-side model, stepped in the order the activations reach the server.
"""
from __future__ import annotations

from typing import Generator, Literal

import simpy

from learning.fl import aggregate, aggregate_layers, evaluate
from learning.split import server_step

from ..optimizers.api import Plan
from ..optimizers.costs import SplitCost
from ..registry import register_scheme
from ..world import Vehicle
from .common import VehicleResult
from .config import SplitConfig
from .sl import CutContext, Momentum, SplitRounds, SplitUpdate, _split_baselines


class _Sfl(SplitRounds):
    """The SFL round: per-vehicle processes in sorted-id order, then aggregation."""

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        self.forget_departed(*self._stores())
        self.task.model.train()
        world = self.sim.world
        return [self.sim.spawn(self._vehicle(r, world.vehicles[vid])) for vid in plan.selected]

    def _stores(self) -> tuple[Momentum, ...]:
        return (self.client_momentum,)

    def _server_work(self, veh: Vehicle, ctx: CutContext):
        """(server_work for train_batch, the vehicle's server-side copy or None)."""
        raise NotImplementedError

    def _vehicle(self, r: int, veh: Vehicle) -> Generator:
        ctx = self.vehicle_context(veh.id)
        work, server_copy = self._server_work(veh, ctx)
        res, _ = yield from self.train_vehicle(r, veh, ctx, self.task.global_state, work)
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


class SflV1Config(SplitConfig):
    """SFL-V1: a server-side copy per vehicle."""
    scheme: Literal["sfl_v1"] = "sfl_v1"


class SflV2Config(SplitConfig):
    """SFL-V2: one shared server-side model."""
    scheme: Literal["sfl_v2"] = "sfl_v2"


@register_scheme("sfl_v1", config=SflV1Config, cost=SplitCost(), baselines=_split_baselines)
class SflV1(_Sfl):
    """SplitFed V1 (Thapa et al. 2022): a server-side copy per vehicle, per-vehicle cuts, both halves averaged."""

    shared_server = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_momentum: Momentum = {}

    def _stores(self) -> tuple[Momentum, ...]:
        return (self.client_momentum, self.server_momentum)

    def _server_work(self, veh: Vehicle, ctx: CutContext):
        state, opt = self.side(self.task.global_state, ctx.server_names, self.server_momentum, veh.id)
        model, cut = self.task.model, ctx.cut

        def work(activation, y):
            grad = server_step(model, cut, activation, y, opt, state=state)[1]
            self.keep(state, opt, self.server_momentum, veh.id)
            return grad
        return work, state

    def _aggregate(self, done: list[VehicleResult]) -> dict:
        """Each vehicle's client and server halves as one model, averaged per layer with weights |D_n|."""
        return aggregate_layers([({**x.result.client, **x.result.server}, x.result.weight) for x in done])

    def _aggregate_flops(self, done: list[VehicleResult]) -> float:
        return 2.0 * sum(v.numel() for v in self.task.global_state.values()) * len(done)


@register_scheme("sfl_v2", config=SflV2Config, cost=SplitCost(), baselines=_split_baselines)
class SflV2(_Sfl):
    """SplitFed V2 (Thapa et al. 2022): one shared server-side model stepped in arrival order."""

    def _server_work(self, veh: Vehicle, ctx: CutContext):
        return self.shared_server_work(ctx.cut), None

    def _with_server_part(self, parts: dict) -> dict:
        return {**parts, **self.shared_server_part()}
