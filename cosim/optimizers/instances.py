"""Random round snapshots for `cosim optimize --random`, optimizer tests and tools/bench_optim.py.

The seed papers' setting (SCHEMES.md, common system model): vehicles within 500 m of their RSU, the seed
channel h0 d^-2.5 (free space at 1 m, 5.9 GHz), 20 MHz per RSU, p in [0.01, 0.2] W, CPUs of 1-2 GHz; the
model is the project's CNN for digits, profiled at every cut.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from channel.link import LinkBudget
from channel.seed import free_space_gain_at_1m, seed_gain_linear
from learning.fl import state_nbytes
from learning.flops import train_flops_per_sample
from learning.models import build_model
from learning.profile import split_profile

from .. import registry
from ..compute import DeviceSpec
from .api import Budgets, Candidate, LearningSpec, ModelSpec, RadioSpec, RoundSnapshot, ServerSpec


@functools.lru_cache(maxsize=8)
def model_spec(name: str = "cnn", in_channels: int = 1, image_size: int = 8, num_classes: int = 10) -> ModelSpec:
    """A model's measured bytes, training FLOPs per sample and profile at every cut."""
    with torch.random.fork_rng():          # the weights do not matter; leave the caller's RNG alone
        model = build_model(name, in_channels, image_size, num_classes)
    flops = train_flops_per_sample(model, (in_channels, image_size, image_size))
    return ModelSpec(name, state_nbytes(model.state_dict()), float(flops), num_classes,
                     split_profile(name, in_channels, image_size, num_classes))


def default_settings(scheme: str, n: int, **overrides) -> dict:
    """The scheme's protocol settings at their defaults (a split scheme cut at the model's first split point),
    every vehicle asked for, with `overrides`."""
    config = registry.scheme(scheme).config
    tree = {"scheme": scheme, "vehicles_per_round": n, **overrides}
    if "cut" in config.model_fields and "cut" not in tree:
        tree["cut"] = model_spec().cuts[0].cut
    return config.model_validate(tree).model_dump(mode="json")


def random_snapshot(n: int, seed: int, scheme: str = "fedavg", rsus: int | None = None,
                    settings: dict | None = None, bandwidth_hz: float = 20e6) -> RoundSnapshot:
    """A random round of `n` covered vehicles over `rsus` RSUs (default: one per 10 vehicles), with protocol
    `settings` overriding the scheme's defaults and `bandwidth_hz` per RSU and direction."""
    rng = np.random.default_rng(seed)
    rsus = rsus if rsus is not None else max(1, n // 10)
    h0 = free_space_gain_at_1m(5.9e9)
    model = model_spec()
    cands = []
    for i in range(n):
        d_m = float(rng.uniform(20.0, 500.0))
        samples = int(rng.integers(30, 121))
        p = rng.dirichlet(np.full(model.num_classes, 0.5))
        hist = tuple(int(x) for x in rng.multinomial(samples, p))
        f_hz = float(rng.uniform(1.0e9, 2.0e9))
        cands.append(Candidate(
            id=f"v{i:04d}", client=i, rsu=int(rng.integers(rsus)), distance_m=d_m,
            gain_linear=float(seed_gain_linear(d_m, h0, 2.5)), los=-1, interference_ul_w_per_hz=0.0,
            interference_dl_w_per_hz=0.0, dwell_s=float(rng.uniform(5.0, 120.0)), num_samples=samples,
            label_histogram=hist, device=DeviceSpec("cpu", f_hz, 1.0e9)))
    return RoundSnapshot(
        round=0, t_s=0.0, scheme=scheme, settings=default_settings(scheme, n, **(settings or {})),
        candidates=tuple(cands), link=LinkBudget(), radio=RadioSpec(bandwidth_hz, bandwidth_hz, 0.2, 0.01, 1.0, rsus), server=ServerSpec(1e12, 1),
        model=model, learning=LearningSpec(16, 1), budgets=Budgets(30.0, None))
