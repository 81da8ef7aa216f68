"""Small links and drivers for the transfer tests: a link whose rate and SNR change at ticks."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import simpy

from cosim.clock import UrgentTimeout
from cosim.radio import BandwidthPool
from cosim.transfer import Link, PacketErrors, transfer


class Ticker:
    """Ticks every step_s (urgent, like the mobility process); tick k starts interval k."""

    def __init__(self, env: simpy.Environment, step_s: float):
        self.env, self.step_s = env, step_s
        self.t_tick_s, self.index = 0.0, 0
        env.process(self._run())

    def _run(self):
        while True:
            yield UrgentTimeout(self.env, self.step_s)
            self.t_tick_s, self.index = self.env.now, self.index + 1

    def next_change_s(self) -> float:
        return self.t_tick_s + self.step_s


class ScheduleLink(Link):
    """Rate, SNR and abort cause per tick interval (the last entry holds on); Shannon rates per Hz of band."""

    def __init__(self, ticker: Ticker, rates_bps, snrs=None, aborts: Optional[dict] = None,
                 tx_power_w: float = 0.5, bandwidth_hz: float = 1e6):
        self.ticker, self.rates, self.snrs = ticker, list(rates_bps), list(snrs or [10.0])
        self.aborts, self.tx_power_w, self.bandwidth_hz = aborts or {}, tx_power_w, bandwidth_hz

    def _at(self, seq):
        return seq[min(self.ticker.index, len(seq) - 1)]

    def rate_bps(self) -> float:
        return float(self._at(self.rates))

    def snr_linear(self) -> float:
        return float(self._at(self.snrs))

    def rates_at_snr_bps(self, snr_linear):
        # scale the schedule's rate by the faded spectral efficiency relative to the mean SNR
        return self.rate_bps() * np.log2(1.0 + snr_linear) / math.log2(1.0 + self.snr_linear())

    def abort_cause(self):
        for tick in sorted(self.aborts):
            if self.ticker.index >= tick:
                return self.aborts[tick]
        return None


class PoolLink(Link):
    """A link whose bandwidth comes from a BandwidthPool: rate = bandwidth x spectral efficiency(SNR)."""

    def __init__(self, pool: BandwidthPool, base_hz: float, snr: float, tx_power_w: float = 0.2):
        self.pool, self.token, self.snr, self.tx_power_w = pool, pool.join(base_hz), snr, tx_power_w

    def rate_bps(self) -> float:
        return self.pool.bandwidth_hz(self.token) * math.log2(1.0 + self.snr)

    def snr_linear(self) -> float:
        return self.snr

    def rates_at_snr_bps(self, snr_linear):
        return self.pool.bandwidth_hz(self.token) * np.log2(1.0 + snr_linear)

    def changed(self):
        return self.pool.changed


@dataclass
class Record:
    """What one transfer produced: its outcome and its per-packet records."""
    outcome: object = None
    times: list = field(default_factory=list)
    seq: list = field(default_factory=list)
    nbytes: list = field(default_factory=list)
    attempts: list = field(default_factory=list)

    def sink(self, t, s, b, a):
        self.times.extend(t.tolist()), self.seq.extend(s.tolist())
        self.nbytes.extend(b.tolist()), self.attempts.extend(a.tolist())


def run_one(mode: str, nbytes: int, mtu: int, step_s: float, rates, snrs=None, aborts=None,
            errors: PacketErrors = PacketErrors(), seed: int = 7, interrupt_at: Optional[float] = None,
            start_at: float = 0.0, cause: str = "deadline") -> Record:
    """One transfer on its own clock; optionally interrupted (cause 'deadline') at interrupt_at."""
    env = simpy.Environment()
    ticker = Ticker(env, step_s)
    link = ScheduleLink(ticker, rates, snrs, aborts)
    rec = Record()
    rng = np.random.Generator(np.random.PCG64(seed))

    def proc():
        if start_at:
            yield env.timeout(start_at)
        rec.outcome = yield from transfer(env, link, nbytes, mtu, ticker.next_change_s, mode, rec.sink, errors, rng)

    p = env.process(proc())
    if interrupt_at is not None:
        def stopper():
            yield env.timeout(interrupt_at)
            if p.is_alive:
                p.interrupt(cause)
        env.process(stopper())
    env.run(until=p)
    return rec


def run_pool(mode: str, jobs, capacity_hz: float, work_conserving: bool, errors: PacketErrors = PacketErrors(),
             mtu: int = 1500, step_s: float = 1.0, seed: int = 3) -> list[Record]:
    """Transfers sharing one pool: jobs = [(start_s, nbytes, base_hz, snr)], each leaves the pool when done.

    Static (work_conserving False): each transfer keeps its base share, nothing is redistributed.
    """
    env = simpy.Environment()
    ticker = Ticker(env, step_s)
    pool = BandwidthPool(env, capacity_hz)
    recs = [Record() for _ in jobs]

    def proc(k, start_s, nbytes, base_hz, snr):
        if start_s:
            yield env.timeout(start_s)
        if work_conserving:
            link = PoolLink(pool, base_hz, snr)
        else:
            link = PoolLink(BandwidthPool(env, base_hz), base_hz, snr)
        rng = np.random.Generator(np.random.PCG64([seed, k]))
        try:
            recs[k].outcome = yield from transfer(env, link, nbytes, mtu, ticker.next_change_s, mode, recs[k].sink,
                                                  errors, rng)
        finally:
            link.pool.leave(link.token)

    procs = [env.process(proc(k, *job)) for k, job in enumerate(jobs)]
    env.run(until=simpy.AllOf(env, procs))
    return recs


def assert_same(a: Record, b: Record, tol_s: float = 1e-9) -> None:
    """Two runs of one transfer agree: per-packet times within tol_s, the rest exactly (energy to 1e-9)."""
    assert a.seq == b.seq
    assert a.nbytes == b.nbytes
    assert a.attempts == b.attempts
    assert np.allclose(a.times, b.times, rtol=0.0, atol=tol_s)
    oa, ob = a.outcome, b.outcome
    assert (oa.status, oa.cause) == (ob.status, ob.cause)
    assert (oa.bytes_delivered, oa.packets_delivered, oa.retransmissions) == \
        (ob.bytes_delivered, ob.packets_delivered, ob.retransmissions)
    assert abs(oa.t_end_s - ob.t_end_s) <= tol_s
    assert math.isclose(oa.energy_j, ob.energy_j, rel_tol=1e-9, abs_tol=1e-12)


# ---- whole-Simulation helpers ------------------------------------------------------------------------

from mobility.base import MobilitySnapshot, MobilitySource  # noqa: E402


class ScriptedSource(MobilitySource):
    """Positions per tick: frames[k] = {vehicle id: (x, y)} at t = k * step_s (the last frame holds on)."""

    def __init__(self, step_s: float, frames: list[dict]):
        self.step_s, self.frames, self.k = step_s, frames, 0

    def _snap(self) -> MobilitySnapshot:
        frame = self.frames[min(self.k, len(self.frames) - 1)]
        ids = tuple(sorted(frame))
        xy = np.array([frame[v] for v in ids], dtype=float).reshape(-1, 2)
        return MobilitySnapshot(self.k * self.step_s, ids, xy, np.zeros(len(ids)), np.zeros(len(ids)))

    def start(self) -> MobilitySnapshot:
        return self._snap()

    def step(self) -> MobilitySnapshot:
        self.k += 1
        return self._snap()


def make_sim(frames: list[dict], scenario: Optional[dict] = None, step_s: float = 1.0, mode: str = "batched",
             level: str = "packets"):
    """A Simulation on scripted positions, with the radio and RSUs of a scenario tree (name added)."""
    from cosim.build import build_radio, build_rsus
    from cosim.compute import CpuModel
    from cosim.rng import RngStreams
    from cosim.scenario import validate_tree
    from cosim.sim import Simulation
    from cosim.trace import Trace
    from cosim.world import World

    sc = validate_tree({"name": "t", **(scenario or {})}, "test.yaml")
    streams = RngStreams(sc.seed)
    rsus, radio = build_rsus(sc), build_radio(sc, streams)

    def world_factory(env, tr):
        return World(env, rsus, radio, tr, 10, sc.rsus.hysteresis_m, step_s)

    return Simulation(streams, ScriptedSource(step_s, frames), world_factory, Trace(level), sc.channel.mtu_bytes,
                      mode, CpuModel(1e9, 1.0, 1e-28), 1e6)


def run_transfers(sim, jobs) -> list:
    """Run sim.transfer for jobs = [(start_s, vehicle id, direction, nbytes, power_w, bandwidth_hz)] in parallel."""
    env = sim.env
    outs = [None] * len(jobs)

    def one(k, start_s, vid, direction, nbytes, power_w, bw_hz):
        if start_s:
            yield env.timeout(start_s)
        power = power_w if direction == "ul" else None       # the RSU's power follows the bandwidth
        outs[k] = yield from sim.transfer(0, sim.world.vehicles[vid], direction, "model", nbytes, power, bw_hz)

    def protocol():
        yield simpy.AllOf(env, [env.process(one(k, *job)) for k, job in enumerate(jobs)])

    sim.run(protocol())
    return outs


def switching_snr(cqi: int) -> float:
    """A linear SNR a hair above CQI `cqi`'s switching SNR: link adaptation picks that CQI, BLER 10%."""
    from channel.rate import cqi_snr_thresholds_db
    return float(10.0 ** (cqi_snr_thresholds_db()[cqi - 1] / 10.0)) * (1.0 + 1e-9)
