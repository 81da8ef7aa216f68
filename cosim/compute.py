"""Device compute models: simulated time and energy from FLOPs measured on the real model.

Each model offers `time_s(flops)` and `energy_j(flops)` for one compute call (the host's wall clock is
never used). SCHEMES.md, common system model:
- CPU: t = cycles / f, E = kappa * cycles * f^2, with cycles = FLOPs / flops_per_cycle;
- GPU: t = t0 + c1 b theta_mem / f_mem + c2 b theta_core / f_core, E = p_cp t, with the per-sample
  theta's from the measured FLOPs (b theta = FLOPs of the call x cycles per FLOP).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from .scenario import DevicesConfig


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


def device_models(devices: DevicesConfig) -> tuple[DeviceModel, ServerModel]:
    """(vehicle device model, server model) of a scenario's `devices` section."""
    v = devices.vehicle
    if v.kind == "gpu":
        g = v.gpu
        vehicle: DeviceModel = GpuModel(g.t0_s, g.c1, g.c2, g.mem_cycles_per_flop, g.core_cycles_per_flop,
                                        g.f_mem_hz, g.f_core_hz, g.p_cp_w)
    else:
        vehicle = CpuModel(v.cpu_hz, v.flops_per_cycle, v.kappa)
    return vehicle, ServerModel(devices.server.flops_per_s, devices.server.gpu_slots)
