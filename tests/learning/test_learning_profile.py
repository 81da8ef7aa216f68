"""Split profiles are measured, positive, cached, and add up to the whole model at every cut."""
import dataclasses

import pytest
import torch

from learning.flops import forward_flops_per_sample, train_flops_per_sample
from learning.fl import state_nbytes
from learning.models import build_model
from learning.models.lora import apply_lora
from learning.profile import measure_cut, profile_cuts, split_profile

CASES = [("resnet18", 3, 16, {"width": 8}), ("vit_micro", 3, 16, {}), ("cnn", 1, 8, {})]


@pytest.mark.parametrize("name,channels,size,kwargs", CASES)
def test_profile_positive_and_sums_to_whole_model(name, channels, size, kwargs):
    profiles = split_profile(name, channels, size, 10, **kwargs)
    model = build_model(name, channels, size, 10, **kwargs)
    shape = (channels, size, size)
    whole_fwd = forward_flops_per_sample(model, shape)
    whole_train = train_flops_per_sample(model, shape)
    assert [p.cut for p in profiles] == list(model.split_points)
    x = torch.rand(2, *shape)
    for p in profiles:
        assert min(p.client_fwd_flops, p.client_bwd_flops, p.server_fwd_flops, p.server_bwd_flops) > 0
        assert p.client_fwd_flops + p.server_fwd_flops == whole_fwd
        assert p.client_flops + p.server_flops == whole_train
        assert p.activation_elements == model.forward_stages(x, 0, p.cut)[0].numel() > 0
        assert p.client_param_bytes > 0 and p.server_param_bytes > 0
        assert p.client_param_bytes + p.server_param_bytes == state_nbytes(model.state_dict())
    client_flops = [p.client_fwd_flops for p in profiles]
    assert client_flops == sorted(client_flops)


def test_profile_is_cached_and_frozen():
    a = split_profile("resnet18", 3, 16, 10, width=8)
    assert split_profile("resnet18", 3, 16, 10, width=8) is a
    assert split_profile("resnet18", 3, 16, 10, width=4) is not a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a[0].cut = 3


def test_resnet_first_cut_client_backward_skips_input_gradient():
    p = split_profile("resnet18", 3, 16, 10, width=8)[0]
    # stem conv: 2 * 8 * 3 * 9 * 16 * 16 FLOPs forward; backward only computes its weight gradient
    assert p.client_fwd_flops == 2 * 8 * 3 * 9 * 16 * 16 == p.client_bwd_flops
    assert p.activation_shape == (8, 16, 16)


def test_measure_cut_leaves_model_untouched_and_sees_frozen_client():
    torch.manual_seed(0)
    model = build_model("vit_micro", 3, 16, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, blocks=[3])  # client stages (embed, blocks.0) frozen
    p = measure_cut(model, 2, (3, 16, 16))
    assert p.client_bwd_flops == 0 and p.server_bwd_flops > 0
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())
    assert all(q.grad is None for q in model.parameters())
    with pytest.raises(ValueError, match="cut 9"):
        measure_cut(model, 9, (3, 16, 16))
    assert len(profile_cuts(model, (3, 16, 16))) == 5


@pytest.mark.parametrize("name,channels,size,kwargs", CASES[:2])
def test_meta_device_counts_equal_cpu_counts(name, channels, size, kwargs):
    model = build_model(name, channels, size, 10, **kwargs)
    shape = (channels, size, size)
    assert profile_cuts(model, shape, device="meta") == profile_cuts(model, shape, device="cpu")


def test_cached_profile_does_not_draw_from_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    split_profile("vit_micro", 3, 16, 7)
    assert torch.equal(torch.rand(3), expected)
