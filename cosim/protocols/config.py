"""The `protocol` section: settings every scheme shares, and those of the split schemes.

Each scheme's own model subclasses `ProtocolConfig` with `scheme: Literal["<name>"]` and adds its keys;
the scenario validates `protocol` as the union of the registered schemes' models, discriminated by
`scheme` (cosim.registry), so a scheme's keys are checked by its own model and unknown keys are rejected.
"""
from __future__ import annotations

import difflib
import warnings
from typing import Annotated, Literal, Optional

from pydantic import Field, field_validator

from ..configbase import DAY_S, TIME_S, Frozen, NonNegFloat, PosFloat, PosInt, within

FULL_PRECISION_BITS = 32
# no model has more split points (ResNet-18 has 10, ViT-Base 14)
SPLIT_POINT = within(high=1000, why="no model has 1000 split points")


def _hint(word, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6) if isinstance(word, str) else []
    return f"; did you mean {close[0]!r}?" if close else ""


class SettingWarning(UserWarning):
    """A setting that validates but that a run cannot honour (e.g. more vehicles per round than are covered)."""


def warn_once(owner, key: str, message: str) -> None:
    """warnings.warn(message) the first time `owner` (e.g. a protocol) warns about `key`."""
    done = owner.__dict__.setdefault("_warned", set())
    if key not in done:
        done.add(key)
        warnings.warn(message, SettingWarning, stacklevel=2)  # at the caller's line


class ProtocolConfig(Frozen):
    """The round skeleton's settings. `selection` and `optimizer` name registered plug-ins (`cosim list`)."""
    scheme: str
    rounds: Annotated[PosInt, within(high=100000, why="each round trains and evaluates the model for real")] = 20
    vehicles_per_round: Annotated[PosInt, within(
        high=10000, why="each selected vehicle is simulated, and trains for real, every round")] = 10
    round_deadline_s: Annotated[PosFloat, DAY_S] = 30.0
    # random, all, dwell (the k longest predicted dwells >= min_dwell_s), dwell_fit (of those, the ones whose
    # predicted round latency fits in their predicted dwell), or a registered rule
    selection: str = "random"
    min_dwell_s: Annotated[NonNegFloat, DAY_S] = 0.0
    dwell_predictor: Literal["kinematic", "history", "route", "oracle"] = "kinematic"
    # the dwell selection ranks: until the vehicle leaves coverage, or until its serving RSU changes (what a
    # transfer survives under rsus.on_handover 'abort'); dwell.csv has both either way
    dwell_definition: Literal["coverage", "serving"] = "coverage"
    start_s: Annotated[NonNegFloat, TIME_S] = 0.0           # first round starts at or after this time
    round_interval_s: Optional[Annotated[PosFloat, DAY_S]] = None   # a round starts at least this long after the last
    optimizer: str = "baseline"                             # the round's resource allocation

    @field_validator("selection")
    @classmethod
    def _selection(cls, value):
        from .. import registry

        known = registry.selections()
        if value not in known:
            raise ValueError(f"a registered selection rule: one of {', '.join(map(repr, known))}{_hint(value, known)}")
        return value

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, value, info):
        from .. import registry

        known = registry.optimizers()
        scheme = info.data.get("scheme")
        usable = [n for n, e in known.items() if e.schemes is None or scheme in e.schemes]
        if value not in known:
            raise ValueError(f"a registered optimizer: one of {', '.join(map(repr, usable))}{_hint(value, usable)}")
        if value not in usable:
            raise ValueError(f"an optimizer for scheme {scheme!r} ({value!r} plans for {', '.join(known[value].schemes)}): "
                             f"one of {', '.join(map(repr, usable))}")
        return value


class SplitConfig(ProtocolConfig):
    """Split schemes cut learning.model at `cut` (a split point, checked when the run is built); each
    selected vehicle trains learning.local_epochs passes over its data per round, or only the first
    batches_per_round batches of them when set. activation_bits: bits per activation element on the
    uplink (32: float32 as is; 1..16: quantized). An optimizer may give vehicles other cuts and bits."""
    cut: Optional[Annotated[int, Field(ge=0), SPLIT_POINT]] = Field(default=None, validate_default=True)
    batches_per_round: Optional[Annotated[PosInt, within(high=10**6, why="each batch is trained for real")]] = None
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
