"""Building blocks: DWConv layout and skip, Mix-FFN, cross-attention, Eq. 3 residual structure."""

import pytest
import torch
import torch.nn.functional as F

from moebius.errors import ModelConfigError
from moebius.models.blocks import (
    CrossAttention,
    DWConv2d,
    MixFFN,
    ResnetBlock,
    SpatialTransformer,
    TransformerBlock,
    group_norm,
)


def test_dwconv_keys_and_skip() -> None:
    conv = DWConv2d(8, 8)
    assert list(conv.state_dict()) == [
        "conv_dw.weight",
        "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
        "conv_pw.weight",
        "bn2.weight", "bn2.bias", "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked",
    ]
    assert conv.has_skip and not DWConv2d(8, 16).has_skip


@torch.no_grad()
def test_dwconv_computes_depthwise_then_pointwise() -> None:
    torch.manual_seed(0)
    conv = DWConv2d(4, 4).eval()
    x = torch.randn(2, 4, 6, 6)
    h = F.conv2d(x, conv.conv_dw.weight, padding=1, groups=4)
    h = F.relu(F.batch_norm(h, conv.bn1.running_mean, conv.bn1.running_var, conv.bn1.weight, conv.bn1.bias))
    h = F.conv2d(h, conv.conv_pw.weight)
    h = F.batch_norm(h, conv.bn2.running_mean, conv.bn2.running_var, conv.bn2.weight, conv.bn2.bias)
    torch.testing.assert_close(conv(x), h + x)


def test_mix_ffn_hidden_width() -> None:
    ffn = MixFFN(320)
    shapes = {k: tuple(v.shape) for k, v in ffn.state_dict().items()}
    assert shapes == {
        "inverted_conv.conv.weight": (1600, 320, 1, 1), "inverted_conv.conv.bias": (1600,),
        "depth_conv.conv.weight": (1600, 1, 3, 3), "depth_conv.conv.bias": (1600,),
        "point_conv.conv.weight": (320, 800, 1, 1),
    }


@torch.no_grad()
def test_cross_attention_single_token_returns_its_value() -> None:
    # with one context token the softmax is 1, so the output is to_out(to_v(token)) at every position
    torch.manual_seed(0)
    attn = CrossAttention(16, 8, heads=4)
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 1, 8)
    expected = attn.to_out[0](attn.to_v(ctx)).expand(2, 5, 16)
    torch.testing.assert_close(attn(x, ctx), expected)


@torch.no_grad()
def test_cross_attention_sdpa_equals_the_explicit_softmax() -> None:
    """The SDPA call equals softmax(Q Kᵀ / √d) V per head, as diffusers' classic AttnProcessor computes it."""
    torch.manual_seed(0)
    attn = CrossAttention(32, 12, heads=4)
    x, ctx = torch.randn(2, 9, 32), torch.randn(2, 10, 12)  # 9 latent tokens, the 10 LCG tokens
    q = attn.to_q(x).view(2, 9, 4, 8).transpose(1, 2)  # (B, h, N, d)
    k = attn.to_k(ctx).view(2, 10, 4, 8).transpose(1, 2)  # (B, h, M, d)
    v = attn.to_v(ctx).view(2, 10, 4, 8).transpose(1, 2)
    weights = (q @ k.transpose(-1, -2) / 8**0.5).softmax(dim=-1)  # (B, h, N, M)
    expected = attn.to_out[0]((weights @ v).transpose(1, 2).reshape(2, 9, 32))
    torch.testing.assert_close(attn(x, ctx), expected, rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_transformer_block_is_residual() -> None:
    # zero the last layer of every branch: Eq. 3 then returns its input unchanged
    torch.manual_seed(0)
    block = TransformerBlock(16, context_dim=8, grid_size=4, num_tokens=10, lambda_r=3).eval()
    x = torch.randn(2, 16, 16)
    assert not torch.allclose(block(x, torch.randn(2, 10, 8), (4, 4)), x)
    for m in (block.attn1.to_q, block.attn2.to_q, block.ff.point_conv.conv):
        m.weight.zero_()
    torch.testing.assert_close(block(x, torch.randn(2, 10, 8), (4, 4)), x)


def test_spatial_transformer_keeps_shape() -> None:
    st = SpatialTransformer(16, groups=4, context_dim=8, grid_size=4, num_tokens=10, lambda_r=3,
                            self_attention="GLA", cross_attention="CA", ffn="FFN")
    assert st(torch.randn(1, 16, 4, 4), torch.randn(1, 10, 8)).shape == (1, 16, 4, 4)


def test_resnet_shortcut_only_when_widths_differ() -> None:
    assert ResnetBlock(16, 16, 8, groups=4).conv_shortcut is None
    block = ResnetBlock(16, 32, 8, conv="DWConv", groups=4)
    assert block.conv_shortcut is not None
    assert block(torch.randn(1, 16, 4, 4), torch.randn(1, 8)).shape == (1, 32, 4, 4)


def test_bad_switches_and_groups() -> None:
    with pytest.raises(ModelConfigError, match="self-attention"):
        TransformerBlock(16, 8, 4, 10, self_attention="Attn")  # type: ignore[arg-type]
    with pytest.raises(ModelConfigError, match="conv kind"):
        ResnetBlock(16, 16, 8, conv="Conv3", groups=4)  # type: ignore[arg-type]
    with pytest.raises(ModelConfigError, match="do not divide"):
        group_norm(32, 48, 1e-5)


def test_timestep_embedding_matches_diffusers() -> None:
    from diffusers.models.embeddings import Timesteps

    from moebius.models.timestep import sinusoidal_embedding

    t = torch.tensor([0, 1, 17, 999])
    for dim in (32, 320, 33):
        torch.testing.assert_close(sinusoidal_embedding(t, dim), Timesteps(dim, True, 0)(t))
