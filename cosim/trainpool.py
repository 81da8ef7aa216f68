"""Local training in worker processes (`cosim run --workers N`), the SimPy clock still the one order.

At a round's start the protocol hands every selected vehicle's local training to the pool at once (they all
start from the same global model, each with its own seed); a vehicle's process takes its result at the span
where the protocol uses it (when its compute span starts), waiting if it is not done yet. Durations come
from the device models, not from the workers, so the timeline is unchanged; each worker builds the same task
(data, partition, model) from the scenario and trains with as many PyTorch threads as the caller, so the
results are the same bytes as training in process. On Linux the workers are forked from the run once its task
is built (they start in milliseconds and share its data); elsewhere they are spawned and build the task again.
"""
from __future__ import annotations

import signal
import sys
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Optional

import torch

from learning.fl import LocalResult

_TASK = None            # the worker's LearningTask
_STREAMS = None
_STATE: tuple[Optional[str], Optional[dict]] = (None, None)    # the global state file last read, and its state


def _init_forked(threads: int) -> None:
    """A forked worker: the task is already here; Ctrl-C and SIGTERM are the run's to handle (it closes us)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(threads)


def _init(learning: dict, seed: int, base_dir: str, server_fraction: float, threads: int) -> None:
    global _TASK, _STREAMS
    from .rng import RngStreams
    from .scenario import LearningConfig
    from .task import build_task

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _STREAMS = RngStreams(seed)
    _TASK = build_task(LearningConfig.model_validate(learning), RngStreams(seed), Path(base_dir), server_fraction,
                       measure_flops=False)


def _train(state_path: str, r: int, client: int):
    global _STATE
    from learning.fl import local_train

    if _STATE[0] != state_path:
        _STATE = (state_path, torch.load(state_path, weights_only=True))
    cfg = _TASK.config
    res = local_train(_TASK.model, _STATE[1], _TASK.client_data(client), epochs=cfg.local_epochs,
                      batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.momentum,
                      seed=_STREAMS.seed_for("local-train", r, client))
    return _pack(res.state), res.num_samples, res.mean_loss


def _pack(state: dict) -> list:
    """A state dict as (name, dtype, shape, raw bytes) rows: pickled as plain bytes, read back by `_unpack`
    without a copy. Written by hand because torch's own routes cost the run's process too much per result:
    tensors sent as they are go through a shared-memory segment each, and torch.load's weights-only
    unpickler spends ~1.4 ms on a small CNN's state, serially in the process that runs the clock."""
    return [(name, t.dtype, tuple(t.shape), t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            for name, t in state.items()]


def _unpack(rows: list) -> dict:
    """`_pack`'s rows as a state dict: each tensor over its own writable buffer, the same values bit for bit."""
    return {name: torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape) if raw else
            torch.empty(shape, dtype=dtype) for name, dtype, shape, raw in rows}


class TrainPool:
    """`workers` processes that train clients of a round from one global state."""

    def __init__(self, learning, seed: int, base_dir: Path, server_fraction: float, workers: int, task=None):
        """`task`: the run's built LearningTask, which forked workers inherit (Linux); without it, or elsewhere,
        spawned workers build it again from `learning`."""
        global _TASK, _STREAMS
        from .rng import RngStreams

        self._tmp = tempfile.TemporaryDirectory(prefix="cosim_train_")
        threads = torch.get_num_threads()
        if task is not None and sys.platform.startswith("linux"):
            _TASK, _STREAMS = task, RngStreams(seed)        # what the forked workers see
            self._pool = ProcessPoolExecutor(workers, mp_context=get_context("fork"), initializer=_init_forked,
                                             initargs=(threads,))
        else:
            self._pool = ProcessPoolExecutor(
                workers, mp_context=get_context("spawn"), initializer=_init,
                initargs=(learning.model_dump(mode="json"), seed, str(base_dir), server_fraction, threads))
        self._futures: dict[tuple[int, int], Future] = {}
        self._k = 0

    def submit_round(self, r: int, global_state: dict, clients: list[int]) -> None:
        """Start training these clients from `global_state` (written once; each worker reads it once)."""
        self._retire()
        path = Path(self._tmp.name) / f"global-{self._k:06d}.pt"
        self._k += 1
        torch.save(global_state, path)
        self._futures = {(r, c): self._pool.submit(_train, str(path), r, c) for c in dict.fromkeys(clients)}

    def _retire(self) -> None:
        """The last round's trainings nobody took (vehicles that left): cancelled, or waited for; its file removed."""
        for future in self._futures.values():
            future.cancel()
        for future in self._futures.values():
            if not future.cancelled():
                future.exception()          # wait (a result nobody takes; an error nobody needs)
        for old in Path(self._tmp.name).glob("global-*.pt"):
            old.unlink()

    def result(self, r: int, client: int):
        """The client's local result of round r; None if it was not submitted or its worker failed (the
        caller then trains in process: the same bytes)."""
        future = self._futures.get((r, client))
        if future is None:
            return None
        try:
            state, n, loss = future.result()
            return LocalResult(_unpack(state), n, loss)
        except Exception:       # noqa: BLE001 - a broken pool (a worker killed): train in process instead
            return None

    def close(self) -> None:
        global _TASK, _STREAMS
        self._pool.shutdown(wait=True, cancel_futures=True)
        _TASK = _STREAMS = None
        self._tmp.cleanup()
