"""Local-λ / Interactive-λ against slow, loop-based readings of Eq. 1 and Eq. 2."""

import pytest
import torch

from moebius.errors import ModelConfigError, ModelInputError
from moebius.models.lambda_layers import InteractiveLambda, LocalLambda


def _randomise_bn(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=g))
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g))


def _bn(x: torch.Tensor, bn: torch.nn.Module) -> torch.Tensor:
    """Eval-mode BatchNorm over dim 0 of a (channels, positions) matrix."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (x - bn.running_mean[:, None]) * scale[:, None] + bn.bias[:, None]


def _local_lambda_reference(layer: LocalLambda, x: torch.Tensor) -> torch.Tensor:
    """Eq. 1, one batch element, positions by explicit loops."""
    c, hh, ww = x.shape
    flat = x.reshape(c, -1)  # (C, N)
    wq, wk, wv = (m.weight[:, :, 0, 0] for m in (layer.to_q, layer.to_k, layer.to_v))
    q = _bn(wq @ flat, layer.norm_q)  # (h·k, N)
    k = torch.softmax(wk @ flat, dim=1)  # (k, N): softmax over positions
    v = _bn(wv @ flat, layer.norm_v)  # (v, N)
    lam_c = k @ v.T  # (k, v)
    r = layer.pos_conv.kernel_size[1]
    w = layer.pos_conv.weight[:, 0, 0]  # (k, r, r)
    vmap = v.reshape(-1, hh, ww)
    out = torch.zeros(layer.heads, layer.dim_v, hh * ww, dtype=x.dtype)
    for i in range(hh):
        for j in range(ww):
            lam_p = layer.pos_conv.bias[:, None].repeat(1, layer.dim_v)  # (k, v)
            for di in range(r):
                for dj in range(r):
                    y, z = i + di - r // 2, j + dj - r // 2
                    if 0 <= y < hh and 0 <= z < ww:
                        lam_p = lam_p + w[:, di, dj][:, None] * vmap[:, y, z][None, :]
            n = i * ww + j
            qn = q[:, n].reshape(layer.heads, layer.dim_k)  # (h, k)
            out[:, :, n] = qn @ lam_c + qn @ lam_p
    return out.reshape(c, hh, ww)


def _interactive_lambda_reference(layer: InteractiveLambda, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    c, hh, ww = x.shape
    q = _bn(layer.to_q.weight[:, :, 0, 0] @ x.reshape(c, -1), layer.norm_q)  # (h·k, N)
    k = torch.softmax(ctx @ layer.to_k.weight.T, dim=0)  # (m, k): softmax over tokens
    v = _bn((ctx @ layer.to_v.weight.T).T, layer.norm_v).T  # (m, v)
    lam_c = k.T @ v  # (k, v)
    out = torch.zeros(layer.heads, layer.dim_v, hh * ww, dtype=x.dtype)
    for n in range(hh * ww):
        lam_p = layer.rel_pos_emb[n, :, :, 0].T @ v  # (k, m) @ (m, v)
        qn = q[:, n].reshape(layer.heads, layer.dim_k)
        out[:, :, n] = qn @ (lam_c + lam_p)
    return out.reshape(c, hh, ww)


@torch.no_grad()
def test_local_lambda_matches_loop_reference() -> None:
    torch.manual_seed(0)
    layer = LocalLambda(16, heads=8, r=3).double().eval()
    _randomise_bn(layer, 1)
    x = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    out = layer(x)
    assert out.shape == x.shape
    for b in range(2):
        torch.testing.assert_close(out[b], _local_lambda_reference(layer, x[b]))


@torch.no_grad()
def test_positional_lambda_equals_the_conv3d_module() -> None:
    torch.manual_seed(0)
    layer = LocalLambda(32, heads=8, r=5)
    v = torch.randn(2, 4, 7, 7)
    via_conv3d = layer.pos_conv(v.unsqueeze(1))  # (B, Dk, Dv, H, W)
    torch.testing.assert_close(layer.positional_lambda(v), via_conv3d.flatten(3), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_interactive_lambda_matches_loop_reference() -> None:
    torch.manual_seed(0)
    layer = InteractiveLambda(16, context_dim=6, num_tokens=10, grid_size=4, heads=8).double().eval()
    _randomise_bn(layer, 2)
    x = torch.randn(3, 16, 4, 4, dtype=torch.float64)
    ctx = torch.randn(3, 10, 6, dtype=torch.float64)
    out = layer(x, ctx)
    for b in range(3):
        torch.testing.assert_close(out[b], _interactive_lambda_reference(layer, x[b], ctx[b]))


def test_local_lambda_is_local() -> None:
    # beyond the r×r window, a position only sees the rest of the image through the content lambda;
    # with a constant key (uniform softmax) and zero-mean changes in V, far changes cannot leak through it
    torch.manual_seed(0)
    layer = LocalLambda(8, heads=8, r=3).eval()
    layer.to_k.weight.data.zero_()
    x = torch.randn(1, 8, 9, 9)
    x2 = x.clone()
    x2[..., 8, 8] += 1.0
    x2[..., 8, 7] -= 1.0  # total change of V over positions is zero, so λc is unchanged
    with torch.no_grad():
        y, y2 = layer(x), layer(x2)
    torch.testing.assert_close(y[..., :5, :5], y2[..., :5, :5])
    assert not torch.allclose(y[..., 7:, 7:], y2[..., 7:, 7:])


def test_even_window_rejected() -> None:
    with pytest.raises(ModelConfigError):
        LocalLambda(16, r=4)


def test_interactive_lambda_checks_grid_and_tokens() -> None:
    layer = InteractiveLambda(16, context_dim=6, num_tokens=10, grid_size=4)
    with pytest.raises(ModelInputError, match="4x4"):
        layer(torch.randn(1, 16, 8, 8), torch.randn(1, 10, 6))
    with pytest.raises(ModelInputError, match="10 tokens"):
        layer(torch.randn(1, 16, 4, 4), torch.randn(1, 9, 6))


def test_rel_pos_emb_shape_follows_official_layout() -> None:
    layer = InteractiveLambda(320, context_dim=768, num_tokens=10, grid_size=8)
    assert tuple(layer.rel_pos_emb.shape) == (64, 10, 40, 1)
    assert list(layer.state_dict())[0] == "rel_pos_emb"
