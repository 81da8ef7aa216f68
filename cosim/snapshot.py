"""Round snapshots from the live run: the covered vehicles as the server sees them when it plans, and
the run-constant parts (radio settings, edge server, the measured model) built once."""
from __future__ import annotations

import functools

from .optimizers.api import Budgets, Candidate, LearningSpec, ModelSpec, RadioSpec, RoundSnapshot, ServerSpec
from .scenario import Scenario, min_tx_power_w
from .sim import Simulation
from .task import LearningTask
from .world import Vehicle


class SnapshotBuilder:
    """`build(round, vehicles, dwell_s, extra)` -> RoundSnapshot (no side effects on the run)."""

    def __init__(self, sim: Simulation, task: LearningTask, sc: Scenario):
        self.sim, self.task, self.sc = sim, task, sc

    @functools.cached_property
    def _static(self) -> dict:
        sc, task, sim = self.sc, self.task, self.sim
        ch, proto = sc.channel, sc.protocol
        model = ModelSpec(sc.learning.model, task.model_bytes, task.train_flops_per_sample, task.train.num_classes,
                          task.profiles())
        return dict(
            scheme=proto.scheme, settings=proto.model_dump(mode="json"),
            link=sim.world.radio_state.params.budget,
            radio=RadioSpec(ch.uplink_bandwidth_hz, ch.downlink_bandwidth_hz, ch.vehicle_tx_power_w,
                            min_tx_power_w(ch), ch.rsu_tx_power_w, len(sim.world.rsus.ids), ch.subchannels.count),
            server=ServerSpec(sim.server.flops_per_s, sim.server.gpu_slots), model=model,
            learning=LearningSpec(sc.learning.batch_size, sc.learning.local_epochs),
            budgets=Budgets(proto.round_deadline_s, getattr(proto, "energy_budget_j", None)))

    def candidate(self, veh: Vehicle, dwell_s: float, round_: int, link: tuple) -> Candidate:
        """`link`: the vehicle's (RSU, distance, gain), from `World.links`."""
        radio, task = self.sim.world.radio_state, self.task
        rsu, distance_m, gain = link
        fading = tuple(radio.subchannel_fading(veh.id, round_).tolist()) if radio.params.subchannels else ()
        return Candidate(veh.id, veh.client, rsu, distance_m, gain, radio.link_state(veh.id, rsu),
                         radio.interference_w_per_hz(veh.id, "ul"), radio.interference_w_per_hz(veh.id, "dl"),
                         float(dwell_s), task.client_size(veh.client), task.label_histogram(veh.client),
                         self.sim.devices.spec(veh.id), fading)

    def build(self, round_: int, vehicles: list[Vehicle], dwell_s, extra=None) -> RoundSnapshot:
        links = zip(*self.sim.world.links(vehicles)[:3])
        cands = tuple(self.candidate(v, d, round_, link) for v, d, link in zip(vehicles, dwell_s, links))
        return RoundSnapshot(round=round_, t_s=float(self.sim.env.now), candidates=cands, extra=dict(extra or {}),
                             **self._static)
