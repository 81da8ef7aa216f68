"""The Simulation: one simpy.Environment (seconds), named RNG streams, the World and the Trace.

It owns the mobility process (the only caller of the source's `step`) and offers the protocols
two building blocks that write the trace: `transfer` (radio, per packet) and `compute` (device model).
"""
from __future__ import annotations

import zlib
from dataclasses import replace
from typing import Generator, Optional, Union

import numpy as np
import simpy
from simpy.core import StopSimulation

from mobility.base import MobilityError, MobilitySource

from .clock import At, UrgentTimeout, quiet_until, start_at
from .compute import DeviceModel, ServerModel, VehicleDevices
from .rng import RngStreams
from .trace import Trace
from .radio import BandwidthPool
from .transfer import Link, TransferOutcome, packet_sizes_bytes, transfer
from .world import Vehicle, World


class RadioLink(Link):
    """The link of one vehicle to the RSU it was associated with when the transfer started.

    Its bandwidth is its share from the optimizer, or, when the scenario makes bandwidth work-conserving,
    its share of the RSU's pool in that direction, which changes when other transfers there end. On the
    downlink the RSU's power follows the bandwidth (constant power spectral density, `channel.link`).
    """

    def __init__(self, sim: "Simulation", veh: Vehicle, direction: str, tx_power_w: Optional[float],
                 bandwidth_hz: float, fading: float = 1.0):
        if (direction == "dl") != (tx_power_w is None):
            raise ValueError(f"tx_power_w {tx_power_w!r} for direction {direction!r}: the vehicle's power on "
                             "'ul', None on 'dl' (the RSU's follows the bandwidth)")
        self.sim, self.veh, self.direction = sim, veh, direction
        self.fading = fading           # the block fading of its subchannel (1: no subchannel)
        self.rsu = veh.rsu
        self._tx_power_w, self.base_bandwidth_hz = tx_power_w, bandwidth_hz
        self.pool: Optional[BandwidthPool] = None
        self._token = -1
        self._resume_s = -1.0          # after a handover with policy 'continue': silent until then

    @property
    def tx_power_w(self) -> float:
        if self._tx_power_w is None:
            return self.sim.world.radio_state.params.downlink_power_w(self.bandwidth_hz)
        return self._tx_power_w

    @property
    def bandwidth_hz(self) -> float:
        return self.pool.bandwidth_hz(self._token) if self.pool is not None else self.base_bandwidth_hz

    def join(self, pool: BandwidthPool) -> None:
        self.pool, self._token = pool, pool.join(self.base_bandwidth_hz)

    def leave(self) -> None:
        if self.pool is not None:
            self.pool.leave(self._token)
            self.pool = None

    def rate_bps(self) -> float:
        if self.sim.env.now < self._resume_s:
            return 0.0
        rate = self.sim.world.rate_bps(self.veh, self.tx_power_w, self.bandwidth_hz, self.direction, self.fading)
        trace = self.sim.trace
        if trace.wants_counters:            # the link as this interval of the transfer sees it
            now = self.sim.env.now
            trace.counter(now, self.veh.id, f"{self.direction}.snr_db", 10.0 * np.log10(max(self.snr_linear(), 1e-30)))
            trace.counter(now, self.veh.id, f"{self.direction}.rate_bps", rate)
        return rate

    def snr_linear(self) -> float:
        return self.sim.world.snr_linear(self.veh, self.tx_power_w, self.bandwidth_hz, self.direction, self.fading)

    def rates_at_snr_bps(self, snr_linear: np.ndarray) -> np.ndarray:
        return self.sim.world.radio_state.rates_at_snr_bps(self.bandwidth_hz, snr_linear)

    def changed(self) -> Optional[simpy.Event]:
        pooled = self.pool.changed if self.pool is not None else None
        env = self.sim.env
        if env.now < self._resume_s:            # wake up when the handover delay is over
            resume = env.timeout(self._resume_s - env.now)
            return resume if pooled is None else resume | pooled
        return pooled

    def abort_cause(self) -> Optional[str]:
        if not self.veh.present:
            return "vehicle-left"
        if self.veh.rsu < 0:
            return "coverage-lost"
        if self.veh.rsu != self.rsu:
            if self.sim.on_handover != "continue":
                return "handover"
            self._hand_over(self.veh.rsu)
        return None

    def _hand_over(self, new_rsu: int) -> None:
        """Carry on through the new RSU after the handover delay (scenario rsus.on_handover: continue)."""
        sim, ids = self.sim, self.sim.world.rsus.ids
        sim.trace.instant(sim.env.now, sim.world.round, self.veh.id, "transfer.handover",
                          f"{self.direction} {ids[self.rsu]}->{ids[new_rsu]}")
        pooled = self.pool is not None
        self.leave()
        self.rsu = new_rsu
        if pooled:
            self.join(sim.world.radio_state.pool(new_rsu, self.direction))
        self._resume_s = sim.env.now + sim.handover_delay_s


def _resent(out: TransferOutcome, params) -> bool:
    """A leg that lost a packet to the ARQ limit, when the scenario has a higher layer resend the rest."""
    return out.cause == "arq-limit" and params.on_arq_limit == "resend"


class Simulation:
    def __init__(self, streams: RngStreams, source: MobilitySource, world_factory, trace: Trace, mtu_bytes: int,
                 transfer_mode: str, devices: Union[VehicleDevices, DeviceModel], duration_s: float,
                 on_handover: str = "abort", handover_delay_s: float = 0.0, server: Optional[ServerModel] = None):
        """`devices`: each vehicle's device (or one device model for all); `server`: the edge server's model."""
        self.env = simpy.Environment()
        self.streams = streams
        self.trace = trace
        self.source = source
        self.world: World = world_factory(self.env, trace)
        self.mtu_bytes, self.transfer_mode = mtu_bytes, transfer_mode
        self.devices = devices if isinstance(devices, VehicleDevices) else VehicleDevices.fixed(devices)
        self.server = server if server is not None else ServerModel(1e12)
        self.duration_s = duration_s
        self.done = self.env.event()
        self.tick_hooks: list = []          # called after each mobility tick, in order
        self.positions = None               # a cosim.positions.PositionLog when output.positions is on
        self.on_handover, self.handover_delay_s = on_handover, handover_delay_s
        self._spawned: list[simpy.Process] = []
        self.status = "running"
        self.failure = ""
        self.ticks = 0                      # mobility steps taken since the start (a resumed run replays them)
        self.mobility_process: Optional[simpy.Process] = None
        self.end_timeout: Optional[simpy.Event] = None
        self._resume_tick: Optional[simpy.Event] = None
        self.replayed_snapshot = None       # a resumed run's source snapshot at the checkpoint
        self.resumed_from_round: Optional[int] = None

    # ---- mobility -------------------------------------------------------------------------
    def _mobility(self, first: Optional[simpy.Event] = None) -> Generator:
        """Every step_s a tick; `first`: a resumed run's next tick, already scheduled."""
        prefetch = getattr(self.source, "prefetch", None)     # SUMO in a worker: it may compute ahead
        while True:
            if first is not None:
                yield first
                first = None
            else:
                yield UrgentTimeout(self.env, self.source.step_s)
            try:
                snap = self.source.step()
                self.ticks += 1
                # Nothing will ask SUMO before the next tick (no event due by then runs code, no protocol
                # listens to coverage changes, and the World and tick hooks read positions only): the
                # worker computes that tick while this one is applied. Identical results.
                if (prefetch is not None and not self.world.rsu_listeners
                        and quiet_until(self.env, self.env.now + self.source.step_s)):
                    prefetch()
                self.world.apply(snap)
            except MobilityError as exc:
                self.finish("mobility-failed", str(exc))
                return
            for hook in self.tick_hooks:
                hook()

    def finish(self, status: str, detail: str = "") -> None:
        """End the run (first caller wins)."""
        if not self.done.triggered:
            self.status, self.failure = status, detail
            self.done.succeed()

    def prepare_resume(self, now_s: float, next_tick_s: float, ticks: int) -> None:
        """A resumed run (cosim.checkpoint): the source started and stepped `ticks` times (its snapshots are
        in the restored World), the clock at `now_s`, the next tick due at `next_tick_s` exactly."""
        snap = self.source.start()
        for _ in range(ticks):
            snap = self.source.step()
        self.replayed_snapshot = snap           # live (its speeds read from the source on demand)
        self.ticks = ticks
        start_at(self.env, now_s)
        self._resume_tick = At(self.env, next_tick_s, urgent=True)

    def run(self, protocol_process: Generator) -> None:
        """Start mobility and the protocol; run until the protocol ends, mobility fails or time is up."""
        resumed = self._resume_tick is not None
        if not resumed:
            try:
                self.world.apply(self.source.start())
            except MobilityError as exc:
                self.finish("mobility-failed", str(exc))
                return
        self.mobility_process = self.env.process(self._mobility(self._resume_tick))
        proc = self.env.process(protocol_process)
        proc.callbacks.append(lambda ev: self.finish("completed") if ev.ok else None)
        self.end_timeout = At(self.env, self.duration_s) if resumed else self.env.timeout(self.duration_s)
        until = simpy.AnyOf(self.env, [self.done, self.end_timeout])
        until.callbacks.append(StopSimulation.callback)     # env.run() returns once `until` is processed
        while True:
            try:
                self.env.run()
                break
            except MobilityError as exc:    # from another process (a SUMO query of a protocol): same end
                self.finish("mobility-failed", str(exc))
        if not self.done.triggered:
            self.finish("duration-reached")
        if self.status != "completed":
            self._cut_in_flight(self.status)

    def spawn(self, generator: Generator) -> simpy.Process:
        """Start a per-vehicle process; if the run ends early it is interrupted so its span is recorded."""
        proc = self.env.process(generator)
        if len(self._spawned) > 256:
            self._spawned = [p for p in self._spawned if p.is_alive]
        self._spawned.append(proc)
        return proc

    def _cut_in_flight(self, cause: str) -> None:
        """Interrupt live spawned processes and let everything due now run, so in-flight work is traced."""
        for proc in self._spawned:
            if proc.is_alive:
                proc.interrupt(cause)
        while self.env.peek() <= self.env.now:
            self.env.step()

    # ---- building blocks for protocols ------------------------------------------------------
    def transfer(self, round_: int, veh: Vehicle, direction: str, payload: str, nbytes: int,
                 tx_power_w: Optional[float], bandwidth_hz: float, subchannel: Optional[int] = None) -> Generator:
        """Send nbytes between `veh` and the server ('ul' or 'dl') over its RSU; returns the outcome.
        `tx_power_w`: the vehicle's on 'ul'; None on 'dl', where the RSU sends its power's share of the band.
        With a `subchannel` (of channel.subchannels), its gain includes that subchannel's block fading.

        Records a tx span for the radio leg and, when the scenario has a backhaul, a 'tx.backhaul' span
        (actor: the RSU) for the wired leg: after the radio leg for 'ul', before it for 'dl'. The outcome is
        the radio leg's, with times from the first leg's start to the last leg's end. With
        `channel.on_arq_limit: resend`, a radio leg that loses a packet is recorded with status 'resent'
        (cause 'arq-limit') and the rest goes as a new leg, back to back; the outcome sums them.
        """
        radio = self.world.radio_state
        params = radio.params
        fading = 1.0 if subchannel is None else float(radio.subchannel_fading(veh.id, round_)[subchannel])
        link = RadioLink(self, veh, direction, tx_power_w, bandwidth_hz, fading)
        t0 = self.env.now
        if direction == "dl" and params.backhaul is not None and link.rsu >= 0:
            status, cause = yield from self._backhaul(round_, link.rsu, payload, nbytes)
            if status != "ok":
                return TransferOutcome(status, cause, t0, self.env.now, int(nbytes), 0, 0, 0, 0.0, 0.0)
        out = yield from self._radio_leg(round_, veh, link, direction, payload, nbytes)
        while _resent(out, params):         # a higher layer resends the rest
            rest = yield from self._radio_leg(round_, veh, link, direction, payload, nbytes - out.bytes_delivered)
            out = replace(rest, t_start_s=out.t_start_s, bytes_total=out.bytes_total,
                          bytes_delivered=out.bytes_delivered + rest.bytes_delivered,
                          packets_delivered=out.packets_delivered + rest.packets_delivered,
                          retransmissions=out.retransmissions + rest.retransmissions,
                          energy_j=out.energy_j + rest.energy_j, airtime_s=out.airtime_s + rest.airtime_s)
        if direction == "ul" and out.ok and params.backhaul is not None:
            status, cause = yield from self._backhaul(round_, link.rsu, payload, nbytes)
            out = replace(out, status=status, cause=cause, t_end_s=self.env.now)
        return replace(out, t_start_s=t0) if out.t_start_s != t0 else out

    def _radio_leg(self, round_: int, veh: Vehicle, link: "RadioLink", direction: str, payload: str,
                   nbytes: int) -> Generator:
        """One per-packet transfer over the vehicle's radio link, recorded as a tx span; its outcome."""
        radio = self.world.radio_state
        params = radio.params
        sink = None
        if self.trace.wants_packets:
            span_index = len(self.trace.spans)
            sink = lambda t, seq, b, att: self.trace.add_packets(  # noqa: E731
                (float(ti), veh.id, span_index, int(si), int(bi), int(ai)) for ti, si, bi, ai in zip(t, seq, b, att))
        if veh.rsu < 0 or not veh.present:
            out = TransferOutcome("aborted", link.abort_cause() or "no-coverage", self.env.now, self.env.now,
                                  int(nbytes), 0, 0, 0, 0.0, 0.0)
        else:
            rng = None
            if params.errors.random:
                n = radio.next_transfer_key(veh.id, direction)
                rng = np.random.Generator(np.random.PCG64(self.streams.seed_for(
                    "packets", zlib.crc32(veh.id.encode("utf-8")), direction == "ul", n)))
            if params.work_conserving:
                link.join(radio.pool(link.rsu, direction))
            try:
                out = yield from transfer(self.env, link, nbytes, self.mtu_bytes, lambda: radio.next_tick_s,
                                          self.transfer_mode, sink, params.errors, rng)
            finally:
                link.leave()
        self.trace.span(out.t_start_s, out.t_end_s, round_, veh.id, f"tx.{direction}", payload, out.bytes_delivered,
                        out.packets_delivered, out.retransmissions, out.energy_j if direction == "ul" else 0.0,
                        "resent" if _resent(out, params) else out.status, out.cause)
        return out

    def _backhaul(self, round_: int, rsu: int, payload: str, nbytes: int) -> Generator:
        """The wired leg between RSU `rsu` and the server; records a 'tx.backhaul' span; (status, cause)."""
        rsu_id = self.world.rsus.ids[rsu]
        t0 = self.env.now
        status, cause = "ok", ""
        try:
            yield self.env.timeout(self.world.radio_state.params.backhaul.delay_s(rsu_id, nbytes))
        except simpy.Interrupt as intr:
            status, cause = "dropped", str(intr.cause or "interrupted")
        packets = len(packet_sizes_bytes(nbytes, self.mtu_bytes))
        self.trace.span(t0, self.env.now, round_, rsu_id, "tx.backhaul", payload, nbytes if status == "ok" else 0,
                        packets if status == "ok" else 0, 0, 0.0, status, cause)
        return status, cause

    def compute(self, round_: int, veh: Vehicle, kind: str, flops: float, cpu_hz: Optional[float] = None) -> Generator:
        """Occupy the vehicle's processor for the time its device model gives at clock `cpu_hz` (None: its
        own); aborted if it departs."""
        t0 = self.env.now
        device = self.devices.model(veh.id, cpu_hz)
        dur = device.time_s(flops)
        energy = device.energy_j(flops)
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
