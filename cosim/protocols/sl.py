"""Split learning (SL) on the SimPy clock, and the per-batch split timeline SFL shares.

Gupta and Raskar, "Distributed learning of deep neural network over multiple agents", 2018.
The model is cut at protocol.cut: vehicles run stages [0, cut), the edge server the rest. Per batch:
client forward ('compute.fwd'), activation upload ('tx.ul', payload 'activations', the real tensor's
bytes, or its quantized size), server forward+backward on the edge server's queue ('server.compute'),
gradient download ('tx.dl', payload 'gradients', float32), client backward ('compute.bwd'). The
PyTorch work of each step runs when its span starts; a vehicle's forward output keeps its autograd
graph until its gradient comes back and is freed right after the backward.

SL: the selected vehicles train one after another. The server holds the latest client-side model:
each vehicle downloads it ('tx.dl', payload 'model'), trains its batches and uploads it back ('tx.ul',
payload 'model'), so the handover between vehicles goes through the RSU and the server. A vehicle that
fails (coverage lost, left, deadline) loses its client-side updates (the next one gets the last model
that reached the server); the server-side updates of its batches stay. Only one vehicle is on the air
at a time, so each gets its RSU's whole band. The deadline stops the chain.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Generator, Iterator, Optional

import simpy
import torch

from learning.fl import evaluate, state_nbytes
from learning.quantize import FULL_PRECISION_BITS, payload_bits, quantize
from learning.split import client_backward, client_forward, make_sgd, server_step, to_server

from ..optimizers.baseline import Plan
from ..server import EdgeServer
from ..world import Vehicle
from .common import RoundProtocol, VehicleResult, airtime_s, tx_energy_j

StateDict = dict[str, torch.Tensor]
Momentum = dict[str, dict[str, torch.Tensor]]     # owner (vehicle id) -> parameter name -> momentum buffer


@dataclass(frozen=True)
class SplitUpdate:
    """A vehicle's round result that reached the server: its client side (and, in SFL-V1, its server-side
    copy), weighted by |D_n|."""

    client: StateDict
    weight: int
    server: Optional[StateDict] = None


class SplitRounds(RoundProtocol):
    """What SL and SFL share: the cut, its measured profile, the per-batch timeline, the edge server queue,
    the batches of a vehicle's round, and per-vehicle optimizer state kept across batches and rounds.

    Optimizer state is stored compactly: between rounds a vehicle keeps only its momentum buffers (none
    when momentum is 0), re-attached to the fresh copy of the client side it downloads; the buffers of
    vehicles that left the road are dropped at the next round start.
    Raises SettingError naming protocol.cut when the cut is not a split point of the model.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        task, cut = self.task, self.proto.cut
        self.profile = task.cut_profile(cut)
        self.cut = cut
        model = task.model
        model.load_state_dict(task.global_state)     # the FLOPs measurement ran a training step
        client = set(model.client_param_names(cut))
        self.client_names = [k for k in task.global_state if k in client]
        self.server_names = [k for k in task.global_state if k not in client]
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        self.client_model_bytes = state_nbytes({k: task.global_state[k] for k in self.client_names})
        self.edge = EdgeServer(self.sim.env, self.sim.trace, self.server)
        self.client_momentum: Momentum = {}
        cfg = task.config
        shared = [p for name, p in model.named_parameters() if name not in client and p.requires_grad]
        self.server_opt = make_sgd(shared, cfg.lr, cfg.momentum)   # the one server-side model (SL, SFL-V2)

    # ---- data and costs ----------------------------------------------------------------------
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
        bs = self.task.config.batch_size
        sizes = ([bs] * (n // bs) + ([n % bs] if n % bs else [])) * self.task.config.local_epochs
        cap = self.proto.batches_per_round
        return sizes[:cap] if cap is not None else sizes

    def activation_bytes(self, samples: int) -> int:
        """Uplink payload of `samples` activations at protocol.activation_bits (quantize.payload_bits)."""
        elements = samples * self.profile.activation_elements
        bits = self.proto.activation_bits
        if bits == FULL_PRECISION_BITS:
            return elements * 4
        return math.ceil(payload_bits(elements, bits) / 8)

    def predict(self, veh: Vehicle, share: float, power_w: float) -> tuple[float, float]:
        """One vehicle's round: model download, per batch fwd + activations up + server + gradients down + bwd,
        model upload (no queueing at the server: the static model the simulated queue departs from)."""
        world, ch, prof, dev = self.sim.world, self.ch, self.profile, self.sim.vehicle_cpu
        r_dl = world.rate_bps(veh, ch.rsu_tx_power_w, share * ch.downlink_bandwidth_hz, "dl")
        r_ul = world.rate_bps(veh, power_w, share * ch.uplink_bandwidth_hz, "ul")
        model_bits = self.client_model_bytes * 8.0
        t = airtime_s(model_bits, r_dl) + airtime_s(model_bits, r_ul)
        e = tx_energy_j(power_w, model_bits, r_ul)
        for b in self.batch_sizes(self.task.client_size(veh.client)):
            act_bits = self.activation_bytes(b) * 8.0
            grad_bits = b * prof.activation_elements * 32.0
            t_fwd, t_bwd = dev.time_s(prof.client_fwd_flops * b), dev.time_s(prof.client_bwd_flops * b)
            t += (t_fwd + airtime_s(act_bits, r_ul) + self.server.time_s(prof.server_flops * b)
                  + airtime_s(grad_bits, r_dl) + t_bwd)
            e += (dev.energy_j(prof.client_fwd_flops * b) + dev.energy_j(prof.client_bwd_flops * b)
                  + tx_energy_j(power_w, act_bits, r_ul))
        return t, e

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
    def on_wire(self, act: torch.Tensor) -> tuple[torch.Tensor, int]:
        """(what the server receives, its bytes): the activation itself at 32 bits, else quantized
        (straight-through gradient back to `act`)."""
        bits = self.proto.activation_bits
        if bits == FULL_PRECISION_BITS:
            return act, act.numel() * act.element_size()
        q = quantize(act, bits)
        return q.values, math.ceil(q.payload_bits / 8)

    def train_batch(self, r: int, veh: Vehicle, share: float, power_w: float, x: torch.Tensor, y: torch.Tensor,
                    cstate: StateDict, copt, server_work) -> Generator:
        """One split batch on the clock; True when the vehicle's backward step completed.
        `server_work(activation, y)` runs the server's step and returns the activation gradient."""
        sim, ch, prof = self.sim, self.ch, self.profile
        b = int(y.shape[0])
        act = client_forward(self.task.model, self.cut, x, cstate)     # keeps its graph until the gradient is back
        sent, nbytes = self.on_wire(act)
        if not (yield from sim.compute(r, veh, "compute.fwd", prof.client_fwd_flops * b)):
            return False
        ul = yield from sim.transfer(r, veh, "ul", "activations", nbytes, power_w, share * ch.uplink_bandwidth_hz)
        if not ul.ok:
            return False
        received = to_server(sent)
        ok, grad = yield from self.edge.compute(r, veh.id, prof.server_flops * b, lambda: server_work(received, y))
        if not ok:
            return False
        grad_bytes = grad.numel() * grad.element_size() if grad is not None else 0
        dl = yield from sim.transfer(r, veh, "dl", "gradients", grad_bytes, ch.rsu_tx_power_w,
                                     share * ch.downlink_bandwidth_hz)
        if not dl.ok:
            return False
        client_backward(sent, grad, copt)                               # frees this vehicle's graph
        return (yield from sim.compute(r, veh, "compute.bwd", prof.client_bwd_flops * b))

    def shared_server_work(self, activation: torch.Tensor, y: torch.Tensor) -> Optional[torch.Tensor]:
        """The one server-side model (SL, SFL-V2) steps on this batch; returns the activation gradient."""
        return server_step(self.task.model, self.cut, activation, y, self.server_opt)[1]

    def train_vehicle(self, r: int, veh: Vehicle, share: float, power_w: float, source: StateDict,
                      server_work) -> Generator:
        """Download the client side from `source`, train the vehicle's batches, upload it back.
        Returns (VehicleResult, the client-side state or None when the upload did not complete)."""
        sim, ch = self.sim, self.ch
        dl = yield from sim.transfer(r, veh, "dl", "model", self.client_model_bytes, ch.rsu_tx_power_w,
                                     share * ch.downlink_bandwidth_hz)
        if not dl.ok:
            return VehicleResult(veh.id, veh.client, None), None
        cstate, copt = self.side(source, self.client_names, self.client_momentum, veh.id)
        data = self.task.client_data(veh.client)
        ok = True
        for idx in self.batches(r, veh.client, len(data)):
            ok = yield from self.train_batch(r, veh, share, power_w, data.x[idx], data.y[idx], cstate, copt,
                                             server_work)
            if not ok:
                break
        self.keep(cstate, copt, self.client_momentum, veh.id)
        if not ok:
            return VehicleResult(veh.id, veh.client, None, trained=True), None
        ul = yield from sim.transfer(r, veh, "ul", "model", self.client_model_bytes, power_w,
                                     share * ch.uplink_bandwidth_hz)
        if not ul.ok:
            return VehicleResult(veh.id, veh.client, None, trained=True), None
        client = {k: v.detach() for k, v in cstate.items()}
        return VehicleResult(veh.id, veh.client, SplitUpdate(client, self.task.client_size(veh.client)),
                             trained=True), client

    def merged_state(self, parts: StateDict) -> StateDict:
        """The global state with `parts` replaced, in the model's key order."""
        g = self.task.global_state
        return {k: parts.get(k, g[k]) for k in g}

    def shared_server_part(self) -> StateDict:
        live = self.task.model.state_dict()
        return {k: live[k].detach().clone() for k in self.server_names}


class SplitLearning(SplitRounds):
    """SL: the selected vehicles one after another, the client-side model relayed through the server."""

    def make_plan(self, chosen: list[str], covered: list[Vehicle]) -> Plan:
        """Whole band for each (one vehicle on the air at a time), max power; the chain's latency and
        energy are the sums over its vehicles, and each vehicle's latency is when its turn ends."""
        world, power = self.sim.world, self.ch.vehicle_tx_power_w
        costs = [self.predict(world.vehicles[vid], 1.0, power) for vid in chosen]
        ends = list(itertools.accumulate(c[0] for c in costs))
        return Plan(tuple(chosen), {v: 1.0 for v in chosen}, {v: power for v in chosen},
                    float(sum(c[0] for c in costs)), float(sum(c[1] for c in costs)), dict(zip(chosen, ends)))

    def start_round(self, r: int, plan: Plan) -> list[simpy.Process]:
        self.forget_departed(self.client_momentum)
        self.task.model.train()
        self._deadline_at = self.sim.env.now + self.proto.round_deadline_s
        vehicles = [self.sim.world.vehicles[vid] for vid in plan.selected]
        return [self.sim.spawn(self._chain(r, plan, vehicles))]

    def _chain(self, r: int, plan: Plan, vehicles: list[Vehicle]) -> Generator:
        env = self.sim.env
        results = []
        self._relay = {k: self.task.global_state[k] for k in self.client_names}   # the server's latest client side
        for veh in vehicles:
            if env.now >= self._deadline_at or self.sim.done.triggered:
                results.append(VehicleResult(veh.id, veh.client, None))
                continue
            res, client = yield from self.train_vehicle(r, veh, plan.bandwidth_share[veh.id],
                                                        plan.tx_power_w[veh.id], self._relay, self.shared_server_work)
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
