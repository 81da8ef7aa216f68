"""Scenario YAML -> validated, frozen config.

Unknown keys are rejected; every error is one line naming the file, the field path, the bad value
and what was expected. Relative paths in a scenario resolve against the scenario file's folder.
"""
from __future__ import annotations

import difflib
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, PrivateAttr, SerializeAsAny, ValidationError, field_validator, model_validator

from channel.link import RSU_NOISE_FIGURE_DB, VEHICLE_NOISE_FIGURE_DB
from channel.models import BUILDING_MODELS, MODELS
from channel.shadowing import SHADOWING
from channel.v2v import DEFAULT_ANTENNA_HEIGHT_M, RSU_ANTENNA_HEIGHT_M

from .configbase import (CLOCK_HZ, COORD_M, LENGTH_M, SEED, SPEED_MPS, TIME_S, Bound, NonNegFloat, PosFloat, PosInt,
                         fmt, within)
from .configbase import Frozen as _Frozen
from .errors import ScenarioError, field_error
from .protocols.config import ProtocolConfig


# ---- bounds the sections share (cosim.configbase.within: the bound and why, in the error line) ----------------
K_FACTOR = within(high=1e6, why="linear K; 1e6, 60 dB, is already pure line of sight")
SNR_DB = within(-100.0, 100.0, unit="dB", why="SNRs beyond +-100 dB never occur")
NOISE_FIGURE = within(high=30.0, unit="dB", why="receivers' noise figures are 2 to 15 dB")
BANDWIDTH_HZ = within(1e3, 1e10, unit="Hz", why=(
    "a narrower band is no radio channel, and a tiny one underflows the noise power to 0 and the SNR to inf",
    "10 GHz, wider than any radio channel"))
TX_POWER_W = within(high=100.0, unit="W", why="50 dBm, beyond any vehicle or roadside transmitter; V2X allows 33 dBm")
ANTENNA_GAIN_DBI = within(-60.0, 60.0, unit="dBi", why="the most directive dishes reach about 60 dBi")
BACKHAUL_LATENCY_S = within(high=10.0, unit="s", why="a wired hop of 10 s is no backhaul")
BACKHAUL_BPS = within(1e3, 1e13, unit="bit/s", why=("slower than any wired link", "10 Tbit/s, faster than any link"))
EPOCHS = within(high=10000, why="each epoch is a pass of real training over the data")
LEARNING_RATE = within(high=10.0, why="SGD and AdamW diverge far below it; 0.001 to 0.1 in practice")
BATCH_SIZE = within(high=8192, why="a batch and its activations are held in memory at once")
_COEFFICIENT = within(high=1e3, why="a coefficient near 1")
_CYCLES = within(high=1e3, unit="cycles/FLOP", why="no device takes 1000 cycles for a FLOP")
# bounds of the device fields devices.vehicle.ranges may draw, shared by the fields themselves
_B = {"cpu_hz": CLOCK_HZ, "f_core_hz": CLOCK_HZ, "f_mem_hz": CLOCK_HZ,
      "flops_per_cycle": within(high=1e5, why="a chip does at most thousands of FLOPs a cycle"),
      "kappa": within(high=1e-20, why="chips' effective capacitance is about 1e-28; 1e-20 costs megajoules a round"),
      "p_cp_w": within(high=1e4, unit="W", why="a GPU draws at most about 1 kW"),
      "t0_s": within(high=10.0, unit="s", why="a launch overhead, milliseconds in practice")}

# learning.arch knobs: (integer?, bound)
_ARCH_BOUNDS = {
    "width": (True, Bound(1, 512, why="ResNet-18's parameters grow with width squared: 64 is the standard 11 M, "
                                      "512 already 0.7 G")),
    "stem_stride": (True, Bound(1, 2, why="ResNet-18's stem stride is 1 or 2")),
    "stem_pool": (True, Bound(0, 1, why="0 or 1: no pool or a 2x2 max pool after the stem")),
    "patch_size": (True, Bound(1, 64, unit="px", why="a ViT patch; larger leaves few tokens")),
    "embed_dim": (True, Bound(1, 4096, why="ViT-H uses 1280; parameters grow with its square")),
    "depth": (True, Bound(1, 64, why="ViT-G has 48 blocks")),
    "num_heads": (True, Bound(1, 64, why="ViT-G has 16 heads")),
    "mlp_ratio": (False, Bound(0, 16, why="ViTs use 4", low_open=True)),
}


def _arch_problem(key: str, value) -> Optional[str]:
    integer, bound = _ARCH_BOUNDS.get(key, (False, Bound()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        return "an integer" if integer else "a number"
    return bound.problem(value)


# ---- mobility.sumo.extra_args: SUMO options that write nothing and leave what cosim sets alone ------------------
# kind: "flag" (no value; --x=true|false too), "time" / "float" (a number), "int", "str", or the allowed words
SUMO_EXTRA_OPTIONS: dict[str, Any] = {
    # processing
    "--step-method.ballistic": "flag", "--extrapolate-departpos": "flag", "--lateral-resolution": "float",
    "--route-steps": "time", "--no-internal-links": "flag", "--ignore-junction-blocker": "time",
    "--ignore-route-errors": "flag", "--ignore-accidents": "flag",
    "--collision.action": ("none", "warn", "teleport", "remove"), "--collision.stoptime": "time",
    "--collision.check-junctions": "flag", "--collision.check-junctions.mingap": "float",
    "--collision.mingap-factor": "float", "--max-num-vehicles": "int", "--max-num-teleports": "int",
    "--scale": "float", "--time-to-teleport": "time", "--time-to-teleport.highways": "time",
    "--time-to-teleport.highways.min-speed": "float", "--time-to-teleport.disconnected": "time",
    "--time-to-teleport.remove": "flag", "--time-to-teleport.bidi": "time", "--waiting-time-memory": "time",
    "--startup-wait-threshold": "time", "--max-depart-delay": "time", "--sloppy-insert": "flag",
    "--eager-insert": "flag", "--emergency-insert": "flag", "--random-depart-offset": "time",
    "--lanechange.duration": "time", "--lanechange.overtake-right": "flag", "--tls.all-off": "flag",
    "--time-to-impatience": "time", "--default.departspeed": "str", "--default.departlane": "str",
    "--default.action-step-length": "float", "--default.carfollowmodel": "str", "--default.speeddev": "float",
    "--default.emergencydecel": "str", "--emergencydecel.warning-threshold": "float",
    # routing
    "--routing-algorithm": ("dijkstra", "astar", "CH", "CHWrapper", "CCH"), "--weights.random-factor": "float",
    "--weights.random-factor.dynamic": "flag", "--weights.minor-penalty": "float", "--weights.tls-penalty": "float",
    "--weights.priority-factor": "float", "--weights.turnaround-penalty": "float",
    "--device.rerouting.probability": "float", "--device.rerouting.deterministic": "flag",
    "--device.rerouting.period": "time", "--device.rerouting.pre-period": "time",
    "--device.rerouting.adaptation-weight": "float", "--device.rerouting.adaptation-steps": "int",
    "--device.rerouting.adaptation-interval": "time", "--device.rerouting.threshold.factor": "float",
    "--device.rerouting.threshold.constant": "time", "--device.rerouting.mode": "int",
    "--device.rerouting.synchronize": "flag", "--device.rerouting.with-taz": "flag",
    # report (console only)
    "--no-warnings": "flag", "-W": "flag", "--aggregate-warnings": "int", "--no-step-log": "flag",
    "--duration-log.disable": "flag",
}
# why the rest are refused: what they do instead
_SUMO_REFUSED = ("options that write files (*-output, --log, --error-log, --save-*, ...), read other inputs "
                 "(-c, -n, -r, -a, ...), or change what cosim sets (--begin, --end, --step-length, --seed, --threads) "
                 "are refused")


def _number(text: str, integer: bool) -> bool:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        return False
    return integer or math.isfinite(value)


def sumo_extra_args_problem(args: list[str]) -> Optional[str]:
    """None if `args` are allowed SUMO options with valid values (SUMO_EXTRA_OPTIONS), else what was expected."""
    allowed = ", ".join(o for o in SUMO_EXTRA_OPTIONS if o != "-W")
    i = 0
    while i < len(args):
        token = args[i]
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        kind = SUMO_EXTRA_OPTIONS.get(name)
        if kind is None:
            hint = did_you_mean(name, [o for o in SUMO_EXTRA_OPTIONS if o != "-W"])
            what = "a SUMO option" if token.startswith("-") else "an option name (a value follows the option it is for)"
            return (f"{what} that writes nothing (item {i}: {token!r}{hint}); {_SUMO_REFUSED}; "
                    f"allowed: {allowed}")
        if kind == "flag":
            if eq and inline not in ("true", "false"):
                return f"{name} alone, or {name}=true|false (item {i}: {token!r})"
            i += 1
            continue
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(args):
            value, i = args[i + 1], i + 2
        else:
            return f"a value after {name} (it is the last item)"
        ok = (value in kind if isinstance(kind, tuple) else _number(value, kind == "int") if kind != "str"
              else bool(value) and not value.startswith("-"))
        if not ok:
            expected = (f"one of {', '.join(kind)}" if isinstance(kind, tuple) else
                        {"int": "an integer", "str": "a word"}.get(kind, "a finite number (seconds)" if kind == "time"
                                                                      else "a finite number"))
            return f"{expected} after {name} (got {value!r})"
    return None


# ---- names and suggestions ---------------------------------------------------------------------------------
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def did_you_mean(word, choices) -> str:
    """'; did you mean 'x'?' for the closest of `choices` to `word`, or ''."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [c for c in choices if isinstance(c, str)], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class HighwayConfig(_Frozen):
    length_m: Annotated[PosFloat, LENGTH_M] = 3000.0
    lanes: Annotated[PosInt, within(high=16, why="the widest roads have about 13 lanes a direction")] = 3
    lane_width_m: Annotated[PosFloat, within(high=10.0, unit="m", why="real lanes are 2.5 to 4.5 m wide")] = 3.5
    arrival_rate_hz: Annotated[NonNegFloat, within(
        high=20.0, unit="vehicles/s", why="a lane carries at most about 0.6 vehicles/s; each arrival is a vehicle "
                                          "simulated every tick")] = 0.3
    speed_mean_mps: Annotated[PosFloat, SPEED_MPS] = 25.0
    speed_std_mps: Annotated[NonNegFloat, SPEED_MPS] = 3.0
    speed_min_mps: Annotated[PosFloat, SPEED_MPS] = 16.7
    speed_max_mps: Annotated[PosFloat, SPEED_MPS] = 33.3
    initial_vehicles: Annotated[int, Field(ge=0), within(
        high=10000, why="each is moved, and its links evaluated, every tick")] = 10

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
    seed: Optional[Annotated[int, Field(ge=0), SEED]] = None      # default: the scenario's seed
    # SUMO's begin (as --begin: departures before it are dropped, as in SUMO)
    begin_s: Annotated[NonNegFloat, TIME_S] = 0.0
    # SUMO runs this long before simulated t = 0, so traffic has built up
    warmup_s: Annotated[NonNegFloat, within(high=86400.0, unit="s", why="SUMO runs it before the first tick; a day "
                                                                         "of traffic fills any net")] = 0.0
    extra_args: list[str] = []          # SUMO options that write nothing (SUMO_EXTRA_OPTIONS)
    # libsumo in a worker process that computes SUMO's next step while the co-simulator processes this one
    # (whenever nothing else is due before it); the same results
    worker: bool = False

    @field_validator("extra_args")
    @classmethod
    def _allowed_options(cls, value):
        problem = sumo_extra_args_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _files(self):
        if self.config is None and (self.net is None or not self.routes):
            raise ValueError("either config (a .sumocfg) or net and routes")
        if self.worker and self.backend != "libsumo":
            raise ValueError("backend 'libsumo' when worker is true (TraCI runs SUMO in its own process already)")
        if self.config is not None and (self.net is not None or self.routes or self.additional):
            raise ValueError("config alone (list net and routes inside the .sumocfg), or net and routes")
        if self.gui and self.backend != "traci":
            raise ValueError("backend 'traci' when gui is true")
        return self


class ScriptedVehicleConfig(_Frozen):
    id: str
    x_m: Annotated[float, COORD_M]
    y_m: Annotated[float, COORD_M] = 0.0
    speed_mps: Annotated[NonNegFloat, SPEED_MPS] = 0.0
    heading_deg: Annotated[float, within(-360.0, 360.0, unit="deg", why="a heading in degrees")] = 0.0
    depart_s: Annotated[NonNegFloat, TIME_S] = 0.0
    arrive_s: Optional[Annotated[PosFloat, TIME_S]] = None


class ScriptedConfig(_Frozen):
    vehicles: Annotated[list[ScriptedVehicleConfig], Field(min_length=1)]

    @field_validator("vehicles")
    @classmethod
    def _unique_ids(cls, value):
        first: dict[str, int] = {}
        for i, v in enumerate(value):
            if v.id in first:
                raise ValueError(f"each vehicle id once ({v.id!r} is vehicles.{first[v.id]} and vehicles.{i})")
            first[v.id] = i
        return value


class FcdConfig(_Frozen):
    file: str
    begin_s: Annotated[NonNegFloat, TIME_S] = 0.0           # FCD time at simulated t = 0


MIN_STEP_S = 1e-3


class MobilityConfig(_Frozen):
    source: Literal["highway", "scripted", "sumo", "fcd"] = "highway"
    step_s: Annotated[PosFloat, within(high=60.0, unit="s", why="a vehicle at highway speed moves 2 km a tick, past "
                                                                "an RSU's whole coverage")] = 1.0
    highway: HighwayConfig = HighwayConfig()
    sumo: Optional[SumoConfig] = None
    fcd: Optional[FcdConfig] = None
    scripted: Optional[ScriptedConfig] = None

    @field_validator("step_s")
    @classmethod
    def _sumo_resolution(cls, value, info):
        if info.data.get("source") == "sumo" and abs(value * 1000.0 - round(value * 1000.0)) > 1e-6:
            raise ValueError("a multiple of 0.001 s with source 'sumo' (SUMO's time resolution)")
        if value < MIN_STEP_S:
            raise ValueError(f"at least {fmt(MIN_STEP_S)} s (SUMO's resolution; a shorter tick makes millions of steps "
                             f"a simulated minute, and 1e-9 s never ends)")
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

    spacing_m: Annotated[PosFloat, LENGTH_M]
    edges: Optional[Annotated[list[str], Field(min_length=1)]] = None

    @field_validator("edges", mode="before")
    @classmethod
    def _numeric_ids(cls, value):
        """OSM edge ids are often numbers, which YAML and --set read as ints: they are ids all the same."""
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value
    first_m: Optional[Annotated[NonNegFloat, LENGTH_M]] = None
    lateral_offset_m: Annotated[float, within(-1e4, 1e4, unit="m", why="10 km beside a road is no roadside unit")] = 0.0


DEFAULT_RSU_POSITIONS_M = [[500.0, -10.0], [1500.0, -10.0], [2500.0, -10.0]]


class RsuConfig(_Frozen):
    positions_m: Optional[Annotated[list[Annotated[list[Annotated[float, COORD_M]], Field(min_length=2, max_length=2)]],
                                    Field(min_length=1)]] = None
    placement: Optional[RsuPlacementConfig] = None
    coverage_radius_m: Annotated[PosFloat, within(high=1e5, unit="m", why="no roadside radio reaches 100 km")] = 500.0
    # TR 37.885's RSU height
    antenna_height_m: Annotated[PosFloat, within(high=1000.0, unit="m", why="taller than any mast")] = \
        RSU_ANTENNA_HEIGHT_M
    # 'nearest': keep the RSU unless this much farther
    hysteresis_m: Annotated[NonNegFloat, LENGTH_M] = 0.0
    association: Literal["nearest", "strongest"] = "nearest"
    # association 'strongest': keep it unless this much weaker
    hysteresis_db: Annotated[NonNegFloat, within(high=100.0, unit="dB",
                                                 why="more than any two links' difference")] = 0.0
    on_handover: Literal["abort", "continue"] = "abort"     # a transfer in flight when its RSU changes
    # with 'continue': silence before the new RSU
    handover_delay_s: Annotated[NonNegFloat, within(high=3600.0, unit="s",
                                                    why="an hour of silence is no handover")] = 0.05

    @model_validator(mode="after")
    def _one_layout(self):
        if self.positions_m is not None and self.placement is not None:
            raise ValueError("either positions_m or placement, not both")
        return self


class ShadowingConfig(_Frozen):
    """Log-normal shadowing per link, correlated along the distance its vehicle travels (off by default)."""
    enabled: bool = False
    # None: channel.shadowing.SHADOWING for the model and LOS state
    sigma_db: Optional[Annotated[NonNegFloat, within(high=30.0, unit="dB",
                                                     why="measured shadowing is 3 to 12 dB")]] = None
    decorrelation_m: Optional[Annotated[PosFloat, LENGTH_M]] = None    # None: likewise


class FadingConfig(_Frozen):
    """Small-scale fading: a faded rate per packet attempt, or the ergodic rate (no draws)."""
    kind: Literal["none", "rayleigh", "rician"] = "none"
    k_factor: Optional[Annotated[NonNegFloat, K_FACTOR]] = None   # linear Rician K; required for kind 'rician' only
    mode: Literal["per_packet", "ergodic"] = "per_packet"
    # None: the CQI-1 threshold of channel.rate (at target_ber)
    outage_snr_db: Optional[Annotated[float, SNR_DB]] = None

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
    waterfall_a: Annotated[PosFloat, within(high=1e6, why="fitted values are below 1000")] = 90.2514
    waterfall_g: Annotated[PosFloat, within(high=1e3, why="fitted values are below 10")] = 3.4998
    waterfall_snr_threshold_db: Annotated[float, SNR_DB] = 1.0942
    reference_bits: Annotated[PosInt, within(high=10**7, why="1.25 MB; a packet is at most a few kB")] = 1080


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
    k_factor: Optional[Annotated[NonNegFloat, K_FACTOR]] = None   # linear Rician K; required for fading 'rician' only

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
        raise ValueError(f"{what} of model {model!r} {among}; unknown: {unknown}{did_you_mean(unknown[0], allowed)}")
    return value


class ChannelConfig(_Frozen):
    model: Literal[_MODEL_NAMES] = "seed"     # any of channel.models.MODELS
    model_params: dict[str, float] = {}       # extra parameters of the model, e.g. blocker_height_m
    carrier_hz: Annotated[PosFloat, within(1e6, 3e11, unit="Hz", why=(
        "1 MHz: no V2X radio runs lower", "300 GHz: above is no radio"))] = 5.9e9
    # the seed model's gamma
    pathloss_exponent: Annotated[PosFloat, within(high=10.0, why="free space is 2, the densest clutter about 6")] = 2.5
    # the seed model's gain at 1 m (None: free space)
    h0: Optional[Annotated[PosFloat, within(high=1.0, why="a passive path gains at most 1, 0 dB, at 1 m; antenna "
                                                          "gains go in *_antenna_gain_dbi")]] = None
    noise_dbm_per_hz: Annotated[float, within(-200.0, -100.0, unit="dBm/Hz", why=(
        "kT at under 1 K; -174 is kT at 290 K", "noise 74 dB above kT at 290 K, no receiver's"))] = -174.0
    rsu_noise_figure_db: Annotated[NonNegFloat, NOISE_FIGURE] = RSU_NOISE_FIGURE_DB            # the uplink's receiver
    vehicle_noise_figure_db: Annotated[NonNegFloat, NOISE_FIGURE] = VEHICLE_NOISE_FIGURE_DB    # the downlink's receiver
    vehicle_antenna_height_m: Annotated[PosFloat, within(
        high=20.0, unit="m", why="a vehicle's roof is at most about 4.5 m high")] = DEFAULT_ANTENNA_HEIGHT_M
    # the LOS state's; None: channel.conditions.LOS_CORRELATION_M
    los_correlation_m: Optional[Annotated[PosFloat, LENGTH_M]] = None
    buildings: Optional[str] = None           # a SUMO .poly.xml: links through a building are NLOS
    uplink_bandwidth_hz: Annotated[PosFloat, BANDWIDTH_HZ] = 20e6
    downlink_bandwidth_hz: Annotated[PosFloat, BANDWIDTH_HZ] = 20e6
    vehicle_tx_power_w: Annotated[PosFloat, TX_POWER_W] = 0.2                  # the maximum
    # the lowest an optimizer may set; None: 0.01 W (SCHEMES.md: p in [0.01, 0.2] W), or the maximum if lower
    vehicle_min_tx_power_w: Optional[Annotated[PosFloat, TX_POWER_W]] = None
    rsu_tx_power_w: Annotated[PosFloat, TX_POWER_W] = 1.0
    vehicle_antenna_gain_dbi: Annotated[float, ANTENNA_GAIN_DBI] = 0.0
    rsu_antenna_gain_dbi: Annotated[float, ANTENNA_GAIN_DBI] = 0.0
    mtu_bytes: Annotated[PosInt, within(64, 65535, unit="bytes", why=(
        "each packet is a simulated event: smaller packets multiply them", "an IP packet's largest size"))] = 1500
    transfer_mode: Literal["batched", "explicit"] = "batched"
    rate_mode: Literal["shannon", "mcs"] = "shannon"
    target_ber: Annotated[float, Field(gt=0, lt=0.2)] = 5e-5   # MCS choice (SNR gap), see channel.rate
    shadowing: ShadowingConfig = ShadowingConfig()
    fading: FadingConfig = FadingConfig()
    per: PerConfig = PerConfig()
    # ARQ limit: a packet gets 1 + this many attempts
    max_retransmissions: Annotated[int, Field(ge=0), within(
        high=100, why="each attempt is a simulated packet; a link that needs 100 never works")] = 3
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
    latency_s: Annotated[NonNegFloat, BACKHAUL_LATENCY_S] = 1e-3
    capacity_bps: Annotated[PosFloat, BACKHAUL_BPS] = 1e9


class BackhaulConfig(_Frozen):
    """Wired RSU-to-edge-server network (cosim.backhaul). Disabled by default (the seed papers have none)."""
    enabled: bool = False
    latency_s: Annotated[NonNegFloat, BACKHAUL_LATENCY_S] = 1e-3      # per link of the default star (one hop per RSU)
    capacity_bps: Annotated[PosFloat, BACKHAUL_BPS] = 1e9             # likewise
    links: list[BackhaulLinkConfig] = []   # empty: the star; else the whole graph


class GpuDeviceConfig(_Frozen):
    """A vehicle GPU (SCHEMES.md, common system model): per compute call of b samples
    t = t0_s + c1 b theta_mem / f_mem_hz + c2 b theta_core / f_core_hz [s], E = p_cp_w t [J].

    theta_mem and theta_core (cycles per sample) come from the FLOPs measured on the real model:
    theta = measured FLOPs per sample x *_cycles_per_flop.
    """
    t0_s: Annotated[NonNegFloat, _B["t0_s"]] = 1e-3                # fixed time per compute call (launch, sync) [s]
    c1: Annotated[NonNegFloat, _COEFFICIENT] = 1.0                   # memory-term coefficient [-]
    c2: Annotated[NonNegFloat, _COEFFICIENT] = 1.0                   # core-term coefficient [-]
    mem_cycles_per_flop: Annotated[NonNegFloat, _CYCLES] = 1.0 / 256   # theta_mem / FLOPs per sample [cycles/FLOP]
    # theta_core / FLOPs per sample [cycles/FLOP] (256 cores, FMA)
    core_cycles_per_flop: Annotated[NonNegFloat, _CYCLES] = 1.0 / 512
    f_mem_hz: Annotated[PosFloat, _B["f_mem_hz"]] = 1.6e9           # memory clock [Hz]
    f_core_hz: Annotated[PosFloat, _B["f_core_hz"]] = 1.3e9         # core clock [Hz]
    p_cp_w: Annotated[PosFloat, _B["p_cp_w"]] = 10.0                # power while computing [W]


_DEVICE_RANGES = {"cpu": ("cpu_hz", "flops_per_cycle", "kappa"), "gpu": ("f_core_hz", "f_mem_hz", "p_cp_w", "t0_s")}


class CpuDeviceConfig(_Frozen):
    """A vehicle's compute device: kind 'cpu' (t = FLOPs / flops_per_cycle / cpu_hz, E = kappa cycles f^2)
    or 'gpu' (the `gpu` section). `ranges` draws fields per vehicle, uniformly in [low, high] (e.g.
    {cpu_hz: [1.0e9, 2.0e9]}, the seed papers' CPUs); `min_cpu_hz` is the lowest clock (CPU, or GPU core) an
    optimizer may set (None: each vehicle runs at its own clock)."""
    kind: Literal["cpu", "gpu"] = "cpu"
    cpu_hz: Annotated[PosFloat, _B["cpu_hz"]] = 1.5e9
    flops_per_cycle: Annotated[PosFloat, _B["flops_per_cycle"]] = 4.0
    kappa: Annotated[PosFloat, _B["kappa"]] = 1e-28
    gpu: GpuDeviceConfig = GpuDeviceConfig()
    ranges: dict[str, Annotated[list[PosFloat], Field(min_length=2, max_length=2)]] = {}
    min_cpu_hz: Optional[Annotated[PosFloat, CLOCK_HZ]] = None

    @field_validator("ranges")
    @classmethod
    def _ranges(cls, value, info):
        kind = info.data.get("kind", "cpu")
        _only_known(value, _DEVICE_RANGES.get(kind, ()), "fields drawn per vehicle", kind)
        for key, (lo, hi) in value.items():
            if lo > hi:
                raise ValueError(f"[low, high] with low <= high for {key} (got [{lo}, {hi}])")
            for end in (lo, hi):
                problem = _B[key].func.problem(end)
                if problem:
                    raise ValueError(f"{key} [{fmt(lo)}, {fmt(hi)}] with each end {problem}")
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
    flops_per_s: Annotated[PosFloat, within(1e3, 1e19, unit="FLOP/s", why=(
        "slower than any computer", "10 EFLOP/s, more than the largest supercomputer"))] = 1e12
    gpu_slots: Annotated[PosInt, within(high=1024, why="each slot is a server queue in the simulation; 1024 is a "
                                                      "data centre")] = 1


class DevicesConfig(_Frozen):
    vehicle: CpuDeviceConfig = CpuDeviceConfig()
    server: ServerConfig = ServerConfig()


class PartitionConfig(_Frozen):
    kind: Literal["iid", "dirichlet", "shards"] = "iid"
    alpha: Annotated[PosFloat, within(high=1e4, why="a Dirichlet split is iid long before that: use kind 'iid'")] = 0.5
    shards_per_client: Annotated[PosInt, within(high=1000, why="more shards than any client has samples")] = 2


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
    epochs: Annotated[PosInt, EPOCHS] = 30
    lr: Annotated[PosFloat, LEARNING_RATE] = 1e-3
    batch_size: Annotated[PosInt, BATCH_SIZE] = 32
    weight_decay: Annotated[NonNegFloat, within(high=10.0, why="AdamW's decay is 0.01 to 0.1 in practice")] = 0.05
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
    image_size: Optional[Annotated[PosInt, within(high=512, unit="px", why=(
        "the data set is kept resized in memory as float32: 4096 px asks for hundreds of GB"))]] = None  # None: its own
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    num_clients: Annotated[PosInt, within(high=10000, why="each client holds its own split and model state")] = 20
    partition: PartitionConfig = PartitionConfig()
    model: Literal[tuple(MODEL_ARCH)] = "cnn"
    arch: dict[str, Union[int, float]] = {}   # model knobs, e.g. {width: 8} (see MODEL_ARCH)
    batch_size: Annotated[PosInt, BATCH_SIZE] = 16
    local_epochs: Annotated[PosInt, EPOCHS] = 1
    lr: Annotated[PosFloat, LEARNING_RATE] = 0.05
    momentum: Annotated[float, Field(ge=0, lt=1)] = 0.0
    pretrained: Optional[PretrainConfig] = None     # start from pretrained weights (LoRA fine-tuning)

    @field_validator("arch", mode="before")
    @classmethod
    def _arch_keys(cls, value, info):
        if not isinstance(value, dict):
            return value                # the type check names it
        model = info.data.get("model")
        _only_known(value, MODEL_ARCH.get(model, ()), "knobs", model)
        for key, knob in value.items():
            problem = _arch_problem(key, knob)
            if problem:
                raise ValueError(f"{key}: {problem}")
        return value

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
    # a checkpoint every K rounds (at the first quiet round boundary from there), for cosim run --resume
    checkpoint_every_rounds: Optional[Annotated[int, Field(ge=1)]] = None


class Scenario(_Frozen):
    """A whole scenario. `base_dir` (not a field) is the folder relative paths resolve against."""

    name: str
    seed: Annotated[int, Field(ge=0), SEED] = 0
    duration_s: Annotated[PosFloat, within(high=604800.0, unit="s", why=(
        "a week of simulated traffic; mobility steps through all of it"))] = 3600.0
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

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value):
        if not NAME_PATTERN.fullmatch(value) or ".." in value:
            raise ValueError("a name that is safe as a folder name (it names the run folder): 1 to 100 letters, "
                             "digits, '.', '_' or '-', starting with a letter or digit, no '..'")
        return value

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


MAX_YAML_ALIASES = 100          # *alias uses per document
MAX_YAML_VALUES = 100_000       # values a document holds with every alias expanded (a scenario has hundreds)


class YamlBudgetError(yaml.YAMLError):
    """A YAML document whose aliases expand beyond the budget (an alias bomb, "billion laughs")."""

    def __init__(self, problem: str, mark=None):
        self.problem, self.problem_mark = problem, mark
        super().__init__(problem)


def _expanded_values(node, sizes: dict, open_: set) -> int:
    """How many values `node` holds with every alias expanded (shared nodes counted each time they are used),
    memoized per node; stops counting past MAX_YAML_VALUES. A node that holds itself is a budget error."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise YamlBudgetError("an alias that refers to itself (a recursive structure)", node.start_mark)
    open_.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        total += _expanded_values(child, sizes, open_)
        if total > MAX_YAML_VALUES:
            break
    open_.discard(key)
    sizes[key] = total
    return total


class _Loader(yaml.SafeLoader):
    """safe_load, but `5.9e9` and `20e6` are floats (YAML 1.1 wants `5.9e+9`, which surprises people), a
    key given twice in one mapping is an error (PyYAML would silently keep the last), and aliases are held
    to a budget: at most MAX_YAML_ALIASES uses, expanding to at most MAX_YAML_VALUES values (an alias bomb
    of a few hundred bytes would otherwise expand to billions when validated)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise YamlBudgetError(f"more than {MAX_YAML_ALIASES} aliases (*name)", self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def compose_document(self):
        node = super().compose_document()
        if node is not None and self._aliases and _expanded_values(node, {}, set()) > MAX_YAML_VALUES:
            raise YamlBudgetError(f"aliases that expand to more than {MAX_YAML_VALUES} values", node.start_mark)
        return node

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


def _expected(err: dict, root=None, loc: tuple = ()) -> str:
    """What pydantic's error `err` at `loc` (under model `root`) expected, with a "did you mean" for an
    unknown key or word."""
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return "no such key (unknown keys are rejected)" + _key_hint(root, loc)
    if kind == "missing":
        return "a value (field is required)"
    if kind == "finite_number":
        return "a finite number (not .inf or .nan)"
    for prefix in ("Input should be ", "Value error, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
            break
    else:
        msg = msg[0].lower() + msg[1:]
    if kind == "literal_error":
        msg += did_you_mean(err.get("input"), re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", ""))))
    return msg


def _unwrap(ann):
    """The type inside Optional[...] and Annotated[...]."""
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            ann = get_args(ann)[0]
        elif origin is Union:
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann
            ann = args[0]
        else:
            return ann


def _model_at(root, loc: tuple):
    """The config model at `loc` below model `root` (list indices and dict keys stepped over), or None."""
    ann = root
    for part in loc:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            ann = field.annotation
        elif get_origin(ann) in (list, dict):
            ann = get_args(ann)[-1]
        else:
            return None
    ann = _unwrap(ann)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _field_paths(model, prefix: str = "", depth: int = 0):
    """Every field of `model` and its sections, dotted."""
    for name, field in model.model_fields.items():
        yield prefix + name
        sub = _model_at(model, (name,))
        if sub is not None and depth < 6:
            yield from _field_paths(sub, f"{prefix}{name}.", depth + 1)


def _key_hint(root, loc: tuple) -> str:
    """"; did you mean ...?" for the unknown key at the end of `loc`: a close key in the same section, else
    a field of that name (or close to it) elsewhere in the scenario."""
    if root is None or not loc or not isinstance(loc[-1], str):
        return ""
    parent = _model_at(root, loc[:-1])
    if parent is not None:
        hint = did_you_mean(loc[-1], list(parent.model_fields))
        if hint:
            return hint
    from . import registry

    paths = list(_field_paths(Scenario))
    for entry in registry.schemes().values():
        paths += [p for p in _field_paths(entry.config, "protocol.") if p not in paths]
    leaves = {}
    for path in paths:
        leaves.setdefault(path.rsplit(".", 1)[-1], path)
    close = difflib.get_close_matches(loc[-1], list(leaves), n=1, cutoff=0.8)
    return f"; did you mean {leaves[close[0]]!r}?" if close else ""


def _source_of(source: str, dotted: str, overridden) -> str:
    """Who gave the value in error: `--set` for an error at (or below) a key an override set; `<file> with
    --set` for one on a section holding such a key (a rule of the section, e.g. source 'sumo' needs a sumo
    section); else the scenario file."""
    if any(dotted == k or dotted.startswith(k + ".") for k in overridden):
        return "--set"
    if any(k.startswith(dotted + ".") for k in overridden) and dotted != "<top level>":
        return f"{source} with --set"
    return source


def _set_path(tree: dict, dotted: str, value: Any, source: str) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ScenarioError([field_error("--set", dotted, child, f"a mapping to set a sub-key in ({source} "
                                                                    f"has a {type(child).__name__} there)")])
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
    if path.is_dir():
        raise ScenarioError([f"{source}: is a folder: expected a scenario .yaml file"])
    if not path.is_file():
        raise ScenarioError([f"{source}: file not found: expected a scenario YAML file"])
    try:
        tree = safe_load(path.read_text(encoding="utf-8"))
    except YamlBudgetError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ScenarioError([f"{source}: YAML with {exc.problem}{where}: expected anchors and aliases within the "
                             f"budget ({MAX_YAML_ALIASES} aliases, {MAX_YAML_VALUES} values expanded): an alias "
                             f"bomb?"]) from None
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
    return validate_tree(tree, source, overridden=[key for key, _ in pairs])


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


_UNION_TAGS = ("int", "float", "str", "bool")


def _collapsed(errors: list[dict]) -> list[dict]:
    """Pydantic's errors, one per location: a value that matches no member of a union of plain types (e.g.
    int | float) gives one error per member, at locations ending in the member's name; keep the most telling
    one (a non-finite number's), at the value's own location."""
    out: list[dict] = []
    at: dict[tuple, int] = {}
    for err in errors:
        loc = tuple(err["loc"])
        if loc and loc[-1] in _UNION_TAGS:
            loc = loc[:-1]
            if loc in at:
                if err["type"] == "finite_number":
                    out[at[loc]] = {**err, "loc": loc}
                continue
            at[loc] = len(out)
            err = {**err, "loc": loc}
        out.append(err)
    return out


def _error_line(source: str, loc: tuple, err: dict, root=None, overridden=(), hint_loc=None) -> str:
    """One line for pydantic's error `err` at `loc`; `root` is the model `hint_loc` (default: loc) is under,
    for suggestions."""
    dotted = ".".join(str(p) for p in loc) or "<top level>"
    source = _source_of(source, dotted, overridden)
    if err["type"] == "missing":
        return f"{source}: {dotted}: missing: expected a value (the field is required)"
    return field_error(source, dotted, err.get("input"), _expected(err, root, loc if hint_loc is None else hint_loc))


def _protocol_errors(source: str, proto: dict, exc: ValidationError, overridden=()) -> list[str]:
    """One line per error of the protocol section; the union's tag is dropped from locations."""
    from . import registry

    schemes = registry.schemes()
    scheme = proto.get("scheme")
    root = schemes[scheme].config if isinstance(scheme, str) and scheme in schemes else None
    lines = []
    for err in _collapsed(exc.errors()):
        loc = tuple(err["loc"])
        if err["type"] == "union_tag_invalid":
            lines.append(field_error(_source_of(source, "protocol.scheme", overridden), "protocol.scheme", scheme,
                                     f"a registered scheme: one of {', '.join(map(repr, schemes))}"
                                     + did_you_mean(scheme, list(schemes))))
            continue
        if loc and loc[0] == scheme:
            loc = loc[1:]
        if err["type"] == "extra_forbidden" and len(loc) == 1:
            owners = [n for n, e in schemes.items() if loc[0] in e.config.model_fields]
            if owners:
                lines.append(field_error(_source_of(source, f"protocol.{loc[0]}", overridden), f"protocol.{loc[0]}",
                                         err.get("input"),
                                         f"no such key for scheme {scheme!r} (a setting of {', '.join(owners)})"))
                continue
        lines.append(_error_line(source, ("protocol", *loc), err, root, overridden, hint_loc=loc))
    return lines


# Mobility ticks a run may take: (warm-up + duration) / step (each tick moves every vehicle and re-evaluates
# its links; ten million take hours)
MAX_TICKS = 10_000_000


def validate_tree(tree: dict, source: str, base_dir: Path | None = None, overridden=()) -> Scenario:
    """Validate an already-parsed mapping; base_dir resolves relative file paths (default: source's folder).
    `overridden`: the dotted keys --set overrides gave; errors at or below them name `--set`, not `source`.

    The protocol section is validated by the model of its `scheme` (default fedavg), among the registered ones.
    """
    from . import registry

    overridden = tuple(overridden)
    lines = []
    tree = dict(tree)
    proto = tree.get("protocol", {})
    if isinstance(proto, dict):
        proto = {"scheme": DEFAULT_SCHEME, **proto}
        try:
            tree["protocol"] = registry.protocol_adapter().validate_python(proto)
        except ValidationError as exc:
            lines += _protocol_errors(source, proto, exc, overridden)
            tree["protocol"] = ProtocolConfig.model_construct(scheme=str(proto.get("scheme")))   # checked above
    try:
        scenario = Scenario.model_validate(tree)
    except ValidationError as exc:
        order = list(Scenario.model_fields)
        rest = [(order.index(e["loc"][0]) if e["loc"] and e["loc"][0] in order else -1,
                 _error_line(source, e["loc"], e, Scenario, overridden)) for e in _collapsed(exc.errors())]
        at = order.index("protocol")         # keep the lines in the order of the fields
        lines = [line for i, line in rest if i < at] + lines + [line for i, line in rest if i >= at]
    if lines:
        raise ScenarioError(lines)
    cross = _cross_field_errors(scenario, source, overridden)
    if cross:
        raise ScenarioError(cross)
    base = base_dir if base_dir is not None else Path(source).parent
    scenario._base_dir = base
    missing = [field_error(_source_of(source, field, overridden), field, value, f"an existing file (looked in {base})")
               for field, value in _path_values(scenario) if not (base / expand_path(value)).is_file()]
    if missing:
        raise ScenarioError(missing)
    scenario = _with_sumo_times(scenario, source)
    return _check_ticks(scenario, source, overridden)


def _check_ticks(sc: Scenario, source: str, overridden=()) -> Scenario:
    """At most MAX_TICKS mobility ticks (duration and SUMO warm-up over mobility.step_s)."""
    m = sc.mobility
    warmup = m.sumo.warmup_s if m.source == "sumo" and m.sumo is not None else 0.0
    if (sc.duration_s + warmup) / m.step_s > MAX_TICKS:
        least = (sc.duration_s + warmup) / MAX_TICKS
        raise ScenarioError([field_error(
            _source_of(source, "mobility.step_s", overridden), "mobility.step_s", m.step_s,
            f"at least {least:.3g} s with duration_s {fmt(sc.duration_s)} s"
            + (f" and mobility.sumo.warmup_s {fmt(warmup)} s" if warmup else "")
            + f" (at most {MAX_TICKS:,} ticks a run: each moves every vehicle and re-evaluates its links)")])
    return sc


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


def _cross_field_errors(sc: Scenario, source: str, overridden=()) -> list[str]:
    """Settings that are valid alone but not together, each named by its own field."""
    lines = []
    if sc.rsus.placement is not None and sc.mobility.source != "sumo":
        lines.append(field_error(_source_of(source, "rsus.placement", overridden), "rsus.placement",
                                 sc.rsus.placement.model_dump(exclude_defaults=True),
                                 f"mobility.source 'sumo' (placement walks a SUMO road net; with source "
                                 f"{sc.mobility.source!r} give rsus.positions_m)"))
    if sc.protocol.dwell_predictor == "route" and sc.mobility.source != "sumo":
        lines.append(field_error(_source_of(source, "protocol.dwell_predictor", overridden), "protocol.dwell_predictor",
                                 "route",
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
