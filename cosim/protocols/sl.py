"""Split learning (SL) on the SimPy clock, and the per-batch split timeline SFL shares.

Gupta and Raskar, "Distributed learning of deep neural network over multiple agents", 2018.
The model is cut at each vehicle's decided cut (protocol.cut by default): the vehicle runs stages
[0, cut), the edge server the rest. Per batch: client forward ('compute.fwd'), activation upload ('tx.ul',
payload 'activations', sized by the scheme's wire codec from the real tensor), server forward+backward on
the edge server's queue ('server.compute'), gradient download ('tx.dl', payload 'gradients'), client
backward ('compute.bwd'). The PyTorch work of each step runs when its span starts; a vehicle's forward
output keeps its autograd graph until its gradient comes back and is freed right after the backward.

SL: the selected vehicles train one after another. The server holds the latest client-side model:
each vehicle downloads it ('tx.dl', payload 'model'), trains its batches and uploads it back ('tx.ul',
payload 'model'), so the handover between vehicles goes through the RSU and the server. A vehicle that
fails (coverage lost, left, deadline) loses its client-side updates (the next one gets the last model
that reached the server); the server-side updates of its batches stay. Only one vehicle is on the air
at a time, so each gets its RSU's whole band. The deadline stops the chain.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Iterator, Literal, Optional

import simpy
import torch

from learning.fl import evaluate, state_nbytes
from learning.profile import CutProfile
from learning.split import client_backward, client_forward, make_sgd, server_step, to_server

from ..errors import SettingError
from ..optimizers.api import Plan
from ..optimizers.costs import SplitCost, batch_sizes
from ..registry import register_scheme
from ..world import Vehicle
from .common import RoundProtocol, VehicleResult
from .config import SplitConfig

StateDict = dict[str, torch.Tensor]
Momentum = dict[str, dict[str, torch.Tensor]]     # owner (vehicle id) -> parameter name -> momentum buffer


@dataclass(frozen=True)
class SplitUpdate:
    """A vehicle's round result that reached the server: its client side (and, in SFL-V1, its server-side
    copy), weighted by |D_n|."""

    client: StateDict
    weight: int
    server: Optional[StateDict] = None


@dataclass(frozen=True)
class CutContext:
    """One cut, measured once: its profile, which state entries each side holds, the client side's bytes."""

    cut: int
    profile: CutProfile
    client_names: list[str]           # what the client side trains and sends (all of it unless some is frozen)
    server_names: list[str]
    client_model_bytes: int
    frozen_names: tuple[str, ...] = ()   # frozen client parameters: on the vehicle once, never sent again
    frozen_bytes: int = 0


@dataclass
class Batch:
    """One batch going through the timeline's steps: its inputs, and what the steps produce."""

    veh: Vehicle
    ctx: CutContext
    x: torch.Tensor
    y: torch.Tensor
    cstate: StateDict
    copt: object
    server_work: object
    act: Optional[torch.Tensor] = None        # the client's output (with its graph)
    sent: Optional[torch.Tensor] = None       # what the server receives
    nbytes: int = 0                           # bytes on the air
    grad: Optional[torch.Tensor] = None       # the activation gradient from the server

    @property
    def size(self) -> int:
        return int(self.y.shape[0])


class SplitRounds(RoundProtocol):
    """What SL and SFL share: per-cut contexts, the per-batch timeline, the edge server queue, the batches
    of a vehicle's round, and per-vehicle optimizer state kept across batches and rounds.

    The per-batch timeline is a sequence of steps (`batch_steps`: step_forward, step_upload, step_server,
    step_gradient_download, step_backward) a scheme may override or skip: `frozen_client` (a class
    attribute) makes the vehicle's side fixed, so it downloads no model and no gradient, runs no backward and
    uploads no model. Payload sizes come from the wire codec of the scheme's cost model (one codec for the
    prediction and the timeline). Optimizer state is stored compactly: between rounds a vehicle keeps only
    its momentum buffers (none when momentum is 0), re-attached to the fresh copy of the client side it
    downloads; the buffers of vehicles that left the road are dropped at the next round start.
    Raises SettingError naming protocol.cut when the cut is not a split point of the model.
    """

    frozen_client = False
    shared_server = True              # one server-side model stepped by every vehicle (SL, SFL-V2)
    side_payload = "model"            # what the client side travels as (a LoRA scheme's adapters: 'lora')

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        task = self.task
        self._contexts: dict[int, CutContext] = {}
        self.cut = self.proto.cut
        ctx = self.context(self.cut)
        self.profile = ctx.profile
        self.client_names, self.server_names = ctx.client_names, ctx.server_names
        self.client_model_bytes = ctx.client_model_bytes
        model = task.model
        model.load_state_dict(task.global_state)     # the FLOPs measurement ran a training step
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self.codec = self.cost_model.codec
        self.client_momentum: Momentum = {}
        cfg = task.config
        client = set(self.client_names)
        shared = [p for name, p in model.named_parameters() if name not in client and p.requires_grad]
        self.server_opt = make_sgd(shared, cfg.lr, cfg.momentum)   # the one server-side model (SL, SFL-V2)

    def context(self, cut: int) -> CutContext:
        """The cached context of `cut` (SettingError naming protocol.cut if it is no split point)."""
        ctx = self._contexts.get(cut)
        if ctx is None:
            task = self.task
            profile, g = task.cut_profile(cut), task.global_state
            frozen = set(task.frozen_names())
            side = set(task.model.client_param_names(cut))
            client = [k for k in g if k in side and k not in frozen]
            still = tuple(k for k in g if k in side and k in frozen)
            ctx = self._contexts[cut] = CutContext(
                cut, profile, client, [k for k in g if k not in set(client)], state_nbytes({k: g[k] for k in client}),
                still, state_nbytes({k: g[k] for k in still}))
        return ctx

    def vehicle_context(self, vid: str) -> CutContext:
        """The context of the vehicle's decided cut; a scheme with one server-side model keeps protocol.cut."""
        cut = self.decision(vid).cut
        if self.shared_server and cut != self.cut:
            raise SettingError("protocol.optimizer", self.proto.optimizer,
                               f"an optimizer that keeps protocol.cut ({self.cut}) for every vehicle: scheme "
                               f"{self.proto.scheme!r} steps one server-side model (it gave {vid!r} cut {cut})")
        return self.context(cut)

    # ---- data -------------------------------------------------------------------------------
    def batches(self, r: int, client: int, n: int) -> Iterator[torch.Tensor]:
        """Index batches of a vehicle's round: fl.local_train's shuffle (same seed), capped by batches_per_round."""
        cfg, cap = self.task.config, self.proto.batches_per_round
        gen = torch.Generator().manual_seed(self.sim.streams.seed_for("local-train", r, client))
        count = 0
        for _ in range(cfg.local_epochs):
            perm = torch.randperm(n, generator=gen)
            for start in range(0, n, cfg.batch_size):
                if cap is not None and count >= cap:
                    return
                count += 1
                yield perm[start:start + cfg.batch_size]

    def batch_sizes(self, n: int) -> list[int]:
        """Sizes of the batches `batches` gives for n samples."""
        cfg = self.task.config
        return batch_sizes(n, cfg.batch_size, cfg.local_epochs, self.proto.batches_per_round)

    # ---- per-vehicle state -------------------------------------------------------------------
    def side(self, source: StateDict, names: list[str], store: Momentum, owner: str):
        """(state, optimizer): a fresh copy of `names` from `source` and SGD over its trainable tensors, with
        the owner's momentum buffers from earlier rounds re-attached (no copy)."""
        cfg = self.task.config
        state = {k: source[k].detach().clone().requires_grad_(k in self.trainable) for k in names}
        opt = make_sgd([state[k] for k in names if k in self.trainable], cfg.lr, cfg.momentum)
        saved = store.get(owner)
        if opt is not None and saved:
            for k, buf in saved.items():
                if k in state:               # a vehicle whose cut changed keeps the buffers of what it still holds
                    opt.state[state[k]]["momentum_buffer"] = buf
        return state, opt

    @staticmethod
    def keep(state: StateDict, opt, store: Momentum, owner: str) -> None:
        """Store the owner's momentum buffers (references) for its next round."""
        if opt is None or not opt.param_groups[0]["momentum"]:
            return
        bufs = {}
        for k, p in state.items():
            st = opt.state.get(p)
            if st is not None and st.get("momentum_buffer") is not None:
                bufs[k] = st["momentum_buffer"]
        store[owner] = bufs

    def forget_departed(self, *stores: Momentum) -> None:
        vehicles = self.sim.world.vehicles
        for store in stores:
            for owner in [o for o in store if o not in vehicles]:
                del store[owner]

    # ---- the per-batch timeline ----------------------------------------------------------------
    def batch_steps(self) -> list:
        """The steps of one batch, in order; each `step(r, batch)` is a generator that returns True to go on.
        A frozen client stops after the server's step (no gradient comes down, no backward)."""
        steps = [self.step_forward, self.step_upload, self.step_server]
        if not self.frozen_client:
            steps += [self.step_gradient_download, self.step_backward]
        return steps

    def train_batch(self, r: int, veh: Vehicle, ctx: CutContext, x: torch.Tensor, y: torch.Tensor,
                    cstate: StateDict, copt, server_work) -> Generator:
        """One split batch on the clock; True when its last step completed.
        `server_work(activation, y)` runs the server's step and returns the activation gradient."""
        batch = Batch(veh, ctx, x, y, cstate, copt, server_work)
        for step in self.batch_steps():
            if not (yield from step(r, batch)):
                return False
        return True

    def rounding(self, r: int, veh: Vehicle, stream: str) -> Optional[torch.Generator]:
        """Draws for the codec's stochastic rounding of the vehicle's next tensor (None: round to nearest)."""
        return None

    def step_forward(self, r: int, batch: "Batch") -> Generator:
        """Client forward (the real one, keeping its graph until the gradient is back), encoded for the
        air by the codec; a 'compute.fwd' span."""
        dec = self.decision(batch.veh.id)
        batch.act = client_forward(self.task.model, batch.ctx.cut, batch.x, batch.cstate)
        batch.sent, batch.nbytes = self.codec.encode(batch.act, dec, self.rounding(r, batch.veh, "quantize"))
        flops = batch.ctx.profile.client_fwd_flops * batch.size
        return (yield from self.sim.compute(r, batch.veh, "compute.fwd", flops, dec.cpu_hz))

    def step_upload(self, r: int, batch: "Batch") -> Generator:
        """The encoded activations up ('tx.ul', payload 'activations')."""
        ul = yield from self.sim.transfer(r, batch.veh, "ul", "activations", batch.nbytes,
                                          *self.link_of(batch.veh.id, "ul"))
        return ul.ok

    def step_server(self, r: int, batch: "Batch") -> Generator:
        """The server's forward and backward on the edge server's queue ('server.compute')."""
        received, y = to_server(batch.sent), batch.y
        ok, batch.grad = yield from self.edge.compute(r, batch.veh.id, batch.ctx.profile.server_flops * batch.size,
                                                      lambda: batch.server_work(received, y))
        return ok

    def step_gradient_download(self, r: int, batch: "Batch") -> Generator:
        """The activation gradient down ('tx.dl', payload 'gradients')."""
        nbytes = 0
        if batch.grad is not None:
            batch.grad, nbytes = self.codec.encode_gradient(batch.grad, self.decision(batch.veh.id),
                                                            self.rounding(r, batch.veh, "quantize.grad"))
        dl = yield from self.sim.transfer(r, batch.veh, "dl", "gradients", nbytes, *self.link_of(batch.veh.id, "dl"))
        return dl.ok

    def step_backward(self, r: int, batch: "Batch") -> Generator:
        """Client backward (frees the vehicle's graph) and its optimizer step; a 'compute.bwd' span."""
        client_backward(batch.sent, batch.grad, batch.copt)
        flops = batch.ctx.profile.client_bwd_flops * batch.size
        return (yield from self.sim.compute(r, batch.veh, "compute.bwd", flops, self.decision(batch.veh.id).cpu_hz))

    def shared_server_work(self, cut: int):
        """server_work for `cut` on the one server-side model (SL, SFL-V2): it steps and returns the gradient."""
        model, opt = self.task.model, self.server_opt
        return lambda activation, y: server_step(model, cut, activation, y, opt)[1]

    def train_vehicle(self, r: int, veh: Vehicle, ctx: CutContext, source: StateDict, server_work) -> Generator:
        """Download the client side from `source`, train the vehicle's batches, upload it back.
        Returns (VehicleResult, the client-side state or None when the upload did not complete)."""
        sim = self.sim
        if not (yield from self.before_download(r, veh)):
            return VehicleResult(veh.id, veh.client, None), None
        if not self.frozen_client:
            dl = yield from sim.transfer(r, veh, "dl", self.side_payload, ctx.client_model_bytes,
                                         *self.link_of(veh.id, "dl"))
            if not dl.ok:
                return VehicleResult(veh.id, veh.client, None), None
        cstate, copt = self.side(source, ctx.client_names, self.client_momentum, veh.id)
        data = self.task.client_data(veh.client)
        ok = True
        for idx in self.batches(r, veh.client, len(data)):
            ok = yield from self.train_batch(r, veh, ctx, data.x[idx], data.y[idx], cstate, copt, server_work)
            if not ok:
                break
        self.keep(cstate, copt, self.client_momentum, veh.id)
        if not ok:
            return VehicleResult(veh.id, veh.client, None, trained=True), None
        if not self.frozen_client:
            ul = yield from sim.transfer(r, veh, "ul", self.side_payload, ctx.client_model_bytes,
                                         *self.link_of(veh.id, "ul"))
            if not ul.ok:
                return VehicleResult(veh.id, veh.client, None, trained=True), None
        client = {} if self.frozen_client else {k: v.detach() for k, v in cstate.items()}   # nothing went up
        return VehicleResult(veh.id, veh.client, SplitUpdate(client, self.task.client_size(veh.client)),
                             trained=True), client

    def merged_state(self, parts: StateDict) -> StateDict:
        """The global state with `parts` replaced, in the model's key order."""
        g = self.task.global_state
        return {k: parts.get(k, g[k]) for k in g}

    def shared_server_part(self) -> StateDict:
        live = self.task.model.state_dict()
        return {k: live[k].detach().clone() for k in self.server_names}


class SlConfig(SplitConfig):
    """SL: the selected vehicles one after another through the edge server."""
    scheme: Literal["sl"] = "sl"


def _split_baselines(sc) -> dict[str, list[str]]:
    """What a split scheme is compared with: the other split schemes and FedAvg, and fixed cuts at the
    model's first, middle and last split points (those other than the scenario's own)."""
    from ..task import split_points

    own, scheme = sc.protocol.cut, sc.protocol.scheme
    out = {s: [f"protocol.scheme={s}"] for s in ("sl", "sfl_v1", "sfl_v2", "fedavg") if s != scheme}
    points = split_points(sc.learning)
    for cut in dict.fromkeys((points[0], points[len(points) // 2], points[-1])):
        if cut != own:
            out[f"fixed_cut_{cut}"] = [f"protocol.cut={cut}"]
    return out


@register_scheme("sl", config=SlConfig, cost=SplitCost(sequential=True), baselines=_split_baselines)
class SplitLearning(SplitRounds):
    """SL (Gupta and Raskar 2018): vehicles in turns, the client side relayed through the server."""

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        self.forget_departed(self.client_momentum)
        self.task.model.train()
        self._deadline_at = self._t0 + self.proto.round_deadline_s
        vehicles = [self.sim.world.vehicles[vid] for vid in plan.selected]
        return [self.sim.spawn(self._chain(r, vehicles))]

    def _chain(self, r: int, vehicles: list[Vehicle]) -> Generator:
        env = self.sim.env
        results = []
        self._relay = {k: self.task.global_state[k] for k in self.client_names}   # the server's latest client side
        work = self.shared_server_work(self.cut)
        for veh in vehicles:
            if env.now >= self._deadline_at or self.sim.done.triggered:
                results.append(VehicleResult(veh.id, veh.client, None))
                continue
            res, client = yield from self.train_vehicle(r, veh, self.vehicle_context(veh.id), self._relay, work)
            if client is not None:
                self._relay = client
            results.append(res)
        return results

    def finish_round(self, r: int, t0: float, first_span: int, plan: Plan, results: list) -> Generator:
        task = self.task
        chain = results[0]
        parts = dict(self._relay)
        parts.update(self.shared_server_part())
        task.global_state = self.merged_state(parts)
        acc, loss = evaluate(task.model, task.global_state, task.test)
        done = sum(1 for x in chain if x.result is not None)
        self.record_round(r, t0, first_span, plan, chain, done, acc, loss)
        yield from ()                      # no aggregation: nothing takes time


__all__ = ["CutContext", "SlConfig", "SplitLearning", "SplitRounds", "SplitUpdate"]
