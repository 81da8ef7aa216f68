"""timm-named ViT: a hand-built timm state dict loads strictly; CLS attention; LoRA adapters."""
import pytest
import torch
from torch import nn

from learning.models import build_model
from learning.models.lora import LoRALinear, apply_lora, lora_param_names, trainable_param_names
from learning.models.vit import cls_attention


def timm_vit_shapes(dim, depth, patch, in_chans, img, classes, mlp_ratio=4):
    """Key names and shapes of timm's VisionTransformer state dict, written out by hand."""
    n = (img // patch) ** 2
    shapes = {"cls_token": (1, 1, dim), "pos_embed": (1, n + 1, dim),
              "patch_embed.proj.weight": (dim, in_chans, patch, patch), "patch_embed.proj.bias": (dim,)}
    hidden = dim * mlp_ratio
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "norm1.weight": (dim,), b + "norm1.bias": (dim,),
            b + "attn.qkv.weight": (3 * dim, dim), b + "attn.qkv.bias": (3 * dim,),
            b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,),
            b + "norm2.weight": (dim,), b + "norm2.bias": (dim,),
            b + "mlp.fc1.weight": (hidden, dim), b + "mlp.fc1.bias": (hidden,),
            b + "mlp.fc2.weight": (dim, hidden), b + "mlp.fc2.bias": (dim,),
        })
    shapes.update({"norm.weight": (dim,), "norm.bias": (dim,),
                   "head.weight": (classes, dim), "head.bias": (classes,)})
    return shapes


def test_timm_vit_tiny_state_dict_loads_strict():
    shapes = timm_vit_shapes(192, 12, 16, 3, 224, 1000)
    gen = torch.Generator().manual_seed(0)
    timm_state = {k: torch.randn(s, generator=gen) for k, s in shapes.items()}
    model = build_model("vit_tiny", 3, 224, 1000)
    assert list(model.state_dict()) == list(shapes)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    model.load_state_dict(timm_state, strict=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in timm_state.items())
    assert sum(p.numel() for p in model.parameters()) == 5_717_416  # timm vit_tiny_patch16_224


@pytest.mark.parametrize("name,dim,heads", [("vit_small", 384, 6), ("vit_base", 768, 12)])
def test_other_timm_configs(name, dim, heads):
    model = build_model(name, 3, 32, 10, depth=1)  # depth 1 keeps the test small
    shapes = timm_vit_shapes(dim, 1, 16, 3, 32, 10)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    assert model.blocks[0].attn.num_heads == heads


def test_cls_attention_matches_manual_softmax():
    torch.manual_seed(0)
    model = build_model("vit_micro", 3, 16, 10).eval()
    x = torch.rand(2, 3, 16, 16)
    tokens = model.forward_stages(x, 0, 2)  # after embed and blocks.0
    out, cls_attn = model.forward_stages_with_cls_attn(x, 0, 3)  # last block run: blocks.1
    assert torch.equal(out, model.forward_stages(x, 0, 3))
    attn = model.blocks[1].attn
    h = attn.qkv(model.blocks[1].norm1(tokens))
    q, k, _ = h.reshape(2, 17, 3, 4, 16).permute(2, 0, 3, 1, 4)
    manual = torch.softmax(q[:, :, :1] @ k.transpose(-2, -1) / 16 ** 0.5, dim=-1)[:, :, 0, 1:].mean(1)
    assert cls_attn.shape == (2, 16)
    torch.testing.assert_close(cls_attn, manual)
    assert bool((cls_attn.sum(1) < 1).all())


def test_cls_attention_needs_a_block():
    model = build_model("vit_micro", 3, 16, 10)
    with pytest.raises(ValueError, match="no transformer block"):
        model.forward_stages_with_cls_attn(torch.rand(1, 3, 16, 16), 0, 1)
    assert cls_attention(torch.ones(1, 2, 3, 3) / 3).shape == (1, 2)


def test_lora_linear_starts_equal_and_matches_formula():
    torch.manual_seed(0)
    base = nn.Linear(8, 6)
    lora = LoRALinear.from_linear(base, rank=2, alpha=4.0)
    x = torch.randn(5, 8)
    assert torch.equal(lora(x), base(x))
    with torch.no_grad():
        lora.lora_B.normal_()
    expected = base(x) + 2.0 * (x @ lora.lora_A.t() @ lora.lora_B.t())
    torch.testing.assert_close(lora(x), expected)
    torch.testing.assert_close(lora(x), x @ lora.merged_weight().t() + base.bias)
    assert lora.weight is base.weight and not lora.weight.requires_grad
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(4, 4, rank=0, alpha=1.0)


def test_apply_lora_keeps_timm_names_and_trains_only_adapters():
    torch.manual_seed(0)
    model = build_model("vit_micro", 3, 16, 10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 16, 16)
    ref = model(x)
    names = apply_lora(model, blocks=[2, 3], rank=2, alpha=4.0)
    assert torch.equal(model(x), ref)
    expected = [f"blocks.{i}.attn.{t}.lora_{m}" for i in (2, 3) for t in ("qkv", "proj") for m in "AB"]
    assert lora_param_names(model) == expected
    assert names == trainable_param_names(model) == expected + ["head.weight", "head.bias"]
    assert set(before) <= set(model.state_dict())  # timm names intact
    model.load_state_dict(before, strict=False)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([1, 2])).backward()
    opt.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items() if not k.startswith("head"))
    assert not torch.equal(after["blocks.2.attn.qkv.lora_B"], torch.zeros(3 * 64, 2))
    with pytest.raises(ValueError, match="out of range"):
        apply_lora(model, blocks=[4])
