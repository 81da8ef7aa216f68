"""Activation quantization (SFLAM) and token selection (ST-SFLora)."""
import pytest
import torch

from learning.models import build_model
from learning.quantize import payload_bits, quantize
from learning.tokens import select_tokens, semantic_content, semantic_content_curve, token_payload_bits


@pytest.mark.parametrize("bits", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("stochastic", [False, True])
def test_quantization_error_within_one_step(bits, stochastic):
    x = torch.randn(4, 17, 64, generator=torch.Generator().manual_seed(bits)) * 3 + 1
    q = quantize(x, bits, stochastic=stochastic, generator=torch.Generator().manual_seed(0))
    step = float(x.max() - x.min()) / (2 ** bits - 1)
    err = (q.values - x).abs().max().item()
    bound = step if stochastic else step / 2
    assert err <= bound * (1 + 1e-5) + 1e-6
    assert q.values.shape == x.shape and q.values.dtype == x.dtype
    assert q.payload_bits == x.numel() * bits + 64
    levels = torch.unique(torch.round((q.values.double() - q.min_value) / q.step))
    assert levels.numel() <= 2 ** bits


def test_stochastic_rounding_is_unbiased_and_seeded():
    x = torch.full((20000,), 0.3)
    x[0], x[1] = 0.0, 1.0
    a = quantize(x, 1, stochastic=True, generator=torch.Generator().manual_seed(5))
    b = quantize(x, 1, stochastic=True, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.values, b.values)
    assert abs(a.values[2:].mean().item() - 0.3) < 0.02


def test_straight_through_gradient_and_edge_cases():
    x = torch.randn(3, 5, requires_grad=True)
    q = quantize(x, 2)
    (q.values * torch.arange(15.0).reshape(3, 5)).sum().backward()
    assert torch.equal(x.grad, torch.arange(15.0).reshape(3, 5))
    const = torch.full((4,), 2.5)
    assert torch.equal(quantize(const, 4).values, const)
    full = quantize(x, 32)
    assert full.values is x and full.payload_bits == 15 * 32 == payload_bits(15, 32)
    for bad in (0, 17, 31):
        with pytest.raises(ValueError, match=f"got {bad}"):
            quantize(x, bad)


def _tokens_and_attn(b=2, n=16, d=8):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(b, n + 1, d, generator=gen), torch.rand(b, n, generator=gen).softmax(1)


@pytest.mark.parametrize("k", [0, 1, 5, 15])
def test_select_tokens_shape_and_merge(k):
    tokens, attn = _tokens_and_attn()
    sel = select_tokens(tokens, attn, k)
    assert sel.tokens.shape == (2, k + 2, 8)
    assert torch.equal(sel.tokens[:, 0], tokens[:, 0])  # CLS first
    for i in range(2):
        top = torch.topk(attn[i], k).indices.sort().values
        assert torch.equal(sel.kept[i], top)
        assert torch.equal(sel.tokens[i, 1:k + 1], tokens[i, 1 + top])
        rest = [n for n in range(16) if n not in set(top.tolist())]
        w = attn[i, rest]
        merged = (w[:, None] * tokens[i, 1 + torch.tensor(rest)]).sum(0) / w.sum()
        torch.testing.assert_close(sel.tokens[i, -1], merged)


def test_k_equal_n_keeps_everything():
    tokens, attn = _tokens_and_attn()
    sel = select_tokens(tokens, attn, 16)
    assert torch.equal(sel.tokens, tokens)
    assert torch.equal(sel.kept[1], torch.arange(16))
    with pytest.raises(ValueError, match="got 17"):
        select_tokens(tokens, attn, 17)
    with pytest.raises(ValueError, match="cls_attn"):
        select_tokens(tokens, attn[:, :-1], 3)


def test_semantic_content_and_payload():
    attn = torch.tensor([[0.1, 0.5, 0.2, 0.2], [0.3, 0.1, 0.4, 0.2]])
    assert semantic_content(attn, 2) == pytest.approx(0.3 + 0.3)  # means 0.2, 0.3, 0.3, 0.2
    assert semantic_content(attn, 0) == 0.0
    torch.testing.assert_close(semantic_content_curve(attn), torch.tensor([0.0, 0.3, 0.6, 0.8, 1.0]))
    assert token_payload_bits(batch=4, k=3, num_patches=16, dim=8, bits_per_element=32) == 4 * 5 * 8 * 32
    assert token_payload_bits(batch=1, k=16, num_patches=16, dim=8) == 17 * 8 * 32


def test_vit_server_runs_on_selected_tokens():
    torch.manual_seed(0)
    model = build_model("vit_micro", 3, 16, 10).eval()
    x = torch.rand(2, 3, 16, 16)
    tokens, attn = model.forward_stages_with_cls_attn(x, 0, 2)
    sel = select_tokens(tokens, attn, 4)
    assert model.forward_stages(sel.tokens, 2, model.num_stages).shape == (2, 10)
    full = select_tokens(tokens, attn, 16)
    assert torch.equal(model.forward_stages(full.tokens, 2, model.num_stages), model(x))


def test_quantized_uplink_in_a_split_step():
    from learning.split import client_backward, client_forward, make_optimizers, server_step, to_server

    torch.manual_seed(0)
    model = build_model("vit_micro", 3, 16, 10)
    x, y = torch.rand(2, 3, 16, 16), torch.tensor([3, 4])
    client_opt, server_opt = make_optimizers(model, 1, lr=0.1)
    before = model.patch_embed.proj.weight.detach().clone()
    act = client_forward(model, 1, x)
    sent = quantize(act, 4)
    loss, grad = server_step(model, 1, to_server(sent.values), y, server_opt)
    client_backward(sent.values, grad, client_opt)  # the gradient passes the quantizer unchanged
    assert grad.shape == act.shape and torch.isfinite(loss)
    assert not torch.equal(model.patch_embed.proj.weight, before)
    assert sent.payload_bits == act.numel() * 4 + 64
