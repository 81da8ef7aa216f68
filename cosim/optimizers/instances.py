"""Random round snapshots for `cosim optimize --random`, optimizer tests and tools/bench_optim.py.

The seed papers' setting (SCHEMES.md, common system model): vehicles within 500 m of their RSU, the seed
channel h0 d^-2.5 (free space at 1 m, 5.9 GHz), 20 MHz per RSU, p in [0.01, 0.2] W, CPUs of 1-2 GHz; the
model is the project's CNN for digits, profiled at every cut. SFLAM's rounds (scheme "sflam") have its own
setting: 50 MHz per RSU divided into `subchannels` with Rayleigh block fading (Exp(1) power gains), the
ViT of its bundled scenario cut after the patch embedding, batch 128 and 5 local epochs, an accuracy curve
and a deadline that lets only low bits through on the worse pairs. ST-SFLora's rounds (scheme "st_sflora"):
50 MHz per RSU, a ViT of 64 patch tokens of 64 elements cut after its second block (batch 32, one epoch), and
per vehicle a token importance profile (a few tokens dominating), drawn after everything else.
"""
from __future__ import annotations

import dataclasses
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
from .st_sflora_model import TokenGeometry


# SFLAM's rounds: the ViT of its bundled scenario (patch 8 on 1x32x32 inputs); O(q) from chance (c, 10 classes)
# to 0.9 at full precision; T_max = 0.04 s + 0.013 s per subchannel (each carries W / M, so the airtimes grow
# with M): at 100 subchannels about 35% of the pairs miss it even at 2 bits and p_max, another 30% at 16 bits
SFLAM_ARCH = (("depth", 2), ("embed_dim", 32), ("mlp_ratio", 2.0), ("num_heads", 4), ("patch_size", 8))
SFLAM_ACCURACY = {"a": 0.8, "b": 0.4, "c": 0.1}
SFLAM_BANDWIDTH_HZ = 50e6
SFLAM_DEADLINE_S = (0.04, 0.013)

# ST-SFLora's rounds: 64 patches (patch 4 on 1x32x32) of D = 64, cut 3 (embedding + 2 blocks on the vehicle);
# the server's FLOPs per sample at L tokens, c0 + c1 L + c2 L^2, of its 2 blocks (8 D^2 MACs per token, 2 D L^2
# of attention each; x3 for training), c0 the rest of the profile at L = 65; importance: 0.85-0.95 of the CLS
# attention on the patches, Dirichlet(0.3) over them
ST_ARCH = (("depth", 4), ("embed_dim", 64), ("mlp_ratio", 2.0), ("num_heads", 4), ("patch_size", 4))
ST_BANDWIDTH_HZ = 50e6
ST_CUT = 3
ST_SERVER_FLOPS = (3840.0, 393216.0, 1536.0)
ST_IMPORTANCE_ALPHA = 0.3


@functools.lru_cache(maxsize=8)
def model_spec(name: str = "cnn", in_channels: int = 1, image_size: int = 8, num_classes: int = 10,
               arch: tuple[tuple[str, object], ...] = ()) -> ModelSpec:
    """A model's measured bytes, training FLOPs per sample and profile at every cut; `arch`: the model's
    constructor overrides as (key, value) items (a tuple, so the cache can hash it)."""
    config = dict(arch)
    with torch.random.fork_rng():          # the weights do not matter; leave the caller's RNG alone
        model = build_model(name, in_channels, image_size, num_classes, **config)
    flops = train_flops_per_sample(model, (in_channels, image_size, image_size))
    return ModelSpec(name, state_nbytes(model.state_dict()), float(flops), num_classes,
                     split_profile(name, in_channels, image_size, num_classes, **config))


def default_settings(scheme: str, n: int, **overrides) -> dict:
    """The scheme's protocol settings at their defaults (a split scheme cut at the model's first split point),
    every vehicle asked for, with `overrides`."""
    config = registry.scheme(scheme).config
    tree = {"scheme": scheme, "vehicles_per_round": n, **overrides}
    if "cut" in config.model_fields and "cut" not in tree:
        tree["cut"] = model_spec().cuts[0].cut
    return config.model_validate(tree).model_dump(mode="json")


def _st_extra(rng: np.random.Generator, cands) -> dict:
    """ST-SFLora's round data: the token geometry and each vehicle's importance scores (after all other draws)."""
    n_tok, dim = 64, 64
    scores = rng.dirichlet(np.full(n_tok, ST_IMPORTANCE_ALPHA), len(cands)) * rng.uniform(0.85, 0.95, (len(cands), 1))
    return {"token_geometry": TokenGeometry(n_tok, dim, 32, ST_SERVER_FLOPS).to_mapping(),
            "importance": {c.id: [float(x) for x in np.maximum(row, 1e-12)] for c, row in zip(cands, scores)}}


def random_snapshot(n: int, seed: int, scheme: str = "fedavg", rsus: int | None = None,
                    settings: dict | None = None, bandwidth_hz: float | None = None,
                    subchannels: int | None = None) -> RoundSnapshot:
    """A random round of `n` covered vehicles over `rsus` RSUs (default: one per 10 vehicles), with protocol
    `settings` overriding the scheme's defaults, `bandwidth_hz` per RSU and direction (default 20 MHz, SFLAM
    and ST-SFLora 50 MHz) divided into `subchannels` (default: 0, not divided; SFLAM 10), each vehicle's fading on them
    drawn Exp(1)."""
    sflam, st = scheme == "sflam", scheme == "st_sflora"
    subchannels = subchannels if subchannels is not None else (10 if sflam else 0)
    if subchannels < 0:
        raise ValueError(f"subchannels: >= 0, got {subchannels}")
    rng = np.random.default_rng(seed)
    rsus = rsus if rsus is not None else max(1, n // 10)
    bandwidth_hz = bandwidth_hz if bandwidth_hz is not None else (
        SFLAM_BANDWIDTH_HZ if sflam else ST_BANDWIDTH_HZ if st else 20e6)
    h0 = free_space_gain_at_1m(5.9e9)
    model = (model_spec("vit_micro", 1, 32, 10, SFLAM_ARCH) if sflam
             else model_spec("vit_micro", 1, 32, 10, ST_ARCH) if st else model_spec())
    cands = []
    for i in range(n):
        d_m = float(rng.uniform(20.0, 500.0))
        samples = int(rng.integers(30, 121))
        p = rng.dirichlet(np.full(model.num_classes, 0.5))
        hist = tuple(int(x) for x in rng.multinomial(samples, p))
        f_hz = float(rng.uniform(1.0e9, 2.0e9))
        cands.append(Candidate(
            id=f"v{i:04d}", client=i, rsu=int(rng.integers(rsus)), distance_m=d_m,
            gain_linear=float(seed_gain_linear(d_m, h0, 2.5)), link_state=-1, interference_ul_w_per_hz=0.0,
            interference_dl_w_per_hz=0.0, dwell_s=float(rng.uniform(5.0, 120.0)), num_samples=samples,
            label_histogram=hist, device=DeviceSpec("cpu", f_hz, 1.0e9)))
    if subchannels:                         # after the draws above: the vehicles do not depend on M
        fading = rng.exponential(1.0, (n, subchannels))
        cands = [dataclasses.replace(c, subchannel_fading=tuple(float(x) for x in row))
                 for c, row in zip(cands, fading)]
    extra, learning = {}, LearningSpec(16, 1)
    settings = dict(settings or {})
    if sflam:
        extra, learning = {"accuracy_model": dict(SFLAM_ACCURACY)}, LearningSpec(128, 5)
        settings = {"cut": 1, "accuracy_model": dict(SFLAM_ACCURACY),
                    "max_latency_s": SFLAM_DEADLINE_S[0] + SFLAM_DEADLINE_S[1] * subchannels, **settings}
    if st:
        extra, learning = _st_extra(rng, cands), LearningSpec(32, 1)
        settings = {"cut": ST_CUT, **settings}
    resolved = default_settings(scheme, n, **settings)
    return RoundSnapshot(
        round=0, t_s=0.0, scheme=scheme, settings=resolved,
        # thermal noise alone (no noise figure): the regime the optimizer tests' deadlines and budgets were set in
        candidates=tuple(cands), link=LinkBudget(rsu_noise_figure_db=0.0, vehicle_noise_figure_db=0.0),
        radio=RadioSpec(bandwidth_hz, bandwidth_hz, 0.2, 0.01, 1.0, rsus, subchannels), server=ServerSpec(1e12, 1),
        model=model, learning=learning, budgets=Budgets(30.0, resolved.get("energy_budget_j")), extra=extra)
