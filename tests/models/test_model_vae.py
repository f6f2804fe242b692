
import pytest
import torch

from moebius.diffusion.latents import vae_factor
from moebius.errors import UnknownNameError
from moebius.models.vae import build_vae, sdxl_vae_config, vae_config


def test_paper_config_is_the_shipped_sdxl_json() -> None:
    config = sdxl_vae_config()
    assert config["block_out_channels"] == [128, 256, 512, 512]
    assert config["scaling_factor"] == pytest.approx(0.13025)
    assert not any(k.startswith("_") for k in config)


def test_smoke_vae_is_factor_four() -> None:
    torch.manual_seed(0)
    vae = build_vae("smoke")
    assert vae_factor(vae) == vae_factor(vae_config("smoke")) == 4 and vae.config.latent_channels == 4
    assert vae_factor(sdxl_vae_config()) == 8
    with torch.no_grad():
        z = vae.encode(torch.randn(2, 3, 64, 64)).latent_dist.sample() * vae.config.scaling_factor
        assert z.shape == (2, 4, 16, 16)
        assert vae.decode(z / vae.config.scaling_factor).sample.shape == (2, 3, 64, 64)


def test_unknown_vae_preset() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'paper'"):
        build_vae("papr")


@torch.no_grad()
def test_vae_attention_sdpa_processor_equals_the_classic_one() -> None:
    """diffusers gives the VAE's mid-block attention its SDPA processor; the explicit-softmax one agrees."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    torch.manual_seed(0)
    vae = build_vae("tiny").eval()
    assert {type(p) for p in vae.attn_processors.values()} == {AttnProcessor2_0}
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    z = vae.encode(x).latent_dist.mean
    sdpa = vae.decode(z).sample
    vae.set_attn_processor(AttnProcessor())
    torch.testing.assert_close(vae.encode(x).latent_dist.mean, z, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(vae.decode(z).sample, sdpa, rtol=1e-5, atol=1e-5)
