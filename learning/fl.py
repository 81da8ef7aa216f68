"""FedAvg numeric steps as pure functions: local SGD, sample-weighted averaging, evaluation.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data", 2017.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .data import TensorDataset

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LocalResult:
    state: StateDict
    num_samples: int
    mean_loss: float


def local_train(model: nn.Module, global_state: StateDict, data: TensorDataset, *, epochs: int,
                batch_size: int, lr: float, seed: int, momentum: float = 0.0) -> LocalResult:
    """Load `global_state` into `model`, run `epochs` of minibatch SGD on `data`, return the new state.

    The shuffle comes from a torch.Generator seeded with `seed`, so the result does not depend on
    what else ran before. `model` is reused (no copy); the returned tensors are fresh.
    """
    model.load_state_dict(global_state)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    n = len(data)
    total_loss, batches = 0.0, 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
            loss.backward()
            opt.step()
            total_loss += float(loss.detach())
            batches += 1
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return LocalResult(state, n, total_loss / max(batches, 1))


def aggregate(results: list[tuple[StateDict, float]]) -> StateDict:
    """Weighted average sum_n rho_n w_n with rho_n = weight_n / sum weights (FedAvg)."""
    if not results:
        raise ValueError("aggregate() needs at least one (state, weight) pair")
    total = float(sum(w for _, w in results))
    if total <= 0:
        raise ValueError(f"aggregate() weights must sum to > 0, got {total}")
    keys = list(results[0][0])
    out: StateDict = {}
    for k in keys:
        ref = results[0][0][k]
        if not torch.is_floating_point(ref):
            out[k] = ref.clone()
            continue
        acc = torch.zeros_like(ref)
        for state, w in results:
            acc.add_(state[k], alpha=w / total)
        out[k] = acc
    return out


def augmented_aggregate(results: list[tuple[StateDict, float]], augmented, kappa2: float) -> StateDict:
    """GenFV's w = kappa1 sum_n rho_n w_n + kappa2 w_a with kappa1 = 1 - kappa2 (Qiang et al., TMC 2025); with
    kappa2 = 0 or no augmented model it is FedAvg's `aggregate`, bit for bit. Integer entries: the average's."""
    fed = aggregate(results)
    if augmented is None or kappa2 == 0.0:
        return fed
    kappa1 = 1.0 - kappa2
    return {k: fed[k] * kappa1 + augmented[k] * kappa2 if torch.is_floating_point(fed[k]) else fed[k] for k in fed}


def aggregate_layers(results: list[tuple[StateDict, float]]) -> StateDict:
    """Per state entry, the weighted average over the states that hold it, weights renormalized over them
    (split schemes whose vehicles hold sides of different depth). States with the same keys: `aggregate`."""
    keys = list(dict.fromkeys(k for state, _ in results for k in state))
    groups: dict[tuple[int, ...], list[str]] = {}
    for k in keys:
        groups.setdefault(tuple(i for i, (state, _) in enumerate(results) if k in state), []).append(k)
    out: StateDict = {}
    for holders, names in groups.items():
        out.update(aggregate([({k: results[i][0][k] for k in names}, results[i][1]) for i in holders]))
    return {k: out[k] for k in keys}


@torch.no_grad()
def evaluate(model: nn.Module, state: StateDict, data: TensorDataset, batch_size: int = 512,
             forward=None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `state` on `data`; `forward(x)` gives the logits (default: the model
    itself; e.g. a split with token selection)."""
    model.load_state_dict(state)
    model.eval()
    forward = model if forward is None else forward
    correct, loss_sum = 0, 0.0
    for start in range(0, len(data), batch_size):
        x, y = data.x[start:start + batch_size], data.y[start:start + batch_size]
        out = forward(x)
        loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    return correct / len(data), loss_sum / len(data)


def state_nbytes(state: StateDict) -> int:
    """Bytes of a state dict on the wire: sum of numel x element size of its tensors."""
    return int(sum(t.numel() * t.element_size() for t in state.values()))
