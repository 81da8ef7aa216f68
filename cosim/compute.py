"""Device compute models: simulated time and energy from FLOPs measured on the real model.

Each model offers `time_s(flops)` and `energy_j(flops)` for one compute call (the host's wall clock is
never used). SCHEMES.md, common system model:
- CPU: t = cycles / f, E = kappa * cycles * f^2, with cycles = FLOPs / flops_per_cycle;
- GPU: t = t0 + c1 b theta_mem / f_mem + c2 b theta_core / f_core, E = p_cp t, with the per-sample
  theta's from the measured FLOPs (b theta = FLOPs of the call x cycles per FLOP).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Optional, Union

import numpy as np

from .rng import RngStreams
from .scenario import DevicesConfig, VehicleDeviceConfig


@dataclass(frozen=True)
class CpuModel:
    cpu_hz: float
    flops_per_cycle: float
    kappa: float

    def cycles(self, flops: float) -> float:
        return flops / self.flops_per_cycle

    def time_s(self, flops: float) -> float:
        return self.cycles(flops) / self.cpu_hz

    def energy_j(self, flops: float) -> float:
        return self.kappa * self.cycles(flops) * self.cpu_hz ** 2


@dataclass(frozen=True)
class GpuModel:
    """t = t0_s + c1 b theta_mem / f_mem_hz + c2 b theta_core / f_core_hz [s]; E = p_cp_w t [J].

    b theta_mem = flops * mem_cycles_per_flop, b theta_core = flops * core_cycles_per_flop; a call with
    no FLOPs takes no time (nothing is launched).
    """

    t0_s: float
    c1: float
    c2: float
    mem_cycles_per_flop: float
    core_cycles_per_flop: float
    f_mem_hz: float
    f_core_hz: float
    p_cp_w: float

    def time_s(self, flops: float) -> float:
        if flops <= 0:
            return 0.0
        return (self.t0_s + self.c1 * flops * self.mem_cycles_per_flop / self.f_mem_hz
                + self.c2 * flops * self.core_cycles_per_flop / self.f_core_hz)

    def energy_j(self, flops: float) -> float:
        return self.p_cp_w * self.time_s(flops)


DeviceModel = Union[CpuModel, GpuModel]


@dataclass(frozen=True)
class ServerModel:
    """An edge server with a fixed throughput per GPU slot; energy is not charged to vehicles."""

    flops_per_s: float
    gpu_slots: int = 1

    def time_s(self, flops: float) -> float:
        return flops / self.flops_per_s


@dataclass(frozen=True)
class DeviceSpec:
    """A vehicle's processor. kind 'cpu': t = FLOPs / flops_per_cycle / f, E = kappa cycles f^2; kind 'gpu':
    the seed's GPU model with core clock f. An optimizer may set f in [cpu_hz_min, cpu_hz]."""

    kind: str = "cpu"
    cpu_hz: float = 1.5e9                 # the clock: CPU, or the GPU's core clock (its maximum)
    cpu_hz_min: float = 1.5e9             # the lowest clock an optimizer may set
    flops_per_cycle: float = 4.0
    kappa: float = 1e-28
    t0_s: float = 1e-3
    c1: float = 1.0
    c2: float = 1.0
    mem_cycles_per_flop: float = 1.0 / 256
    core_cycles_per_flop: float = 1.0 / 512
    f_mem_hz: float = 1.6e9
    p_cp_w: float = 10.0


def device_model(spec: DeviceSpec, cpu_hz: Optional[float] = None) -> DeviceModel:
    """The time and energy model of `spec` at clock `cpu_hz` (None: its own clock)."""
    f = spec.cpu_hz if cpu_hz is None else cpu_hz
    if spec.kind == "gpu":
        return GpuModel(spec.t0_s, spec.c1, spec.c2, spec.mem_cycles_per_flop, spec.core_cycles_per_flop,
                        spec.f_mem_hz, f, spec.p_cp_w)
    return CpuModel(f, spec.flops_per_cycle, spec.kappa)


# per-vehicle draws: scenario key in `ranges` -> DeviceSpec field
_RANGE_FIELDS = {"cpu_hz": "cpu_hz", "flops_per_cycle": "flops_per_cycle", "kappa": "kappa",
                 "f_core_hz": "cpu_hz", "f_mem_hz": "f_mem_hz", "p_cp_w": "p_cp_w", "t0_s": "t0_s"}


def base_spec(cfg: VehicleDeviceConfig) -> DeviceSpec:
    """The scenario's vehicle device before any per-vehicle draw."""
    if cfg.kind == "gpu":
        g = cfg.gpu
        spec = DeviceSpec("gpu", g.f_core_hz, g.f_core_hz, cfg.flops_per_cycle, cfg.kappa, g.t0_s, g.c1, g.c2,
                          g.mem_cycles_per_flop, g.core_cycles_per_flop, g.f_mem_hz, g.p_cp_w)
    else:
        spec = DeviceSpec("cpu", cfg.cpu_hz, cfg.cpu_hz, cfg.flops_per_cycle, cfg.kappa)
    return spec


class VehicleDevices:
    """Each vehicle's device: the scenario's, with the fields in `ranges` drawn uniformly per vehicle from
    a seed of (run seed, vehicle id), so a vehicle's device does not depend on when it is first asked for."""

    def __init__(self, cfg: Optional[VehicleDeviceConfig], streams: Optional[RngStreams] = None,
                 model: Optional[DeviceModel] = None):
        self.cfg, self.streams = cfg, streams
        self._base = base_spec(cfg) if cfg is not None else None
        self._model = model if model is not None else device_model(self._base)
        self._specs: dict[str, DeviceSpec] = {}
        self._drawn = bool(cfg is not None and cfg.ranges)
        if self._drawn and streams is None:
            raise ValueError("per-vehicle device ranges need the run's RngStreams")

    @classmethod
    def fixed(cls, model: DeviceModel) -> "VehicleDevices":
        """Every vehicle with one device model, and no spec (tools and tests that build a Simulation by hand)."""
        return cls(None, model=model)

    def spec(self, vid: str) -> DeviceSpec:
        """Vehicle `vid`'s device (drawn on first use)."""
        if self._base is None:
            raise ValueError("VehicleDevices.fixed has a model, not a DeviceSpec")
        spec = self._specs.get(vid)
        if spec is None:
            spec = self._specs[vid] = self._draw(vid)
        return spec

    def _draw(self, vid: str) -> DeviceSpec:
        cfg, spec = self.cfg, self._base
        if self._drawn:
            rng = np.random.default_rng(self.streams.seed_for("devices", zlib.crc32(vid.encode("utf-8"))))
            spec = replace(spec, **{_RANGE_FIELDS[k]: lo + (hi - lo) * float(rng.random())
                                    for k, (lo, hi) in sorted(cfg.ranges.items())})
        return replace(spec, cpu_hz_min=cfg.min_cpu_hz if cfg.min_cpu_hz is not None else spec.cpu_hz)

    def model(self, vid: str, cpu_hz: Optional[float] = None) -> DeviceModel:
        """Vehicle `vid`'s device model at clock `cpu_hz` (None: its own)."""
        if cpu_hz is None and not self._drawn:
            return self._model
        return device_model(self.spec(vid), cpu_hz)


def device_models(devices: DevicesConfig) -> tuple[DeviceModel, ServerModel]:
    """(vehicle device model, server model) of a scenario's `devices` section (no per-vehicle draws)."""
    return device_model(base_spec(devices.vehicle)), ServerModel(devices.server.flops_per_s, devices.server.gpu_slots)
