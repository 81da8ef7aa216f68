"""Helpers for the split-learning tests: tiny scripted scenarios and a run that exposes task and protocol."""
from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import torch
from torch.nn import functional as F

from channel.seed import free_space_gain_at_1m, noise_power_w
from cosim.rng import RngStreams
from cosim.run import run_scenario
from cosim.scenario import validate_tree
from learning.models import build_model

BASE = {
    "name": "tiny", "seed": 3, "duration_s": 100,
    "mobility": {"source": "scripted", "step_s": 1.0,
                 "scripted": {"vehicles": [{"id": "a", "x_m": 100.0, "speed_mps": 0.0}]}},
    "rsus": {"positions_m": [[0.0, 0.0]], "coverage_radius_m": 500.0},
    "channel": {"uplink_bandwidth_hz": 20e6, "downlink_bandwidth_hz": 20e6, "vehicle_tx_power_w": 0.1,
                "rsu_tx_power_w": 1.0},
    "learning": {"num_clients": 4, "local_epochs": 1, "batch_size": 32, "lr": 0.05, "momentum": 0.0},
    "protocol": {"scheme": "sfl_v1", "cut": 2, "rounds": 2, "vehicles_per_round": 5, "selection": "all",
                 "round_deadline_s": 50},
}


def tree(*, vehicles=None, learning=None, protocol=None, **top) -> dict:
    """BASE with sections updated (vehicles: the scripted list)."""
    t = {**BASE, **top}
    if vehicles is not None:
        t["mobility"] = {"source": "scripted", "step_s": 1.0, "scripted": {"vehicles": vehicles}}
    t["learning"] = {**BASE["learning"], **(learning or {})}
    t["protocol"] = {**BASE["protocol"], **(protocol or {})}
    if t["protocol"]["scheme"] == "fedavg":
        t["protocol"].pop("cut", None)
    return t


class Run:
    """A finished run: result (RunResult), task (final global_state), proto, spans and counters as dicts."""

    def __init__(self, result, task, proto, run_dir: Path):
        self.result, self.task, self.proto = result, task, proto
        self.rounds = result.rounds
        self.spans = pq.read_table(run_dir / "spans.parquet").to_pylist()
        self.counters = pq.read_table(run_dir / "counters.parquet").to_pylist()

    def kind(self, kind: str, actor: str | None = None) -> list[dict]:
        return [s for s in self.spans if s["kind"] == kind and (actor is None or s["actor"] == actor)]


def run(tmp_path: Path, t: dict, name: str = "run") -> Run:
    """run_scenario on tree `t`; the result carries the task and the protocol object."""
    result = run_scenario(validate_tree(t, "tiny.yaml"), tmp_path / name)
    return Run(result, result.task, result.protocol, tmp_path / name)


def rate_bps(distance_m: float, power_w: float, bandwidth_hz: float, direction: str = "ul",
             band_hz: float = 20e6) -> float:
    """The seed model's Shannon rate (gamma 2.5, free space at 1 m, 5.9 GHz) with the receiver's noise figure
    (RSU 5 dB, vehicle 9 dB); on 'dl' power_w is the RSU's, sent with its share of the band (constant PSD)."""
    gain = free_space_gain_at_1m(5.9e9) * distance_m ** -2.5
    nf_db, p = (5.0, power_w) if direction == "ul" else (9.0, power_w * bandwidth_hz / band_hz)
    return bandwidth_hz * math.log2(1 + p * gain / noise_power_w(bandwidth_hz, noise_figure_db=nf_db))


def central_training(t: dict, task, client: int, rounds: int, *, reset_each_round: bool = False) -> dict:
    """The whole model trained centrally on one client's data with one SGD, the same init, data order and
    seeds as the co-simulated rounds (momentum kept across rounds unless reset_each_round)."""
    cfg = task.config
    streams = RngStreams(t["seed"])
    torch.manual_seed(streams.seed_for("model-init"))
    model = build_model(cfg.model, task.train.input_shape[0], task.train.input_shape[-1], task.train.num_classes,
                        **dict(cfg.arch))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    data = task.client_data(client)
    for r in range(rounds):
        if reset_each_round:
            opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        model.train()
        gen = torch.Generator().manual_seed(streams.seed_for("local-train", r, client))
        for _ in range(cfg.local_epochs):
            perm = torch.randperm(len(data), generator=gen)
            for start in range(0, len(data), cfg.batch_size):
                idx = perm[start:start + cfg.batch_size]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(data.x[idx]), data.y[idx]).backward()
                opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def states_equal(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
