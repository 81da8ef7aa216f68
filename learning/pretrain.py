"""A pretrained backbone for LoRA fine-tuning: trained here on data no client holds (cached by content hash),
or read from a local checkpoint (timm names, `torch.load(weights_only=True)`).

LoRA fine-tunes a pretrained model (Hu et al., ICLR 2022); the split LoRA schemes (ST-SFLora, arXiv
2605.26120) start from one. Training: AdamW (Loshchilov & Hutter, ICLR 2019) with cross-entropy, on one
PyTorch thread, init and shuffles from the caller's state and seed, so the weights depend on nothing else.
"""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .cache import digest_tensor, save_atomic
from .data import TensorDataset

StateDict = dict[str, torch.Tensor]
PRETRAIN_FORMAT = "pretrain-v1"          # bump when the training loop changes


def pretrain(model: nn.Module, data: TensorDataset, *, epochs: int, lr: float, batch_size: int,
             weight_decay: float, seed: int) -> StateDict:
    """Train every parameter of `model` (from its current weights) on `data`; returns a fresh state dict."""
    if len(data) == 0:
        raise ValueError("pretraining needs a non-empty data set")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(len(data), generator=gen)
            for start in range(0, len(data), batch_size):
                idx = perm[start:start + batch_size]
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(data.x[idx]), data.y[idx]).backward()
                opt.step()
        return {k: v.detach().clone() for k, v in model.state_dict().items()}
    finally:
        torch.set_num_threads(threads)


def pretrain_key(initial: StateDict, data: TensorDataset, **hyper) -> str:
    """sha256 over the format, the initial weights, the data (bytes, dtype, shape) and the hyperparameters."""
    h = hashlib.sha256(PRETRAIN_FORMAT.encode())
    for name in sorted(initial):
        digest_tensor(h, initial[name], name)
    for t in (data.x, data.y):
        digest_tensor(h, t)
    h.update(json.dumps({"num_classes": data.num_classes, **hyper}, sort_keys=True).encode())
    return h.hexdigest()


def cached_pretrain(model: nn.Module, data: TensorDataset, cache_dir: Path, **hyper) -> tuple[StateDict, Path]:
    """`pretrain`'s weights from cache_dir/pretrain-<hash>.pt, trained and saved (atomically) when missing."""
    path = Path(cache_dir) / f"pretrain-{pretrain_key(model.state_dict(), data, **hyper)[:16]}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True), path
    state = pretrain(model, data, **hyper)
    save_atomic(state, path)
    return state, path


def read_checkpoint(path: Path) -> StateDict:
    """A state dict from a local file (weights only): plain, or under 'state_dict' / 'model' (as training
    scripts save them), with a DataParallel 'module.' prefix dropped. Raises ValueError when it is none."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"a checkpoint torch.load(weights_only=True) reads ({type(exc).__name__}: {first})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("a state dict (names -> tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_pretrained(model: nn.Module, state: StateDict) -> list[str]:
    """Load `state` into `model` (names must match, timm's for the ViT); a classifier head of another
    shape (another label set) keeps the model's own initial weights. Returns the names it kept.
    Raises ValueError naming missing, unexpected or mis-shaped entries."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    kept = [k for k in shaped if k.startswith("head.")]
    bad = [k for k in shaped if k not in kept]
    if missing or unexpected or bad:
        parts = [f"{what}: {names[:3]}{' ...' if len(names) > 3 else ''}"
                 for what, names in (("missing", missing), ("unexpected", unexpected), ("shape differs", bad))
                 if names]
        raise ValueError("; ".join(parts))
    model.load_state_dict({k: (own[k] if k in kept else state[k]) for k in own})
    return kept
