"""Every model cut at every point reproduces the full forward; client/server names partition the state."""
import pytest
import torch

from learning.models import MODELS, build_model

CASES = [
    ("cnn", 1, 8, {}),
    ("resnet18", 3, 16, {"width": 8}),
    ("vit_micro", 3, 16, {}),
]


def _model(name, channels, size, kwargs):
    torch.manual_seed(0)
    return build_model(name, channels, size, 10, **kwargs)


@pytest.mark.parametrize("name,channels,size,kwargs", CASES)
@pytest.mark.parametrize("train", [False, True])
def test_cut_at_every_point_reproduces_full_forward(name, channels, size, kwargs, train):
    model = _model(name, channels, size, kwargs).train(train)
    x = torch.rand(3, channels, size, size, generator=torch.Generator().manual_seed(1))
    full = model(x)
    for cut in range(model.num_stages + 1):
        mid = model.forward_stages(x, 0, cut)
        assert torch.equal(model.forward_stages(mid, cut, model.num_stages), full), cut


@pytest.mark.parametrize("name,channels,size,kwargs", CASES)
def test_client_param_names_partition_state_dict(name, channels, size, kwargs):
    model = _model(name, channels, size, kwargs)
    keys = list(model.state_dict())
    for cut in range(model.num_stages + 1):
        client = model.client_param_names(cut)
        server = [k for k in keys if k not in set(client)]
        assert len(set(client)) == len(client)
        assert sorted(client + server) == sorted(keys)
    assert model.client_param_names(0) == []
    assert model.client_param_names(model.num_stages) == keys
    # every stage owns at least one tensor, so each cut moves something to the client
    sizes = [len(model.client_param_names(c)) for c in range(model.num_stages + 1)]
    assert all(a < b for a, b in zip(sizes, sizes[1:]))


def test_resnet18_has_ten_stages_and_nine_cuts():
    model = build_model("resnet18", 3, 32, 10)
    assert model.stage_names == ("stem", *(f"block{i}" for i in range(1, 9)), "head")
    assert model.split_points == tuple(range(1, 10))
    # CIFAR ResNet-18 at width 64 has 11,173,962 parameters
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_resnet_cut_shapes_follow_strides():
    model = build_model("resnet18", 3, 16, 10, width=8).eval()
    x = torch.rand(2, 3, 16, 16)
    shapes = [tuple(model.forward_stages(x, 0, c).shape[1:]) for c in range(1, 10)]
    assert shapes == [(8, 16, 16)] * 3 + [(16, 8, 8)] * 2 + [(32, 4, 4)] * 2 + [(64, 2, 2)] * 2


def test_vit_stages_and_token_shapes():
    model = build_model("vit_micro", 3, 16, 10)
    assert model.stage_names == ("embed", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "head")
    tokens = model.forward_stages(torch.rand(2, 3, 16, 16), 0, 2)
    assert tuple(tokens.shape) == (2, 17, 64)


def test_bad_stage_range_and_config_raise():
    model = build_model("vit_micro", 3, 16, 10)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        model.forward_stages(torch.rand(1, 3, 16, 16), 0, 7)
    with pytest.raises(ValueError, match="patch_size"):
        build_model("vit_micro", 3, 18, 10)
    with pytest.raises(KeyError, match="resnet18"):
        build_model("resnet50", 3, 32, 10)


def test_registry_lists_new_models():
    assert {"resnet18", "vit_tiny", "vit_small", "vit_base", "vit_micro"} <= set(MODELS)
