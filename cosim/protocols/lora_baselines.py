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

from learning.fl import aggregate, evaluate, local_train

from ..compute import device_model
from ..optimizers.api import Candidate, Cost, RoundSnapshot
from ..optimizers.costs import CostModel, FedAvgCost, SplitCost, first_download_s
from ..registry import register_scheme
from ..world import Vehicle
from .common import VehicleResult
from .config import ProtocolConfig, SplitConfig
from .fl import FedAvg
from .lora import Backbone, LoraSettings, adapt, device_memory
from .sfl import SflV2
from .sl import CutContext, SplitLearning


class FedLoraConfig(ProtocolConfig):
    """FedLoRA: adapters on every block of the pretrained ViT, trained on the vehicles, averaged."""
    scheme: Literal["fed_lora"] = "fed_lora"
    lora: LoraSettings = LoraSettings()


class LocalLoraConfig(ProtocolConfig):
    """LocalLoRA: adapters on every block, each client's kept on its own."""
    scheme: Literal["local_lora"] = "local_lora"
    lora: LoraSettings = LoraSettings()


class SplitLoraConfig(SplitConfig):
    """SplitLoRA: split learning in turns with adapters on every block (both sides)."""
    scheme: Literal["split_lora"] = "split_lora"
    lora: LoraSettings = LoraSettings()


class SfloraConfig(SplitConfig):
    """SFLora: SplitFed (one server-side model) with adapters on every block (both sides)."""
    scheme: Literal["sflora"] = "sflora"
    lora: LoraSettings = LoraSettings()


def _others(own: str):
    def baselines(sc) -> dict[str, list[str]]:
        """The other LoRA schemes of the lecture's table, and ST-SFLora itself."""
        names = ("local_lora", "fed_lora", "split_lora", "sflora", "st_sflora")
        return {n: [f"protocol.scheme={n}"] for n in names if n != own}
    return baselines


# ---- whole-model LoRA on the vehicles --------------------------------------------------------------------
class _WholeModelLora(FedAvg):
    """FedAvg's round on an adapted model: only the trainable tensors ('lora') travel; the backbone once."""

    round_fields = ("device_memory_bytes",)

    def __init__(self, sim, task, scenario, dwell, on_round=None):
        model = task.model
        adapt(task, scenario.protocol.lora, range(len(getattr(model, "blocks", ()))), sim.streams.seed_for("lora-init"))
        super().__init__(sim, task, scenario, dwell, on_round)
        self.trainable = [n for n, p in model.named_parameters() if p.requires_grad]
        frozen = [k for k in task.global_state if k not in set(self.trainable)]
        self.backbone = Backbone(self, sum(task.global_state[k].numel() * task.global_state[k].element_size()
                                           for k in frozen))
        x = task.train.x[:task.config.batch_size]
        model.load_state_dict(task.global_state)
        self.device_memory_bytes = device_memory(model, task.global_state, list(task.global_state), lambda: model(x))
        model.load_state_dict(task.global_state)

    def snapshot_extra(self, r: int, vehicles) -> dict:
        return self.backbone.extra(vehicles)

    def _vehicle(self, r: int, veh: Vehicle) -> Generator:
        share = self.decision(veh.id).bandwidth_share * self.ch.downlink_bandwidth_hz
        if not (yield from self.backbone.ensure(r, veh, share)):
            return VehicleResult(veh.id, veh.client, None)
        return (yield from self.train_on_board(r, veh))

    def train_on_board(self, r: int, veh: Vehicle) -> Generator:
        raise NotImplementedError

    def _train(self, r: int, veh: Vehicle, start: dict):
        cfg, task = self.task.config, self.task
        return local_train(task.model, start, task.client_data(veh.client), epochs=cfg.local_epochs,
                           batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                           seed=self.sim.streams.seed_for("local-train", r, veh.client))

    def _adapters(self, state: dict) -> dict:
        return {k: state[k] for k in self.trainable}


@register_scheme("fed_lora", config=FedLoraConfig, cost=FedAvgCost(), baselines=_others("fed_lora"))
class FedLora(_WholeModelLora):
    """FedLoRA: adapters and head down, local training of them, up, averaged with weights |D_n|."""

    def train_on_board(self, r: int, veh: Vehicle) -> Generator:
        sim, ch, task = self.sim, self.ch, self.task
        dec = self.decision(veh.id)
        dl = yield from sim.transfer(r, veh, "dl", "lora", task.model_bytes, ch.rsu_tx_power_w,
                                     dec.bandwidth_share * ch.downlink_bandwidth_hz)
        if not dl.ok:
            return VehicleResult(veh.id, veh.client, None)
        result = self._train(r, veh, task.global_state)
        if not (yield from sim.compute(r, veh, "compute.train", self.train_flops(veh.client), dec.cpu_hz)):
            return VehicleResult(veh.id, veh.client, None, trained=True)
        ul = yield from sim.transfer(r, veh, "ul", "lora", task.model_bytes, dec.tx_power_w,
                                     dec.bandwidth_share * ch.uplink_bandwidth_hz)
        return VehicleResult(veh.id, veh.client, result if ul.ok else None, trained=True)

    def finish_round(self, r: int, t0: float, first_span: int, plan, results: list) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        if done:
            yield from self.aggregate_span(r, 2.0 * sum(task.global_state[k].numel() for k in self.trainable) * len(done))
            averaged = aggregate([(self._adapters(x.result.state), x.result.num_samples) for x in done])
            task.global_state = {**task.global_state, **averaged}
        acc, loss = evaluate(task.model, task.global_state, task.test)
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss,
                          device_memory_bytes=self.device_memory_bytes)


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

    def train_on_board(self, r: int, veh: Vehicle) -> Generator:
        task = self.task
        start = {**task.global_state, **self.local.get(veh.client, {})}
        result = self._train(r, veh, start)
        if not (yield from self.sim.compute(r, veh, "compute.train", self.train_flops(veh.client),
                                            self.decision(veh.id).cpu_hz)):
            return VehicleResult(veh.id, veh.client, None, trained=True)
        self.local[veh.client] = self._adapters(result.state)
        return VehicleResult(veh.id, veh.client, result, trained=True)

    def finish_round(self, r: int, t0: float, first_span: int, plan, results: list) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        scores = [evaluate(task.model, {**task.global_state, **self.local[x.client]}, task.test) for x in done]
        acc = statistics.fmean(a for a, _ in scores) if scores else evaluate(task.model, task.global_state, task.test)[0]
        loss = statistics.fmean(b for _, b in scores) if scores else float("nan")
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss,
                          device_memory_bytes=self.device_memory_bytes)
        yield from ()


# ---- split LoRA --------------------------------------------------------------------------------------------
class _SplitLora:
    """Mixin for SplitRounds schemes on an adapted model: the client side is its trainable tensors (the
    adapters of its blocks), which travel as 'lora'; its frozen weights come once (the backbone)."""

    side_payload = "lora"
    round_fields = ("device_memory_bytes",)

    def __init__(self, sim, task, scenario, dwell, on_round=None):
        model = task.model
        adapt(task, scenario.protocol.lora, range(len(getattr(model, "blocks", ()))), sim.streams.seed_for("lora-init"))
        super().__init__(sim, task, scenario, dwell, on_round)
        state = task.global_state
        every = task.model.client_param_names(self.cut)
        frozen = [k for k in every if k not in self.trainable]
        self.backbone = Backbone(self, sum(state[k].numel() * state[k].element_size() for k in frozen))
        x = task.train.x[:task.config.batch_size]
        self.device_memory_bytes = device_memory(model, state, every, lambda: model.forward_stages(x, 0, self.cut))
        model.load_state_dict(state)

    def context(self, cut: int) -> CutContext:
        ctx = super().context(cut)
        trainable = {n for n, p in self.task.model.named_parameters() if p.requires_grad}
        names = [k for k in ctx.client_names if k in trainable]
        if names == ctx.client_names:
            return ctx
        g = self.task.global_state
        ctx = CutContext(cut, ctx.profile, names, [k for k in g if k not in set(names)],
                         sum(g[k].numel() * g[k].element_size() for k in names))
        self._contexts[cut] = ctx
        return ctx

    def snapshot_extra(self, r: int, vehicles) -> dict:
        return self.backbone.extra(vehicles)

    def before_download(self, r: int, veh: Vehicle) -> Generator:
        return (yield from self.backbone.ensure(r, veh, self.link_of(veh.id, "dl")[1]))

    def record_round(self, *args, **extra):
        return super().record_round(*args, device_memory_bytes=self.device_memory_bytes, **extra)


@register_scheme("split_lora", config=SplitLoraConfig, cost=SplitCost(sequential=True), baselines=_others("split_lora"))
class SplitLora(_SplitLora, SplitLearning):
    """SplitLoRA: split learning in turns with adapters on both sides; the client adapters relayed."""


@register_scheme("sflora", config=SfloraConfig, cost=SplitCost(), baselines=_others("sflora"))
class Sflora(_SplitLora, SflV2):
    """SFLora: SplitFed with adapters on both sides; client adapters averaged, one server-side model."""


__all__ = ["FedLora", "LocalLora", "OnBoardCost", "Sflora", "SplitLora"]
