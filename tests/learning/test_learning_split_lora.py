"""The learning side of ST-SFLora and its baselines: the cheap CLS attention, the server's FLOPs by sequence
length, what a device keeps for one batch, and the pretrained backbone (trained, cached, read back)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from learning.data import TensorDataset
from learning.memory import kept_bytes
from learning.models import build_model
from learning.models.lora import apply_lora
from learning.models.vit import cls_scores
from learning.pretrain import cached_pretrain, load_pretrained, pretrain, pretrain_key, read_checkpoint
from learning.profile import server_flops_by_length
from learning.tokens import select_tokens

ARCH = dict(patch_size=4, embed_dim=32, depth=3, num_heads=4, mlp_ratio=2.0)


def _vit(seed=0, **over):
    torch.manual_seed(seed)
    return build_model("vit_micro", 1, 16, 10, **{**ARCH, **over})


@pytest.mark.parametrize("stop", [2, 3, 4])
def test_cls_scores_from_q_cls_and_k_equal_the_full_attention_row(stop):
    model = _vit().eval()
    x = torch.rand(3, 1, 16, 16)
    tokens, scores = model.forward_tokens(x, stop)
    full_tokens, attn_row = model.forward_stages_with_cls_attn(x, 0, stop)
    assert torch.equal(tokens, full_tokens) and torch.equal(tokens, model.forward_stages(x, 0, stop))
    torch.testing.assert_close(scores, attn_row, rtol=1e-6, atol=1e-7)
    assert scores.shape == (3, 16) and bool((scores > 0).all()) and bool((scores.sum(1) < 1).all())


def test_cls_scores_use_a_lora_layers_merged_weight():
    model = _vit()
    apply_lora(model, blocks=[0], rank=2, alpha=4.0)
    with torch.no_grad():
        model.blocks[0].attn.qkv.lora_B.normal_()              # an adapter that changes the layer
    x = torch.rand(2, 1, 16, 16)
    h = model.blocks[0].norm1(model.forward_stages(x, 0, 1))
    _, attn = model.blocks[0].attn(h, return_attn=True)
    torch.testing.assert_close(cls_scores(model.blocks[0].attn, h), attn[:, :, 0, 1:].mean(1), rtol=1e-5, atol=1e-6)


def test_forward_tokens_needs_a_block():
    with pytest.raises(ValueError, match="a block"):
        _vit().forward_tokens(torch.rand(1, 1, 16, 16), 1)


def test_selected_forward_with_k_n_equals_the_unselected_one_and_fewer_tokens_differ():
    model = _vit().eval()
    x = torch.rand(2, 1, 16, 16)
    tokens, scores = model.forward_tokens(x, 2)
    n = model.num_stages
    assert torch.equal(model.forward_stages(select_tokens(tokens, scores, 16).tokens, 2, n), model(x))
    merged = select_tokens(tokens, scores, 15).tokens                      # K + 2 = N + 1 tokens, one merged
    assert merged.shape == tokens.shape and not torch.equal(model.forward_stages(merged, 2, n), model(x))


def _server_flops_cpu(model, cut, length, batch=2):
    x = torch.rand(batch, length, model.embed_dim)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model.forward_stages(x, cut, model.num_stages), torch.zeros(batch, dtype=torch.long)).backward()
    return counter.get_total_flops() / batch


def test_server_flops_are_quadratic_in_the_sequence_length():
    model = _vit()
    apply_lora(model, blocks=[1, 2], rank=4, alpha=8.0, targets=("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"))
    c0, c1, c2 = server_flops_by_length(model, 2, 32)
    assert c2 > 0 and c1 > 0
    for length in (2, 7, 17, 40):            # lengths it was not fitted on, counted on the CPU
        assert c0 + c1 * length + c2 * length ** 2 == pytest.approx(_server_flops_cpu(model, 2, length), rel=1e-12)


def test_kept_bytes_frozen_side_keeps_only_its_output():
    model = _vit()
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        saved, out = kept_bytes(model, lambda: model.forward_tokens(x, 2)[0])
    assert saved == 0 and out == 4 * 17 * 32 * 4
    apply_lora(model, blocks=[0], rank=2, alpha=4.0)
    saved_lora, _ = kept_bytes(model, lambda: model.forward_stages(x, 0, 2))
    for p in model.parameters():
        p.requires_grad_(True)
    saved_all, _ = kept_bytes(model, lambda: model.forward_stages(x, 0, 2))
    assert 0 < saved_lora <= saved_all                # a trainable side keeps activations for its backward


def _pool(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.rand(n, 1, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g), 10)


HYPER = dict(epochs=2, lr=1e-3, batch_size=16, weight_decay=0.05, seed=3)


def test_pretraining_is_deterministic_and_cached_by_content(tmp_path):
    a = pretrain(_vit(), _pool(), **HYPER)
    b = pretrain(_vit(), _pool(), **HYPER)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["head.weight"], _vit().state_dict()["head.weight"])
    state, path = cached_pretrain(_vit(), _pool(), tmp_path, **HYPER)
    assert path.is_file() and all(torch.equal(state[k], a[k]) for k in a)
    model = _vit()
    again, same = cached_pretrain(model, _pool(), tmp_path, **HYPER)          # read, not trained
    assert same == path and all(torch.equal(again[k], a[k]) for k in a)
    assert torch.equal(model.state_dict()["head.weight"], _vit().state_dict()["head.weight"])   # untouched
    init = _vit().state_dict()
    key = pretrain_key(init, _pool(), **HYPER)
    assert key != pretrain_key(init, _pool(seed=1), **HYPER)
    assert key != pretrain_key(init, _pool(), **{**HYPER, "epochs": 3})
    assert key != pretrain_key(_vit(seed=1).state_dict(), _pool(), **HYPER)


def test_checkpoints_read_in_the_usual_wrappings_and_another_head_is_kept(tmp_path):
    src = _vit(seed=5).state_dict()
    for i, obj in enumerate((src, {"state_dict": src}, {"model": {f"module.{k}": v for k, v in src.items()}})):
        torch.save(obj, tmp_path / f"c{i}.pt")
        got = read_checkpoint(tmp_path / f"c{i}.pt")
        assert list(got) == list(src) and all(torch.equal(got[k], src[k]) for k in src)
    other = {**src, "head.weight": torch.zeros(1000, 32), "head.bias": torch.zeros(1000)}     # ImageNet's head
    model = _vit()
    head = model.state_dict()["head.weight"].clone()
    assert load_pretrained(model, other) == ["head.weight", "head.bias"]
    assert torch.equal(model.state_dict()["head.weight"], head)
    assert torch.equal(model.state_dict()["blocks.1.mlp.fc1.weight"], src["blocks.1.mlp.fc1.weight"])
    with pytest.raises(ValueError, match="missing"):
        load_pretrained(_vit(), {k: v for k, v in src.items() if k != "norm.weight"})
    with pytest.raises(ValueError, match="shape differs"):
        load_pretrained(_vit(), {**src, "pos_embed": torch.zeros(1, 65, 32)})
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="weights_only"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "nodict.pt")
    with pytest.raises(ValueError, match="state dict"):
        read_checkpoint(tmp_path / "nodict.pt")
    assert np.isfinite(sum(float(v.sum()) for v in read_checkpoint(tmp_path / "c0.pt").values()))
