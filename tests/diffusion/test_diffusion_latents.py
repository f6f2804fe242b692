"""moebius.diffusion.latents: one scale-and-shift convention for training and sampling alike."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from moebius.diffusion.latents import decode, denoiser_input, encode, latent_mask, vae_factor
from moebius.diffusion.schedule import scaled_linear_schedule
from moebius.train.batches import diffusion_batch


def _shifted_vae() -> AutoencoderKL:
    """A tiny f4 VAE with a shift, as FLUX / SD3 VAEs have (SDXL's shift is None)."""
    torch.manual_seed(0)
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 8, 8), layers_per_block=1,
        latent_channels=4, norm_num_groups=4, sample_size=32, scaling_factor=1.5, shift_factor=0.25,
    ).eval()


def test_vae_factor_reads_the_vae_or_its_config() -> None:
    vae = _shifted_vae()
    assert vae_factor(vae) == vae_factor(vae.config) == vae_factor({"block_out_channels": [1, 2, 3]}) == 4
    assert vae_factor({"block_out_channels": [128, 256, 512, 512]}) == 8


def test_encode_applies_shift_then_scale_and_decode_inverts_it() -> None:
    vae = _shifted_vae()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        mean = vae.encode(x).latent_dist.mean
        torch.testing.assert_close(encode(vae, x), (mean - 0.25) * 1.5)
        seen = {}
        original = vae.decode

        def spy(z, *args, **kwargs):
            seen["z"] = z
            return original(z, *args, **kwargs)

        vae.decode = spy
        decode(vae, encode(vae, x))
    torch.testing.assert_close(seen["z"], mean, rtol=1e-5, atol=1e-6)  # what the VAE decodes is its own latent


def test_training_latents_carry_the_same_shift_as_the_sampler() -> None:
    """Training used to ignore shift_factor: its z0 would differ from the sampler's by 0.25·1.5."""
    vae = _shifted_vae()
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    masks = torch.zeros(2, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1.0
    b = diffusion_batch(vae, images, masks, torch.Generator().manual_seed(4), scaled_linear_schedule(),
                        "uniform", 0.0, 0.0)
    sampler_z0 = encode(vae, images, torch.Generator().manual_seed(4))  # the first draw of that generator
    torch.testing.assert_close(b.z0, sampler_z0)


def test_latent_mask_binarises_then_nearest_resizes() -> None:
    masks = torch.zeros(1, 1, 8, 8)
    masks[:, :, :4, :4] = 0.6  # above 0.5: a hole
    masks[:, :, 4:, 4:] = 0.4  # below: known
    small = latent_mask(masks, 2)
    assert small.tolist() == [[[[1.0, 0.0], [0.0, 0.0]]]]
    assert torch.equal(small, latent_mask(masks, (2, 2)))


def test_denoiser_input_is_latent_mask_masked_latent() -> None:
    z_t, m, zm = torch.full((1, 4, 2, 2), 1.0), torch.full((1, 1, 2, 2), 2.0), torch.full((1, 4, 2, 2), 3.0)
    x = denoiser_input(z_t, m.double(), zm.half())
    assert x.shape == (1, 9, 2, 2) and x.dtype == torch.float32
    assert x[0, :, 0, 0].tolist() == [1.0] * 4 + [2.0] + [3.0] * 4
