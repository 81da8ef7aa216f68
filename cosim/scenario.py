"""Scenario YAML -> validated, frozen config.

Unknown keys are rejected; every error is one line naming the file, the field path, the bad value
and what was expected. Relative paths in a scenario resolve against the scenario file's folder.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import Field, PrivateAttr, SerializeAsAny, ValidationError, field_validator, model_validator

from channel.link import RSU_NOISE_FIGURE_DB, VEHICLE_NOISE_FIGURE_DB
from channel.models import BUILDING_MODELS, MODELS
from channel.shadowing import SHADOWING
from channel.v2v import DEFAULT_ANTENNA_HEIGHT_M, RSU_ANTENNA_HEIGHT_M

from .configbase import Frozen as _Frozen
from .configbase import NonNegFloat, PosFloat, PosInt
from .errors import ScenarioError, field_error
from .protocols.config import ProtocolConfig


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
    additional: list[str] = []
    backend: Literal["libsumo", "traci"] = "libsumo"
    gui: bool = False
    seed: Optional[Annotated[int, Field(ge=0)]] = None      # default: the scenario's seed
    begin_s: NonNegFloat = 0.0          # SUMO's begin (as --begin: departures before it are dropped, as in SUMO)
    warmup_s: NonNegFloat = 0.0         # SUMO runs this long before simulated t = 0, so traffic has built up
    extra_args: list[str] = []

    @model_validator(mode="after")
    def _files(self):
        if self.config is None and (self.net is None or not self.routes):
            raise ValueError("either config (a .sumocfg) or net and routes")
        if self.config is not None and (self.net is not None or self.routes or self.additional):
            raise ValueError("config alone (list net and routes inside the .sumocfg), or net and routes")
        if self.gui and self.backend != "traci":
            raise ValueError("backend 'traci' when gui is true")
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
    begin_s: NonNegFloat = 0.0                              # FCD time at simulated t = 0


class MobilityConfig(_Frozen):
    source: Literal["highway", "scripted", "sumo", "fcd"] = "highway"
    step_s: PosFloat = 1.0
    highway: HighwayConfig = HighwayConfig()
    sumo: Optional[SumoConfig] = None
    fcd: Optional[FcdConfig] = None
    scripted: Optional[ScriptedConfig] = None

    @field_validator("step_s")
    @classmethod
    def _sumo_resolution(cls, value, info):
        if info.data.get("source") == "sumo" and abs(value * 1000.0 - round(value * 1000.0)) > 1e-6:
            raise ValueError("a multiple of 0.001 s with source 'sumo' (SUMO's time resolution)")
        return value

    @model_validator(mode="after")
    def _source_section(self):
        if self.source == "scripted" and self.scripted is None:
            raise ValueError("a mobility.scripted section when source is 'scripted'")
        if self.source == "sumo" and self.sumo is None:
            raise ValueError("a mobility.sumo section when source is 'sumo'")
        if self.source == "fcd" and self.fcd is None:
            raise ValueError("a mobility.fcd section when source is 'fcd'")
        return self


class RsuPlacementConfig(_Frozen):
    """RSUs every spacing_m along road edges (default: the net's longest path over roads passenger cars may
    use); needs a SUMO net."""

    spacing_m: PosFloat
    edges: Optional[Annotated[list[str], Field(min_length=1)]] = None

    @field_validator("edges", mode="before")
    @classmethod
    def _numeric_ids(cls, value):
        """OSM edge ids are often numbers, which YAML and --set read as ints: they are ids all the same."""
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value
    first_m: Optional[NonNegFloat] = None
    lateral_offset_m: float = 0.0


DEFAULT_RSU_POSITIONS_M = [[500.0, -10.0], [1500.0, -10.0], [2500.0, -10.0]]


class RsuConfig(_Frozen):
    positions_m: Optional[Annotated[list[Annotated[list[float], Field(min_length=2, max_length=2)]],
                                    Field(min_length=1)]] = None
    placement: Optional[RsuPlacementConfig] = None
    coverage_radius_m: PosFloat = 500.0
    antenna_height_m: PosFloat = RSU_ANTENNA_HEIGHT_M                # TR 37.885's RSU height
    hysteresis_m: NonNegFloat = 0.0                         # 'nearest': keep the RSU unless this much farther
    association: Literal["nearest", "strongest"] = "nearest"
    hysteresis_db: NonNegFloat = 0.0                        # association 'strongest': keep it unless this much weaker
    on_handover: Literal["abort", "continue"] = "abort"     # a transfer in flight when its RSU changes
    handover_delay_s: NonNegFloat = 0.05                    # with 'continue': silence before the new RSU

    @model_validator(mode="after")
    def _one_layout(self):
        if self.positions_m is not None and self.placement is not None:
            raise ValueError("either positions_m or placement, not both")
        return self


class ShadowingConfig(_Frozen):
    """Log-normal shadowing per link, correlated along the distance its vehicle travels (off by default)."""
    enabled: bool = False
    sigma_db: Optional[NonNegFloat] = None        # None: channel.shadowing.SHADOWING for the model and LOS state
    decorrelation_m: Optional[PosFloat] = None    # None: likewise


class FadingConfig(_Frozen):
    """Small-scale fading: a faded rate per packet attempt, or the ergodic rate (no draws)."""
    kind: Literal["none", "rayleigh", "rician"] = "none"
    k_factor: Optional[NonNegFloat] = None        # linear Rician K; required for kind 'rician' only
    mode: Literal["per_packet", "ergodic"] = "per_packet"
    outage_snr_db: Optional[float] = None         # None: the CQI-1 threshold of channel.rate (at target_ber)

    @model_validator(mode="after")
    def _k_factor(self):
        if self.kind == "rician" and self.k_factor is None:
            raise ValueError("k_factor (linear, >= 0) when kind is 'rician'")
        if self.kind != "rician" and self.k_factor is not None:
            raise ValueError(f"no k_factor unless kind is 'rician' (kind is {self.kind!r})")
        return self


class PerConfig(_Frozen):
    """Packet errors (channel.per): 'auto' is the BLER of the MCS in use under rate_mode 'mcs' and none under
    'shannon'; 'mcs' says so explicitly (rate_mode 'mcs' only); 'waterfall' is a margin model for Shannon
    rates (defaults: Liu, Zhou, Giannakis 2004, Table I mode 2)."""
    model: Literal["auto", "mcs", "waterfall"] = "auto"
    waterfall_a: PosFloat = 90.2514
    waterfall_g: PosFloat = 3.4998
    waterfall_snr_threshold_db: float = 1.0942
    reference_bits: PosInt = 1080


class InterferenceConfig(_Frozen):
    """Co-channel interference from the other RSUs' cells (reuse 1), evaluated per tick."""
    enabled: bool = False
    activity: Annotated[float, Field(ge=0, le=1)] = 1.0   # fraction of time an interferer transmits


class SubchannelConfig(_Frozen):
    """Each RSU's band (per direction) as `count` orthogonal subchannels of band / count (0: not divided); a
    vehicle a scheme assigns to subchannel m sends over it at gain path_gain x its block fading there:
    an independent unit-mean power gain per vehicle, subchannel and round (Rayleigh, or Rician with
    k_factor), drawn from the run's channel stream. The downlink uses the same subchannel (TDD)."""
    count: Annotated[int, Field(ge=0, le=4096)] = 0
    fading: Literal["rayleigh", "rician"] = "rayleigh"
    k_factor: Optional[NonNegFloat] = None        # linear Rician K; required for fading 'rician' only

    @model_validator(mode="after")
    def _k_factor(self):
        if (self.fading == "rician") != (self.k_factor is not None):
            raise ValueError("k_factor (linear, >= 0) exactly when fading is 'rician'")
        return self


_MODEL_NAMES = tuple(MODELS)
# model parameters a scenario may set (the rest are either fields of their own or per-link state)
_STATE_OR_FIELD = {"h0", "gamma", "los", "building_nlos", "blockage_z", "tx_height_m", "rx_height_m", "bs_height_m",
                   "ut_height_m"}
_SCENARIO_MODEL_PARAMS = {name: sorted(set(m.params) - _STATE_OR_FIELD) for name, m in MODELS.items()}


def _only_known(value: dict, allowed, what: str, model) -> dict:
    """`value` if its keys are among `allowed` (the `what` of `model`), else a ValueError naming the rest."""
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        among = f"among {list(allowed)}" if allowed else "(it has none)"
        raise ValueError(f"{what} of model {model!r} {among}; unknown: {unknown}")
    return value


class ChannelConfig(_Frozen):
    model: Literal[_MODEL_NAMES] = "seed"     # any of channel.models.MODELS
    model_params: dict[str, float] = {}       # extra parameters of the model, e.g. blocker_height_m
    carrier_hz: PosFloat = 5.9e9
    pathloss_exponent: PosFloat = 2.5         # the seed model's gamma
    h0: Optional[PosFloat] = None             # the seed model's gain at 1 m (None: free space)
    noise_dbm_per_hz: float = -174.0
    rsu_noise_figure_db: NonNegFloat = RSU_NOISE_FIGURE_DB            # the uplink's receiver
    vehicle_noise_figure_db: NonNegFloat = VEHICLE_NOISE_FIGURE_DB    # the downlink's receiver
    vehicle_antenna_height_m: PosFloat = DEFAULT_ANTENNA_HEIGHT_M
    los_correlation_m: Optional[PosFloat] = None  # the LOS state's; None: channel.conditions.LOS_CORRELATION_M
    buildings: Optional[str] = None           # a SUMO .poly.xml: links through a building are NLOS
    uplink_bandwidth_hz: PosFloat = 20e6
    downlink_bandwidth_hz: PosFloat = 20e6
    vehicle_tx_power_w: PosFloat = 0.2                  # the maximum
    # the lowest an optimizer may set; None: 0.01 W (SCHEMES.md: p in [0.01, 0.2] W), or the maximum if lower
    vehicle_min_tx_power_w: Optional[PosFloat] = None
    rsu_tx_power_w: PosFloat = 1.0
    vehicle_antenna_gain_dbi: float = 0.0
    rsu_antenna_gain_dbi: float = 0.0
    mtu_bytes: PosInt = 1500
    transfer_mode: Literal["batched", "explicit"] = "batched"
    rate_mode: Literal["shannon", "mcs"] = "shannon"
    target_ber: Annotated[float, Field(gt=0, lt=0.2)] = 5e-5   # MCS choice (SNR gap), see channel.rate
    shadowing: ShadowingConfig = ShadowingConfig()
    fading: FadingConfig = FadingConfig()
    per: PerConfig = PerConfig()
    max_retransmissions: Annotated[int, Field(ge=0)] = 3   # ARQ limit: a packet gets 1 + this many attempts
    # a packet that fails them all: abort the transfer ('arq-limit'), or resend it and the rest as a new
    # transfer (a higher layer's retransmission, e.g. RLC AM or TCP), traced as a span of its own
    on_arq_limit: Literal["abort", "resend"] = "abort"
    interference: InterferenceConfig = InterferenceConfig()
    subchannels: SubchannelConfig = SubchannelConfig()
    work_conserving: bool = False             # a finished transfer's band goes to the others at its RSU

    @field_validator("vehicle_min_tx_power_w")
    @classmethod
    def _power_range(cls, value, info):
        top = info.data.get("vehicle_tx_power_w")
        if value is not None and top is not None and value > top:
            raise ValueError(f"at most vehicle_tx_power_w ({top:g} W)")
        return value

    @field_validator("model_params")
    @classmethod
    def _model_params(cls, value, info):
        model = info.data.get("model")
        return _only_known(value, _SCENARIO_MODEL_PARAMS.get(model, []), "parameters", model)

    @field_validator("shadowing")
    @classmethod
    def _shadowing_defaults(cls, value, info):
        model = info.data.get("model")
        if value.enabled and (value.sigma_db is None or value.decorrelation_m is None):
            if not any(m == model for m, _ in SHADOWING):
                raise ValueError(f"sigma_db and decorrelation_m: model {model!r} has no table defaults "
                                 f"(channel.shadowing.SHADOWING)")
        return value

    @field_validator("buildings")
    @classmethod
    def _building_model(cls, value, info):
        model = info.data.get("model")
        if value is not None and model not in BUILDING_MODELS:
            raise ValueError(f"model in {list(BUILDING_MODELS)} (the ones with a building-NLOS formula), "
                             f"model is {model!r}")
        return value

    @field_validator("per")
    @classmethod
    def _per_matches_rate(cls, value, info):
        rate_mode = info.data.get("rate_mode")
        if value.model == "mcs" and rate_mode != "mcs":
            raise ValueError(f"rate_mode 'mcs' for per.model 'mcs' (the BLER of the MCS in use), rate_mode is "
                             f"{rate_mode!r}: use 'auto' (no packet errors at Shannon rates) or 'waterfall'")
        if value.model == "waterfall" and rate_mode == "mcs":
            raise ValueError("per.model 'auto' or 'mcs' under rate_mode 'mcs' (a packet's errors follow the BLER "
                             "of its MCS), not 'waterfall'")
        return value

    @property
    def per_model(self) -> str:
        """The packet error model in effect: 'mcs', 'waterfall' or 'none'."""
        if self.per.model == "auto":
            return "mcs" if self.rate_mode == "mcs" else "none"
        return self.per.model

    @field_validator("fading")
    @classmethod
    def _ergodic_shannon(cls, value, info):
        if value.mode == "ergodic" and value.kind != "none" and info.data.get("rate_mode") != "shannon":
            raise ValueError("mode 'per_packet' with rate_mode 'mcs' (the ergodic rate is Shannon's)")
        return value


def min_tx_power_w(channel: ChannelConfig) -> float:
    """The lowest vehicle transmit power an optimizer may set."""
    if channel.vehicle_min_tx_power_w is not None:
        return channel.vehicle_min_tx_power_w
    return min(0.01, channel.vehicle_tx_power_w)


class BackhaulLinkConfig(_Frozen):
    """One wired link between two nodes: 'server', an RSU id ('rsu0', ...) or a router name."""
    a: str
    b: str
    latency_s: NonNegFloat = 1e-3
    capacity_bps: PosFloat = 1e9


class BackhaulConfig(_Frozen):
    """Wired RSU-to-edge-server network (cosim.backhaul). Disabled by default (the seed papers have none)."""
    enabled: bool = False
    latency_s: NonNegFloat = 1e-3      # per link of the default star (one hop per RSU)
    capacity_bps: PosFloat = 1e9       # likewise
    links: list[BackhaulLinkConfig] = []   # empty: the star; else the whole graph


class GpuDeviceConfig(_Frozen):
    """A vehicle GPU (SCHEMES.md, common system model): per compute call of b samples
    t = t0_s + c1 b theta_mem / f_mem_hz + c2 b theta_core / f_core_hz [s], E = p_cp_w t [J].

    theta_mem and theta_core (cycles per sample) come from the FLOPs measured on the real model:
    theta = measured FLOPs per sample x *_cycles_per_flop.
    """
    t0_s: NonNegFloat = 1e-3                       # fixed time per compute call (launch, sync) [s]
    c1: NonNegFloat = 1.0                          # memory-term coefficient [-]
    c2: NonNegFloat = 1.0                          # core-term coefficient [-]
    mem_cycles_per_flop: NonNegFloat = 1.0 / 256   # theta_mem / FLOPs per sample [cycles/FLOP]
    core_cycles_per_flop: NonNegFloat = 1.0 / 512  # theta_core / FLOPs per sample [cycles/FLOP] (256 cores, FMA)
    f_mem_hz: PosFloat = 1.6e9                     # memory clock [Hz]
    f_core_hz: PosFloat = 1.3e9                    # core clock [Hz]
    p_cp_w: PosFloat = 10.0                        # power while computing [W]


_DEVICE_RANGES = {"cpu": ("cpu_hz", "flops_per_cycle", "kappa"), "gpu": ("f_core_hz", "f_mem_hz", "p_cp_w", "t0_s")}


class CpuDeviceConfig(_Frozen):
    """A vehicle's compute device: kind 'cpu' (t = FLOPs / flops_per_cycle / cpu_hz, E = kappa cycles f^2)
    or 'gpu' (the `gpu` section). `ranges` draws fields per vehicle, uniformly in [low, high] (e.g.
    {cpu_hz: [1.0e9, 2.0e9]}, the seed papers' CPUs); `min_cpu_hz` is the lowest clock (CPU, or GPU core) an
    optimizer may set (None: each vehicle runs at its own clock)."""
    kind: Literal["cpu", "gpu"] = "cpu"
    cpu_hz: PosFloat = 1.5e9
    flops_per_cycle: PosFloat = 4.0
    kappa: PosFloat = 1e-28
    gpu: GpuDeviceConfig = GpuDeviceConfig()
    ranges: dict[str, Annotated[list[PosFloat], Field(min_length=2, max_length=2)]] = {}
    min_cpu_hz: Optional[PosFloat] = None

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, value, info):
        kind = info.data.get("kind", "cpu")
        _only_known(value, _DEVICE_RANGES.get(kind, ()), "fields drawn per vehicle", kind)
        for key, (lo, hi) in value.items():
            if lo > hi:
                raise ValueError(f"[low, high] with low <= high for {key} (got [{lo}, {hi}])")
        return value

    @model_validator(mode="after")
    def _min_clock(self):
        clock_key = "f_core_hz" if self.kind == "gpu" else "cpu_hz"
        lowest = self.ranges[clock_key][0] if clock_key in self.ranges else (
            self.gpu.f_core_hz if self.kind == "gpu" else self.cpu_hz)
        if self.min_cpu_hz is not None and self.min_cpu_hz > lowest:
            raise ValueError(f"min_cpu_hz ({self.min_cpu_hz:g}) <= the lowest vehicle clock ({lowest:g} Hz)")
        return self


VehicleDeviceConfig = CpuDeviceConfig


class ServerConfig(_Frozen):
    """The edge server: gpu_slots jobs run at once, each at flops_per_s; the rest queue in arrival order."""
    flops_per_s: PosFloat = 1e12
    gpu_slots: PosInt = 1


class DevicesConfig(_Frozen):
    vehicle: CpuDeviceConfig = CpuDeviceConfig()
    server: ServerConfig = ServerConfig()


class PartitionConfig(_Frozen):
    kind: Literal["iid", "dirichlet", "shards"] = "iid"
    alpha: PosFloat = 0.5
    shards_per_client: PosInt = 2


DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "gtsrb")
# architecture knobs a scenario may set per model (learning.models constructors); no torch import here
_VIT_ARCH = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")
MODEL_ARCH = {"cnn": ("width",), "resnet18": ("width", "stem_stride", "stem_pool"), "vit_tiny": _VIT_ARCH, "vit_small": _VIT_ARCH,
              "vit_base": _VIT_ARCH, "vit_micro": _VIT_ARCH}


class PretrainConfig(_Frozen):
    """A pretrained starting model: the weights in `checkpoint` (a local file, timm names; relative: to the
    scenario), or, without one, the model trained at set-up on the `fraction` of the training set that is
    held out from every client (AdamW, cached by content hash in cache_dir, $COSIM_CACHE_DIR or
    ~/.cache/cosim; `cosim pretrain` writes it to a file), on the samples of `classes` only when given
    (another label set: fine-tuning then has classes to learn). With a checkpoint the fraction is still held
    out (0: none, e.g. for weights trained on other data)."""
    checkpoint: Optional[str] = None
    fraction: Annotated[float, Field(ge=0, lt=1)] = Field(default=0.2, validate_default=True)
    classes: Optional[Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]] = None   # these labels only
    epochs: PosInt = 30
    lr: PosFloat = 1e-3
    batch_size: PosInt = 32
    weight_decay: NonNegFloat = 0.05
    cache_dir: Optional[str] = None

    @field_validator("fraction")
    @classmethod
    def _needs_data(cls, value, info):
        if value == 0 and info.data.get("checkpoint") is None:
            raise ValueError("> 0 without a checkpoint (the model is pretrained on that held-out split)")
        return value


class LearningConfig(_Frozen):
    """The learning task. `digits` ships with scikit-learn and is split train/test by test_fraction; the
    others load their own train and test files from data_dir (test_fraction is then unused).
    image_size: None keeps the data set's size (digits 8, MNIST 28, CIFAR 32, GTSRB 32)."""
    dataset: Literal[DATASETS] = "digits"
    data_dir: Optional[str] = Field(default=None, validate_default=True)   # relative: to the scenario's folder
    image_size: Optional[PosInt] = None      # None: the data set's own size
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    num_clients: PosInt = 20
    partition: PartitionConfig = PartitionConfig()
    model: Literal[tuple(MODEL_ARCH)] = "cnn"
    arch: dict[str, Union[int, float]] = {}   # model knobs, e.g. {width: 8} (see MODEL_ARCH)
    batch_size: PosInt = 16
    local_epochs: PosInt = 1
    lr: PosFloat = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    pretrained: Optional[PretrainConfig] = None     # start from pretrained weights (LoRA fine-tuning)

    @field_validator("arch")
    @classmethod
    def _arch_keys(cls, value, info):
        model = info.data.get("model")
        return _only_known(value, MODEL_ARCH.get(model, ()), "knobs", model)

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value, info):
        dataset = info.data.get("dataset")
        if dataset not in (None, "digits") and value is None:
            raise ValueError(f"a folder holding the {dataset} files when dataset is {dataset!r}")
        return value


class OutputConfig(_Frozen):
    trace_level: Literal["rounds", "spans", "packets"] = "spans"
    csv: bool = False
    plots: bool = False
    snapshots: bool = False       # snapshots/round-NNNN.json: each round's optimizer input (`cosim optimize`)
    positions: bool = False       # positions.parquet: every vehicle's position, RSU, distance and link state per tick
    # a dwell study: after the last round, mobility runs on (within duration_s) until every dwell prediction
    # is realized, so that fewer rows are censored
    realize_dwells: bool = False


class Scenario(_Frozen):
    """A whole scenario. `base_dir` (not a field) is the folder relative paths resolve against."""

    name: str
    seed: Annotated[int, Field(ge=0)] = 0
    duration_s: PosFloat = 3600.0
    mobility: MobilityConfig = MobilityConfig()
    rsus: RsuConfig = RsuConfig()
    channel: ChannelConfig = ChannelConfig()
    backhaul: BackhaulConfig = BackhaulConfig()
    devices: DevicesConfig = DevicesConfig()
    learning: LearningConfig = LearningConfig()
    protocol: SerializeAsAny[ProtocolConfig]      # one of the registered schemes' models (validate_tree)
    output: OutputConfig = OutputConfig()

    _base_dir: Path = PrivateAttr(default=Path("."))

    @property
    def base_dir(self) -> Path:
        return self._base_dir

    def path(self, relative: str) -> Path:
        """A scenario path resolved against the scenario's folder (`$SUMO_HOME` expanded: `expand_path`)."""
        return (self._base_dir / expand_path(relative)).resolve()

    @field_validator("backhaul")
    @classmethod
    def _backhaul_reaches_rsus(cls, value, info):
        rsus = info.data.get("rsus")
        if value.links and rsus is not None and rsus.placement is None:   # placed RSUs: checked at build
            from .backhaul import unreachable_rsus
            positions = rsus.positions_m if rsus.positions_m is not None else DEFAULT_RSU_POSITIONS_M
            missing = unreachable_rsus(value, [f"rsu{i}" for i in range(len(positions))])
            if missing:
                raise ValueError(f"links that connect every RSU to 'server' (no path from {missing})")
        return value


class _Loader(yaml.SafeLoader):
    """safe_load, but `5.9e9` and `20e6` are floats (YAML 1.1 wants `5.9e+9`, which surprises people), and
    a key given twice in one mapping is an error (PyYAML would silently keep the last)."""

    def construct_mapping(self, node, deep=False):
        first_line: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in first_line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first_line[key]})", key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


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
_PATH_FIELDS = ("mobility.sumo.config", "mobility.sumo.net", "mobility.sumo.routes", "mobility.sumo.additional",
                "mobility.fcd.file", "channel.buildings", "protocol.accuracy_model_file")


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


def load_scenario(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file (its folder becomes `scenario.base_dir`).

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
    pairs = parse_overrides(overrides or [])
    for key, value in pairs:
        _set_path(tree, key, value, source)
    _switch_scheme(tree, {key for key, _ in pairs})
    return validate_tree(tree, source)


def _switch_scheme(tree: dict, overridden: set[str]) -> None:
    """When an override sets protocol.scheme, drop the file's protocol keys the new scheme does not have
    (`--set protocol.scheme=fedavg` on a split scenario drops its cut), and its optimizer if that plans for
    other schemes only; keys set by overrides stay."""
    proto = tree.get("protocol")
    if "protocol.scheme" not in overridden or not isinstance(proto, dict):
        return
    from . import registry

    entry = registry.schemes().get(proto.get("scheme"))
    if entry is None:                   # validation names the unknown scheme
        return
    kept = {k.split(".")[1] for k in overridden if k.startswith("protocol.") and k.count(".") >= 1}
    for key in [k for k in proto if k not in entry.config.model_fields and k not in kept]:
        del proto[key]
    optimizer = registry.optimizers().get(proto.get("optimizer"))
    if "optimizer" not in kept and optimizer is not None and optimizer.schemes and entry.name not in optimizer.schemes:
        del proto["optimizer"]          # the file's optimizer plans for its own scheme only: the default then


DEFAULT_SCHEME = "fedavg"


def _error_line(source: str, loc: tuple, err: dict) -> str:
    dotted = ".".join(str(p) for p in loc) or "<top level>"
    if err["type"] == "missing":
        return f"{source}: {dotted}: missing: expected a value (the field is required)"
    return field_error(source, dotted, err.get("input"), _expected(err))


def _protocol_errors(source: str, proto: dict, exc: ValidationError) -> list[str]:
    """One line per error of the protocol section; the union's tag is dropped from locations."""
    from . import registry

    schemes = registry.schemes()
    scheme = proto.get("scheme")
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "union_tag_invalid":
            lines.append(field_error(source, "protocol.scheme", scheme,
                                     f"a registered scheme: one of {', '.join(map(repr, schemes))}"))
            continue
        if loc and loc[0] == scheme:
            loc = loc[1:]
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            owners = [n for n, e in schemes.items() if loc[0] in e.config.model_fields]
            if owners:
                lines.append(field_error(source, f"protocol.{loc[0]}", err.get("input"),
                                         f"no such key for scheme {scheme!r} (a setting of {', '.join(owners)})"))
                continue
        lines.append(_error_line(source, ("protocol", *loc), err))
    return lines


def validate_tree(tree: dict, source: str, base_dir: Path | None = None) -> Scenario:
    """Validate an already-parsed mapping; base_dir resolves relative file paths (default: source's folder).

    The protocol section is validated by the model of its `scheme` (default fedavg), among the registered ones.
    """
    from . import registry

    lines = []
    tree = dict(tree)
    proto = tree.get("protocol", {})
    if isinstance(proto, dict):
        proto = {"scheme": DEFAULT_SCHEME, **proto}
        try:
            tree["protocol"] = registry.protocol_adapter().validate_python(proto)
        except ValidationError as exc:
            lines += _protocol_errors(source, proto, exc)
            tree["protocol"] = ProtocolConfig.model_construct(scheme=str(proto.get("scheme")))   # checked above
    try:
        scenario = Scenario.model_validate(tree)
    except ValidationError as exc:
        order = list(Scenario.model_fields)
        rest = [(order.index(e["loc"][0]) if e["loc"] and e["loc"][0] in order else -1, _error_line(source, e["loc"], e))
                for e in exc.errors()]
        at = order.index("protocol")         # keep the lines in the order of the fields
        lines = [line for i, line in rest if i < at] + lines + [line for i, line in rest if i >= at]
    if lines:
        raise ScenarioError(lines)
    cross = _cross_field_errors(scenario, source)
    if cross:
        raise ScenarioError(cross)
    base = base_dir if base_dir is not None else Path(source).parent
    scenario._base_dir = base
    missing = [field_error(source, field, value, f"an existing file (looked in {base})")
               for field, value in _path_values(scenario) if not (base / expand_path(value)).is_file()]
    if missing:
        raise ScenarioError(missing)
    return _with_sumo_times(scenario, source)


def _with_sumo_times(sc: Scenario, source: str) -> Scenario:
    """A SUMO configuration's <time> (step-length, begin, end) for the settings the scenario leaves unset:
    mobility.step_s, mobility.sumo.begin_s and duration_s (end - begin); what the scenario sets wins."""
    m = sc.mobility
    if m.source != "sumo" or m.sumo is None or m.sumo.config is None:
        return sc
    import xml.etree.ElementTree as ET

    path = sc.path(m.sumo.config)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return sc                     # SumoLive names the malformed file when it loads it
    times = {}
    for name in ("step-length", "begin", "end"):
        elem = next(root.iter(name), None)
        if elem is None:
            continue
        raw = elem.get("value", elem.get("v", ""))
        try:
            times[name] = float(raw)
        except ValueError:
            raise ScenarioError([field_error(source, "mobility.sumo.config", m.sumo.config,
                                             f"a <{name}> in seconds in {path.name}, found {raw!r}")]) from None
    sumo_update, mob_update, top_update = {}, {}, {}
    if "begin" in times and "begin_s" not in m.sumo.model_fields_set:
        sumo_update["begin_s"] = times["begin"]
    if "step-length" in times and "step_s" not in m.model_fields_set:
        mob_update["step_s"] = times["step-length"]
    begin = sumo_update.get("begin_s", m.sumo.begin_s)
    if "end" in times and "duration_s" not in sc.model_fields_set and times["end"] > begin:
        top_update["duration_s"] = times["end"] - begin
    if not (sumo_update or mob_update or top_update):
        return sc
    if sumo_update:
        mob_update["sumo"] = m.sumo.model_copy(update=sumo_update)
    out = sc.model_copy(update={**top_update, "mobility": m.model_copy(update=mob_update)})
    out._base_dir = sc._base_dir
    return out


def expand_path(value: str) -> str:
    """`$SUMO_HOME` or `${SUMO_HOME}` at the start of a scenario path: the installed SUMO (eclipse-sumo), so a
    scenario can use the networks SUMO ships (e.g. `$SUMO_HOME/tools/game/DRT/osm.net.xml`) on any machine."""
    for token in ("${SUMO_HOME}", "$SUMO_HOME"):
        if value.startswith(token):
            from mobility.sumo_live import sumo_home

            return str(sumo_home()) + value[len(token):]
    return value


def _cross_field_errors(sc: Scenario, source: str) -> list[str]:
    """Settings that are valid alone but not together, each named by its own field."""
    lines = []
    if sc.rsus.placement is not None and sc.mobility.source != "sumo":
        lines.append(field_error(source, "rsus.placement", sc.rsus.placement.model_dump(exclude_defaults=True),
                                 f"mobility.source 'sumo' (placement walks a SUMO road net; with source "
                                 f"{sc.mobility.source!r} give rsus.positions_m)"))
    if sc.protocol.dwell_predictor == "route" and sc.mobility.source != "sumo":
        lines.append(field_error(source, "protocol.dwell_predictor", "route",
                                 f"mobility.source 'sumo' (it follows SUMO routes; with source "
                                 f"{sc.mobility.source!r} use 'kinematic' or 'oracle')"))
    return lines


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


def to_dict(scenario: Scenario) -> dict:
    """The resolved scenario as plain data (for the manifest)."""
    return scenario.model_dump(mode="json")
