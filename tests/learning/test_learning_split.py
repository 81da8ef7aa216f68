"""Split learning equals unsplit training; one-vehicle SL equals centralized training bit for bit."""
import pytest
import torch

from learning.data import TensorDataset
from learning.fl import local_train
from learning.models import build_model
from learning.split import (client_backward, client_forward, client_state, make_optimizers, make_sgd,
                            server_step, side_parameters, split_train_epoch, to_server)

CASES = [("cnn", 1, 8, {}), ("resnet18", 3, 16, {"width": 8}), ("vit_micro", 3, 16, {})]


def _data(channels, size, n=12, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, channels, size, size, generator=gen),
                         torch.randint(0, 10, (n,), generator=gen), 10)


def _model(name, channels, size, kwargs):
    torch.manual_seed(0)
    return build_model(name, channels, size, 10, **kwargs)


@pytest.mark.parametrize("name,channels,size,kwargs", CASES)
def test_split_training_equals_unsplit_at_every_cut(name, channels, size, kwargs):
    data = _data(channels, size)
    model = _model(name, channels, size, kwargs)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    ref = local_train(model, init, data, epochs=1, batch_size=4, lr=0.05, seed=3, momentum=0.9)
    for cut in range(model.num_stages + 1):
        model.load_state_dict(init)
        loss = split_train_epoch(model, cut, data, batch_size=4, lr=0.05, seed=3, momentum=0.9)
        for k, v in model.state_dict().items():
            torch.testing.assert_close(v, ref.state[k], atol=1e-6, rtol=0, msg=f"cut {cut} {k}")
        assert abs(loss - ref.mean_loss) <= 1e-6


@pytest.mark.parametrize("name,channels,size,kwargs", CASES)
def test_sl_one_vehicle_equals_centralized_bit_for_bit(name, channels, size, kwargs):
    data = _data(channels, size, n=10)
    model = _model(name, channels, size, kwargs)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    central = local_train(model, init, data, epochs=1, batch_size=4, lr=0.1, seed=7)
    for cut in model.split_points:
        model.load_state_dict(init)
        loss = split_train_epoch(model, cut, data, batch_size=4, lr=0.1, seed=7)
        assert loss == central.mean_loss
        for k, v in model.state_dict().items():
            assert torch.equal(v, central.state[k]), (cut, k)


def test_side_parameters_and_optimizers_split_the_model():
    model = _model("resnet18", 3, 16, {"width": 8})
    client, server = side_parameters(model, 4)
    assert len(client) + len(server) == len(list(model.parameters()))
    assert {id(p) for p in client}.isdisjoint(id(p) for p in server)
    client_opt, server_opt = make_optimizers(model, 0, lr=0.1)
    assert client_opt is None and server_opt is not None
    assert make_sgd([], lr=0.1) is None


def test_two_vehicles_in_flight_match_one_after_the_other():
    """Interleaved events on one shared model give what one-vehicle-at-a-time gives."""
    model = _model("resnet18", 3, 16, {"width": 8})
    cut, init = 3, {k: v.clone() for k, v in model.state_dict().items()}
    data = {"a": _data(3, 16, n=4, seed=1), "b": _data(3, 16, n=4, seed=2)}

    def run(schedule):
        model.load_state_dict(init)
        _, server_opt = make_optimizers(model, cut, lr=0.1)
        states = {v: client_state(model, cut) for v in "ab"}
        opts = {v: make_sgd([t for t in states[v].values() if t.requires_grad], lr=0.1) for v in "ab"}
        acts, grads = {}, {}
        for event, v in schedule:
            if event == "fwd":
                acts[v] = client_forward(model, cut, data[v].x, states[v])
            elif event == "server":
                _, grads[v] = server_step(model, cut, to_server(acts[v]), data[v].y, server_opt)
            else:
                client_backward(acts.pop(v), grads.pop(v), opts[v])
        return states, {k: v.clone() for k, v in model.state_dict().items()}

    interleaved = [("fwd", "a"), ("fwd", "b"), ("server", "a"), ("server", "b"), ("bwd", "b"), ("bwd", "a")]
    sequential = [("fwd", "a"), ("server", "a"), ("bwd", "a"), ("fwd", "b"), ("server", "b"), ("bwd", "b")]
    states_i, model_i = run(interleaved)
    states_s, model_s = run(sequential)
    for v in "ab":
        assert all(torch.equal(states_i[v][k], states_s[v][k]) for k in states_i[v])
    assert all(torch.equal(model_i[k], model_s[k]) for k in model_i)
    # client sides live in the vehicles' states: the shared model's client part is untouched
    assert all(torch.equal(model_i[k], init[k]) for k in states_i["a"])
    assert not torch.equal(states_i["a"]["stem.conv.weight"], init["stem.conv.weight"])
    assert not torch.equal(states_i["a"]["stem.bn.running_mean"], init["stem.bn.running_mean"])


def test_client_forward_with_state_equals_plain_forward():
    model = _model("vit_micro", 3, 16, {})
    x = _data(3, 16, n=2).x
    state = client_state(model, 2)
    assert torch.equal(client_forward(model, 2, x, state), client_forward(model, 2, x))


def test_server_step_rejects_non_leaf_activation():
    model = _model("cnn", 1, 8, {})
    data = _data(1, 8, n=2)
    act = client_forward(model, 2, data.x)
    with pytest.raises(ValueError, match="to_server"):
        server_step(model, 2, act, data.y, None)
    with pytest.raises(ValueError, match="cut 5"):
        client_forward(model, 5, data.x)
