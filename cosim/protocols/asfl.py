"""ASFL: adaptive split federated learning, each vehicle with its own cut in the same round.

Qiang et al., "Adaptive and Parallel Split Federated Learning in Vehicular Edge Computing", IEEE IoT-J
12(5), 2025; SCHEMES.md "ASFL". Per round: mobility-based selection (a vehicle takes part when its
predicted round latency fits in its predicted dwell: `dwell_fit`), the optimizer `asfl` decides each
vehicle's cut, power, CPU clock and bandwidth share; the vehicles train in parallel, each server part on
the edge server's GPU queue; at round end each vehicle's client and server halves are one full model, and
the full models are averaged with weights |D_n| (SFL-V1's per-layer average, cosim.protocols.sfl).
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator

from ..configbase import ENERGY_J, ITERATIONS, PosFloat, PosInt
from ..errors import SettingError
from ..optimizers.asfl import BLOCKS
from ..optimizers.costs import SplitCost
from ..registry import register_scheme
from .config import SPLIT_POINT, SplitConfig
from .sfl import SflV1


class AsflConfig(SplitConfig):
    """ASFL's settings: `cut` is where the optimizer starts (and the fixed-cut baselines' cut); `cuts` the
    allowed set E (default: every split point); `energy_budget_j` E_hat per vehicle and round (None:
    unbounded); `blocks` the variables the optimizer adapts (its baselines drop one)."""
    scheme: Literal["asfl"] = "asfl"
    optimizer: str = "asfl"
    selection: str = "dwell_fit"
    cuts: Optional[list[Annotated[PosInt, SPLIT_POINT]]] = Field(default=None, min_length=1)
    energy_budget_j: Optional[Annotated[PosFloat, ENERGY_J]] = None
    blocks: list[Literal[BLOCKS]] = list(BLOCKS)
    bcd_max_iterations: Annotated[PosInt, ITERATIONS] = 20

    @field_validator("cuts")
    @classmethod
    def _sorted(cls, value):
        if value is not None and len(set(value)) != len(value):
            raise ValueError("distinct split points")
        return sorted(value) if value is not None else value


def _asfl_baselines(sc) -> dict[str, list[str]]:
    """What the papers compare ASFL with: fixed cuts (first, middle and last allowed), FedAvg, SL, random
    selection, and the optimizer with one block left at its default (equal shares, maximum power or clock)."""
    from ..task import split_points

    cuts = sc.protocol.cuts or list(split_points(sc.learning))
    out = {f"fixed_cut_{c}": [f"protocol.cuts=[{c}]", f"protocol.cut={c}"]
           for c in dict.fromkeys((cuts[0], cuts[len(cuts) // 2], cuts[-1]))}
    out["fedavg"] = ["protocol.scheme=fedavg"]
    out["sl"] = ["protocol.scheme=sl"]
    out["random_selection"] = ["protocol.selection=random"]
    for name, block in (("equal_bandwidth", "bandwidth"), ("max_power", "power"), ("max_cpu", "cpu")):
        out[name] = [f"protocol.blocks={[b for b in sc.protocol.blocks if b != block]}"]
    return out


@register_scheme("asfl", config=AsflConfig, cost=SplitCost(), baselines=_asfl_baselines)
class Asfl(SflV1):
    """ASFL (Qiang et al. 2025): per-vehicle cuts, powers, CPU clocks and shares; full models averaged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sc = self.scenario
        if sc.devices.vehicle.kind != "cpu":
            raise SettingError("devices.vehicle.kind", sc.devices.vehicle.kind,
                               "'cpu' for scheme 'asfl' (its optimizer sets CPU clocks: t = cycles / f)")
        points = self.task.model.split_points
        for cut in self.proto.cuts or ():
            if cut not in points:
                raise SettingError("protocol.cuts", list(self.proto.cuts),
                                   f"split points of {sc.learning.model}: among {list(points)}")
