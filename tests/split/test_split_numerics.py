"""Split schemes on the clock compute what their definitions say: FL at the last split point, centralized
training for one vehicle (bit for bit), |D_n|-weighted averages, optimizer state kept across rounds, and a
shared server-side model stepped in the order activations arrive."""
from __future__ import annotations

import pytest
import torch

import cosim.protocols.sfl as sfl_module
from learning.fl import aggregate, aggregate_layers
from learning.split import client_backward, client_forward, make_sgd, server_step, to_server
from split_testlib import central_training, run, states_equal, tree

THREE = [{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": -150.0}, {"id": "c", "x_m": 50.0, "y_m": 60.0}]
MODELS = [("cnn", {}, None), ("resnet18", {"width": 4}, 16)]


@pytest.mark.parametrize("model,arch,size", MODELS, ids=[m[0] for m in MODELS])
def test_sfl_v1_at_the_last_split_point_equals_fedavg(tmp_path, model, arch, size):
    learning = {"model": model, "arch": arch, "image_size": size, "partition": {"kind": "dirichlet", "alpha": 0.5}}
    fl = run(tmp_path, tree(vehicles=THREE, learning=learning, protocol={"scheme": "fedavg"}), "fl")
    last = fl.task.model.split_points[-1]
    sfl = run(tmp_path, tree(vehicles=THREE, learning=learning, protocol={"scheme": "sfl_v1", "cut": last}), "sfl")
    aggregated = [r["clients_aggregated"] for r in sfl.rounds]
    assert aggregated == [r["clients_aggregated"] for r in fl.rounds] == [[0, 1, 2]] * 2
    assert states_equal(sfl.task.global_state, fl.task.global_state)
    assert [(r["accuracy"], r["loss"]) for r in sfl.rounds] == [(r["accuracy"], r["loss"]) for r in fl.rounds]


CENTRAL = [("sl", "cnn", {}, None, 2), ("sfl_v1", "cnn", {}, None, 1), ("sfl_v2", "cnn", {}, None, 3),
           ("sl", "resnet18", {"width": 4}, 16, 4), ("sfl_v2", "resnet18", {"width": 4}, 16, 2)]


@pytest.mark.parametrize("scheme,model,arch,size,cut", CENTRAL, ids=[f"{c[0]}-{c[1]}" for c in CENTRAL])
def test_one_vehicle_equals_centralized_training_bit_for_bit(tmp_path, scheme, model, arch, size, cut):
    """With momentum 0.9 over three rounds: also the optimizer state carried across rounds (BatchNorm too)."""
    t = tree(learning={"model": model, "arch": arch, "image_size": size, "momentum": 0.9},
             protocol={"scheme": scheme, "cut": cut, "rounds": 3})
    got = run(tmp_path, t)
    assert [r["completed"] for r in got.rounds] == [1, 1, 1]
    assert states_equal(got.task.global_state, central_training(t, got.task, client=0, rounds=3))


def test_momentum_buffers_survive_across_rounds(tmp_path):
    t = tree(learning={"momentum": 0.9}, protocol={"scheme": "sfl_v1", "cut": 2, "rounds": 3})
    got = run(tmp_path, t)
    kept = central_training(t, got.task, client=0, rounds=3)
    reset = central_training(t, got.task, client=0, rounds=3, reset_each_round=True)
    assert states_equal(got.task.global_state, kept)
    assert not states_equal(got.task.global_state, reset)
    proto = got.proto
    trainable = {n for n, p in got.task.model.named_parameters() if p.requires_grad}
    assert sorted(proto.client_momentum["a"]) == sorted(k for k in proto.client_names if k in trainable)
    assert sorted(proto.server_momentum["a"]) == sorted(k for k in proto.server_names if k in trainable)


def test_sfl_v1_aggregation_weights_follow_dataset_sizes(tmp_path, monkeypatch):
    calls = []

    def spy(results):
        calls.append([(state, w) for state, w in results])
        return aggregate_layers(results)

    monkeypatch.setattr(sfl_module, "aggregate_layers", spy)
    t = tree(vehicles=THREE, learning={"partition": {"kind": "dirichlet", "alpha": 0.3}},
             protocol={"scheme": "sfl_v1", "cut": 2, "rounds": 1})
    got = run(tmp_path, t)
    sizes = [got.task.client_size(c) for c in range(3)]
    assert len(set(sizes)) == 3                                   # unequal |D_n|
    assert len(calls) == 1                                        # each vehicle's two halves as one model
    assert [w for _, w in calls[0]] == sizes
    assert all(set(state) == set(got.task.global_state) for state, _ in calls[0])
    # the new global model is sum_n rho_n w_n over both sides
    for k, v in got.task.global_state.items():
        expected = sum(state[k] * (w / sum(sizes)) for state, w in calls[0])
        torch.testing.assert_close(v, expected, rtol=1e-6, atol=1e-7)


def test_sfl_v2_steps_one_server_model_in_arrival_order(tmp_path):
    """Replaying the server.compute spans in their order on a bare loop gives the same model bit for bit."""
    vehicles = [{"id": "a", "x_m": 100.0}, {"id": "b", "x_m": -300.0}, {"id": "c", "x_m": 200.0, "y_m": 30.0}]
    t = tree(vehicles=vehicles, learning={"batch_size": 16, "momentum": 0.5},
             protocol={"scheme": "sfl_v2", "cut": 1, "rounds": 1, "batches_per_round": 5},
             devices={"server": {"flops_per_s": 2e8}})
    got = run(tmp_path, t)
    order = [s["payload"] for s in got.kind("server.compute")]
    assert sorted(order) == sorted(["a", "b", "c"] * 5) and order != sorted(order)

    task, proto, cfg = got.task, got.proto, got.task.config
    from cosim.rng import RngStreams
    from cosim.task import build_task
    fresh = build_task(task.config, RngStreams(t["seed"]))
    model, init = fresh.model, fresh.global_state
    model.load_state_dict(init)
    model.train()
    client = {v: {k: init[k].clone().requires_grad_(True) for k in proto.client_names} for v in "abc"}
    copt = {v: make_sgd(list(client[v].values()), cfg.lr, cfg.momentum) for v in "abc"}
    server = [p for n, p in model.named_parameters() if n not in proto.client_names]
    sopt = make_sgd(server, cfg.lr, cfg.momentum)
    batches = {v: iter(proto.batches(0, c, task.client_size(c))) for v, c in zip("abc", range(3))}
    for v in order:
        data = task.client_data("abc".index(v))
        idx = next(batches[v])
        act = client_forward(model, 1, data.x[idx], client[v])
        grad = server_step(model, 1, to_server(act), data.y[idx], sopt)[1]
        client_backward(act, grad, copt[v])
    w = [task.client_size(c) for c in range(3)]
    expected = aggregate([({k: t_.detach() for k, t_ in client[v].items()}, n) for v, n in zip("abc", w)])
    expected.update({k: v.detach() for k, v in model.state_dict().items() if k not in proto.client_names})
    assert states_equal({k: expected[k] for k in init}, task.global_state)
