"""The Simulation: one simpy.Environment (seconds), named RNG streams, the World and the Trace.

It owns the mobility process (the only caller of the source's `step`) and offers the protocols
two building blocks that write the trace: `transfer` (radio, per packet) and `compute` (device model).
"""
from __future__ import annotations

from typing import Generator, Optional

import numpy as np
import simpy

from mobility.base import MobilityError, MobilitySource

from .clock import UrgentTimeout
from .compute import CpuModel
from .rng import RngStreams
from .trace import Trace
from .transfer import TransferOutcome, transfer
from .world import Vehicle, World


class RadioLink:
    """The link of one vehicle to the RSU it was associated with when the transfer started."""

    def __init__(self, sim: "Simulation", veh: Vehicle, direction: str, tx_power_w: float, bandwidth_hz: float):
        self.sim, self.veh, self.direction = sim, veh, direction
        self.rsu = veh.rsu
        self.tx_power_w, self.bandwidth_hz = tx_power_w, bandwidth_hz

    def rate_bps(self) -> float:
        rate = self.sim.world.rate_bps(self.veh, self.tx_power_w, self.bandwidth_hz)
        if self.sim.trace.wants_counters:
            self.sim.trace.counter(self.sim.env.now, self.veh.id, f"{self.direction}.rate_bps", rate)
        return rate

    def abort_cause(self) -> Optional[str]:
        if not self.veh.present:
            return "vehicle-left"
        if self.veh.rsu < 0:
            return "coverage-lost"
        if self.veh.rsu != self.rsu:
            return "handover"
        return None


class Simulation:
    def __init__(self, streams: RngStreams, source: MobilitySource, world_factory, trace: Trace, mtu_bytes: int,
                 transfer_mode: str, vehicle_cpu: CpuModel, duration_s: float):
        self.env = simpy.Environment()
        self.streams = streams
        self.trace = trace
        self.source = source
        self.world: World = world_factory(self.env, trace)
        self.mtu_bytes, self.transfer_mode = mtu_bytes, transfer_mode
        self.vehicle_cpu = vehicle_cpu
        self.duration_s = duration_s
        self.done = self.env.event()
        self.status = "running"
        self.failure = ""

    # ---- mobility -------------------------------------------------------------------------
    def _mobility(self) -> Generator:
        while True:
            yield UrgentTimeout(self.env, self.source.step_s)
            try:
                snap = self.source.step()
            except MobilityError as exc:
                self.finish("mobility-failed", str(exc))
                return
            self.world.apply(snap)

    def finish(self, status: str, detail: str = "") -> None:
        """End the run (first caller wins)."""
        if not self.done.triggered:
            self.status, self.failure = status, detail
            self.done.succeed()

    def run(self, protocol_process: Generator) -> None:
        """Start mobility and the protocol; run until the protocol ends, mobility fails or time is up."""
        try:
            snap = self.source.start()
        except MobilityError as exc:
            self.finish("mobility-failed", str(exc))
            return
        self.world.apply(snap)
        self.env.process(self._mobility())
        proc = self.env.process(protocol_process)
        proc.callbacks.append(lambda _ev: self.finish("completed"))
        self.env.run(until=simpy.AnyOf(self.env, [self.done, self.env.timeout(self.duration_s)]))
        if not self.done.triggered:
            self.finish("duration-reached")

    # ---- building blocks for protocols ------------------------------------------------------
    def transfer(self, round_: int, veh: Vehicle, direction: str, payload: str, nbytes: int,
                 tx_power_w: float, bandwidth_hz: float) -> Generator:
        """Send nbytes between `veh` and its RSU ('ul' or 'dl'); records a tx span; returns the outcome."""
        link = RadioLink(self, veh, direction, tx_power_w, bandwidth_hz)
        sink = None
        if self.trace.wants_packets:
            span_index = len(self.trace.spans)
            sink = lambda t, seq, b: self.trace.packets.extend(  # noqa: E731
                (float(ti), veh.id, span_index, int(si), int(bi), 1) for ti, si, bi in zip(t, seq, b))
        if veh.rsu < 0 or not veh.present:
            out = TransferOutcome("aborted", link.abort_cause() or "no-coverage", self.env.now, self.env.now,
                                  int(nbytes), 0, 0, 0, 0.0, 0.0)
        else:
            out = yield from transfer(self.env, link, nbytes, self.mtu_bytes, lambda: self.world.next_tick_s,
                                      self.transfer_mode, sink)
        self.trace.span(out.t_start_s, out.t_end_s, round_, veh.id, f"tx.{direction}", payload, out.bytes_delivered,
                        out.packets_delivered, out.retransmissions, out.energy_j if direction == "ul" else 0.0,
                        out.status, out.cause)
        return out

    def compute(self, round_: int, veh: Vehicle, kind: str, flops: float) -> Generator:
        """Occupy the vehicle's CPU for the time the device model gives; aborted if it departs."""
        t0 = self.env.now
        dur = self.vehicle_cpu.time_s(flops)
        energy = self.vehicle_cpu.energy_j(flops)
        status, cause = "ok", ""
        try:
            yield self.env.timeout(dur) | veh.departed
            if not veh.present and self.env.now < t0 + dur:
                status, cause = "aborted", "vehicle-left"
        except simpy.Interrupt as intr:
            status, cause = "dropped", str(intr.cause or "interrupted")
        frac = 1.0 if status == "ok" else (self.env.now - t0) / dur if dur > 0 else 0.0
        self.trace.span(t0, self.env.now, round_, veh.id, kind, "", 0, 0, 0, energy * frac, status, cause)
        return status == "ok"

    def rng(self, name: str) -> np.random.Generator:
        return self.streams.get(name)
