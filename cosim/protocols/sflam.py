"""SFLAM: split federated learning with adaptive activation quantization over assigned subchannels.

SCHEMES.md "SFLAM" (arXiv 2504.09114, IEEE TMC 2026). SplitFed with a ViT whose vehicle side is the patch
embedding (protocol.cut 1; more blocks with a larger cut). Per round: the optimizer `sflam` gives each
selected vehicle an orthogonal subchannel of its RSU (channel.subchannels), a transmit power and the bits
q of its activations; each vehicle's activations go up quantized to q bits (uniform, per-tensor scale and
zero point, straight-through gradient; stochastic rounding optional, from the named stream 'quantize'),
and the gradient comes back at gradient_bits; the wire carries the quantized tensor with its header. The
server side is one shared model stepped in arrival order (SFL-V2), the vehicles' embeddings are averaged
with weights |D_n|.
"""
from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional

import torch
from pydantic import Field, field_validator

from ..configbase import DAY_S, ITERATIONS, Frozen, PosFloat, PosInt, within
from ..errors import SettingError
from ..optimizers.costs import SplitCost
from ..optimizers.baseline import assemble
from ..optimizers.sflam import bit_levels
from ..optimizers.sflam_model import AccuracyCurve, SflamDecision
from ..registry import register_scheme
from ..wire import QuantizingCodec
from .config import FULL_PRECISION_BITS, SplitConfig
from .sfl import SflV2

CALIBRATION_FORMAT = "cosim.quant-calibration/1"     # what cosim.calibrate writes

Bits = Annotated[int, Field(ge=1, le=32)]


_CURVE = within(-1e6, 1e6, why="an accuracy curve's coefficients are of order 1")


class AccuracyCurveConfig(Frozen):
    """O(q) = a (1 - exp(-b q)) + c, as `cosim calibrate quant` fits it."""
    a: Annotated[float, _CURVE]
    b: Annotated[float, _CURVE]
    c: Annotated[float, _CURVE]


def _supported(bits: int) -> bool:
    return bits <= 16 or bits == FULL_PRECISION_BITS


class SflamConfig(SplitConfig):
    """SFLAM's settings. Bit levels: the integers in [bits_min, bits_max] the quantizer has (1..16, and 32:
    float32 as is). The accuracy curve: inline (`accuracy_model`) or the file `cosim calibrate quant`
    writes (`accuracy_model_file`, relative to the scenario). max_latency_s: T_max (None: the round
    deadline). The allocation rules the baselines change: `assignment`, `power_control`."""
    scheme: Literal["sflam"] = "sflam"
    optimizer: str = "sflam"
    cut: Annotated[int, Field(ge=0)] = 1
    bits_min: Bits = 2
    bits_max: Bits = 16
    gradient_bits: Bits = FULL_PRECISION_BITS
    stochastic_rounding: bool = False
    accuracy_model: Optional[AccuracyCurveConfig] = None
    accuracy_model_file: Optional[str] = Field(default=None, validate_default=True)
    max_latency_s: Optional[Annotated[PosFloat, DAY_S]] = None
    assignment: Literal["optimal", "random"] = "optimal"
    assignment_solver: Literal["lp", "exact"] = "exact"
    power_control: Literal["sca", "max"] = "sca"
    max_iterations: Annotated[PosInt, ITERATIONS] = 20

    @field_validator("bits_min", "bits_max", "gradient_bits")
    @classmethod
    def _supported_bits(cls, value):
        if not _supported(value):
            raise ValueError("1..16 (quantized) or 32 (float32)")
        return value

    @field_validator("bits_max")
    @classmethod
    def _range(cls, value, info):
        low = info.data.get("bits_min")
        if low is not None and value < low:
            raise ValueError(f"at least bits_min ({low})")
        return value

    @field_validator("accuracy_model_file")
    @classmethod
    def _one_curve(cls, value, info):
        if (info.data.get("accuracy_model") is None) == (value is None):
            raise ValueError("exactly one of accuracy_model ({a, b, c}) and accuracy_model_file (the fit "
                             "`cosim calibrate quant` writes)")
        return value

    @property
    def bit_levels(self) -> list[int]:
        return bit_levels(self.bits_min, self.bits_max).tolist()


def read_calibration(path) -> dict:
    """The fit {a, b, c} (and its data) of a `cosim calibrate quant` file; ValueError when it is not one."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"a readable JSON file ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"a calibration file with format {CALIBRATION_FORMAT!r} (`cosim calibrate quant` writes one)")
    AccuracyCurve.from_mapping(data)
    return data


def _sflam_baselines(sc) -> dict[str, list[str]]:
    """What the lecture compares SFLAM with: fixed activation bits (32, 8, 4) with the same assignment and
    power control, a random subchannel assignment, and every vehicle at maximum power."""
    out = {name: [f"protocol.bits_min={q}", f"protocol.bits_max={q}"]
           for name, q in (("fp32", 32), ("bits_8", 8), ("bits_4", 4))}
    out["random_assignment"] = ["protocol.assignment=random"]
    out["max_power"] = ["protocol.power_control=max"]
    return out


@register_scheme("sflam", config=SflamConfig, cost=SplitCost(codec=QuantizingCodec()), baselines=_sflam_baselines)
class Sflam(SflV2):
    """SFLAM (arXiv 2504.09114): per-vehicle subchannel, power and activation bits; quantized split uplink."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        sc, proto = self.scenario, self.proto
        if proto.optimizer == "sflam" and sc.channel.subchannels.count == 0:
            raise SettingError("channel.subchannels.count", 0,
                               "at least 1 for optimizer 'sflam' (it assigns each vehicle one subchannel)")
        if proto.accuracy_model is not None:
            self.curve = proto.accuracy_model.model_dump()
        else:
            try:
                fit = read_calibration(sc.path(proto.accuracy_model_file))
            except ValueError as exc:
                raise SettingError("protocol.accuracy_model_file", proto.accuracy_model_file, str(exc)) from None
            self.curve = {k: float(fit[k]) for k in ("a", "b", "c")}
        self._codes: dict[str, int] = {}

    def solve(self, snap, label: str = ""):
        """The optimizer's plan; one with plain Decisions (the baseline's) gets SflamDecisions carrying
        protocol.gradient_bits, and their costs again, so prediction and timeline send the same bytes."""
        plan = super().solve(snap, label)
        if all(isinstance(d, SflamDecision) for d in plan.decisions.values()):
            return plan
        decisions = {v: SflamDecision(**dataclasses.asdict(d), gradient_bits=self.proto.gradient_bits)
                     for v, d in plan.decisions.items()}
        costs = {v: self.cost_model.cost(snap, snap.candidate(v), decisions[v]) for v in plan.selected}
        return assemble(list(plan.selected), decisions, costs, self.cost_model.sequential, plan.round, plan.stats)

    def snapshot_extra(self, r: int, vehicles) -> dict:
        return {"accuracy_model": dict(self.curve)}

    def start_round(self, r: int, plan):
        self._codes = {}
        return super().start_round(r, plan)

    def rounding(self, r: int, veh, stream: str) -> Optional[torch.Generator]:
        """Stochastic rounding's draws (protocol.stochastic_rounding): a generator per (round, vehicle, call)
        of the named stream."""
        if not self.proto.stochastic_rounding:
            return None
        key = f"{stream}/{veh.id}"
        n = self._codes.get(key, 0)
        self._codes[key] = n + 1
        return torch.Generator().manual_seed(self.sim.streams.seed_for(stream, r, veh.client, n))
