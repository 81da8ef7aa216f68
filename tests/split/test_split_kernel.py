"""The split kernel's shared parts: per-vehicle cuts in one round (SFL-V1), averaging per layer over the
vehicles that hold it, one wire codec for prediction and timeline, and a frozen client's shorter timeline."""
from __future__ import annotations

import dataclasses
from typing import Literal

import pyarrow.parquet as pq
import pytest
import torch

from cosim.errors import SettingError
from cosim.optimizers.api import Decision, Plan, RoundSnapshot
from cosim.optimizers.baseline import assemble, baseline
from cosim.optimizers.costs import SplitCost
from cosim.protocols.config import SplitConfig
from cosim.protocols.sfl import SflV1
from cosim.registry import register_optimizer, register_scheme, scheme
from cosim.rng import RngStreams
from cosim.wire import ActivationCodec
from learning.fl import aggregate, aggregate_layers
from learning.profile import measure_cut
from learning.models import build_model
from split_testlib import run, tree

TWO = [{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": 200.0}]


@register_optimizer("test_cut_by_vehicle")
def cut_by_vehicle(snap: RoundSnapshot) -> Plan:
    """The baseline, but vehicle 'a' at the first split point and the others at the last."""
    plan, model = baseline(snap), scheme(snap.scheme).cost
    first, last = snap.model.cuts[0].cut, snap.model.cuts[-1].cut
    decisions = {v: dataclasses.replace(d, cut=first if v == "a" else last) for v, d in plan.decisions.items()}
    costs = {v: model.cost(snap, snap.candidate(v), d) for v, d in decisions.items()}
    return assemble(list(plan.selected), decisions, costs, model.sequential)


def test_aggregate_layers_is_aggregate_for_equal_keys_and_renormalizes_per_layer():
    g = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(3, generator=g), "v": torch.randn(2, generator=g)}
    b = {"w": torch.randn(3, generator=g), "v": torch.randn(2, generator=g)}
    same = aggregate_layers([(a, 3), (b, 1)])
    ref = aggregate([(a, 3), (b, 1)])
    assert list(same) == list(ref) and all(torch.equal(same[k], ref[k]) for k in ref)
    partial = aggregate_layers([(a, 3), ({"w": b["w"]}, 1)])          # only a holds v
    assert torch.equal(partial["v"], aggregate([({"v": a["v"]}, 3)])["v"])
    torch.testing.assert_close(partial["w"], 0.75 * a["w"] + 0.25 * b["w"])


def test_sfl_v1_trains_vehicles_with_different_cuts_in_one_round(tmp_path):
    t = tree(vehicles=TWO, learning={"model": "cnn"},
             protocol={"scheme": "sfl_v1", "cut": 2, "rounds": 2, "optimizer": "test_cut_by_vehicle"})
    got = run(tmp_path, t)
    assert [r["completed"] for r in got.rounds] == [2, 2]
    rows = pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()
    assert {(r["vehicle"], r["cut"]) for r in rows} == {("a", 1), ("b", 3)}
    proto = got.proto
    for vid, cut in (("a", 1), ("b", 3)):
        act = [s for s in got.kind("tx.ul", vid) if s["payload"] == "activations"][0]
        per_sample = proto.context(cut).profile.activation_elements * 4
        assert act["bytes"] % per_sample == 0 and act["bytes"] // per_sample == 32    # a full batch
        model = [s for s in got.kind("tx.ul", vid) if s["payload"] == "model"][0]
        assert model["bytes"] == proto.context(cut).client_model_bytes
    assert proto.context(1).client_model_bytes < proto.context(3).client_model_bytes
    for r in rows:                                                         # static channel: exact prediction
        assert r["measured_latency_s"] == pytest.approx(r["predicted_latency_s"], rel=1e-9)


@pytest.mark.parametrize("scheme_name", ["sl", "sfl_v2"])
def test_one_server_model_schemes_refuse_per_vehicle_cuts_in_one_line(tmp_path, scheme_name):
    t = tree(vehicles=TWO, protocol={"scheme": scheme_name, "cut": 2, "rounds": 1, "optimizer": "test_cut_by_vehicle"})
    with pytest.raises(SettingError, match="protocol.optimizer.*keeps protocol.cut"):
        run(tmp_path, t)


@pytest.mark.parametrize("bits", [32, 8, 3])
def test_the_codec_sizes_the_real_tensor_as_the_prediction_does(bits):
    model = build_model("cnn", 1, 8, 10)
    prof = measure_cut(model, 2, (1, 8, 8))
    act = model.forward_stages(torch.randn(7, 1, 8, 8), 0, 2)
    codec, dec = ActivationCodec(), Decision(activation_bits=bits)
    sent, nbytes = codec.encode(act, dec)
    assert nbytes == codec.upload_bytes(7, prof, dec)
    assert sent.shape == act.shape and (bits < 32) == (not torch.equal(sent, act))
    assert codec.download_bytes(7, prof, dec) == act.numel() * 4


class FrozenConfig(SplitConfig):
    scheme: Literal["test_frozen"] = "test_frozen"


@register_scheme("test_frozen", config=FrozenConfig, cost=SplitCost(frozen_client=True))
class FrozenSfl(SflV1):
    """SFL-V1 with a frozen client side (no model or gradient download, no backward, no model upload)."""

    frozen_client = True


def test_a_frozen_client_skips_its_downloads_backward_and_upload(tmp_path):
    t = tree(vehicles=TWO, protocol={"scheme": "test_frozen", "cut": 2, "rounds": 2})
    got = run(tmp_path, t)
    kinds = {(s["kind"], s["payload"]) for s in got.spans if s["actor"] in ("a", "b")}
    assert kinds == {("compute.fwd", ""), ("tx.ul", "activations")}
    streams = RngStreams(t["seed"])                       # the initial model: the client side never changes
    torch.manual_seed(streams.seed_for("model-init"))
    initial = build_model("cnn", 1, 8, 10).state_dict()
    assert all(torch.equal(got.task.global_state[k], initial[k]) for k in got.proto.client_names)
    assert not all(torch.equal(got.task.global_state[k], initial[k]) for k in got.proto.server_names)
    rows = pq.read_table(tmp_path / "run" / "decisions.parquet").to_pylist()
    for r in rows:
        assert r["measured_latency_s"] == pytest.approx(r["predicted_latency_s"], rel=1e-9)
