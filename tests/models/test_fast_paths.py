"""The CPU speed paths (issue 15) compute what the reference formulation computes, forward and backward.

Each fast path sits beside a reference path (the einsum of the λ layers, the conv of the ×2 map, the
NCHW Mix-FFN): here both run on the same tensors and must agree to rounding. The meta-device counts
that the profile reports (Table 2) must not see the fast paths at all.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from moebius.models import blocks
from moebius.models.blocks import MixFFN, Upsample, conv3x3
from moebius.models.gla import gla_chunked
from moebius.models.lambda_layers import InteractiveLambda, _query_times_lambda


def _leaves(*shapes: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_() for s in shapes]


# ---------------------------------------------------------------------------------------------
# λ layers: the per-position contraction
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("b,h,dk,dv,n", [(1, 8, 40, 40, 64), (2, 8, 5, 3, 17), (1, 2, 1, 4, 9)])
def test_query_times_lambda_equals_the_einsum_forward_and_backward(b, h, dk, dv, n) -> None:
    q, lam = _leaves((b, h, dk, n), (b, dk, dv, n))
    fast = _query_times_lambda(q, lam)
    ref = torch.einsum("bhkn,bkvn->bhvn", q, lam)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    fast_grads = torch.autograd.grad(fast, (q, lam), grad)
    ref_grads = torch.autograd.grad(ref, (q, lam), grad)
    for got, want in zip(fast_grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_query_times_lambda_on_a_strided_lambda_in_float32() -> None:
    # LocalLambda hands it a transposed view of the positional conv's output
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 8, 40, 256, generator=g)
    lam = torch.randn(1, 40, 40, 256, generator=g).transpose(1, 2)  # (B, Dk, Dv, N), not contiguous
    torch.testing.assert_close(_query_times_lambda(q, lam), torch.einsum("bhkn,bkvn->bhvn", q, lam),
                               rtol=1e-5, atol=1e-5)


def test_interactive_lambda_cpu_contraction_equals_the_einsums() -> None:
    layer = InteractiveLambda(16, context_dim=6, num_tokens=10, grid_size=3, heads=8).double()
    q, v = _leaves((2, 8, 2, 9), (2, 2, 10))
    fast = layer._positional_cpu(q, v)
    lam_p = torch.einsum("nmk,bvm->bnkv", layer.rel_pos_emb.squeeze(-1), v)
    ref = torch.einsum("bhkn,bnkv->bhvn", q, lam_p)
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    inputs = (q, v, layer.rel_pos_emb)
    for got, want in zip(torch.autograd.grad(fast, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Upsample: nine taps on the low-res map instead of a 3×3 conv on the ×2 map
# ---------------------------------------------------------------------------------------------


def _upsample_reference(up: Upsample, x: torch.Tensor) -> torch.Tensor:
    return up.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


@pytest.mark.parametrize("b,c,h,w", [(2, 8, 5, 7), (1, 16, 1, 1), (1, 4, 2, 3)])
def test_upsample_taps_equal_the_conv_of_the_doubled_map(b, c, h, w) -> None:
    torch.manual_seed(0)
    up = Upsample(c).double()
    x = torch.randn(b, c, h, w, dtype=torch.float64)
    with torch.no_grad():
        fast = up(x)
        ref = _upsample_reference(up, x)
    assert fast.shape == (b, c, 2 * h, 2 * w) and fast.is_contiguous()
    torch.testing.assert_close(fast, ref, rtol=1e-12, atol=1e-12)


def test_upsample_float32_and_grad_enabled_path() -> None:
    torch.manual_seed(0)
    up = Upsample(32)
    x = torch.randn(1, 32, 8, 8, requires_grad=True)
    with torch.no_grad():
        fast = up(x)
    out = up(x)  # grad enabled: the reference conv, differentiable
    torch.testing.assert_close(fast, out.detach(), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and up.conv.weight.grad is not None


@torch.no_grad()
def test_upsample_tap_cache_follows_weight_changes() -> None:
    torch.manual_seed(0)
    up = Upsample(8).double()
    x = torch.randn(1, 8, 4, 4, dtype=torch.float64)
    up(x)  # fills the cache
    up.conv.weight.mul_(-2.0)  # in place: the version counter moves
    torch.testing.assert_close(up(x), _upsample_reference(up, x))
    other = Upsample(8).double().state_dict()
    up.load_state_dict(other)  # copy_ into the same storage
    torch.testing.assert_close(up(x), _upsample_reference(up, x))
    up.load_state_dict(Upsample(8).double().state_dict(), assign=True)  # new storage
    torch.testing.assert_close(up(x), _upsample_reference(up, x))
    assert "_taps" not in "".join(up.state_dict())  # the cache is no part of the weights


# ---------------------------------------------------------------------------------------------
# Small-map 3×3 convs: im2col + one matmul instead of oneDNN's direct conv
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "b,cin,cout,h,w,stride", [(2, 8, 6, 8, 8, 1), (1, 4, 4, 16, 16, 2), (3, 3, 5, 5, 7, 2), (1, 4, 2, 1, 1, 1)]
)
def test_small_map_conv3x3_equals_the_conv(b, cin, cout, h, w, stride, monkeypatch) -> None:
    monkeypatch.setattr(blocks, "_GEMM_MIN_CHANNELS", 1)  # these narrow convs through the GEMM path too
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
    x = torch.randn(b, cin, h, w)
    with torch.no_grad():
        assert blocks.takes_gemm(conv, x)
        fast = conv3x3(conv, x)
        ref = F.conv2d(x, conv.weight, conv.bias, stride=stride, padding=1)
    assert fast.shape == ref.shape and fast.is_contiguous()
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def test_wide_conv3x3_on_a_batch_of_small_maps_equals_the_conv() -> None:
    """The batch folded into the matmul's columns: each image gets its own output, at a real width."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(512, 16, 3, padding=1)
    x = torch.randn(4, 512, 8, 8)
    x[1] = 0.0  # an all-zero image among others: its output is the bias alone
    with torch.no_grad():
        assert blocks.takes_gemm(conv, x)
        fast = conv3x3(conv, x)
        ref = F.conv2d(x, conv.weight, conv.bias, padding=1)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast[1], conv.bias[:, None, None].expand(16, 8, 8))


def test_small_map_conv3x3_takes_the_gemm_path_only_where_it_may(monkeypatch) -> None:
    calls = []
    real_unfold = F.unfold
    monkeypatch.setattr(F, "unfold", lambda *a, **k: calls.append(1) or real_unfold(*a, **k))
    conv = torch.nn.Conv2d(512, 4, 3, padding=1)
    small, large = torch.randn(1, 512, 8, 8), torch.randn(1, 512, 32, 32)
    with torch.no_grad():
        conv3x3(conv, small)
        assert len(calls) == 1
        conv3x3(conv, large)  # a large map keeps oneDNN's conv
        conv3x3(conv, small.expand(8, -1, -1, -1))  # so does a batch of 8 small maps (512 columns)
        conv3x3(torch.nn.Conv2d(256, 4, 3, padding=1), small[:, :256])  # and a narrow conv (smoke widths)
        handle = conv.register_forward_hook(lambda *a: None)
        conv3x3(conv, small)  # a hooked module is called as a module
        handle.remove()
    out = conv3x3(conv, small.requires_grad_())  # grad enabled: the differentiable module call
    assert len(calls) == 1
    out.sum().backward()
    assert conv.weight.grad is not None


# ---------------------------------------------------------------------------------------------
# Mix-FFN layout, GLA in-place temporaries
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def test_mix_ffn_gives_the_same_result_on_channels_last_and_nchw_maps() -> None:
    torch.manual_seed(0)
    ffn = MixFFN(16).eval()
    tokens = torch.randn(2, 6 * 5, 16)
    channels_last = tokens.reshape(2, 6, 5, 16).permute(0, 3, 1, 2)  # what TransformerBlock passes
    nchw = channels_last.contiguous()
    torch.testing.assert_close(ffn(channels_last), ffn(nchw), rtol=1e-5, atol=1e-6)


def test_gla_chunked_in_place_temporaries_keep_it_differentiable() -> None:
    q, k, v = _leaves((1, 2, 13, 3), (1, 2, 13, 3), (1, 2, 13, 4), seed=2)
    g = (F.logsigmoid(torch.randn(1, 2, 13, 3, dtype=torch.float64)) / 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: gla_chunked(*a, chunk_size=4), (q, k, v, g))


# ---------------------------------------------------------------------------------------------
# The profile's counts run on the meta device, where every reference path is taken
# ---------------------------------------------------------------------------------------------

# thop MACs and FlopCounterMode FLOPs of one batch-1 smoke forward, from the code before issue 15
META_COUNTS = {
    "student": (62_948_384, 127_317_184),
    "teacher": (142_379_008, 287_551_488),
}


@pytest.mark.parametrize("name", sorted(META_COUNTS))
def test_meta_device_counts_are_those_of_the_reference_paths(name) -> None:
    from moebius.eval.profile import compute_counts

    counts = compute_counts(name, "smoke")
    assert (counts["macs_thop"], counts["flops_torch"]) == META_COUNTS[name]
