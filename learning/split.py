"""Split-learning numeric steps as pure functions that can be spread over simulated events.

Gupta and Raskar, "Distributed learning of deep neural network over multiple agents", 2018.
One step: the client runs stages [0, cut) and keeps the graph (`client_forward`); the server gets the
activation detached (`to_server`), runs [cut, n), steps its optimizer and returns the activation gradient
(`server_step`); later the client back-propagates it and steps its own optimizer (`client_backward`).

Several vehicles may be in flight at once on one shared model instance: pass each vehicle's own client
state (`client_state`) to `client_forward`, and its graph then holds that vehicle's tensors, not the
shared model's parameters, so loading another state in between does not break its backward.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from .data import TensorDataset
from .models.base import SplitModel

StateDict = dict[str, torch.Tensor]


class _Stages(nn.Module):
    """Adapter so torch.func.functional_call can run `forward_stages` with substituted tensors."""

    def __init__(self, model: SplitModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        return self.model.forward_stages(x, start, stop)


def _check_cut(model: SplitModel, cut: int) -> None:
    if not 0 <= cut <= model.num_stages:
        raise ValueError(f"cut {cut} outside [0, {model.num_stages}] for {type(model).__name__}")


def side_parameters(model: SplitModel, cut: int) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable parameters (requires_grad) of (client, server) sides of `cut`, in model order."""
    _check_cut(model, cut)
    client_names = set(model.client_param_names(cut))
    client, server = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (client if name in client_names else server).append(p)
    return client, server


def make_sgd(params: list[torch.Tensor], lr: float, momentum: float = 0.0,
             weight_decay: float = 0.0) -> torch.optim.SGD | None:
    """SGD over `params`, or None when there is nothing to train."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay) if params else None


def make_optimizers(model: SplitModel, cut: int, lr: float, momentum: float = 0.0,
                    weight_decay: float = 0.0) -> tuple[torch.optim.SGD | None, torch.optim.SGD | None]:
    """(client, server) SGD optimizers over each side's trainable parameters; None for an empty side."""
    client, server = side_parameters(model, cut)
    return make_sgd(client, lr, momentum, weight_decay), make_sgd(server, lr, momentum, weight_decay)


def client_state(model: SplitModel, cut: int) -> StateDict:
    """A vehicle's own copy of the client side's state_dict entries, trainable ones requiring grad."""
    _check_cut(model, cut)
    params = dict(model.named_parameters())
    full = model.state_dict()
    out = {}
    for name in model.client_param_names(cut):
        t = full[name].detach().clone()
        out[name] = t.requires_grad_(name in params and params[name].requires_grad)
    return out


def client_forward(model: SplitModel, cut: int, x: torch.Tensor, state: StateDict | None = None) -> torch.Tensor:
    """Stages [0, cut) on the client; the result keeps its graph until `client_backward`.

    With `state` (from `client_state`), those tensors stand in for the model's client-side parameters and
    buffers (BatchNorm running stats update in `state`); the model itself is not touched.
    """
    _check_cut(model, cut)
    if state is None:
        return model.forward_stages(x, 0, cut)
    return functional_call(_Stages(model), {f"model.{k}": v for k, v in state.items()}, (x, 0, cut),
                           strict=False)


def to_server(activation: torch.Tensor) -> torch.Tensor:
    """What the server receives: a detached copy that collects the activation gradient when needed."""
    return activation.detach().requires_grad_(activation.requires_grad)


def server_step(model: SplitModel, cut: int, activation: torch.Tensor, y: torch.Tensor,
                server_optimizer: torch.optim.Optimizer | None,
                state: StateDict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Stages [cut, n) plus cross-entropy on `y`, backward, optimizer step.

    With `state` (name -> tensor, like `client_state` for the server side), those tensors stand in for the model's server-side parameters and
    buffers (one server-side copy per vehicle, as in SFL-V1); `server_optimizer` then steps them.
    Returns (detached loss, gradient with respect to `activation`, or None when it does not require grad).
    Raises ValueError when `activation` requires grad but is not a leaf (pass `to_server(a)`).
    """
    _check_cut(model, cut)
    if activation.requires_grad and not activation.is_leaf:
        raise ValueError("server_step needs a leaf activation; pass to_server(activation)")
    activation.grad = None
    if server_optimizer is not None:
        server_optimizer.zero_grad(set_to_none=True)
    if state is None:
        out = model.forward_stages(activation, cut, model.num_stages)
    else:
        out = functional_call(_Stages(model), {f"model.{k}": v for k, v in state.items()},
                              (activation, cut, model.num_stages), strict=False)
    loss = F.cross_entropy(out, y)
    if loss.requires_grad:
        loss.backward()
    if server_optimizer is not None:
        server_optimizer.step()
    return loss.detach(), (activation.grad if activation.requires_grad else None)


def client_backward(activation: torch.Tensor, grad: torch.Tensor | None,
                    client_optimizer: torch.optim.Optimizer | None) -> None:
    """Back-propagate the server's `grad` through the client graph (then freed) and step the optimizer."""
    if client_optimizer is not None:
        client_optimizer.zero_grad(set_to_none=True)
    if grad is not None and activation.requires_grad:
        activation.backward(grad)
    if client_optimizer is not None:
        client_optimizer.step()


def split_train_epoch(model: SplitModel, cut: int, data: TensorDataset, *, batch_size: int, lr: float,
                      seed: int, momentum: float = 0.0,
                      optimizers: tuple[torch.optim.Optimizer | None, torch.optim.Optimizer | None] | None = None,
                      ) -> float:
    """One epoch of split learning of `model` on `data`; returns the mean batch loss.

    Same shuffle as `fl.local_train` (torch.randperm from a Generator seeded with `seed`), so with one
    client it reproduces centralized training bit for bit. `optimizers` = (client, server) carries
    momentum across calls; by default fresh SGD optimizers are made.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.train()
    client_opt, server_opt = optimizers if optimizers is not None else make_optimizers(model, cut, lr, momentum)
    gen = torch.Generator().manual_seed(seed)
    n = len(data)
    perm = torch.randperm(n, generator=gen)
    total, batches = 0.0, 0
    for start in range(0, n, batch_size):
        idx = perm[start:start + batch_size]
        act = client_forward(model, cut, data.x[idx])
        loss, grad = server_step(model, cut, to_server(act), data.y[idx], server_opt)
        client_backward(act, grad, client_opt)
        total += float(loss)
        batches += 1
    return total / max(batches, 1)
