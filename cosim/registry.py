"""What a scenario can name: schemes (protocol.scheme), optimizers (protocol.optimizer) and selection
rules (protocol.selection). Each registers itself with a decorator where it is defined; the built-in
ones are imported on first use, a user's by importing their module before the run.

    @register_scheme("my_scheme", config=MyConfig, cost=MyCost())
    class MyScheme(RoundProtocol): ...

    @register_optimizer("my_optimizer", round_fields=("objective",))
    def my_optimizer(snapshot: RoundSnapshot) -> Plan: ...

    @register_selection("my_rule")
    def my_rule(snapshot, rng, plan_for) -> Selection: ...
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Annotated, Callable, Optional, Union

from pydantic import Field, TypeAdapter

# the modules that register the built-in schemes, optimizers and selection rules
_BUILTINS = ("cosim.optimizers.baseline", "cosim.optimizers.selection", "cosim.optimizers.asfl",
             "cosim.optimizers.sflam", "cosim.optimizers.genfv", "cosim.optimizers.st_sflora", "cosim.protocols.fl",
             "cosim.protocols.sl", "cosim.protocols.sfl", "cosim.protocols.asfl", "cosim.protocols.sflam",
             "cosim.protocols.genfv", "cosim.protocols.st_sflora", "cosim.protocols.lora_baselines")


@dataclass(frozen=True)
class SchemeEntry:
    """A scheme: its settings model, its round process, its cost model (what optimizers predict with), and
    the baselines `cosim compare` runs it against: `baselines(scenario) -> {name: ["key=value", ...]}`."""

    name: str
    config: type
    protocol: type
    cost: object
    baselines: Callable[[object], dict[str, list[str]]]
    summary: str


@dataclass(frozen=True)
class OptimizerEntry:
    """An optimizer: `solve(snapshot) -> Plan`, pure; `round_fields` are the `Plan.stats` keys it reports,
    columns of rounds.csv."""

    name: str
    solve: Callable
    round_fields: tuple[str, ...]
    summary: str
    schemes: Optional[tuple[str, ...]] = None      # the schemes it plans for (None: any)


@dataclass(frozen=True)
class SelectionEntry:
    """A selection rule: `select(snapshot, rng, plan_for) -> Selection`."""

    name: str
    select: Callable
    summary: str


_SCHEMES: dict[str, SchemeEntry] = {}
_OPTIMIZERS: dict[str, OptimizerEntry] = {}
_SELECTIONS: dict[str, SelectionEntry] = {}
_version = [0]                      # bumped at each registration: the protocol union is rebuilt then


def _summary(obj) -> str:
    doc = (obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _no_baselines(_scenario) -> dict[str, list[str]]:
    return {}


def _put(table: dict, name: str, entry) -> None:
    old = table.get(name)
    if old is not None and old != entry:
        raise ValueError(f"{name!r} is registered already (by {old!r})")
    table[name] = entry
    _version[0] += 1


def register_scheme(name: str, *, config: type, cost, baselines: Optional[Callable] = None):
    """Class decorator: register a RoundProtocol subclass as protocol.scheme `name`."""
    def deco(cls):
        _put(_SCHEMES, name, SchemeEntry(name, config, cls, cost, baselines or _no_baselines, _summary(cls)))
        return cls
    return deco


def register_optimizer(name: str, *, round_fields: tuple[str, ...] = (), schemes: Optional[tuple[str, ...]] = None):
    """Function decorator: register `solve(snapshot) -> Plan` as protocol.optimizer `name` (for `schemes`
    only, when given: its cost model or decisions are theirs)."""
    def deco(fn):
        _put(_OPTIMIZERS, name, OptimizerEntry(name, fn, tuple(round_fields), _summary(fn),
                                               tuple(schemes) if schemes is not None else None))
        return fn
    return deco


def register_selection(name: str):
    """Function decorator: register `select(snapshot, rng, plan_for) -> Selection` as protocol.selection `name`."""
    def deco(fn):
        _put(_SELECTIONS, name, SelectionEntry(name, fn, _summary(fn)))
        return fn
    return deco


@functools.lru_cache(maxsize=1)
def _load_builtins() -> None:
    for module in _BUILTINS:
        importlib.import_module(module)


def schemes() -> dict[str, SchemeEntry]:
    _load_builtins()
    return dict(_SCHEMES)


def optimizers() -> dict[str, OptimizerEntry]:
    _load_builtins()
    return dict(_OPTIMIZERS)


def selections() -> dict[str, SelectionEntry]:
    _load_builtins()
    return dict(_SELECTIONS)


def scheme(name: str) -> SchemeEntry:
    return schemes()[name]


def optimizer(name: str) -> OptimizerEntry:
    return optimizers()[name]


def selection(name: str) -> SelectionEntry:
    return selections()[name]


def protocol_adapter() -> TypeAdapter:
    """The `protocol` section's validator: the registered schemes' models, discriminated by `scheme`."""
    _load_builtins()
    return _adapter(_version[0])


@functools.lru_cache(maxsize=4)
def _adapter(_version_key: int) -> TypeAdapter:
    configs = tuple(e.config for e in _SCHEMES.values())
    if len(configs) == 1:
        return TypeAdapter(configs[0])
    return TypeAdapter(Annotated[Union[configs], Field(discriminator="scheme")])
