"""Diffusion baselines through diffusers: FLUX.1-Fill-Dev, SD3.5 Large inpainting, SD 1.5 inpainting.

- ``flux_fill`` / ``sd35_inpaint``: ``FluxFillPipeline`` / ``StableDiffusion3InpaintPipeline``. Full
  scale loads the published pipeline folders; smoke scale builds the same classes from config dicts
  with tiny random components and no tokenizers / text encoders (fixed-seed precomputed prompt
  embeddings instead), only to exercise the code path.
- ``sd15_inpaint`` (the paper's "SD" row): ``StableDiffusionInpaintPipeline.from_pretrained`` of a
  local folder at every scale. Smoke scale first writes a tiny pipeline folder (UNet with 9 input
  channels, VAE, CLIP text encoder and a minimal CLIP BPE tokenizer, DDIM scheduler with SD 1.5's
  schedule) from config dicts and a fixed seed, so that the full-scale loader, tokenizer and text
  encoder all run. The safety checker is not loaded: it replaces a flagged output by a black image,
  which would be scored as an inpainting.

Every method gets the empty prompt (text-free inpainting, as for the paper's other generalists) and
one CPU generator per image, so a sample does not depend on the batch it was drawn in.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch

from moebius.config import Config
from moebius.diffusion.seeding import image_generators
from moebius.errors import EvalError
from moebius.eval.baselines import BaselineSpec, Checkpoint, Loaded, resolve, steps_for

_TINY_SEED = 0
_TINY_TEXT_LEN = 8


def _device_dtype() -> tuple[str, torch.dtype]:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, (torch.bfloat16 if device == "cuda" else torch.float32)


def _tiny_vae(latent_channels: int):
    from diffusers import AutoencoderKL

    # Factor-2 VAE (two levels) so that 32-64 px images give 16-32 px latents.
    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=4, sample_size=32,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
    )


def _tiny_flux_fill():
    """FluxFillPipeline with tiny random components; in_channels = packed latent + masked latent + mask."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        FluxFillPipeline,
        FluxTransformer2DModel,
    )

    c, f = 4, 2  # latent channels, VAE factor
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=8 * c + 4 * f * f, out_channels=4 * c, num_layers=1, num_single_layers=1,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=True, axes_dims_rope=(4, 4, 8),
    )
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=_tiny_vae(c), text_encoder=None, tokenizer=None,
        text_encoder_2=None, tokenizer_2=None, transformer=transformer,
    )
    g = torch.Generator().manual_seed(_TINY_SEED + 1)
    embeds = {
        "prompt_embeds": torch.randn(1, _TINY_TEXT_LEN, 32, generator=g),
        "pooled_prompt_embeds": torch.randn(1, 32, generator=g),
    }
    return pipe, embeds


def _tiny_sd3_inpaint():
    """StableDiffusion3InpaintPipeline with a tiny 16-channel transformer (the latent-blending mode)."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3InpaintPipeline,
    )

    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=16, num_layers=1, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=16,
    )
    pipe = StableDiffusion3InpaintPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=_tiny_vae(16),
        text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None, text_encoder_3=None,
        tokenizer_3=None,
    )
    g = torch.Generator().manual_seed(_TINY_SEED + 2)
    embeds = {
        "prompt_embeds": torch.randn(1, _TINY_TEXT_LEN, 32, generator=g),
        "pooled_prompt_embeds": torch.randn(1, 64, generator=g),
        # The "empty prompt" branch of CFG: zeros of the same shapes.
        "negative_prompt_embeds": torch.zeros(1, _TINY_TEXT_LEN, 32),
        "negative_pooled_prompt_embeds": torch.zeros(1, 64),
    }
    return pipe, embeds


# SD 1.5's noise schedule (its scheduler_config.json): the stand-in differs in size, not in schedule.
SD15_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                 "beta_schedule": "scaled_linear", "steps_offset": 1, "clip_sample": False,
                 "set_alpha_to_one": False}


def write_tiny_sd15_inpaint(folder: Path) -> Path:
    """Write a tiny ``StableDiffusionInpaintPipeline`` folder (stand-in of the SD 1.5 inpainting repo).

    Same classes and file layout as the published folder (model_index.json, unet/, vae/,
    text_encoder/, tokenizer/, scheduler/), random weights from a fixed seed; no safety checker.
    """
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    vocab_dir = folder / "_vocab"
    vocab_dir.mkdir(parents=True, exist_ok=True)
    # A CLIP BPE vocabulary with its two special tokens and one word: enough for the empty prompt.
    (vocab_dir / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "a": 3}))
    (vocab_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(vocab_dir / "vocab.json"), str(vocab_dir / "merges.txt"),
                              model_max_length=_TINY_TEXT_LEN, pad_token="<|endoftext|>")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_TINY_SEED + 3)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
            max_position_embeddings=_TINY_TEXT_LEN, projection_dim=32, bos_token_id=0, eos_token_id=1,
            pad_token_id=1,
        ))
        # in_channels 9 = noisy latent (4) + mask (1) + masked-image latent (4), as SD 1.5 inpainting.
        unet = UNet2DConditionModel(
            sample_size=8, in_channels=9, out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), block_out_channels=(8, 16), layers_per_block=1,
            cross_attention_dim=32, attention_head_dim=4, norm_num_groups=4,
        )
        # Four levels: the factor-8 latent grid of SD's VAE (a 64-px smoke image → 8x8 latents).
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
            latent_channels=4, norm_num_groups=4, sample_size=64, scaling_factor=0.18215,
        )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=DDIMScheduler(**SD15_SCHEDULE),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


def _load_sd15(path: Path):
    from diffusers import StableDiffusionInpaintPipeline

    device, dtype = _device_dtype()
    try:
        pipe = StableDiffusionInpaintPipeline.from_pretrained(
            path, dtype=dtype, safety_checker=None, requires_safety_checker=False)
    except (OSError, ValueError) as exc:
        raise EvalError(f"sd15_inpaint: cannot load the pipeline folder {path} "
                        f"({(str(exc).splitlines() or [type(exc).__name__])[0]})") from exc
    return pipe.to(device)


def _build(cfg: Config, spec: BaselineSpec, checkpoint: Checkpoint):
    """(pipeline, precomputed embeddings or None, provenance) for a diffusers baseline at this scale."""
    path, kind = resolve(cfg, spec.name, checkpoint.key)
    if spec.name == "sd15_inpaint":
        if path is not None:
            return _load_sd15(Path(path)), None, {"kind": kind, "folder": path}
        with tempfile.TemporaryDirectory(prefix="moebius-sd15-standin-") as tmp:
            # from_pretrained reads every tensor into memory: the folder can go afterwards.
            pipe = _load_sd15(write_tiny_sd15_inpaint(Path(tmp)))
        return pipe, None, {"kind": kind, "folder": None,
                            "standin": f"tiny StableDiffusionInpaintPipeline folder, seed {_TINY_SEED + 3}"}
    if path is None:
        with torch.random.fork_rng(devices=[]):  # fixed random init without touching the global RNG
            torch.manual_seed(_TINY_SEED)
            pipe, embeds = _tiny_flux_fill() if spec.name == "flux_fill" else _tiny_sd3_inpaint()
        return pipe, embeds, {"kind": kind, "folder": None, "standin": f"tiny {type(pipe).__name__}, seed {_TINY_SEED}"}
    from diffusers import FluxFillPipeline, StableDiffusion3InpaintPipeline

    cls = FluxFillPipeline if spec.name == "flux_fill" else StableDiffusion3InpaintPipeline
    device, dtype = _device_dtype()
    # `dtype`, as _load_sd15: diffusers 0.42 deprecates `torch_dtype` (to be removed in 1.0)
    return cls.from_pretrained(path, dtype=dtype).to(device), None, {"kind": kind, "folder": path}


def load(cfg: Config, spec: BaselineSpec, checkpoint: Checkpoint, size: int | None) -> Loaded:
    """The runner of the diffusers baselines: a pipeline called with the empty prompt."""
    pipe, embeds, where = _build(cfg, spec, checkpoint)
    pipe.set_progress_bar_config(disable=True)
    steps = steps_for(cfg, spec.name)

    def run(images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        b, _, h, w = images.shape
        g = spec.default_guidance if guidance is None else float(guidance)
        kwargs: dict = {}
        if embeds is None:
            kwargs["prompt"] = [""] * b  # text-free inpainting: the empty prompt
        else:
            kwargs.update({k: v.expand(b, *v.shape[1:]).to(pipe.device) for k, v in embeds.items()})
        if spec.name == "sd35_inpaint":
            kwargs["strength"] = 1.0  # start from pure noise: the pipeline's default 0.6 keeps the hole's content
        out = pipe(
            image=((images.float() + 1.0) / 2.0).clamp(0, 1),  # diffusers takes tensors in [0, 1]
            mask_image=(masks > 0.5).float(),
            height=h, width=w, num_inference_steps=steps, guidance_scale=g,
            generator=image_generators(seeds), output_type="pt", **kwargs,
        ).images  # (B,3,H,W) in [0, 1]
        return (out.float() * 2.0 - 1.0).clamp(-1, 1).to(images.device)

    return Loaded(run, {**where, "class": type(pipe).__name__, "steps": steps})
