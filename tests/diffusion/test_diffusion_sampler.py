"""inpaint_batch: batch-size independence, LCG guidance, the ground-truth leak of `gt_noised`, paste-back
modes, and the teacher's own sampling settings."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from types import SimpleNamespace

import pytest
import torch

from moebius.config import SampleConfig
from moebius.diffusion import SamplerError, blurred_mask, inpaint_batch, model_sampling
from moebius.diffusion.sampler import ddim_sample, guided_eps_fn, start_latents
from moebius.diffusion.schedule import ddim_timesteps, scaled_linear_schedule, step_ratio, truncate_by_strength
from moebius.models import build_model, build_vae
from moebius.seeding import image_seed

FAST = SampleConfig(steps=4, paste_back="hard")  # float output: batch comparisons need no 8-bit levels


def test_batch_size_does_not_change_results(model, vae, batch) -> None:
    images, masks = batch
    seeds = [image_seed(0, f"img{i}") for i in range(4)]
    for start in ("noise", "gt_noised"):
        cfg = dataclasses.replace(FAST, start=start)
        together = inpaint_batch(model, vae, images, masks, seeds, 2.5, cfg)
        alone = torch.cat([inpaint_batch(model, vae, images[i : i + 1], masks[i : i + 1], seeds[i : i + 1], 2.5, cfg)
                           for i in range(4)])
        torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)
    # ... while the seed does matter
    other = inpaint_batch(model, vae, images, masks, [s + 1 for s in seeds], 2.5, FAST)
    assert (other - together).abs().max() > 1e-3


def test_image_seed_is_stable_and_distinct() -> None:
    # stable: the documented sha256 of "moebius-sample:<seed>:<id>" (moebius/seeding.py), not a second call
    digest = hashlib.sha256(b"moebius-sample:0:a").digest()
    assert image_seed(0, "a") == int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
    assert len({image_seed(0, "a"), image_seed(1, "a"), image_seed(0, "b")}) == 3
    assert 0 <= image_seed(7, "x") < 2**63


def test_guidance_batches_uncond_then_cond_and_combines() -> None:
    # A probe, not a stand-in: a model whose ε is known per id set, so that the guided ε has an
    # independent expected value (the real model is sampled by the other tests of this file).
    class Constant(torch.nn.Module):
        """ε = 1 on the foreground (uncond) ids 10..19, 3 on the background (cond) ids 0..9."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[torch.Tensor] = []

        def forward(self, x, t, ids):
            self.seen.append(ids)
            value = torch.where(ids[:, 0] >= 10, 1.0, 3.0)[:, None, None, None]
            return SimpleNamespace(sample=value.expand(x.shape[0], 4, *x.shape[2:]))

    m = Constant()
    mask_latent, z_masked = torch.zeros(2, 1, 4, 4), torch.zeros(2, 4, 4, 4)
    eps = guided_eps_fn(m, mask_latent, z_masked, 2.5)(torch.zeros(2, 4, 4, 4), 500)
    torch.testing.assert_close(eps, torch.full_like(eps, 1.0 + 2.5 * (3.0 - 1.0)))
    ids = m.seen[-1]
    assert ids.shape == (4, 10)
    assert ids[:2].min() == 10 and ids[2:].max() == 9  # [uncond (foreground), cond (background)]

    m.seen.clear()
    eps1 = guided_eps_fn(m, mask_latent, z_masked, 1.0)(torch.zeros(2, 4, 4, 4), 500)
    assert m.seen[-1].shape == (2, 10) and m.seen[-1].max() == 9  # g = 1: conditional pass only
    torch.testing.assert_close(eps1, torch.full_like(eps1, 3.0))


def test_number_of_model_calls_per_start(model, vae, batch) -> None:
    images, masks = batch
    cfg = SampleConfig(steps=20)
    model.calls.clear()
    inpaint_batch(model, vae, images[:1], masks[:1], [0], 1.0, dataclasses.replace(cfg, start="noise"))
    assert len(model.calls) == 20  # the whole grid, 950 ... 0
    model.calls.clear()
    inpaint_batch(model, vae, images[:1], masks[:1], [0], 2.0, dataclasses.replace(cfg, start="gt_noised"))
    assert len(model.calls) == 19 and model.calls[0][0] == 2  # strength 0.99 drops t = 950; CFG doubles


def test_gt_noised_start_leaks_ground_truth() -> None:
    """With ε ≡ 0, DDIM only rescales: how much of z_gt reaches the final latent?"""
    schedule = scaled_linear_schedule()
    grid = ddim_timesteps(20)
    g = torch.Generator().manual_seed(0)
    z_gt = torch.randn(8, 4, 64, 64, generator=g)
    noise = torch.randn(8, 4, 64, 64, generator=g)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    results = {}
    for start, steps in (("gt_noised", truncate_by_strength(grid, 0.99)), ("noise", grid)):
        x = start_latents(start, z_gt, noise, steps[0], schedule)
        z0 = ddim_sample(zero, x, steps, step_ratio(20), schedule)
        coef = float((z0 * z_gt).sum() / (z_gt * z_gt).sum())  # regression of the output on z_gt
        resid = float((z0 - coef * z_gt).std())
        results[start] = (coef, coef / resid)
    a = schedule.alpha_bar(900)
    coef, snr = results["gt_noised"]
    assert coef == pytest.approx(1.0, abs=0.05)  # the whole ground truth survives ...
    assert snr == pytest.approx(math.sqrt(a / (1 - a)), rel=0.1)  # ... under noise at SNR ≈ 0.12
    assert abs(results["noise"][0]) < 0.05 * math.sqrt(1 / a)  # nothing of it from pure noise


def test_paste_back_modes_in_sampler(model, vae, batch) -> None:
    images, masks = batch
    seeds = [0, 1, 2, 3]
    known = masks.expand_as(images) < 0.5
    hard = inpaint_batch(model, vae, images, masks, seeds, 2.5, FAST)
    torch.testing.assert_close(hard[known], images[known])
    none = inpaint_batch(model, vae, images, masks, seeds, 2.5, dataclasses.replace(FAST, paste_back="none"))
    assert (none[known] - images[known]).abs().mean() > 0.05  # the raw decode: known pixels not restored
    torch.testing.assert_close(none[~known], hard[~known], rtol=0, atol=1 / 127.5 + 1e-5)  # up to one level
    blurred = inpaint_batch(model, vae, images, masks, seeds, 2.5, dataclasses.replace(FAST, paste_back="blurred"))
    levels = (blurred + 1) * 127.5
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # the official 8-bit output
    # between the two: known pixels next to the hole take some output, far ones are the input
    far = (blurred_mask(masks, 3.0) == 0).expand_as(images)  # beyond the blur's reach
    assert far.sum() > 100
    torch.testing.assert_close(blurred[far], ((images[far] + 1) * 127.5).round() / 127.5 - 1, rtol=0, atol=1e-5)
    assert not torch.allclose(blurred[known], images[known], atol=1e-2)


def test_pixelhacker_samples_with_its_own_settings() -> None:
    """infer_pixelhacker.py: guidance 4.5 whatever the domain, strength 0.999, paste=False."""
    base = SampleConfig()
    for domain in ("natural", "portrait"):
        cfg, g = model_sampling(base, "pixelhacker", domain)
        assert g == 4.5 and cfg.strength == 0.999 and cfg.paste_back == "none"
        assert (cfg.steps, cfg.noise_offset, cfg.start) == (20, 0.0357, base.start)
    assert model_sampling(base, "moebius", "natural") == (base, 2.5)
    assert model_sampling(base, "moebius", "portrait") == (base, 2.0)
    assert model_sampling(base, "exp9", "natural")[0].paste_back == "blurred"  # ablation students: Moebius's
    custom = dataclasses.replace(base, pixelhacker_guidance=3.0, pixelhacker_paste_back="hard")
    assert model_sampling(custom, "pixelhacker", "natural")[0].paste_back == "hard"
    assert model_sampling(custom, "pixelhacker", "natural")[1] == 3.0
    with pytest.raises(SamplerError, match="domain"):
        model_sampling(base, "moebius", "medical")


def test_pixelhacker_strength_starts_at_t900(model, vae, batch) -> None:
    """int(20 · 0.999) = 19 kept steps: the same t = 900 start as Moebius's 0.99."""
    images, masks = batch
    cfg, g = model_sampling(SampleConfig(start="gt_noised"), "pixelhacker", "natural")
    model.calls.clear()
    inpaint_batch(model, vae, images[:1], masks[:1], [0], g, cfg)
    assert len(model.calls) == 19 and model.calls[0][0] == 2  # CFG 4.5: uncond + cond per call


def test_bad_inputs_raise(model, vae, batch) -> None:
    images, masks = batch
    with pytest.raises(SamplerError, match="runs at 32 px"):
        inpaint_batch(model, vae, torch.zeros(1, 3, 64, 64), torch.zeros(1, 1, 64, 64), [0], 2.5, FAST)
    with pytest.raises(SamplerError, match="one seed per image"):
        inpaint_batch(model, vae, images, masks, [0], 2.5, FAST)
    with pytest.raises(SamplerError, match=r"\[-1, 1\]"):
        inpaint_batch(model, vae, images * 3, masks, [0, 1, 2, 3], 2.5, FAST)
    with pytest.raises(SamplerError, match="unknown sampler start"):
        inpaint_batch(model, vae, images, masks, [0, 1, 2, 3], 2.5, dataclasses.replace(FAST, start="zeros"))


def test_real_smoke_student_is_batch_independent() -> None:
    """The package's smoke student and VAE (BatchNorm in eval mode, λ layers) through the sampler."""
    torch.manual_seed(0)
    student = build_model("student", "smoke").eval()
    vae = build_vae("smoke").eval()
    size = student.latent_size * 2 ** (len(vae.config.block_out_channels) - 1)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, size, size, generator=g) * 2 - 1
    masks = torch.zeros(3, 1, size, size)
    masks[:, :, size // 4 : size // 2, size // 4 :] = 1.0
    cfg = SampleConfig(steps=2, paste_back="hard")
    together = inpaint_batch(student, vae, images, masks, [4, 5, 6], 2.5, cfg)
    alone = torch.cat([inpaint_batch(student, vae, images[i : i + 1], masks[i : i + 1], [4 + i], 2.5, cfg)
                       for i in range(3)])
    assert together.shape == (3, 3, size, size)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Opt-in speed paths: sample.precision and sample.compile (sampling_denoiser)
# ---------------------------------------------------------------------------------------------


def _step_eps(fn, latent_size: int) -> torch.Tensor:
    """One CFG-batch ε of ``fn`` on a fixed input, as float32."""
    from moebius.models.lcg import cfg_ids

    g = torch.Generator().manual_seed(7)
    with torch.inference_mode():  # inputs made inside, as inpaint_batch makes them: a compiled fn sees
        # the same dispatch keys here and there (an input from outside is a normal tensor: a recompile)
        x = torch.randn(2, 9, latent_size, latent_size, generator=g)
        return fn(x, torch.tensor([500, 500]), cfg_ids(1)).sample.float()


# Relative L2 of one step's ε against fp32 (measured on the tiny student: bf16 0.037, fp16 0.0043) and
# mean |Δ| of the finished images in [-1, 1] after 4 steps (bf16 0.0020, fp16 0.00018): bounds 3-5x
# above, which a layout or overflow bug (off by ~1) cannot meet.
PRECISION_TOL = {"bf16": (0.1, 0.01), "fp16": (0.02, 0.001)}


@pytest.mark.parametrize("precision", sorted(PRECISION_TOL))
def test_reduced_precision_denoiser_stays_close_to_fp32(model, vae, batch, precision) -> None:
    from moebius.diffusion.sampler import sampling_denoiser

    step_tol, image_tol = PRECISION_TOL[precision]
    cfg = dataclasses.replace(FAST, precision=precision)
    ref = _step_eps(model, model.latent_size)
    eps = _step_eps(sampling_denoiser(model, cfg), model.latent_size)
    rel = float((eps - ref).norm() / ref.norm())
    assert 1e-5 < rel < step_tol  # autocast really ran (fp32 differs by 0), and stayed close

    images, masks = batch
    seeds = [0, 1, 2, 3]
    full = inpaint_batch(model, vae, images, masks, seeds, 2.5, FAST)
    low = inpaint_batch(model, vae, images, masks, seeds, 2.5, cfg)
    assert low.dtype == torch.float32  # the latents and the DDIM update stay fp32
    assert float((low - full).abs().mean()) < image_tol


def test_compile_switch_routes_the_denoiser_through_torch_compile(model, vae, batch, monkeypatch) -> None:
    """sample.compile hands the model to torch.compile once per batch; fp32 eager never calls it."""
    compiled = []

    def spy(module, **kwargs):
        compiled.append(module)
        return module  # no tracing here: the slow test below compiles for real

    monkeypatch.setattr(torch, "compile", spy)
    images, masks = batch
    inpaint_batch(model, vae, images, masks, [0, 1, 2, 3], 2.5, FAST)
    assert compiled == []
    inpaint_batch(model, vae, images, masks, [0, 1, 2, 3], 2.5, dataclasses.replace(FAST, compile=True))
    assert compiled == [model]


@pytest.mark.slow
def test_compiled_denoiser_matches_eager(model, vae, batch) -> None:
    """torch.compile (inductor) of the tiny student: the same ε and images as eager, up to rounding.

    Compiling takes ~4 min on one CPU core (kernel codegen; the cost is in the op count, not the
    widths), so it happens once: one image, whose CFG batch has the shape and the dispatch keys (made
    under inference mode) of ``_step_eps``'s, so that the sampler's calls reuse the ε check's compile.
    """
    from torch._dynamo.utils import counters

    from moebius.diffusion.sampler import sampling_denoiser

    cfg = dataclasses.replace(FAST, compile=True)
    ref = _step_eps(model, model.latent_size)
    graphs = counters["stats"]["unique_graphs"]
    eps = _step_eps(sampling_denoiser(model, cfg), model.latent_size)
    assert counters["stats"]["unique_graphs"] > graphs  # dynamo really captured (and inductor compiled) it
    assert float((eps - ref).norm() / ref.norm()) < 1e-4
    images, masks = batch
    full = inpaint_batch(model, vae, images[:1], masks[:1], [0], 2.5, FAST)
    fast = inpaint_batch(model, vae, images[:1], masks[:1], [0], 2.5, cfg)
    assert float((fast - full).abs().max()) < 1e-4


@pytest.mark.hostile("a sampler config whose precision is not fp32 / bf16 / fp16 (built around the checks)",
                     "SamplerError naming the choices, before any network runs")
def test_unknown_precision_is_a_sampler_error(model, vae, batch) -> None:
    images, masks = batch
    with pytest.raises(SamplerError, match="sample.precision 'fp64'.*bf16"):
        inpaint_batch(model, vae, images, masks, [0, 1, 2, 3], 2.5, dataclasses.replace(FAST, precision="fp64"))
    assert model.calls == []
