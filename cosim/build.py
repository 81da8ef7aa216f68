"""Scenario -> the parts of a run: mobility source, RSU layout, radio parameters, devices."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from channel.buildings import Buildings
from channel.rate import cqi_snr_thresholds_db
from channel.seed import free_space_gain_at_1m
from mobility.base import MobilitySource
from mobility.errors import one_line
from mobility.fcd import FcdReplay
from mobility.roads import PathTooShortError, load_net, rsus_along_path
from mobility.rsu import RsuLayout
from mobility.scripted import ScriptedSource, ScriptedVehicle
from mobility.sumo_live import SumoLive
from mobility.sumo_live import _cfg_inputs as cfg_inputs  # the .sumocfg reader SumoLive itself uses
from mobility.synthetic import HighwaySpec, SyntheticHighway

from .backhaul import build_backhaul
from .errors import SettingError
from .rng import RngStreams
from .scenario import DEFAULT_RSU_POSITIONS_M, Scenario
from .transfer import PacketErrors
from .world import RadioParams


def build_source(sc: Scenario, streams: RngStreams, output_dir: Optional[Path] = None) -> MobilitySource:
    """The scenario's mobility source (not started). Two calls with fresh streams give the same vehicles.
    `output_dir`: where the outputs a SUMO configuration asks for are written (the run directory's sumo/)."""
    m = sc.mobility
    if m.source == "highway":
        return SyntheticHighway(HighwaySpec(**m.highway.model_dump()), m.step_s, streams.get("mobility"))
    if m.source == "scripted":
        vehicles = [ScriptedVehicle(v.id, v.x_m, v.y_m, v.speed_mps, v.heading_deg, v.depart_s,
                                    v.arrive_s if v.arrive_s is not None else float("inf"))
                    for v in m.scripted.vehicles]
        return ScriptedSource(vehicles, m.step_s)
    if m.source == "fcd":
        return FcdReplay(sc.path(m.fcd.file), m.step_s, begin_s=m.fcd.begin_s)
    s = m.sumo
    files = dict(sumocfg=sc.path(s.config)) if s.config else dict(
        net_file=sc.path(s.net), route_files=[sc.path(r) for r in s.routes],
        additional_files=[sc.path(a) for a in s.additional])
    return SumoLive(m.step_s, **files, seed=s.seed if s.seed is not None else sc.seed, backend=s.backend,
                    gui=s.gui, begin_s=s.begin_s, extra_args=s.extra_args, output_dir=output_dir,
                    warmup_s=s.warmup_s, worker=s.worker)


def sumo_net_file(sc: Scenario) -> Path:
    """The net file of a SUMO scenario (named directly or inside the .sumocfg)."""
    s = sc.mobility.sumo
    if s.net:
        return sc.path(s.net)
    return cfg_inputs(sc.path(s.config))["net"][0]


def build_rsus(sc: Scenario) -> RsuLayout:
    """Explicit positions, placement along the SUMO net's roads, or the default three on the highway."""
    r = sc.rsus
    if r.placement is not None:
        p = r.placement
        net_file = sumo_net_file(sc)
        if p.edges is not None:
            net = load_net(net_file)
            for i, eid in enumerate(p.edges):
                if not net.hasEdge(eid):
                    some = ", ".join(sorted(e.getID() for e in net.getEdges(withInternal=False))[:5])
                    raise SettingError(f"rsus.placement.edges.{i}", eid, f"an edge id of {net_file} (e.g. {some})")
        try:
            return rsus_along_path(net_file, p.spacing_m, r.coverage_radius_m, edge_ids=p.edges,
                                   first_m=p.first_m, lateral_offset_m=p.lateral_offset_m)
        except PathTooShortError as e:
            field, value = ("first_m", p.first_m) if p.first_m is not None else ("spacing_m", p.spacing_m)
            where = "the edges given" if p.edges is not None else "the net's longest path"
            limit = e.total_m if p.first_m is not None else 2.0 * e.total_m
            raise SettingError(f"rsus.placement.{field}", value,
                               f"at most {limit:.1f} m ({where} is {e.total_m:.1f} m long)") from None
    positions = r.positions_m if r.positions_m is not None else DEFAULT_RSU_POSITIONS_M
    xy = np.asarray(positions, dtype=float).reshape(-1, 2)
    return RsuLayout(tuple(f"rsu{i}" for i in range(len(xy))), xy, r.coverage_radius_m)


def build_buildings(sc: Scenario) -> Optional[Buildings]:
    """The building polygons of `channel.buildings` (None when not set); a file without any is a SettingError."""
    if sc.channel.buildings is None:
        return None
    path = sc.path(sc.channel.buildings)
    try:
        return Buildings.from_file(path)
    except ValueError as e:
        raise SettingError("channel.buildings", sc.channel.buildings, one_line(str(e))) from None


def build_radio(sc: Scenario, streams: RngStreams | None = None) -> RadioParams:
    """The channel, packet and backhaul settings of a run. `streams` gives the "channel" stream for LOS
    and shadowing draws; without it, a RngStreams of the scenario's seed (the same named stream)."""
    c = sc.channel
    h0 = c.h0 if c.h0 is not None else free_space_gain_at_1m(c.carrier_hz)
    f = c.fading
    outage_db = f.outage_snr_db if f.outage_snr_db is not None else float(cqi_snr_thresholds_db(c.target_ber)[0])
    if c.rate_mode == "mcs":                  # below CQI 1 the MCS rate is 0: never send at that SNR
        outage_db = max(outage_db, float(cqi_snr_thresholds_db(c.target_ber)[0]))
    per_model = c.per_model
    per_params = (("target_ber", c.target_ber),) if per_model == "mcs" else ()
    if per_model == "waterfall":
        per_params = (("a", c.per.waterfall_a), ("g", c.per.waterfall_g),
                      ("snr_threshold_linear", 10.0 ** (c.per.waterfall_snr_threshold_db / 10.0)),
                      ("reference_bits", float(c.per.reference_bits)))
    per_packet_fading = f.kind if f.mode == "per_packet" else "none"
    outage_linear = 10.0 ** (outage_db / 10.0)
    if c.rate_mode == "mcs":   # dB -> linear can land a hair below the CQI 1 threshold, where the rate is 0
        outage_linear = float(np.nextafter(outage_linear, np.inf)) * (1.0 + 1e-12)
    errors = PacketErrors(per_model, per_params, c.max_retransmissions, per_packet_fading,
                          f.k_factor if per_packet_fading == "rician" else None,
                          outage_linear if per_packet_fading != "none" else 0.0)
    backhaul = build_backhaul(sc.backhaul, build_rsus(sc).ids) if sc.backhaul.enabled else None
    return RadioParams(
        h0, c.pathloss_exponent, c.noise_dbm_per_hz, rsu_noise_figure_db=c.rsu_noise_figure_db,
        vehicle_noise_figure_db=c.vehicle_noise_figure_db, vehicle_height_m=c.vehicle_antenna_height_m,
        rsu_height_m=sc.rsus.antenna_height_m, los_correlation_m=c.los_correlation_m, buildings=build_buildings(sc),
        model=c.model, carrier_hz=c.carrier_hz, model_params=tuple(sorted(c.model_params.items())),
        antenna_gain_db=c.vehicle_antenna_gain_dbi + c.rsu_antenna_gain_dbi,
        shadowing=c.shadowing.enabled, shadowing_sigma_db=c.shadowing.sigma_db,
        shadowing_decorrelation_m=c.shadowing.decorrelation_m,
        fading=f.kind, k_factor=f.k_factor, fading_mode=f.mode, rate_mode=c.rate_mode, target_ber=c.target_ber,
        errors=errors, on_arq_limit=c.on_arq_limit, interference=c.interference.enabled,
        interference_activity=c.interference.activity,
        vehicle_tx_power_w=c.vehicle_tx_power_w, rsu_tx_power_w=c.rsu_tx_power_w,
        uplink_bandwidth_hz=c.uplink_bandwidth_hz, downlink_bandwidth_hz=c.downlink_bandwidth_hz,
        work_conserving=c.work_conserving, subchannels=c.subchannels.count,
        subchannel_fading=c.subchannels.fading, subchannel_k_factor=c.subchannels.k_factor, backhaul=backhaul,
        streams=streams if streams is not None else RngStreams(sc.seed))

