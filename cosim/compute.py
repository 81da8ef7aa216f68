"""Device compute models: simulated time and energy from FLOPs measured on the real model.

CPU model (SCHEMES.md, common system model): t = cycles / f, E = kappa * cycles * f^2,
with cycles = FLOPs / flops_per_cycle. The host's wall clock is never used.
"""
from __future__ import annotations

from dataclasses import dataclass


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
class ServerModel:
    """An edge server with a fixed throughput; energy is not charged to vehicles."""

    flops_per_s: float

    def time_s(self, flops: float) -> float:
        return flops / self.flops_per_s
