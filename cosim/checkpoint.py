"""Run checkpoints at round boundaries (`output.checkpoint_every_rounds: K`) and `cosim run --resume RUN_DIR`.

A checkpoint is what the run's objects hold at the end of a round, taken when nothing else is pending (no
vehicle process alive, nothing due but the next mobility tick and the end of the run): the World, radio
state, dwell book, trace so far, protocol state (rounds, plans, optimizer and momentum states), the task's
models, every RNG stream, PyTorch's RNG, the simulated time and the protocol's next round. It is written
as plain containers, tensors and numbers, so it loads with `torch.load(weights_only=True)` (no code runs);
the classes it names are rebuilt only from an allow-list (this project's modules).

Resuming builds the run again from the scenario saved in the checkpoint (its input files checked against
their SHA-256), starts the mobility source afresh and steps it as many ticks as the run had taken (SUMO
steps only: its saveState/loadState does not give the same next steps, not even with its RNG saved, so
replaying its steps is the only way to the same bytes), then overwrites the state of the fresh objects with
the checkpoint's and runs on from the next round. Outputs are those of the uninterrupted run, byte for byte.

The walk over objects is written here because pickle would allow any code at load time: each value is
encoded by type, shared objects once (by reference), callables and handles left to the fresh run.
"""
from __future__ import annotations

import enum
import functools
import importlib
import json
import os
import shutil
import types
from pathlib import Path, PurePath
from typing import Any, Optional

import numpy as np
import simpy
import torch

from .errors import UserError, field_error
from .rundir import Staging

FORMAT = 1
ALLOWED_PACKAGES = ("cosim", "mobility", "channel", "learning")
CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointError(Exception):
    """A value the checkpoint cannot hold (a bug to fix here, never the user's)."""


def checkpoint_dir(run_dir: Path) -> Path:
    """Where a run's checkpoints live: a hidden sibling of its run directory (kept when a run is killed,
    removed once it ends completed)."""
    where = Path(os.path.abspath(run_dir))
    return where.parent / f".{where.name}.checkpoint"


def exists(run_dir: Path) -> bool:
    """Whether the run in `run_dir` left a checkpoint."""
    return (checkpoint_dir(run_dir) / CHECKPOINT_FILE).is_file()


def _link_or_copy(src: Path, dst: Path) -> None:
    """A trace chunk into another folder: hard-linked (chunks never change once written), else copied."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


_REBUILT = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.BuiltinMethodType,
            types.ModuleType, functools.partial, type)


def _skip(value) -> bool:
    """Values the fresh run rebuilds: functions, methods, modules, classes."""
    return isinstance(value, _REBUILT)


class Encoder:
    """Objects to weights-only containers. `roots`: objects the fresh run has too, by name (their state is
    merged into them on load)."""

    def __init__(self, roots: dict[str, Any]):
        self.roots = {id(obj): name for name, obj in roots.items()}
        self.memo: dict[int, int] = {}
        self.keep: list = []                # encoded objects stay alive (ids stay unique during the walk)

    def root(self, obj, name: str, skip=frozenset()) -> dict:
        """The state of a root object, but the attributes in `skip` (the fresh run's own)."""
        return self._attrs(obj, name, skip)

    def _attrs(self, obj, path: str, skip=frozenset()) -> dict:
        state = {}
        names = list(vars(obj)) if hasattr(obj, "__dict__") else []
        for cls in type(obj).__mro__:
            names += [n for n in getattr(cls, "__slots__", ()) if n not in ("__dict__", "__weakref__")]
        for name in names:
            if name in skip or not hasattr(obj, name):
                continue
            value = getattr(obj, name)
            if (_skip(value) or name.startswith("__")
                    or isinstance(value, list) and value and all(map(_skip, value))):   # listeners: the fresh run's
                continue
            state[name] = self.enc(value, f"{path}.{name}")
        return state

    def enc(self, v, path: str = ""):
        if v is None or type(v) in (bool, int, float, str):
            return v
        if isinstance(v, (bool, int, float, str)) and not isinstance(v, enum.Enum):
            return next(t for t in (bool, int, float, str) if isinstance(v, t))(v)     # a subclass: its base
        if id(v) in self.roots:
            return {"__ref_root__": self.roots[id(v)]}
        if isinstance(v, enum.Enum):
            return {"__enum__": _qualname(type(v), path), "value": self.enc(v.value, path)}
        if isinstance(v, np.generic):
            return {"__np__": v.item(), "dtype": v.dtype.str}
        if isinstance(v, PurePath):
            return {"__path__": str(v)}
        if isinstance(v, (torch.nn.Module, torch.optim.Optimizer)):
            return {"__state_dict__": v.state_dict()}      # tensors, numbers, lists, dicts: weights-only loads it
        if isinstance(v, simpy.Environment):
            return {"__env__": True}                # the rebuilt run's
        if isinstance(v, simpy.events.Event):
            return self._event(v, path)
        if getattr(type(v), "CHECKPOINT_STATIC", False):
            return {"__fresh__": True}              # never changes after it is built: the rebuilt run's is the same
        if isinstance(v, simpy.resources.base.BaseResource):
            if getattr(v, "users", None) or v.put_queue or v.get_queue:
                raise CheckpointError(f"{path}: a SimPy resource in use (not a quiet round boundary)")
            return {"__fresh__": True}              # idle: the fresh run's is the same
        if hasattr(type(v), "model_fields"):
            return {"__fresh__": True}                  # settings (pydantic): immutable, the fresh run has them
        key = id(v)                         # everything else may be shared: encoded once, referenced after
        if key in self.memo:
            return {"__ref__": self.memo[key]}
        self.memo[key] = ref = len(self.memo)
        self.keep.append(v)
        if isinstance(v, torch.Tensor):
            return {"__tensor__": v, "id": ref}
        if isinstance(v, np.ndarray):
            if v.dtype.kind in "biuf":
                return {"__nd__": torch.from_numpy(np.ascontiguousarray(v).copy()), "dtype": v.dtype.str, "id": ref}
            return {"__nd_list__": [self.enc(x, path) for x in v.ravel().tolist()], "dtype": v.dtype.str,
                    "shape": list(v.shape), "id": ref}
        if isinstance(v, np.random.Generator):
            return {"__npgen__": v.bit_generator.state, "id": ref}
        if type(v) is list:
            return {"__list__": [self.enc(x, f"{path}[]") for x in v], "id": ref}
        if type(v) in (tuple, set, frozenset):
            return {"__" + type(v).__name__ + "__": [self.enc(x, f"{path}[]") for x in v], "id": ref}
        if type(v) is dict:
            return {"__dict__": [[self.enc(k, f"{path}{{}}"), self.enc(x, f"{path}[{k!r}]")] for k, x in v.items()],
                    "id": ref}
        if isinstance(v, tuple) and hasattr(v, "_fields"):           # a namedtuple of this project
            return {"__ntuple__": _qualname(type(v), path), "items": [self.enc(x, path) for x in v], "id": ref}
        if _allowed(type(v)) and (hasattr(v, "__dict__") or hasattr(type(v), "__slots__")):
            return {"__obj__": _qualname(type(v), path), "state": self._attrs(v, path), "id": ref}
        raise CheckpointError(f"{path}: a {type(v).__module__}.{type(v).__qualname__} cannot go into a checkpoint")

    def _event(self, ev: simpy.events.Event, path: str):
        if isinstance(ev, simpy.events.Process) and ev.is_alive:
            raise CheckpointError(f"{path}: a live SimPy process (not a quiet round boundary)")
        if not ev.triggered:
            if ev.callbacks:
                raise CheckpointError(f"{path}: a pending SimPy event someone waits on")
            return {"__event__": "pending"}
        return {"__event__": "done", "ok": bool(ev._ok), "value": self.enc(ev._value if ev._ok else None, path)}


def _allowed(cls) -> bool:
    return cls.__module__.split(".")[0] in ALLOWED_PACKAGES


def _qualname(cls, path: str) -> str:
    if not _allowed(cls):
        raise CheckpointError(f"{path}: class {cls.__module__}.{cls.__qualname__} is not this project's")
    return f"{cls.__module__}:{cls.__qualname__}"


def _class(name: str):
    module, _, qual = name.partition(":")
    if module.split(".")[0] not in ALLOWED_PACKAGES:
        raise UserError(f"checkpoint names class {name}, which is not this project's")
    obj = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


class Decoder:
    """Weights-only containers back to objects; roots are the fresh run's objects, merged into."""

    def __init__(self, roots: dict[str, Any], env: simpy.Environment):
        self.roots, self.env = roots, env
        self.memo: dict[int, Any] = {}

    def merge(self, obj, state: dict) -> None:
        for name, value in state.items():
            current = getattr(obj, name, None)
            if isinstance(value, dict) and "__state_dict__" in value:
                if current is None:
                    raise UserError(f"checkpoint: {type(obj).__name__}.{name} has no counterpart in the rebuilt run")
                current.load_state_dict(value["__state_dict__"])
                continue
            if isinstance(value, dict) and "__fresh__" in value:
                continue
            if (isinstance(value, dict) and "__obj__" in value and current is not None
                    and f"{type(current).__module__}:{type(current).__qualname__}" == value["__obj__"]
                    and value["id"] not in self.memo):
                self.memo[value["id"]] = current        # the fresh object keeps what the checkpoint skipped
                self.merge(current, value["state"])
                continue
            object.__setattr__(obj, name, self.dec(value))     # frozen dataclasses too

    def dec(self, v):
        if not isinstance(v, dict):
            return v
        if "__ref_root__" in v:
            return self.roots[v["__ref_root__"]]
        if "__ref__" in v:
            return self.memo[v["__ref__"]]
        ref = v.get("id")
        if "__tensor__" in v:
            out = self.memo[ref] = v["__tensor__"]
            return out
        if "__nd__" in v:
            out = self.memo[ref] = v["__nd__"].numpy().astype(np.dtype(v["dtype"]), copy=True)
            return out
        if "__nd_list__" in v:
            out = self.memo[ref] = np.array([self.dec(x) for x in v["__nd_list__"]],
                                            dtype=np.dtype(v["dtype"])).reshape(v["shape"])
            return out
        if "__np__" in v:
            return np.dtype(v["dtype"]).type(v["__np__"])
        if "__npgen__" in v:
            state = v["__npgen__"]
            gen = self.memo[ref] = np.random.Generator(getattr(np.random, state["bit_generator"])())
            gen.bit_generator.state = state
            return gen
        if "__path__" in v:
            return Path(v["__path__"])
        if "__enum__" in v:
            return _class(v["__enum__"])(self.dec(v["value"]))
        if "__env__" in v:
            return self.env
        if "__event__" in v:
            ev = self.env.event()
            if v["__event__"] == "done":
                ev._ok, ev._value, ev.callbacks = v["ok"], self.dec(v["value"]), None
            return ev
        if "__fresh__" in v:
            raise UserError("checkpoint: a setting or resource outside the objects the rebuilt run has")
        if "__list__" in v:
            out = self.memo[ref] = []
            out.extend(self.dec(x) for x in v["__list__"])
            return out
        for kind, make in (("__tuple__", tuple), ("__set__", set), ("__frozenset__", frozenset)):
            if kind in v:
                out = self.memo[ref] = make(self.dec(x) for x in v[kind])
                return out
        if "__dict__" in v:
            out = self.memo[ref] = {}
            for k, x in v["__dict__"]:
                out[self.dec(k)] = self.dec(x)
            return out
        if "__ntuple__" in v:
            out = self.memo[ref] = _class(v["__ntuple__"])._make(self.dec(x) for x in v["items"])
            return out
        if "__obj__" in v:
            cls = _class(v["__obj__"])
            obj = self.memo[ref] = cls.__new__(cls)
            for name, x in v["state"].items():
                object.__setattr__(obj, name, self.dec(x))
            return obj
        if "__state_dict__" in v:
            raise UserError("checkpoint: a model or optimizer without its counterpart in the rebuilt run")
        raise UserError(f"checkpoint: an entry it cannot read ({sorted(v)[:3]})")


# ---- the quiet boundary --------------------------------------------------------------------------------------
def quiet(sim) -> Optional[str]:
    """None when the run may be checkpointed now (nothing due that runs code but the next tick and the run's
    end, no live process), else why not."""
    allowed = {id(sim.mobility_process.target), id(sim.end_timeout)}
    extra = [ev for _, _, _, ev in sim.env._queue if id(ev) not in allowed and ev.callbacks]
    if extra:
        return f"{len(extra)} events pending"
    if any(p.is_alive for p in sim._spawned):
        return "a vehicle process is alive"
    return None


def next_tick_s(sim) -> float:
    target = sim.mobility_process.target
    for t, _, _, ev in sim.env._queue:
        if ev is target:
            return t
    raise CheckpointError("the mobility process waits on nothing")


def _roots(sim, proto, dwell, task, streams) -> dict[str, Any]:
    roots = {"sim": sim, "world": sim.world, "trace": sim.trace, "proto": proto, "dwell": dwell, "task": task,
             "streams": streams, "devices": sim.devices, "server": sim.server, "source": sim.source}
    if getattr(sim.world, "radio_state", None) is not None:
        roots["radio"] = sim.world.radio_state
    if sim.positions is not None:
        roots["positions"] = sim.positions
    return roots


# root attributes the fresh run owns (rebuilt, never restored): the source's live session, the run's
# callbacks, the spill folder of this staging directory
_FRESH = {"source": None, "sim": {"env", "source", "tick_hooks", "mobility_process", "end_timeout", "done",
                                   "_resume_tick", "_spawned", "replayed_snapshot",
                                   "resumed_from_round"},
          "trace": {"spill_dir"}, "proto": {"on_round", "train_pool"}}


def save(path: Path, sim, proto, dwell, task, streams, next_round: int, t0_s: float, meta: dict) -> None:
    """Write the checkpoint of a quiet round boundary (the protocol resumes at `next_round`, whose previous
    round started at `t0_s`): `path`/checkpoint.pt and the trace's spilled chunks beside it."""
    roots = _roots(sim, proto, dwell, task, streams)
    enc = Encoder(roots)
    states = {}
    for name, obj in roots.items():
        fresh = _FRESH.get(name, set())
        if fresh is None:
            continue
        states[name] = enc.root(obj, name, fresh)
    stage = Staging(path)                       # written aside, renamed into place (cosim.rundir)
    shutil.rmtree(stage.path, ignore_errors=True)
    stage.path.mkdir(parents=True)
    chunks = {}
    for kind, files in sim.trace.chunks.items():
        chunks[kind] = [Path(f).name for f in files]
        for f in files:
            _link_or_copy(f, stage.path / Path(f).name)
    ckpt = {"format": FORMAT, "meta": json.loads(json.dumps(meta)), "next_round": next_round, "t0_s": t0_s,
            "now_s": sim.env.now, "next_tick_s": next_tick_s(sim), "ticks": sim.ticks,
            "torch_rng": torch.get_rng_state(), "chunks": chunks, "states": states}
    torch.save(ckpt, stage.path / CHECKPOINT_FILE)
    stage.commit()


def load(run_dir: Path, where: str = "cosim run --resume") -> dict:
    """The checkpoint of the run in `run_dir` (weights only), or one line saying why it cannot be read."""
    file = checkpoint_dir(run_dir) / CHECKPOINT_FILE
    try:
        status = json.loads((Path(run_dir) / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if not file.is_file() and status in ("completed", "duration-reached"):
        raise UserError(field_error(where, "RUN_DIR", str(run_dir), f"a run that did not finish (it ended {status}: "
                                    "nothing to resume)"))
    if not file.is_file():
        raise UserError(field_error(where, "RUN_DIR", str(run_dir), "a run that left a checkpoint (none at "
                                    f"{file}: output.checkpoint_every_rounds not set, or no round boundary reached)"))
    try:
        ckpt = torch.load(file, weights_only=True)
    except Exception as exc:            # noqa: BLE001 - any reader failure: one line
        raise UserError(field_error(where, "RUN_DIR", str(file), f"a readable checkpoint ({type(exc).__name__})")) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(field_error(where, "RUN_DIR", str(file), f"a checkpoint of format {FORMAT}"))
    return ckpt


def restore(ckpt: dict, sim, proto, dwell, task, streams) -> None:
    """Bring the freshly built run to the checkpoint: time, source position, every object's state."""
    sim.prepare_resume(ckpt["now_s"], ckpt["next_tick_s"], ckpt["ticks"])
    roots = _roots(sim, proto, dwell, task, streams)
    dec = Decoder(roots, sim.env)
    for name, state in ckpt["states"].items():
        dec.merge(roots[name], state)
    torch.set_rng_state(ckpt["torch_rng"])
    # the World's snapshot: the replayed source's own (it reads speeds on demand), which must be the saved one
    saved, live = sim.world.snapshot, sim.replayed_snapshot
    if tuple(saved.ids) != tuple(live.ids) or not np.array_equal(saved.xy_m, live.xy_m) or saved.t_s != live.t_s:
        raise UserError(f"cosim run --resume: the mobility source replayed to t={live.t_s:g} s is not where the "
                        "checkpoint's run was (its input files or SUMO changed)")
    sim.world.snapshot = live


def copy_chunks(ckpt: dict, ckpt_path: Path, trace) -> None:
    """The checkpoint's spilled trace chunks, into this run's spill folder, in order."""
    for kind, names in ckpt["chunks"].items():
        trace.chunks[kind] = []
        for name in names:
            _link_or_copy(ckpt_path / name, trace.spill_dir / name)
            trace.chunks[kind].append(trace.spill_dir / name)
