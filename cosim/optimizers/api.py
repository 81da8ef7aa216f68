"""What an optimizer sees and returns, as plain frozen data (no SimPy, no World): a round snapshot in,
a plan out. Both go to JSON and back exactly (`snapshot_to_json`, `snapshot_from_json`, `plan_to_json`),
so any round of a run can be re-solved outside the simulator (`cosim optimize`).

Schemes add per-vehicle decision fields by subclassing `Decision` (a frozen dataclass); the kernel writes
every field of the decisions it is given to decisions.parquet.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from channel.link import downlink_power_w
from channel.link import LinkBudget
from learning.profile import CutProfile

from ..compute import DeviceSpec

FORMAT = "cosim.round-snapshot/2"   # 2: candidates carry link_state (0.5.0), the link a noise figure per receiver


@dataclass(frozen=True)
class Decision:
    """One vehicle's decisions for a round. `cpu_hz` None: the vehicle's own clock; `cut` None: no split."""

    bandwidth_share: float = 1.0          # of its RSU's band, per direction
    tx_power_w: float = 0.2
    cpu_hz: Optional[float] = None        # CPU clock (a GPU's core clock), within the vehicle's range
    cut: Optional[int] = None             # split point: the vehicle runs stages [0, cut)
    activation_bits: int = 32             # bits per activation element on the uplink (32: float32 as is)
    subchannel: Optional[int] = None      # an orthogonal subchannel of its RSU, for schemes that assign them
    tokens: Optional[int] = None          # tokens kept per sample, for token-selecting schemes


@dataclass(frozen=True)
class Cost:
    """Predicted latency [s] and energy [J] of one vehicle's round, with their parts: on the vehicle's
    processor, on the air, and on the edge server (energy there is not the vehicle's)."""

    latency_s: float
    energy_j: float
    compute_s: float = 0.0
    comm_s: float = 0.0
    server_s: float = 0.0
    compute_energy_j: float = 0.0
    comm_energy_j: float = 0.0


@dataclass(frozen=True)
class Plan:
    """An optimizer's answer for one round: who, each one's decisions and predicted cost, the round's
    prediction, round-level decisions (e.g. a generation amount) and the optimizer's own figures
    (objective, iterations) that go to rounds.csv."""

    selected: tuple[str, ...]
    decisions: Mapping[str, Decision]
    costs: Mapping[str, Cost]
    latency_s: Mapping[str, float]        # each vehicle's predicted time from the round's start to its end
    predicted_latency_s: float
    predicted_energy_j: float
    round: Mapping[str, Any] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A covered vehicle as the server knows it when it plans: its link (path gain with LOS state and
    shadowing, interference densities), predicted dwell, data and processor."""

    id: str
    client: int
    rsu: int
    distance_m: float
    gain_linear: float
    link_state: int                       # channel.conditions: 0 LOS, 1 NLOSv, 2 NLOS; -1 a model without states
    interference_ul_w_per_hz: float
    interference_dl_w_per_hz: float
    dwell_s: float
    num_samples: int
    label_histogram: tuple[int, ...]
    device: DeviceSpec
    # this round's small-scale power gain (mean 1) on each subchannel of its RSU: the pair's gain is
    # gain_linear * subchannel_fading[m]; empty when the scenario does not divide the band
    subchannel_fading: tuple[float, ...] = ()


@dataclass(frozen=True)
class RadioSpec:
    """Each RSU's band per direction, and the power limits."""

    uplink_bandwidth_hz: float
    downlink_bandwidth_hz: float
    vehicle_tx_power_w: float             # the maximum
    vehicle_min_tx_power_w: float
    rsu_tx_power_w: float
    rsus: int
    subchannels: int = 0                  # M orthogonal subchannels of bandwidth / M per RSU (0: not divided)

    def downlink_power_w(self, bandwidth_hz):
        """What an RSU sends on `bandwidth_hz` of its band (constant power spectral density, channel.link)."""
        return downlink_power_w(self.rsu_tx_power_w, self.downlink_bandwidth_hz, bandwidth_hz)


@dataclass(frozen=True)
class ServerSpec:
    flops_per_s: float
    gpu_slots: int


@dataclass(frozen=True)
class ModelSpec:
    """The model as measured: bytes on the wire, training FLOPs per sample, the profile at every cut."""

    name: str
    model_bytes: int
    train_flops_per_sample: float
    num_classes: int
    cuts: tuple[CutProfile, ...] = ()

    def cut(self, cut: int) -> CutProfile:
        for c in self.cuts:
            if c.cut == cut:
                return c
        raise KeyError(f"no profile for cut {cut} (profiled: {[c.cut for c in self.cuts]})")


@dataclass(frozen=True)
class LearningSpec:
    batch_size: int
    local_epochs: int


@dataclass(frozen=True)
class Budgets:
    """The round's time budget [s], and a per-vehicle energy budget [J] (None: unbounded)."""

    round_time_s: float
    vehicle_energy_j: Optional[float] = None


@dataclass(frozen=True)
class RoundSnapshot:
    """Everything an optimizer may use to plan one round; `settings` is the protocol section as resolved."""

    round: int
    t_s: float
    scheme: str
    settings: Mapping[str, Any]
    candidates: tuple[Candidate, ...]
    link: LinkBudget
    radio: RadioSpec
    server: ServerSpec
    model: ModelSpec
    learning: LearningSpec
    budgets: Budgets
    extra: Mapping[str, Any] = field(default_factory=dict)   # scheme data of the round (e.g. token scores)

    def restrict(self, ids) -> "RoundSnapshot":
        """The snapshot with only the candidates `ids`, in that order."""
        return dataclasses.replace(self, candidates=tuple(self._by_id[i] for i in ids))

    def candidate(self, vid: str) -> Candidate:
        """The candidate with id `vid` (KeyError if none)."""
        return self._by_id[vid]

    @functools.cached_property
    def _by_id(self) -> dict[str, Candidate]:
        return {c.id: c for c in self.candidates}


# ---- JSON ------------------------------------------------------------------------------------------
def _plain(obj):
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return [_plain(v) for v in obj]
    return obj


def to_json(obj) -> str:
    """JSON of a dataclass tree; floats are written by repr, so they read back exactly."""
    return json.dumps(_plain(obj), indent=1, sort_keys=False)


def snapshot_to_json(snap: RoundSnapshot) -> str:
    return json.dumps({"format": FORMAT, **_plain(snap)}, indent=1)


def snapshot_from_dict(data: Mapping) -> RoundSnapshot:
    """The snapshot a dict of `snapshot_to_json` describes; raises KeyError/TypeError/ValueError if malformed."""
    data = dict(data)
    fmt = data.pop("format", FORMAT)
    if fmt != FORMAT:
        raise ValueError(f"format {fmt!r}: expected {FORMAT!r}")
    cands = tuple(Candidate(**{**c, "label_histogram": tuple(c["label_histogram"]),
                               "subchannel_fading": tuple(c.get("subchannel_fading", ())),
                               "device": DeviceSpec(**c["device"])}) for c in data.pop("candidates"))
    model = dict(data.pop("model"))
    cuts = tuple(CutProfile(**{**c, "activation_shape": tuple(c["activation_shape"])}) for c in model.pop("cuts"))
    return RoundSnapshot(candidates=cands, link=LinkBudget(**data.pop("link")), radio=RadioSpec(**data.pop("radio")),
                         server=ServerSpec(**data.pop("server")), model=ModelSpec(**model, cuts=cuts),
                         learning=LearningSpec(**data.pop("learning")), budgets=Budgets(**data.pop("budgets")),
                         **data)


def snapshot_from_json(text: str) -> RoundSnapshot:
    return snapshot_from_dict(json.loads(text))


def plan_to_dict(plan: Plan) -> dict:
    """The plan as JSON-ready data: one entry per selected vehicle with its decisions and cost."""
    return {
        "selected": list(plan.selected),
        "predicted_latency_s": plan.predicted_latency_s, "predicted_energy_j": plan.predicted_energy_j,
        "round": _plain(plan.round), "stats": _plain(plan.stats),
        "vehicles": {v: {"decision": _plain(plan.decisions[v]), "cost": _plain(plan.costs[v]),
                         "latency_s": plan.latency_s[v]} for v in plan.selected},
    }
