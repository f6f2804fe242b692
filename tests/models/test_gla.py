import pytest
import torch
import torch.nn.functional as F

from moebius.errors import ModelConfigError
from moebius.models.gla import GatedLinearAttention, gla_chunked, gla_recurrent


def _inputs(t: int, dk: int = 5, dv: int = 7, gate_scale: float = 1.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 3, t, dk, generator=g, dtype=torch.float64)
    k = torch.randn(2, 3, t, dk, generator=g, dtype=torch.float64)
    v = torch.randn(2, 3, t, dv, generator=g, dtype=torch.float64)
    gates = F.logsigmoid(torch.randn(2, 3, t, dk, generator=g, dtype=torch.float64) * 3) * gate_scale
    return q, k, v, gates


@pytest.mark.parametrize("t,chunk", [(64, 16), (50, 16), (37, 8), (5, 64), (33, 1)])
def test_chunked_equals_recurrent(t: int, chunk: int) -> None:
    q, k, v, g = (x.float() for x in _inputs(t))
    ref = gla_recurrent(q, k, v, g)
    out = gla_chunked(q, k, v, g, chunk_size=chunk)
    assert out.shape == ref.shape == (2, 3, t, 7)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_chunked_stable_under_very_strong_decay() -> None:
    # log-gates of about -60 per step would overflow a single-reference (exp(+b)) formulation
    q, k, v, g = _inputs(48, gate_scale=20.0, seed=1)
    out = gla_chunked(q, k, v, g, chunk_size=16)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, gla_recurrent(q, k, v, g), atol=1e-9, rtol=1e-7)


def test_zero_gates_reduce_to_causal_linear_attention() -> None:
    q, k, v, _ = _inputs(12)
    out = gla_chunked(q, k, v, torch.zeros_like(q), chunk_size=4)
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5
    expected = (scores * torch.ones(12, 12, dtype=q.dtype).tril()) @ v
    torch.testing.assert_close(out, expected)


def test_layer_parameter_names_and_shapes_follow_fla() -> None:
    layer = GatedLinearAttention(320, num_heads=8)
    shapes = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    assert list(shapes) == [
        "q_proj.weight", "k_proj.weight", "v_proj.weight", "g_proj.weight",
        "gk_proj.0.weight", "gk_proj.1.weight", "gk_proj.1.bias", "o_proj.weight", "g_norm_swish_gate.weight",
    ]
    assert shapes["q_proj.weight"] == (160, 320) and shapes["gk_proj.1.weight"] == (160, 16)
    assert shapes["g_norm_swish_gate.weight"] == (40,)


def test_layer_is_causal_in_raster_order() -> None:
    torch.manual_seed(0)
    layer = GatedLinearAttention(32, num_heads=8)
    x = torch.randn(1, 20, 32)
    y = layer(x)
    x2 = x.clone()
    x2[:, 15:] += 1.0
    y2 = layer(x2)
    torch.testing.assert_close(y[:, :15], y2[:, :15])
    assert not torch.allclose(y[:, 15:], y2[:, 15:])


def test_bad_head_count() -> None:
    with pytest.raises(ModelConfigError):
        GatedLinearAttention(36, num_heads=8)
