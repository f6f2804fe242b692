"""Gradient checkpointing as the official script runs it (``--gradient_checkpointing``), on the real
smoke student: one official distillation step (four losses, the seven gradient norms of
``cal_adaptive_weights_type8``, the backward of L_total) with and without it.

Gradients agree. BatchNorm running statistics do not, by design: every backward pass that reaches a
checkpointed residual block recomputes it in train mode, so its BatchNorms count the batch again. The
official step, measured (docs/model_facts.md, "The official training step"): ``num_batches_tracked`` is 5, 2 or
1 depending on the layer — 5 in up-block residual blocks (forward, three gradient norms at θ_C that
pass through the up blocks, the final backward), 2 in down-block residual blocks (forward, final
backward), 1 outside residual blocks (λ layers' norms, conv_in, conv_out: never recomputed).
"""

from __future__ import annotations

import pytest
import torch

from moebius.models.lcg import lcg_ids
from moebius.models.registry import build_model
from moebius.train.balance import official_balance


def _official_step(checkpointing: bool):
    torch.manual_seed(0)
    model = build_model("student", "smoke").train()
    model.enable_gradient_checkpointing(checkpointing)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 16, 16, generator=g)
    out = model(x, torch.tensor([10, 900]), lcg_ids(2, True))
    coarse = out.block_outputs[model.coarse_feature_index]
    mse = lambda a: (a - torch.randn(a.shape, generator=g)).square().mean()
    losses = {"c_kd": mse(coarse), "f_kd": mse(out.sample), "task": mse(out.sample), "perceptual": mse(out.sample.tanh())}
    bal = official_balance(losses, model.get_parameter(model.final_layer_param),
                           model.get_parameter(model.coarse_layer_param), 0.01, 0.5, 0.5)
    bal.total.backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    counts = {k: int(v) for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")}
    stats = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("running_mean")}
    return bal, grads, counts, stats


@pytest.fixture(scope="module")
def steps():
    return _official_step(False), _official_step(True)


def test_gradients_and_weights_are_the_same_with_and_without_checkpointing(steps):
    (plain, g_plain, _, _), (ckpt, g_ckpt, _, _) = steps
    assert g_plain.keys() == g_ckpt.keys() and len(g_plain) > 100
    for k in g_plain:
        torch.testing.assert_close(g_ckpt[k], g_plain[k], rtol=1e-5, atol=1e-7)
    assert ckpt.weights == pytest.approx(plain.weights, rel=1e-5)
    assert ckpt.norms == pytest.approx(plain.norms, rel=1e-5)


def test_batchnorms_count_every_recompute_as_the_official_step(steps):
    (_, _, plain, stats_plain), (_, _, ckpt, stats_ckpt) = steps
    assert set(plain.values()) == {1}  # without checkpointing: one forward, one update
    resnet = lambda k, part: k.startswith(f"diff_model.{part}_blocks.") and ".resnets." in k
    up = {v for k, v in ckpt.items() if resnet(k, "up")}
    down = {v for k, v in ckpt.items() if resnet(k, "down")}
    rest = {v for k, v in ckpt.items() if not (resnet(k, "up") or resnet(k, "down"))}
    assert (up, down, rest) == ({5}, {2}, {1})
    # so the running statistics differ (momentum 0.1 applied 5 times instead of once) where counted twice
    moved = [k for k in stats_plain if not torch.allclose(stats_plain[k], stats_ckpt[k])]
    assert moved and all(".resnets." in k for k in moved)
