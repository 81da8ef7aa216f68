"""What the LoRA fine-tuning schemes share: their adapter settings, and putting the adapters on the task's
pretrained model where a scheme trains.

Hu et al., "LoRA", ICLR 2022: a frozen linear layer W plus (alpha / r) B A, B zero at the start, so the
model starts as pretrained. Only the adapters and the classifier head (`norm`, `head`) train.
"""
from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field

from learning.fl import state_nbytes
from learning.memory import kept_bytes
from learning.models.lora import apply_lora

from ..configbase import Frozen, PosFloat, within
from ..errors import SettingError

Rank = Annotated[int, Field(ge=1, le=256)]
TARGETS = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")


class LoraSettings(Frozen):
    """Adapters of rank `rank` scaled by alpha / rank on `targets` (linear layers of each transformer block)."""
    rank: Rank = 8
    alpha: Annotated[PosFloat, within(high=1e4, why="the update is scaled by alpha / rank; alpha is 8 to 64 in "
                                                   "practice")] = 16.0
    targets: Annotated[list[Literal[TARGETS]], Field(min_length=1)] = list(TARGETS)


class LoraFields(Frozen):
    """The `lora` key every LoRA scheme's settings have (mixed into its ProtocolConfig subclass)."""
    lora: LoraSettings = LoraSettings()


def adapt(task, settings: LoraSettings, blocks, seed: int) -> list[str]:
    """LoRA on `targets` of the task model's `blocks` (indices into model.blocks), everything else frozen but
    the head (the final norm and the classifier); A drawn from `seed`. The task's state, FLOPs, profiles and
    model bytes then follow the adapted model (`LearningTask.adapted`). Returns the trainable names.
    Raises SettingError naming learning.model when the model is no ViT."""
    model = task.model
    if not hasattr(model, "blocks"):
        raise SettingError("learning.model", task.config.model, "a ViT (vit_*): LoRA goes on its transformer blocks")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        names = apply_lora(model, blocks, rank=settings.rank, alpha=settings.alpha, targets=tuple(settings.targets),
                           trainable_prefixes=("norm", "head"))
    task.adapted()
    return names


def device_memory(model, state, names, forward) -> int:
    """What a vehicle holds for one batch: the state entries `names`, what autograd keeps for the backward
    during `forward()`, and its output (learning.memory)."""
    saved, out = kept_bytes(model, forward)
    return state_nbytes({k: state[k] for k in names}) + saved + out


class Backbone:
    """The pretrained weights a vehicle needs on board (its side's frozen part): sent once ('tx.dl', payload
    'model') the first time it takes part, over the bandwidth given (with its share of the RSU's power); kept after."""

    def __init__(self, protocol, nbytes: int):
        self.protocol, self.nbytes = protocol, int(nbytes)
        self.equipped: set[str] = set()

    def extra(self, vehicles) -> dict:
        """Snapshot extra: what each vehicle still has to fetch (the cost models add its airtime)."""
        return {"backbone_bytes": {v.id: self.nbytes for v in vehicles if v.id not in self.equipped}}

    def ensure(self, r: int, veh, bandwidth_hz: float):
        """A generator: True once the vehicle holds the backbone (at once if it already did)."""
        if veh.id in self.equipped:
            return True
        dl = yield from self.protocol.sim.transfer(r, veh, "dl", "model", self.nbytes, None, bandwidth_hz)
        if dl.ok:
            self.equipped.add(veh.id)
        return dl.ok
