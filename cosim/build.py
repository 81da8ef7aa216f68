"""Scenario -> the parts of a run: mobility source, RSU layout, radio parameters, devices."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from channel.seed import free_space_gain_at_1m
from mobility.base import MobilitySource
from mobility.rsu import RsuLayout
from mobility.scripted import ScriptedSource, ScriptedVehicle
from mobility.synthetic import HighwaySpec, SyntheticHighway

from .compute import CpuModel, ServerModel
from .rng import RngStreams
from .scenario import Scenario
from .world import RadioParams


def build_source(sc: Scenario, base_dir: Path, streams: RngStreams) -> MobilitySource:
    m = sc.mobility
    if m.source == "highway":
        return SyntheticHighway(HighwaySpec(**m.highway.model_dump()), m.step_s, streams.get("mobility"))
    if m.source == "scripted":
        vehicles = [ScriptedVehicle(v.id, v.x_m, v.y_m, v.speed_mps, v.heading_deg, v.depart_s,
                                    v.arrive_s if v.arrive_s is not None else float("inf"))
                    for v in m.scripted.vehicles]
        return ScriptedSource(vehicles, m.step_s)
    raise NotImplementedError(f"mobility source {m.source!r} is not wired into runs yet")


def build_rsus(sc: Scenario) -> RsuLayout:
    xy = np.asarray(sc.rsus.positions_m, dtype=float).reshape(-1, 2)
    return RsuLayout(tuple(f"rsu{i}" for i in range(len(xy))), xy, sc.rsus.coverage_radius_m)


def build_radio(sc: Scenario) -> RadioParams:
    c = sc.channel
    h0 = c.h0 if c.h0 is not None else free_space_gain_at_1m(c.carrier_hz)
    return RadioParams(h0, c.pathloss_exponent, c.noise_dbm_per_hz, c.noise_figure_db)


def build_devices(sc: Scenario) -> tuple[CpuModel, ServerModel]:
    v = sc.devices.vehicle
    return CpuModel(v.cpu_hz, v.flops_per_cycle, v.kappa), ServerModel(sc.devices.server.flops_per_s)
