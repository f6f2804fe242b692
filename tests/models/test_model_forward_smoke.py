"""Smoke-size forward/backward of every model: shapes, the 4×4 coarse features, gradients, input checks."""

from __future__ import annotations

import pytest
import torch

from moebius.errors import ModelInputError
from moebius.models.lcg import lcg_ids
from moebius.models.registry import MODEL_NAMES, build_model
from moebius.models.removal import RemovalModel

B = 2


@pytest.fixture(scope="module")
def models() -> dict[str, RemovalModel]:
    torch.manual_seed(0)
    return {name: build_model(name, "smoke") for name in ("student", "teacher")}


@pytest.fixture
def inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(B, 9, 16, 16, generator=g), torch.tensor([10, 900]), lcg_ids(B, True)


def test_student_shapes(models, inputs) -> None:
    out = models["student"](*inputs)
    assert out.sample.shape == (B, 4, 16, 16)
    # levels 16 -> 8 -> 4 -> 4; up 4 -> 8 -> 16 -> 16 (the paper's 64 -> 32 -> 16 -> 16, quartered)
    assert [tuple(o.shape[1:]) for o in out.block_outputs] == [
        (32, 8, 8), (64, 4, 4), (128, 4, 4), (128, 8, 8), (64, 16, 16), (32, 16, 16),
    ]


def test_teacher_shapes(models, inputs) -> None:
    out = models["teacher"](*inputs)
    assert out.sample.shape == (B, 4, 16, 16)
    assert [tuple(o.shape[1:]) for o in out.block_outputs] == [
        (32, 8, 8), (64, 4, 4), (128, 2, 2), (128, 2, 2), (128, 2, 2),
        (128, 4, 4), (128, 8, 8), (64, 16, 16), (32, 16, 16),
    ]


def test_coarse_features_meet_at_quarter_side(models, inputs) -> None:
    s, t = models["student"], models["teacher"]
    fs = s(*inputs).block_outputs[s.coarse_feature_index]
    ft = t(*inputs).block_outputs[t.coarse_feature_index]
    assert fs.shape == ft.shape == (B, 128, 4, 4)


def test_backward_reaches_distillation_layers(models, inputs) -> None:
    for model in models.values():
        model.zero_grad(set_to_none=True)
        out = model(*inputs)
        loss = out.sample.square().mean() + out.block_outputs[model.coarse_feature_index].square().mean()
        loss.backward()
        params = dict(model.named_parameters())
        for name in (model.final_layer_param, model.coarse_layer_param, "embedding_layer.weight"):
            grad = params[name].grad
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_scalar_timestep_is_broadcast(models, inputs) -> None:
    x, _, ids = inputs
    model = models["teacher"].eval()
    try:
        with torch.no_grad():
            a = model(x, 500, ids).sample
            b = model(x, torch.tensor([500, 500]), ids).sample
            c = model(x, torch.tensor([500, 20]), ids).sample
    finally:
        model.train()
    torch.testing.assert_close(a, b)
    assert not torch.allclose(b[1], c[1])


def test_conditioning_changes_the_output(models, inputs) -> None:
    x, t, _ = inputs
    model = models["student"].eval()
    try:
        with torch.no_grad():
            cond = model(x, t, lcg_ids(B, True)).sample
            uncond = model(x, t, lcg_ids(B, False)).sample
    finally:
        model.train()
    assert not torch.allclose(cond, uncond)


def test_eval_outputs_do_not_depend_on_batch(models, inputs) -> None:
    x, t, ids = inputs
    model = models["student"].eval()
    try:
        with torch.no_grad():
            both = model(x, t, ids).sample
            first = model(x[:1], t[:1], ids[:1]).sample
    finally:
        model.train()
    torch.testing.assert_close(first[0], both[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", [n for n in MODEL_NAMES if n.startswith("exp")])
def test_every_variant_runs(name: str, inputs) -> None:
    torch.manual_seed(0)
    model = build_model(name, "smoke")
    out = model(*inputs)
    assert out.sample.shape == (B, 4, 16, 16) and len(out.block_outputs) == 6
    assert out.block_outputs[model.coarse_feature_index].shape[-2:] == (4, 4)
    assert torch.isfinite(out.sample).all()


def test_bad_inputs_raise(models, inputs) -> None:
    x, t, ids = inputs
    student = models["student"]
    with pytest.raises(ModelInputError, match="9"):
        student(x[:, :4], t, ids)
    with pytest.raises(ModelInputError, match="16x16"):
        student(torch.randn(B, 9, 32, 32), t, ids)
    with pytest.raises(ModelInputError, match="input_ids"):
        student(x, t, ids[:, :9])
    with pytest.raises(ModelInputError, match="input_ids"):
        student(x, t, ids.float())
    with pytest.raises(ModelInputError, match="timesteps"):
        student(x, torch.tensor([1, 2, 3]), ids)


def test_teacher_accepts_other_latent_sizes(models) -> None:
    # GLA and cross-attention have no position tables, so the teacher is not tied to one grid
    out = models["teacher"](torch.randn(1, 9, 24, 24), 3, lcg_ids(1, True))
    assert out.sample.shape == (1, 4, 24, 24)


def test_gradient_checkpointing_gives_the_same_gradients(inputs) -> None:
    grads = []
    for enabled in (False, True):
        torch.manual_seed(0)
        model = build_model("teacher", "smoke")  # no BatchNorm: recomputation is exact
        model.enable_gradient_checkpointing(enabled)
        out = model(*inputs)
        (out.sample.square().mean() + out.block_outputs[5].mean()).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], atol=1e-6, rtol=1e-5)
