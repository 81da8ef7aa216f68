"""The LoRA fine-tuning schemes the lecture's ST-SFLora table compares with (SCHEMES.md, ST-SFLora), all on
the pretrained ViT with adapters on every block and only adapters and head training:

- `local_lora`: each vehicle fine-tunes the whole model on its own data and keeps its client's adapters
  (nothing is averaged; accuracy is the mean over the round's clients of their own models');
- `fed_lora`: the same, federated: the adapters and head go down and up ('lora') and are averaged (FedAvg);
- `split_lora`: split learning in turns (SL): the client side's adapters are relayed through the server;
- `sflora`: SplitFed (SFL-V2): the client sides' adapters are averaged, the server side is one model.
Every vehicle fetches its side's frozen pretrained weights once ('tx.dl', payload 'model').
"""
from __future__ import annotations

import statistics
from typing import Generator, Literal

from learning.fl import aggregate, evaluate, state_nbytes

from ..compute import device_model
from ..optimizers.api import Candidate, Cost, RoundSnapshot
from ..optimizers.costs import CostModel, FedAvgCost, SplitCost, first_download_s
from ..registry import register_scheme
from ..world import Vehicle
from .common import VehicleResult
from .config import ProtocolConfig, SplitConfig
from .fl import FedAvg
from .lora import Backbone, LoraFields, adapt, device_memory
from .sfl import SflV2
from .sl import SplitLearning


class FedLoraConfig(ProtocolConfig, LoraFields):
    """FedLoRA: adapters on every block of the pretrained ViT, trained on the vehicles, averaged."""
    scheme: Literal["fed_lora"] = "fed_lora"


class LocalLoraConfig(ProtocolConfig, LoraFields):
    """LocalLoRA: adapters on every block, each client's kept on its own."""
    scheme: Literal["local_lora"] = "local_lora"


class SplitLoraConfig(SplitConfig, LoraFields):
    """SplitLoRA: split learning in turns with adapters on every block (both sides)."""
    scheme: Literal["split_lora"] = "split_lora"


class SfloraConfig(SplitConfig, LoraFields):
    """SFLora: SplitFed (one server-side model) with adapters on every block (both sides)."""
    scheme: Literal["sflora"] = "sflora"


def _others(own: str):
    def baselines(sc) -> dict[str, list[str]]:
        """The other LoRA schemes of the lecture's table, and ST-SFLora itself."""
        names = ("local_lora", "fed_lora", "split_lora", "sflora", "st_sflora")
        return {n: [f"protocol.scheme={n}"] for n in names if n != own}
    return baselines


def _every_block(protocol_init):
    """Adapters on every block before the scheme's own set-up (which then sees the adapted task)."""
    def init(self, sim, task, scenario, dwell, on_round=None):
        adapt(task, scenario.protocol.lora, range(len(getattr(task.model, "blocks", ()))),
              sim.streams.seed_for("lora-init"))
        protocol_init(self, sim, task, scenario, dwell, on_round)
    return init


class _DeviceMemory:
    """Mixin: the vehicle's memory for one batch, a column of every round."""

    round_fields = ("device_memory_bytes",)
    device_memory_bytes = 0

    def record_round(self, *args, **extra):
        return super().record_round(*args, device_memory_bytes=self.device_memory_bytes, **extra)


# ---- whole-model LoRA on the vehicles --------------------------------------------------------------------
class _WholeModelLora(_DeviceMemory, FedAvg):
    """FedAvg's round on an adapted model: only the adapters and head ('lora') travel; the backbone once."""

    payload = "lora"

    @_every_block
    def __init__(self, sim, task, scenario, dwell, on_round=None):
        super().__init__(sim, task, scenario, dwell, on_round)
        frozen = set(task.frozen_names())
        self.adapters = [k for k in task.global_state if k not in frozen]
        self.backbone = Backbone(self, state_nbytes({k: task.global_state[k] for k in frozen}))
        x, model = task.train.x[:task.config.batch_size], task.model
        self.device_memory_bytes = device_memory(model, task.global_state, list(task.global_state), lambda: model(x))

    def snapshot_extra(self, r: int, vehicles) -> dict:
        return self.backbone.extra(vehicles)

    def before_download(self, r: int, veh: Vehicle) -> Generator:
        share = self.decision(veh.id).bandwidth_share * self.ch.downlink_bandwidth_hz
        return (yield from self.backbone.ensure(r, veh, share))


@register_scheme("fed_lora", config=FedLoraConfig, cost=FedAvgCost(), baselines=_others("fed_lora"))
class FedLora(_WholeModelLora):
    """FedLoRA: adapters and head down, local training of them, up, averaged with weights |D_n|."""

    def finish_round(self, r: int, t0: float, first_span: int, plan, results: list) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        if done:
            yield from self.aggregate_span(r, 2.0 * sum(task.global_state[k].numel() for k in self.adapters) * len(done))
            averaged = aggregate([({k: x.result.state[k] for k in self.adapters}, x.result.num_samples) for x in done])
            task.global_state = {**task.global_state, **averaged}
        acc, loss = evaluate(task.model, task.global_state, task.test)
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss)


class OnBoardCost(CostModel):
    """Local training only: nothing travels in a round (the backbone's one download comes before it)."""

    def cost(self, snap: RoundSnapshot, cand: Candidate, dec) -> Cost:
        dev = device_model(cand.device, dec.cpu_hz)
        flops = snap.model.train_flops_per_sample * cand.num_samples * snap.learning.local_epochs
        t, e, t_dl = dev.time_s(flops), dev.energy_j(flops), first_download_s(snap, cand, dec)
        return Cost(t_dl + t, e, compute_s=t, comm_s=t_dl, compute_energy_j=e)


@register_scheme("local_lora", config=LocalLoraConfig, cost=OnBoardCost(), baselines=_others("local_lora"))
class LocalLora(_WholeModelLora):
    """LocalLoRA: each client's adapters trained on its data only, kept on board; nothing travels per round."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.local: dict[int, dict] = {}          # client -> its adapters and head

    def _vehicle(self, r: int, veh: Vehicle) -> Generator:
        if not (yield from self.before_download(r, veh)):
            return VehicleResult(veh.id, veh.client, None)
        result = self.local_result(r, veh, {**self.task.global_state, **self.local.get(veh.client, {})})
        if not (yield from self.sim.compute(r, veh, "compute.train", self.train_flops(veh.client),
                                            self.decision(veh.id).cpu_hz)):
            return VehicleResult(veh.id, veh.client, None, trained=True)
        self.local[veh.client] = {k: result.state[k] for k in self.adapters}
        return VehicleResult(veh.id, veh.client, result, trained=True)

    def finish_round(self, r: int, t0: float, first_span: int, plan, results: list) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        scores = [evaluate(task.model, {**task.global_state, **self.local[x.client]}, task.test) for x in done]
        acc = statistics.fmean(a for a, _ in scores) if scores else evaluate(task.model, task.global_state, task.test)[0]
        loss = statistics.fmean(b for _, b in scores) if scores else float("nan")
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss)
        yield from ()


# ---- split LoRA --------------------------------------------------------------------------------------------
class _SplitLora(_DeviceMemory):
    """Mixin for SplitRounds schemes on an adapted model: the client side that trains and travels ('lora') is
    its blocks' adapters (the kernel's CutContext leaves frozen weights out); those weights come once."""

    side_payload = "lora"

    @_every_block
    def __init__(self, sim, task, scenario, dwell, on_round=None):
        super().__init__(sim, task, scenario, dwell, on_round)
        ctx, state, model = self.context(self.cut), task.global_state, task.model
        self.backbone = Backbone(self, ctx.frozen_bytes)
        x = task.train.x[:task.config.batch_size]
        self.device_memory_bytes = device_memory(model, state, [*ctx.client_names, *ctx.frozen_names],
                                                 lambda: model.forward_stages(x, 0, self.cut))

    def snapshot_extra(self, r: int, vehicles) -> dict:
        return self.backbone.extra(vehicles)

    def before_download(self, r: int, veh: Vehicle) -> Generator:
        return (yield from self.backbone.ensure(r, veh, self.link_of(veh.id, "dl")[1]))


@register_scheme("split_lora", config=SplitLoraConfig, cost=SplitCost(sequential=True), baselines=_others("split_lora"))
class SplitLora(_SplitLora, SplitLearning):
    """SplitLoRA: split learning in turns with adapters on both sides; the client adapters relayed."""


@register_scheme("sflora", config=SfloraConfig, cost=SplitCost(), baselines=_others("sflora"))
class Sflora(_SplitLora, SflV2):
    """SFLora: SplitFed with adapters on both sides; client adapters averaged, one server-side model."""


__all__ = ["FedLora", "LocalLora", "OnBoardCost", "Sflora", "SplitLora"]
