"""ST-SFLora: semantic-aware token selection for split LoRA fine-tuning.

SCHEMES.md "ST-SFLora" (arXiv 2605.26120). The vehicle holds the frozen patch embedding and the first
blocks of a pretrained ViT (protocol.cut); the edge server the rest with LoRA adapters, and the head. Per
round, after selection:
1. each selected vehicle runs its frozen side over its round's samples ('compute.fwd'; no graph, no
   backward) and gets, at its last block, each token's CLS attention (head-averaged, from q_cls and K);
2. it uploads its token importance, the batch-mean CLS attention per token (N float32: 'tx.ul', payload
   'importance'), with its RSU's band shared equally, at maximum power;
3. the server plans each vehicle's token count K, bandwidth and power (optimizer `st_sflora`);
4. each vehicle uploads, batch by batch, [CLS, top-K, merge] per sample (K + 2 tokens; 'tx.ul', payload
   'tokens', sized from the real tensor), and the server steps its adapters and head on each batch as it
   arrives ('server.compute' on the edge server's queue), then `local_epochs - 1` more passes over the
   tokens it received. No model goes down and no gradient comes back.
"""
from __future__ import annotations

import statistics
from typing import Annotated, Generator, Literal, Optional

import simpy
import torch
from pydantic import Field, field_validator

from learning.fl import evaluate
from learning.profile import server_flops_by_length
from learning.split import server_step
from learning.tokens import select_tokens

from ..configbase import ENERGY_J, PosFloat, PosInt, within
from ..optimizers.st_sflora_model import TokenCost, TokenGeometry
from ..registry import register_scheme
from ..world import Vehicle
from .common import VehicleResult
from .config import SplitConfig
from .lora import Backbone, LoraFields, adapt, device_memory
from .sl import SplitRounds, SplitUpdate

IMPORTANCE_BYTES_PER_TOKEN = 4          # one float32 score per patch token


_TOKENS = within(high=100000, unit="tokens", why="more tokens than any image has patches")


class StSfloraConfig(SplitConfig, LoraFields):
    """ST-SFLora's settings. cut: the vehicle runs stages [0, cut) (the embedding and cut - 1 blocks; at least
    one block, whose CLS attention scores the tokens). token_selection `topk` (K from the optimizer, at
    least k_min) or `full` (K = N: every token). energy_budget_j: E_max per vehicle for its token upload
    (None: unbounded). The allocation rules the baselines change: `bandwidth_allocation`, `power_control`,
    `fixed_tokens` (K for every vehicle instead of the closed form)."""
    scheme: Literal["st_sflora"] = "st_sflora"
    optimizer: str = "st_sflora"
    token_selection: Literal["topk", "full"] = "topk"
    k_min: Annotated[PosInt, _TOKENS] = 16
    fixed_tokens: Optional[Annotated[PosInt, _TOKENS]] = None
    energy_budget_j: Optional[Annotated[PosFloat, ENERGY_J]] = None
    power_control: Literal["bisection", "max"] = "bisection"
    bandwidth_allocation: Literal["bisection", "equal"] = "bisection"
    max_iterations: Annotated[int, Field(ge=1, le=1000)] = 20

    @field_validator("cut")
    @classmethod
    def _a_block(cls, value):
        if value is not None and value < 2:
            raise ValueError("at least 2 (the patch embedding and one block, whose CLS attention scores the tokens)")
        return value


def _baselines(sc) -> dict[str, list[str]]:
    """The lecture's table: LoRA on the whole model locally (local_lora) or federated (fed_lora), split
    LoRA in turns (split_lora) or SplitFed (sflora), and ST-SFLora sending every token (st_sflora_full, with
    no energy budget, as in the lecture; st_sflora_full_budget under the scenario's: the vehicles that
    cannot send every token within it are left out)."""
    out = {name: [f"protocol.scheme={name}"] for name in ("local_lora", "fed_lora", "split_lora", "sflora")}
    out["st_sflora_full"] = ["protocol.token_selection=full", "protocol.energy_budget_j=null"]
    out["st_sflora_full_budget"] = ["protocol.token_selection=full"]
    return out


@register_scheme("st_sflora", config=StSfloraConfig, cost=TokenCost(), baselines=_baselines)
class StSflora(SplitRounds):
    """ST-SFLora (arXiv 2605.26120): frozen client, importance up, planned top-K tokens up, server LoRA."""

    frozen_client = True
    round_fields = ("k_eval", "accuracy_all_tokens", "device_memory_bytes")

    def __init__(self, sim, task, scenario, dwell, on_round=None):
        proto, model = scenario.protocol, task.model
        adapt(task, proto.lora, range(proto.cut - 1, getattr(model, "depth", 0)), sim.streams.seed_for("lora-init"))
        super().__init__(sim, task, scenario, dwell, on_round)
        self.num_patches, self.dim = model.num_patches, model.embed_dim
        self.geometry = TokenGeometry(self.num_patches, self.dim, 32,
                                      server_flops_by_length(model, proto.cut, self.dim))
        self.backbone = Backbone(self, self.context(self.cut).frozen_bytes)     # the whole client side
        self.device_memory_bytes = self._device_memory()
        self._held: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._importance: dict[str, list[float]] = {}

    def _device_memory(self) -> int:
        """The vehicle's frozen side and one batch's output tokens (no graph is kept: it runs no backward)."""
        model, x = self.task.model, self.task.train.x[:self.task.config.batch_size]
        with torch.no_grad():
            return device_memory(model, self.task.global_state, self.context(self.cut).frozen_names,
                                 lambda: model.forward_tokens(x, self.cut)[0])

    # ---- before the plan: the frozen side's forward and the importance upload ------------------------
    def prepare(self, r: int, vehicles: list[Vehicle]) -> Generator:
        self._held, self._importance = {}, {}
        left = max(self.proto.round_deadline_s - (self.sim.env.now - self._t0), 0.0)
        return (yield from self.each_vehicle(vehicles, lambda v, sharing: self._score(r, v, sharing), left))

    def _score(self, r: int, veh: Vehicle, sharing: int) -> Generator:
        """The vehicle's tokens and their CLS attention over its round's samples ('compute.fwd'), and the
        batch-mean attention per token up ('tx.ul', payload 'importance', an equal share at maximum power)."""
        sim, ch = self.sim, self.ch
        if not (yield from self.backbone.ensure(r, veh, self.ch.downlink_bandwidth_hz / sharing)):
            return False
        data = self.task.client_data(veh.client)
        with torch.no_grad():
            tokens, scores = self.task.model.forward_tokens(data.x, self.cut)
        if not (yield from sim.compute(r, veh, "compute.fwd", self.profile.client_fwd_flops * len(data))):
            return False
        importance = scores.mean(dim=0)
        up = yield from sim.transfer(r, veh, "ul", "importance", importance.numel() * IMPORTANCE_BYTES_PER_TOKEN,
                                     ch.vehicle_tx_power_w, ch.uplink_bandwidth_hz / sharing)
        if up.ok:
            self._held[veh.id] = (tokens, scores)
            self._importance[veh.id] = importance.tolist()
        return up.ok

    def snapshot_extra(self, r: int, vehicles) -> dict:
        return {"token_geometry": self.geometry.to_mapping(),
                "importance": {v.id: self._importance[v.id] for v in vehicles if v.id in self._importance}}

    # ---- the planned part: tokens up, the server's LoRA steps -----------------------------------------
    def start_round(self, r: int, plan) -> list[simpy.Process]:
        self.task.model.train()
        world = self.sim.world
        return [self.sim.spawn(self._vehicle(r, world.vehicles[vid])) for vid in plan.selected]

    def _vehicle(self, r: int, veh: Vehicle) -> Generator:
        """Each batch's [CLS, top-K, merge] up, back to back; the server steps on each as it arrives, then the
        further epochs on the tokens it holds."""
        sim, env = self.sim, self.sim.env
        tokens, scores = self._held.pop(veh.id)
        k = self.decision(veh.id).tokens
        k = self.num_patches if k is None else int(k)
        data = self.task.client_data(veh.client)
        epoch = -(-len(data) // self.task.config.batch_size)
        batches = list(self.batches(r, veh.client, len(data)))
        received: dict[int, torch.Tensor] = {}            # sample -> its tokens as sent
        steps: list[simpy.Process] = []
        ok = True
        for idx in batches[:epoch]:
            sent = select_tokens(tokens[idx], scores[idx], k).tokens
            up = yield from sim.transfer(r, veh, "ul", "tokens", sent.numel() * sent.element_size(),
                                         *self.link_of(veh.id, "ul"))
            if not up.ok:
                ok = False
                break
            received.update(zip(idx.tolist(), sent))
            steps.append(sim.spawn(self._server(r, veh, sent, data.y[idx])))
        if steps:
            try:
                yield simpy.AllOf(env, steps)
            except simpy.Interrupt as intr:           # the deadline (or the run's end): stop the server's work too
                for p in steps:
                    if p.is_alive:
                        p.interrupt(intr.cause)
                yield simpy.AllOf(env, steps)
                ok = False
        ok = ok and all(p.value for p in steps)
        for idx in batches[epoch:] if ok else []:           # further epochs: the server on what it holds
            if not (yield from self._server(r, veh, torch.stack([received[i] for i in idx.tolist()]), data.y[idx])):
                ok = False
                break
        result = SplitUpdate({}, self.task.client_size(veh.client)) if ok else None
        return VehicleResult(veh.id, veh.client, result, trained=bool(steps))

    def _server(self, r: int, veh: Vehicle, sent: torch.Tensor, y: torch.Tensor) -> Generator:
        """One step of the server's adapters and head on a batch of tokens, on the edge server's queue."""
        flops = self.geometry.flops_at(sent.shape[1]) * len(y)
        model, cut, opt = self.task.model, self.cut, self.server_opt
        ok, _ = yield from self.edge.compute(r, veh.id, flops, lambda: server_step(model, cut, sent, y, opt))
        return ok

    def finish_round(self, r: int, t0: float, first_span: int, plan, results: list) -> Generator:
        task = self.task
        done = [x for x in results if x.result is not None]
        task.global_state = self.merged_state(self.shared_server_part())
        ks = [plan.decisions[v].tokens or self.num_patches for v in plan.selected]
        k_eval = int(round(statistics.median(ks))) if ks else self.num_patches
        acc, loss = self.evaluate_tokens(k_eval)
        acc_all, _ = evaluate(task.model, task.global_state, task.test)
        self.record_round(r, t0, first_span, plan, results, len(done), acc, loss, k_eval=k_eval,
                          accuracy_all_tokens=acc_all, device_memory_bytes=self.device_memory_bytes)
        yield from ()

    def outputs(self) -> dict[str, str]:
        """kept_patches.json: the first test images of each class up to 6, and the patches the final model's
        top-K keeps on each (K: the last round's k_eval); `cosim plot` draws it."""
        import json

        task, k = self.task, int(self.rounds[-1]["k_eval"])
        test = task.test
        first = {}
        for i, y in enumerate(test.y.tolist()):
            first.setdefault(y, i)
        picks = sorted(first.values())[:6]
        model = task.model
        model.load_state_dict(task.global_state)
        with torch.no_grad():
            tokens, scores = model.forward_tokens(test.x[picks], self.cut)
            kept = select_tokens(tokens, scores, k).kept
        images = [{"label": int(test.y[i]), "kept": kept[j].tolist(),
                   "pixels": [[round(float(v), 3) for v in row] for row in test.x[i].mean(0)]}
                  for j, i in enumerate(picks)]
        patch = test.x.shape[-1] // int(round(self.num_patches ** 0.5))
        return {"kept_patches.json": json.dumps({"scheme": self.proto.scheme + ("" if self.proto.token_selection == "topk"
                                                                               else " (full)"),
                                                 "k": k, "patch_size": patch, "images": images}) + "\n"}

    def evaluate_tokens(self, k: int) -> tuple[float, float]:
        """(accuracy, mean loss) on the test set through the split with top-`k` token selection (as the
        scheme would serve it)."""
        model, cut = self.task.model, self.cut

        def forward(x):
            tokens, scores = model.forward_tokens(x, cut)
            return model.forward_stages(select_tokens(tokens, scores, k).tokens, cut, model.num_stages)

        return evaluate(model, self.task.global_state, self.task.test, forward=forward)
