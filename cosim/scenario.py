"""Scenario YAML -> validated, frozen config.

Unknown keys are rejected; every error is one line naming the file, the field path, the bad value
and what was expected. Relative paths in a scenario resolve against the scenario file's folder.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ScenarioError, field_error

PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
PosInt = Annotated[int, Field(gt=0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class HighwayConfig(_Frozen):
    length_m: PosFloat = 3000.0
    lanes: PosInt = 3
    lane_width_m: PosFloat = 3.5
    arrival_rate_hz: NonNegFloat = 0.3
    speed_mean_mps: PosFloat = 25.0
    speed_std_mps: NonNegFloat = 3.0
    speed_min_mps: PosFloat = 16.7
    speed_max_mps: PosFloat = 33.3
    initial_vehicles: Annotated[int, Field(ge=0)] = 10

    @model_validator(mode="after")
    def _speeds(self):
        if self.speed_min_mps > self.speed_max_mps:
            raise ValueError(f"speed_min_mps ({self.speed_min_mps}) <= speed_max_mps ({self.speed_max_mps})")
        return self


class SumoConfig(_Frozen):
    config: Optional[str] = None
    net: Optional[str] = None
    routes: list[str] = []
    backend: Literal["libsumo", "traci"] = "libsumo"
    gui: bool = False
    extra_args: list[str] = []

    @model_validator(mode="after")
    def _files(self):
        if self.config is None and (self.net is None or not self.routes):
            raise ValueError("either config (a .sumocfg) or net and routes")
        return self


class ScriptedVehicleConfig(_Frozen):
    id: str
    x_m: float
    y_m: float = 0.0
    speed_mps: NonNegFloat = 0.0
    heading_deg: float = 0.0
    depart_s: NonNegFloat = 0.0
    arrive_s: Optional[PosFloat] = None


class ScriptedConfig(_Frozen):
    vehicles: Annotated[list[ScriptedVehicleConfig], Field(min_length=1)]


class FcdConfig(_Frozen):
    file: str


class MobilityConfig(_Frozen):
    source: Literal["highway", "scripted", "sumo", "fcd"] = "highway"
    step_s: PosFloat = 1.0
    highway: HighwayConfig = HighwayConfig()
    sumo: Optional[SumoConfig] = None
    fcd: Optional[FcdConfig] = None
    scripted: Optional[ScriptedConfig] = None

    @model_validator(mode="after")
    def _source_section(self):
        if self.source == "scripted" and self.scripted is None:
            raise ValueError("a mobility.scripted section when source is 'scripted'")
        if self.source == "sumo" and self.sumo is None:
            raise ValueError("a mobility.sumo section when source is 'sumo'")
        if self.source == "fcd" and self.fcd is None:
            raise ValueError("a mobility.fcd section when source is 'fcd'")
        return self


class RsuConfig(_Frozen):
    positions_m: Annotated[list[Annotated[list[float], Field(min_length=2, max_length=2)]], Field(min_length=1)] = [
        [500.0, -10.0], [1500.0, -10.0], [2500.0, -10.0]]
    coverage_radius_m: PosFloat = 500.0
    hysteresis_m: NonNegFloat = 0.0


class ChannelConfig(_Frozen):
    model: Literal["seed"] = "seed"
    carrier_hz: PosFloat = 5.9e9
    pathloss_exponent: PosFloat = 2.5
    h0: Optional[PosFloat] = None
    noise_dbm_per_hz: float = -174.0
    noise_figure_db: NonNegFloat = 0.0
    uplink_bandwidth_hz: PosFloat = 20e6
    downlink_bandwidth_hz: PosFloat = 20e6
    vehicle_tx_power_w: PosFloat = 0.2
    rsu_tx_power_w: PosFloat = 1.0
    mtu_bytes: PosInt = 1500
    transfer_mode: Literal["batched", "explicit"] = "batched"


class CpuDeviceConfig(_Frozen):
    cpu_hz: PosFloat = 1.5e9
    flops_per_cycle: PosFloat = 4.0
    kappa: PosFloat = 1e-28


class ServerConfig(_Frozen):
    flops_per_s: PosFloat = 1e12


class DevicesConfig(_Frozen):
    vehicle: CpuDeviceConfig = CpuDeviceConfig()
    server: ServerConfig = ServerConfig()


class PartitionConfig(_Frozen):
    kind: Literal["iid", "dirichlet", "shards"] = "iid"
    alpha: PosFloat = 0.5
    shards_per_client: PosInt = 2


class LearningConfig(_Frozen):
    dataset: Literal["digits"] = "digits"
    image_size: PosInt = 8
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    num_clients: PosInt = 20
    partition: PartitionConfig = PartitionConfig()
    model: Literal["cnn"] = "cnn"
    batch_size: PosInt = 16
    local_epochs: PosInt = 1
    lr: PosFloat = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0


class ProtocolConfig(_Frozen):
    scheme: Literal["fedavg"] = "fedavg"
    rounds: PosInt = 20
    vehicles_per_round: PosInt = 10
    round_deadline_s: PosFloat = 30.0
    selection: Literal["random", "all", "dwell"] = "random"
    min_dwell_s: NonNegFloat = 0.0


class OutputConfig(_Frozen):
    trace_level: Literal["rounds", "spans", "packets"] = "spans"
    csv: bool = False
    plots: bool = False


class Scenario(_Frozen):
    name: str
    seed: Annotated[int, Field(ge=0)] = 0
    duration_s: PosFloat = 3600.0
    mobility: MobilityConfig = MobilityConfig()
    rsus: RsuConfig = RsuConfig()
    channel: ChannelConfig = ChannelConfig()
    devices: DevicesConfig = DevicesConfig()
    learning: LearningConfig = LearningConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    output: OutputConfig = OutputConfig()


class _Loader(yaml.SafeLoader):
    """safe_load, but `5.9e9` and `20e6` are floats (YAML 1.1 wants `5.9e+9`, which surprises people)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def safe_load(text: str):
    """yaml.safe_load with the float rule above."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


# Path fields (dotted) that must name existing files, resolved against the scenario's folder.
_PATH_FIELDS = ("mobility.sumo.config", "mobility.sumo.net", "mobility.sumo.routes", "mobility.fcd.file")


def _expected(err: dict) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "no such key (unknown keys are rejected)"
    if kind == "missing":
        return "a value (field is required)"
    for prefix in ("Input should be ", "Value error, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg[0].lower() + msg[1:]


def _set_path(tree: dict, dotted: str, value: Any, source: str) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ScenarioError([field_error(source, dotted, child, "a mapping to set a sub-key in")])
        node = child
    node[parts[-1]] = value


def parse_overrides(overrides: list[str], source: str = "--set") -> list[tuple[str, Any]]:
    """`a.b=value` strings into (path, YAML-typed value) pairs."""
    out = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ScenarioError([field_error(source, item, item, "key.path=value")])
        try:
            value = safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip(), value))
    return out


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> tuple[Scenario, Path]:
    """Read, override and validate a scenario file; returns (scenario, scenario folder).

    Raises ScenarioError with one line per problem.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ScenarioError([f"{source}: file not found: expected a scenario YAML file"])
    try:
        tree = safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ScenarioError([f"{source}: YAML syntax error at {where}: {problem}"]) from None
    except UnicodeDecodeError:
        raise ScenarioError([f"{source}: not UTF-8 text: expected a YAML file"]) from None
    if tree is None:
        raise ScenarioError([f"{source}: file is empty: expected a mapping with at least `name`"])
    if not isinstance(tree, dict):
        raise ScenarioError([field_error(source, "<top level>", tree, "a mapping of settings")])
    for key, value in parse_overrides(overrides or []):
        _set_path(tree, key, value, source)
    return validate_tree(tree, source), path.parent


def validate_tree(tree: dict, source: str, base_dir: Path | None = None) -> Scenario:
    """Validate an already-parsed mapping; base_dir resolves relative file paths (default: source's folder)."""
    try:
        scenario = Scenario.model_validate(tree)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<top level>"
            if err["type"] == "missing":
                lines.append(f"{source}: {loc}: missing: expected a value (the field is required)")
            else:
                lines.append(field_error(source, loc, err.get("input"), _expected(err)))
        raise ScenarioError(lines) from None
    base = base_dir if base_dir is not None else Path(source).parent
    missing = [field_error(source, field, value, f"an existing file (looked in {base})")
               for field, value in _path_values(scenario) if not (base / value).is_file()]
    if missing:
        raise ScenarioError(missing)
    return scenario


def _path_values(scenario: Scenario):
    for dotted in _PATH_FIELDS:
        node: Any = scenario
        for part in dotted.split("."):
            node = getattr(node, part, None) if node is not None else None
        if node is None:
            continue
        values = node if isinstance(node, list) else [node]
        for i, value in enumerate(values):
            yield (f"{dotted}.{i}" if isinstance(node, list) else dotted), value


def resolve(base_dir: Path, relative: str) -> Path:
    """A scenario path resolved against the scenario's folder."""
    return (base_dir / relative).resolve()


def to_dict(scenario: Scenario) -> dict:
    """The resolved scenario as plain data (for the manifest)."""
    return scenario.model_dump(mode="json")
