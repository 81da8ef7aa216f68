"""Sample generators for GenFV's augmentation step: the edge server makes labelled samples for the classes
the cohort lacks and trains an augmented model on them (Qiang et al., "GenFV", TMC 2025).

Kinds (`make_generator`): `pool` (uniform draws of the requested class from a server-held split: the ideal
generator), `cvae` (a class-conditional VAE trained on that split, cached by content hash; Sohn et al.,
NeurIPS 2015), `plugin` (a user's generator from a local Python file).

Every generator has `sample(labels, generator) -> images`: `labels` (b,) int64, `generator` a
torch.Generator that is the only source of randomness (same seed, same images); the result is (b, C, H, W)
float32 in [0, 1], with (C, H, W) the pool's `input_shape`; b = 0 gives an empty (0, C, H, W) tensor.

Plug-in contract: a Python file that defines `make_generator(pool: TensorDataset, options: dict)` returning
an object with that `sample` method. `load_plugin` imports it under a unique module name and wraps the
result so that a wrongly shaped output raises ValueError (a float16 output is cast to float32). The pool
may be empty when the scenario gives the server no data. Example, wrapping a diffusion pipeline already on
disk (nothing is downloaded; diffusers is the plug-in's dependency, not this package's):

    # my_diffusion.py
    import torch
    from diffusers import DiffusionPipeline

    NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    class Diffusion:
        def __init__(self, pool, options):
            self.pipe = DiffusionPipeline.from_pretrained(options["local_dir"], local_files_only=True)
            self.steps = int(options.get("steps", 25))
            self.shape = tuple(pool.input_shape)                       # (C, H, W)

        def sample(self, labels, generator):
            c, h, w = self.shape
            if len(labels) == 0:
                return torch.zeros(0, c, h, w)
            prompts = [f"a photo of a {NAMES[int(i)]}" for i in labels]
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            out = self.pipe(prompts, generator=torch.Generator().manual_seed(seed), output_type="pt",
                            num_inference_steps=self.steps).images       # (b, 3, H', W') in [0, 1]
            out = torch.nn.functional.interpolate(out.float().cpu(), size=(h, w), mode="bilinear")
            return out.mean(1, keepdim=True) if c == 1 else out

    def make_generator(pool, options):
        return Diffusion(pool, options)

with, in the scenario, `generator: {kind: plugin, path: my_diffusion.py, options: {local_dir: ...}}`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import inspect
import itertools
import json
import sys
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .cache import digest_tensor, save_atomic
from .data import TensorDataset

CVAE_FORMAT = "cvae-v2"                      # bump when the architecture or the training loop changes
_plugin_ids = itertools.count()


@runtime_checkable
class SampleGenerator(Protocol):
    """`sample(labels (b,) int64, generator) -> (b, C, H, W) float32`, deterministic given `generator`."""

    def sample(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


def _check_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.numel():
        raise ValueError(f"label {int(bad[0])} outside [0, {num_classes})")
    return labels


# ---- pool: the ideal generator -----------------------------------------------------------------------
class PoolGenerator:
    """For each requested label, a uniform draw (with replacement) of that class from the server's pool."""

    def __init__(self, pool: TensorDataset):
        self.pool = pool
        self._by_class = {c: torch.nonzero(pool.y == c).reshape(-1) for c in range(pool.num_classes)}

    def sample(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        labels = _check_labels(labels, self.pool.num_classes)
        out = torch.empty((len(labels), *self.pool.input_shape), dtype=torch.float32)
        for c in torch.unique(labels).tolist():             # ascending: a fixed order of draws
            members = self._by_class[c]
            if members.numel() == 0:
                raise ValueError(f"label {c} has no sample in the server's pool")
            where = torch.nonzero(labels == c).reshape(-1)
            pick = torch.randint(len(members), (len(where),), generator=generator)
            out[where] = self.pool.x[members[pick]].to(torch.float32)
        return out


# ---- cvae: a small class-conditional VAE -------------------------------------------------------------
class _Cvae(nn.Module):
    """MLP encoder [x, onehot(y)] -> hidden -> (mu, logvar); decoder [z, onehot(y)] -> hidden -> sigmoid image."""

    def __init__(self, dim: int, num_classes: int, latent_dim: int, hidden: int):
        super().__init__()
        self.num_classes, self.latent_dim = num_classes, latent_dim
        self.enc = nn.Sequential(nn.Linear(dim + num_classes, hidden), nn.ReLU())
        self.mu, self.logvar = nn.Linear(hidden, latent_dim), nn.Linear(hidden, latent_dim)
        self.dec = nn.Sequential(nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1))

    def loss(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Negative ELBO per sample: BCE(x, decoder) summed over pixels + KL(q(z|x,y) || N(0, I))."""
        h = self.enc(torch.cat([x, F.one_hot(y, self.num_classes).to(x.dtype)], 1))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=generator)
        rec = F.binary_cross_entropy_with_logits(self.decode_logits(z, y), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return (rec + kl) / len(x)


class CvaeGenerator:
    """Samples z ~ N(0, I) from the caller's generator and returns the decoder's mean image for each label."""

    def __init__(self, model: _Cvae, input_shape: tuple[int, ...]):
        self.model, self.input_shape = model.eval(), tuple(input_shape)

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    @torch.no_grad()
    def sample(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        labels = _check_labels(labels, self.num_classes)
        z = torch.randn((len(labels), self.model.latent_dim), generator=generator)
        return torch.sigmoid(self.model.decode_logits(z, labels)).reshape(len(labels), *self.input_shape)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}


def _hyper(hyper: dict) -> dict:
    """The CVAE hyperparameters with defaults filled in; unknown keys raise ValueError naming the known ones."""
    unknown = sorted(set(hyper) - set(CVAE_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown cvae option(s) {unknown}; known: {sorted(CVAE_DEFAULTS)}")
    out = {**CVAE_DEFAULTS, **hyper}
    for k in ("latent_dim", "hidden", "epochs", "batch_size"):
        if int(out[k]) != out[k] or out[k] < 1:
            raise ValueError(f"cvae option {k} must be a positive integer, got {out[k]!r}")
    if not float(out["lr"]) > 0:
        raise ValueError(f"cvae option lr must be > 0, got {out['lr']!r}")
    return {k: (float(v) if k == "lr" else int(v)) for k, v in out.items()}


def _new_cvae(pool: TensorDataset, h: dict) -> _Cvae:
    """The untrained CVAE, initialised from `h['seed']` without touching torch's global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(h["seed"])
        return _Cvae(int(np.prod(pool.input_shape)), pool.num_classes, h["latent_dim"], h["hidden"])


def train_cvae(pool: TensorDataset, *, latent_dim: int = 16, hidden: int = 256, epochs: int = 200,
               lr: float = 1e-3, batch_size: int = 64, seed: int = 0) -> CvaeGenerator:
    """Train a CVAE on `pool` with Adam (Kingma & Ba 2015); init, shuffles and noise all come from `seed`, and it
    trains on one PyTorch thread, so the weights (and the cache) do not depend on the caller's thread count."""
    h = _hyper(dict(latent_dim=latent_dim, hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed))
    if len(pool) == 0:
        raise ValueError("the cvae generator needs a non-empty server pool to train on")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(pool, h)
    finally:
        torch.set_num_threads(threads)


def _train(pool: TensorDataset, h: dict) -> CvaeGenerator:
    model = _new_cvae(pool, h).train()
    x, y = pool.x.reshape(len(pool), -1).to(torch.float32).clamp(0, 1), pool.y
    opt = torch.optim.Adam(model.parameters(), lr=h["lr"])
    gen = torch.Generator().manual_seed(h["seed"])
    for _ in range(h["epochs"]):
        perm = torch.randperm(len(pool), generator=gen)
        for start in range(0, len(pool), h["batch_size"]):
            idx = perm[start:start + h["batch_size"]]
            opt.zero_grad(set_to_none=True)
            model.loss(x[idx], y[idx], gen).backward()
            opt.step()
    return CvaeGenerator(model, pool.input_shape)


CVAE_DEFAULTS = {k: v.default for k, v in inspect.signature(train_cvae).parameters.items() if k != "pool"}


def cvae_hash(pool: TensorDataset, **hyper) -> str:
    """sha256 over the format version, the pool's x and y (bytes, dtype, shape), num_classes, hyperparameters."""
    h = hashlib.sha256(CVAE_FORMAT.encode())
    for t in (pool.x, pool.y):
        digest_tensor(h, t)
    h.update(json.dumps({"num_classes": pool.num_classes, **_hyper(hyper)}, sort_keys=True).encode())
    return h.hexdigest()


def cvae_cache_path(pool: TensorDataset, cache_dir: Path, **hyper) -> Path:
    """cache_dir/cvae-<first 16 hex digits of cvae_hash>.pt"""
    return Path(cache_dir) / f"cvae-{cvae_hash(pool, **hyper)[:16]}.pt"


def cached_cvae(pool: TensorDataset, cache_dir: Path, **hyper) -> CvaeGenerator:
    """Load the trained CVAE's state dict from the cache if present, else train it and save it atomically."""
    path = cvae_cache_path(pool, cache_dir, **hyper)
    if path.is_file():
        model = _new_cvae(pool, _hyper(hyper))
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return CvaeGenerator(model, pool.input_shape)
    gen = train_cvae(pool, **hyper)
    save_atomic(gen.state_dict(), path)
    return gen


# ---- plugin: a user's generator from a local Python file ---------------------------------------------
class _ShapeChecked:
    """Wraps a plug-in generator: its output must be a tensor of shape (len(labels), C, H, W)."""

    def __init__(self, inner, input_shape: tuple[int, ...], where: Path):
        self.inner, self.input_shape, self.where = inner, tuple(input_shape), where

    def sample(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        out = self.inner.sample(labels, generator)
        expected = (len(labels), *self.input_shape)
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"plugin {self.where}: sample() returned {type(out).__name__}, expected a tensor "
                             f"of shape {expected}")
        if tuple(out.shape) != expected:
            raise ValueError(f"plugin {self.where}: sample() returned shape {tuple(out.shape)}, expected {expected}")
        return out.to(torch.float32)


def load_plugin(path: Path, pool: TensorDataset, options: dict) -> SampleGenerator:
    """Import the file at `path` (unique module name), call its make_generator(pool, options), wrap the result."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generator plugin {path} does not exist")
    name = f"_learning_generator_plugin_{next(_plugin_ids)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"plugin {path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module                       # lets the plug-in use dataclasses, pickling, ...
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ValueError(f"plugin {path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    factory = getattr(module, "make_generator", None)
    if not callable(factory):
        raise ValueError(f"plugin {path}: defines no make_generator(pool, options)")
    inner = factory(pool, dict(options))
    if not callable(getattr(inner, "sample", None)):
        raise ValueError(f"plugin {path}: make_generator returned {type(inner).__name__}, which has no "
                         f"callable sample(labels, generator)")
    return _ShapeChecked(inner, pool.input_shape, path)


def make_generator(kind: str, pool: TensorDataset, *, cache_dir: Path, options: dict,
                   plugin_path: Path | None) -> SampleGenerator:
    """`pool`, `cvae` (options: its hyperparameters, cached in cache_dir) or `plugin` (file at plugin_path)."""
    options = dict(options or {})
    if kind == "pool":
        if options:
            raise ValueError(f"the pool generator takes no options, got {sorted(options)}")
        return PoolGenerator(pool)
    if kind == "cvae":
        return cached_cvae(pool, Path(cache_dir), **options)
    if kind == "plugin":
        if plugin_path is None:
            raise ValueError("the plugin generator needs plugin_path, a local Python file")
        return load_plugin(Path(plugin_path), pool, options)
    raise ValueError(f"unknown generator kind {kind!r}; known: ['cvae', 'plugin', 'pool']")


# ---- which labels to generate ------------------------------------------------------------------------
def deficit_labels(target: np.ndarray, cohort_counts: np.ndarray, b: int) -> np.ndarray:
    """b labels (int64, ascending) for the classes the cohort lacks most: d_i = max(p_i - q_i, 0) with q the
    cohort's normalised counts, b split proportional to d by largest remainder (ties: lower label first);
    d all zero: proportional to p; p all zero (no histogram heard yet): uniform."""
    p = np.asarray(target, dtype=float).reshape(-1)
    counts = np.asarray(cohort_counts, dtype=float).reshape(-1)
    if p.shape != counts.shape:
        raise ValueError(f"target has {p.size} classes, cohort_counts {counts.size}")
    if b < 0 or int(b) != b:
        raise ValueError(f"b must be a non-negative integer, got {b!r}")
    if (p < 0).any() or (counts < 0).any():
        raise ValueError("target and cohort_counts must be non-negative")
    b = int(b)
    if b == 0 or p.size == 0:
        return np.zeros(0, dtype=np.int64)
    p = p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)
    q = counts / counts.sum() if counts.sum() > 0 else np.zeros_like(p)
    d = np.maximum(p - q, 0.0)
    weights = d if d.sum() > 1e-12 else p
    return np.repeat(np.arange(p.size, dtype=np.int64), largest_remainder(weights, b))


def largest_remainder(weights: np.ndarray, b: int) -> np.ndarray:
    """Integer shares of b proportional to `weights` (Hamilton's method); equal remainders (to 1e-9) go to
    the lower index first."""
    quota = b * np.asarray(weights, dtype=float) / float(np.sum(weights))
    alloc = np.floor(quota + 1e-9).astype(np.int64)
    frac = np.round(quota - alloc, 9)
    order = np.lexsort((np.arange(len(quota)), -frac))           # last key first: frac desc, then index asc
    alloc[order[:b - int(alloc.sum())]] += 1
    return alloc
