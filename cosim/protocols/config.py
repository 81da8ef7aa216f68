"""The `protocol` section: settings every scheme shares, and those of the split schemes.

Each scheme's own model subclasses `ProtocolConfig` with `scheme: Literal["<name>"]` and adds its keys;
the scenario validates `protocol` as the union of the registered schemes' models, discriminated by
`scheme` (cosim.registry), so a scheme's keys are checked by its own model and unknown keys are rejected.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator

from ..configbase import Frozen, NonNegFloat, PosFloat, PosInt

FULL_PRECISION_BITS = 32


class ProtocolConfig(Frozen):
    """The round skeleton's settings. `selection` and `optimizer` name registered plug-ins (`cosim list`)."""
    scheme: str
    rounds: PosInt = 20
    vehicles_per_round: PosInt = 10
    round_deadline_s: PosFloat = 30.0
    # random, all, dwell (the k longest predicted dwells >= min_dwell_s), dwell_fit (of those, the ones whose
    # predicted round latency fits in their predicted dwell), or a registered rule
    selection: str = "random"
    min_dwell_s: NonNegFloat = 0.0
    dwell_predictor: Literal["kinematic", "history", "route", "oracle"] = "kinematic"
    # the dwell selection ranks: until the vehicle leaves coverage, or until its serving RSU changes (what a
    # transfer survives under rsus.on_handover 'abort'); dwell.csv has both either way
    dwell_definition: Literal["coverage", "serving"] = "coverage"
    start_s: NonNegFloat = 0.0                              # first round starts at or after this time
    round_interval_s: Optional[PosFloat] = None             # a round starts at least this long after the last
    optimizer: str = "baseline"                             # the round's resource allocation

    @field_validator("selection")
    @classmethod
    def _selection(cls, value):
        from .. import registry

        known = registry.selections()
        if value not in known:
            raise ValueError(f"a registered selection rule: one of {', '.join(map(repr, known))}")
        return value

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value, info):
        from .. import registry

        known = registry.optimizers()
        scheme = info.data.get("scheme")
        usable = [n for n, e in known.items() if e.schemes is None or scheme in e.schemes]
        if value not in known:
            raise ValueError(f"a registered optimizer: one of {', '.join(map(repr, usable))}")
        if value not in usable:
            raise ValueError(f"an optimizer for scheme {scheme!r} ({value!r} plans for {', '.join(known[value].schemes)}): "
                             f"one of {', '.join(map(repr, usable))}")
        return value


class SplitConfig(ProtocolConfig):
    """Split schemes cut learning.model at `cut` (a split point, checked when the run is built); each
    selected vehicle trains learning.local_epochs passes over its data per round, or only the first
    batches_per_round batches of them when set. activation_bits: bits per activation element on the
    uplink (32: float32 as is; 1..16: quantized). An optimizer may give vehicles other cuts and bits."""
    cut: Optional[Annotated[int, Field(ge=0)]] = Field(default=None, validate_default=True)
    batches_per_round: Optional[PosInt] = None
    activation_bits: Annotated[int, Field(ge=1, le=32)] = FULL_PRECISION_BITS

    @field_validator("cut")
    @classmethod
    def _cut(cls, value, info):
        if value is None:
            raise ValueError(f"a split point of learning.model (scheme {info.data.get('scheme')!r} cuts the model)")
        return value

    @field_validator("activation_bits")
    @classmethod
    def _bits(cls, value):
        if not (value <= 16 or value == FULL_PRECISION_BITS):
            raise ValueError("1..16 (quantized) or 32 (float32)")
        return value
