"""The checkpoint's object walk: shared objects stay shared, RNG streams go on where they were, anything it
cannot hold is named, and a checkpoint cannot make it build a class outside this project."""
from __future__ import annotations

import io

import numpy as np
import pytest
import simpy
import torch

from cosim.checkpoint import CheckpointError, Decoder, Encoder
from cosim.errors import UserError
from cosim.optimizers.api import Decision


class Holder:
    """A root: its state is merged into the rebuilt one."""

    def __init__(self):
        self.items = []


def _round_trip(fresh: Holder, state) -> Holder:
    buf = io.BytesIO()
    torch.save(state, buf)
    loaded = torch.load(io.BytesIO(buf.getvalue()), weights_only=True)
    Decoder({"h": fresh}, simpy.Environment()).merge(fresh, loaded)
    return fresh


def test_shared_objects_arrays_and_generators_come_back_shared_and_where_they_were():
    h = Holder()
    rng = np.random.default_rng(7)
    rng.normal(size=3)
    arr = np.arange(6.0).reshape(2, 3)
    shared = {"a": arr, (1, "k"): [arr, rng]}
    h.items = [shared, shared, rng, np.float32(1.5), torch.ones(2), {3, 4}, ("x", None)]
    state = Encoder({"h": h}).root(h, "h")
    out = _round_trip(Holder(), state).items
    assert out[0] is out[1] and out[0]["a"] is out[0][(1, "k")][0]          # one object, referenced twice
    assert out[2] is out[0][(1, "k")][1] and out[2].normal() == rng.normal()  # the stream goes on
    assert np.array_equal(out[0]["a"], arr) and out[0]["a"].dtype == arr.dtype
    assert out[3] == np.float32(1.5) and type(out[3]) is np.float32 and torch.equal(out[4], torch.ones(2))
    assert out[5] == {3, 4} and out[6] == ("x", None)


def test_a_project_object_is_rebuilt_and_a_root_is_merged_into():
    h = Holder()
    h.items = [Decision(bandwidth_share=0.25, cut=2)]
    state = Encoder({"h": h}).root(h, "h")
    fresh = Holder()
    out = _round_trip(fresh, state)
    assert out is fresh and out.items == [Decision(bandwidth_share=0.25, cut=2)]


def test_what_cannot_be_checkpointed_is_named():
    h = Holder()
    h.items = [io.StringIO()]
    with pytest.raises(CheckpointError, match=r"h\.items\[\]: a _io\.StringIO"):
        Encoder({"h": h}).root(h, "h")
    env = simpy.Environment()
    h.items = [env.event()]
    h.items[0].callbacks.append(print)
    with pytest.raises(CheckpointError, match="pending SimPy event someone waits on"):
        Encoder({"h": h}).root(h, "h")


def test_a_checkpoint_naming_a_class_outside_the_project_is_refused():
    crafted = {"items": {"__obj__": "os:system", "state": {}, "id": 0}}
    with pytest.raises(UserError, match="not this project's"):
        _round_trip(Holder(), crafted)
