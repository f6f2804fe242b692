"""Random-valued weight files in the official formats and layouts, at their registered paths (issue 14,
part 3: "Weights in the official formats and layouts").

``write_weights(root)`` writes every ``moebius.weights`` entry under a weights root, so that the
full-scale loaders read them exactly as they will read the published files: same file names, same
container (``torch.save`` zip, safetensors, TorchScript archive, diffusers folder), same state-dict keys,
shapes and dtypes, taken from the real module classes built on the meta device. Only the values are
random (a fixed seed per tensor). What each key becomes:

* ``moebius_<variant>`` / ``pixelhacker_<variant>``: the paper-size student (226 M parameters, 0.9 GB)
  and teacher (862 M, 3.4 GB) state dicts as ``torch.save`` files, keys ``embedding_layer.weight`` and
  ``diff_model.*`` (docs/model_facts.md). Written one tensor at a time into file-backed storage, so the
  writer never holds a model and its state dict at once (the page cache can drop what is written).
* ``sdxl_vae`` / ``sdxl_vae_config``: PixelHacker's ``vae/`` as a diffusers folder: ``config.json``
  (the SDXL f8d4 config of ``moebius.models.vae``) and ``diffusion_pytorch_model.bin``.
* ``inception_fid``: torch-fidelity's ``FeatureExtractorInceptionV3`` state dict (its strict
  ``load_state_dict``), at ``torch-fidelity/weights-inception-2015-12-05-6726825d.pth``.
* ``lpips_*_backbone``: torchvision's full ``alexnet`` / ``vgg16`` state dicts under their hub file names;
  ``lpips_*_head``: the ``lin<k>.model.1.weight`` heads ``lpips`` reads (non-negative, as trained heads are).
* ``elatentlpips_sdxl_vgg16_tuned``: the E-LatentLPIPS state dict (``lin<k>`` and ``lins.<k>`` hold the
  same tensors, as in the official file). ``elatentlpips_sdxl_vgg16`` (the trunk-only file) is not
  written: no loader here reads it, so its layout could not be checked (``NOT_GENERATED``).
* ``mat_*``: MAT's generator at 512 px as safetensors with the converter's metadata (``mat_convert.FORMAT``),
  values from ``moebius.eval.mat.deterministic_state``.
* ``lama_big_lama`` / ``migan_*`` / ``comodgan_256_ffhq``: TorchScript archives with the published call
  signatures and size rules. The published networks' code is not part of this project (LaMa's FFC
  ResNet, MI-GAN's generator), so the archive holds the small scripted modules of
  ``baseline_torchscript`` (``write_standin``): the same format and interface, read by the same
  ``torch.jit.load`` path, not the published architecture; their values are fixed per key (its seed),
  not by ``seed``.
* ``flux_fill_dev`` / ``sd35_large_inpainting`` / ``sd15_inpainting``: diffusers pipeline folders
  (``model_index.json``, every component with its config, tokenizers and text encoders included) written
  by ``save_pretrained`` with tiny widths, so ``from_pretrained`` runs its real path; full width (12 B
  parameters for FLUX) does not fit this machine. ``tiny_pipelines=False`` refuses them.

Checksums. The registry checks the digests it knows (the lpips heads' sha256, the torchvision files'
hash prefixes; ``baseline_torchscript`` the md5s IOPaint publishes): a generated file cannot match them.
``write_weights`` therefore writes a ledger, ``GENERATED.json`` at the root, with the sha256 of every
file it wrote (``moebius.weights.GENERATED_LEDGER``). ``resolve_weight`` checks a ledgered file against
the ledger instead of the official digest, so the verification code still runs and still fails on a
damaged or swapped file; the weights directory itself says its files are generated. Never put generated
files into a directory that holds real ones: the ledger would cover the keys it lists.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn

from moebius.atomic import atomic_path, tmp_name, write_json
from moebius.data.checksums import file_sha256
from moebius.errors import WeightError
from moebius.weights import (
    GENERATED_LEDGER,
    OFFICIAL_VARIANTS,
    WEIGHTS,
    WeightFile,
    get_weight,
)

# (name, shape, dtype, alias group): one entry per state-dict key, in the module's order. Keys whose
# tensors are one object in the module (E-LatentLPIPS' lin0 / lins.0) share a group and one tensor.
Layout = list[tuple[str, tuple[int, ...], torch.dtype, int]]

NOT_GENERATED = {"elatentlpips_sdxl_vgg16": "no loader reads the trunk-only file; its layout cannot be checked"}
PIPELINE_KEYS = ("flux_fill_dev", "sd35_large_inpainting", "sd15_inpainting")


# ---------------------------------------------------------------------------------------------
# Values: a fixed generator per (seed, file, tensor), so any tensor can be recomputed alone
# ---------------------------------------------------------------------------------------------


def _generator(seed: int, tag: str, name: str) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}/{tag}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def tensor_values(seed: int, tag: str, name: str, shape: tuple[int, ...], dtype: torch.dtype,
                  nonneg: bool = False) -> torch.Tensor:
    """The generated values of tensor ``name`` of file ``tag``: scaled so that a forward stays finite.

    Matrices and kernels: normal with std 1/sqrt(fan-in) (activations keep their scale); norm gains
    near 1; biases and running means near 0; running variances in [0.5, 1.5]; integer buffers
    (``num_batches_tracked``) 0. ``nonneg``: absolute values (LPIPS heads weigh distances).
    """
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    g = _generator(seed, tag, name)
    leaf = name.rsplit(".", 1)[-1]
    if leaf == "running_var":
        x = 0.5 + torch.rand(shape, generator=g)
    elif len(shape) >= 2:
        fan_in = max(1, math.prod(shape[1:]))
        x = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    elif leaf in ("weight", "gamma", "scale") and len(shape) == 1:
        x = 1.0 + 0.1 * torch.randn(shape, generator=g)
    else:
        x = 0.02 * torch.randn(shape, generator=g)
    return (x.abs() if nonneg else x).to(dtype)


def layout_of(module: nn.Module, keep: Callable[[str], bool] = lambda name: True) -> Layout:
    """The state-dict layout of ``module`` (build it on the meta device: no memory is touched)."""
    groups: dict[int, int] = {}
    out: Layout = []
    for name, t in module.state_dict(keep_vars=True).items():
        if keep(name):
            group = groups.setdefault(id(t), len(groups))
            out.append((name, tuple(t.shape), t.dtype, group))
    return out


def expected_state(layout: Layout, seed: int, tag: str, nonneg: Callable[[str], bool] = lambda n: False
                   ) -> dict[str, torch.Tensor]:
    """The state dict ``write_state`` writes for ``layout``, recomputed (what tests compare loads to)."""
    first: dict[int, str] = {}
    out: dict[str, torch.Tensor] = {}
    for name, shape, dtype, group in layout:
        source = first.setdefault(group, name)
        out[name] = out[source] if source != name else tensor_values(seed, tag, name, shape, dtype, nonneg(name))
    return out


def write_state(path: Path, layout: Layout, seed: int, tag: str,
                nonneg: Callable[[str], bool] = lambda n: False) -> None:
    """``torch.save`` a state dict of ``layout`` to ``path`` (atomically), one tensor at a time.

    Each tensor lives in its own file-backed shared mapping (a scratch file beside ``path``), filled and
    released before the next is drawn; ``torch.save`` then streams the storages into the zip. Resident
    memory stays one tensor plus what the page cache keeps: a 3.4 GB teacher never exists twice.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(prefix=".scratch-", dir=path.parent) as scratch:
        state: OrderedDict[str, torch.Tensor] = OrderedDict()
        made: dict[int, torch.Tensor] = {}
        for i, (name, shape, dtype, group) in enumerate(layout):
            if group in made:
                state[name] = made[group]
                continue
            n = max(1, math.prod(shape))
            t = torch.from_file(os.path.join(scratch, str(i)), shared=True, size=n, dtype=dtype)
            t = t[: math.prod(shape)].view(shape)
            t.copy_(tensor_values(seed, tag, name, shape, dtype, nonneg(name)))
            state[name] = made[group] = t
        torch.save(state, tmp)
        del state, made


# ---------------------------------------------------------------------------------------------
# Module layouts (the real classes, on the meta device)
# ---------------------------------------------------------------------------------------------


def denoiser_layout(kind: str) -> Layout:
    """The paper-size student / teacher state dict (``moebius.models.build_model``)."""
    from moebius.models.registry import build_model

    with torch.device("meta"):
        return layout_of(build_model(kind, "paper"))


def vae_layout() -> Layout:
    from moebius.models.vae import build_vae

    with torch.device("meta"):
        return layout_of(build_vae("paper"))


def inception_layout() -> Layout:
    """torch-fidelity's InceptionV3 as ``moebius.eval.metrics`` builds it (its constructor must load a
    state dict: the stand-in marker, whose init is a no-op on the meta device)."""
    from moebius.eval.metrics import (
        _STANDIN_MARKER,
        FID_FEATURE,
        TORCH_FIDELITY_NAME,
        _state_dict_file,
        inception_class,
    )

    with torch.device("meta"):
        module = inception_class()(TORCH_FIDELITY_NAME, [FID_FEATURE],
                                   feature_extractor_weights_path=_state_dict_file({_STANDIN_MARKER: 0}))
    return layout_of(module)


def torchvision_layout(net: str) -> Layout:
    import torchvision

    with torch.device("meta"):
        return layout_of({"alex": torchvision.models.alexnet, "vgg": torchvision.models.vgg16}[net](weights=None))


def lpips_head_layout(net: str) -> Layout:
    """The ``lin<k>`` keys of the file ``lpips.LPIPS(model_path=...)`` reads (lpips 0.1's weights/v0.1)."""
    import lpips

    with torch.device("meta"):
        module = lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
    return layout_of(module, keep=lambda name: name.startswith("lin") and not name.startswith("lins."))


def elatentlpips_layout() -> Layout:
    from moebius.train.elatentlpips import OFFICIAL_WIDTHS, ELatentLPIPS

    with torch.device("meta"):
        return layout_of(ELatentLPIPS(4, OFFICIAL_WIDTHS))


def is_head(name: str) -> bool:
    """An LPIPS-style linear head (``lin0.model.1.weight``, ``lins.0...``): non-negative weights."""
    return name.startswith("lin")


# ---------------------------------------------------------------------------------------------
# Writers, one per format
# ---------------------------------------------------------------------------------------------


def _state_writer(layout: Callable[[], Layout], nonneg: Callable[[str], bool] = lambda n: False):
    def write(w: WeightFile, target: Path, seed: int) -> None:
        write_state(target, layout(), seed, w.key, nonneg)

    return write


def _write_vae_config(w: WeightFile, target: Path, seed: int) -> None:
    from diffusers import AutoencoderKL

    from moebius.models.vae import sdxl_vae_config

    with torch.device("meta"):  # diffusers' own config.json (with _class_name), as save_pretrained writes it
        text = AutoencoderKL(**sdxl_vae_config()).to_json_string()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def _write_mat(w: WeightFile, target: Path, seed: int) -> None:
    from safetensors.torch import save_file

    from moebius.eval.mat import PAPER, MATGenerator, deterministic_state
    from moebius.eval.mat_convert import FORMAT

    state = deterministic_state(MATGenerator(PAPER), seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "class": "generated"})


_TORCHSCRIPT = {  # key -> (baseline name, fixed size)
    "lama_big_lama": ("lama", None), "migan_512_places2": ("migan", 512), "migan_256_places2": ("migan", 256),
    "migan_256_ffhq": ("migan", 256), "comodgan_256_ffhq": ("comodgan", 256),
}


def _write_torchscript(w: WeightFile, target: Path, seed: int) -> None:
    from moebius.eval.baseline_torchscript import write_standin

    name, size = _TORCHSCRIPT[w.key]
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".scratch-", dir=target.parent) as scratch:
        os.replace(write_standin(name, w.key, size, Path(scratch)), target)  # same folder: an atomic rename


def _folder_writer(build: Callable[[Path, int], None]):
    """Write a pipeline folder beside its target, then rename it into place (a folder is never half there)."""

    def write(w: WeightFile, target: Path, seed: int) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / tmp_name(target)
        try:
            build(staging, seed)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    return write


def _tiny_clip(seed: int, with_projection: bool, text_len: int):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                            num_attention_heads=4, max_position_embeddings=text_len, projection_dim=32,
                            bos_token_id=0, eos_token_id=1, pad_token_id=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _tiny_clip_tokenizer(folder: Path, text_len: int):
    """A CLIP BPE tokenizer with its two special tokens and one word: enough for the empty prompt."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2, "a": 3}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=text_len,
                         pad_token="<|endoftext|>")


def _tiny_t5(seed: int):
    """T5 encoder (d_model 32) and a four-token Unigram T5 tokenizer (pad, eos, unk, one word)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    tok = Tokenizer(models.Unigram([("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("a", -1.0)], unk_id=2))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer = T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                extra_ids=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = T5EncoderModel(T5Config(vocab_size=4, d_model=32, d_ff=37, d_kv=8, num_layers=1, num_heads=4,
                                          relative_attention_num_buckets=8, decoder_start_token_id=0))
    return encoder, tokenizer


_TEXT_LEN = 8  # CLIP's model_max_length in the tiny folders (the published ones: 77)


def _tiny_f8_vae(latent_channels: int, shift: float, scale: float):
    """An AutoencoderKL of 8-channel width with the published pipelines' four levels (factor 8): the
    transformer then sees the token count of the real model at 512 px (1,024 for FLUX, 4,096 for SD3.5),
    not the 16x more a factor-2 toy VAE would give (the smoke stand-ins' ``_tiny_vae``)."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        latent_channels=latent_channels, norm_num_groups=4, sample_size=512,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=shift, scaling_factor=scale,
    )


def _build_flux(folder: Path, seed: int) -> None:
    """FluxFillPipeline.save_pretrained with tiny widths, FLUX's latent layout and a factor-8 VAE."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel

    c, f = 16, 8  # FLUX's latent channels and VAE factor
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # in_channels: packed (2x2) noisy latent 4c + masked-image latent 4c + the f x f mask, packed: 4 f^2
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=8 * c + 4 * f * f, out_channels=4 * c, num_layers=1, num_single_layers=1,
            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
            guidance_embeds=True, axes_dims_rope=(4, 4, 8),
        )
        vae = _tiny_f8_vae(c, shift=0.1159, scale=0.3611)  # FLUX.1's VAE shift / scaling factors
    with tempfile.TemporaryDirectory() as vocab:
        tokenizer = _tiny_clip_tokenizer(Path(vocab), _TEXT_LEN)
    t5, t5_tokenizer = _tiny_t5(seed + 2)
    pipe = FluxFillPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                            text_encoder=_tiny_clip(seed + 1, False, _TEXT_LEN), tokenizer=tokenizer,
                            text_encoder_2=t5, tokenizer_2=t5_tokenizer, transformer=transformer)
    pipe.save_pretrained(folder)


def _build_sd3(folder: Path, seed: int) -> None:
    """StableDiffusion3InpaintPipeline.save_pretrained: two CLIPs with projection (pooled 2 x 32), a T5,
    a 16-channel latent and a factor-8 VAE (SD3.5's layout), tiny widths."""
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3InpaintPipeline

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = SD3Transformer2DModel(
            sample_size=128, patch_size=2, in_channels=16, num_layers=1, attention_head_dim=8, num_attention_heads=4,
            caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=16,
            pos_embed_max_size=192,  # SD3.5 Large's: latents up to 384 x 384
        )
        vae = _tiny_f8_vae(16, shift=0.0609, scale=1.5305)  # SD3's VAE shift / scaling factors
    with tempfile.TemporaryDirectory() as vocab:
        tokenizer = _tiny_clip_tokenizer(Path(vocab), _TEXT_LEN)
    t5, t5_tokenizer = _tiny_t5(seed + 3)
    pipe = StableDiffusion3InpaintPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
        text_encoder=_tiny_clip(seed + 1, True, _TEXT_LEN), tokenizer=tokenizer,
        text_encoder_2=_tiny_clip(seed + 2, True, _TEXT_LEN), tokenizer_2=tokenizer,
        text_encoder_3=t5, tokenizer_3=t5_tokenizer,
    )
    pipe.save_pretrained(folder)


def _build_sd15(folder: Path, seed: int) -> None:
    from moebius.eval.baseline_diffusers import write_tiny_sd15_inpaint

    with tempfile.TemporaryDirectory() as scratch:
        os.replace(write_tiny_sd15_inpaint(Path(scratch)), folder)


def _writers() -> dict[str, Callable[[WeightFile, Path, int], None]]:
    out: dict[str, Callable[[WeightFile, Path, int], None]] = {}
    for v in OFFICIAL_VARIANTS:
        out[f"moebius_{v}"] = _state_writer(lambda: denoiser_layout("student"))
        out[f"pixelhacker_{v}"] = _state_writer(lambda: denoiser_layout("teacher"))
    out["sdxl_vae"] = _state_writer(vae_layout)
    out["sdxl_vae_config"] = _write_vae_config
    out["inception_fid"] = _state_writer(inception_layout)
    out["lpips_alexnet_backbone"] = _state_writer(lambda: torchvision_layout("alex"))
    out["lpips_vgg16_backbone"] = _state_writer(lambda: torchvision_layout("vgg"))
    out["lpips_alex_head"] = _state_writer(lambda: lpips_head_layout("alex"), is_head)
    out["lpips_vgg_head"] = _state_writer(lambda: lpips_head_layout("vgg"), is_head)
    out["elatentlpips_sdxl_vgg16_tuned"] = _state_writer(elatentlpips_layout, is_head)
    for key in ("mat_places512", "mat_celebahq512", "mat_ffhq512"):
        out[key] = _write_mat
    for key in _TORCHSCRIPT:
        out[key] = _write_torchscript
    out["flux_fill_dev"] = _folder_writer(_build_flux)
    out["sd35_large_inpainting"] = _folder_writer(_build_sd3)
    out["sd15_inpainting"] = _folder_writer(_build_sd15)
    return out


WRITERS = _writers()


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _read_ledger(root: Path) -> dict:
    ledger = root / GENERATED_LEDGER
    if ledger.is_file():
        return json.loads(ledger.read_text(encoding="utf-8"))
    return {"kind": "generated", "note": "random-valued files in the official formats (moebius.rehearsal.weights);"
            " not the published weights", "files": {}}


def _real_files(root: Path, ledger: dict) -> list[str]:
    """Registered files under ``root`` that the ledger does not list: someone's real weights."""
    listed = {entry["path"] for entry in ledger["files"].values()}
    return sorted(w.path for w in WEIGHTS.values() if w.path not in listed and (root / w.path).exists())


def write_weights(root: str | os.PathLike, keys: Iterable[str] | None = None, seed: int = 0,
                  tiny_pipelines: bool = True) -> dict[str, Path]:
    """Write random-valued files of ``keys`` (default: every registered one that can be generated) at
    their registered paths under ``root``; record each file's sha256 in ``root/GENERATED.json``.

    Returns ``{key: path}``. A key that cannot be generated (``NOT_GENERATED``; a pipeline with
    ``tiny_pipelines=False``) is a ``WeightError`` when asked for by name and skipped otherwise.
    A root holding a registered file the ledger does not list (real weights) is refused before
    anything is written: the ledger would pass generated files off as the real ones' neighbours. A file
    the ledger already lists with the same seed is kept (a resumed generation; ``resolve_weight``
    checks its sha256 against the ledger when it is read).
    """
    root = Path(root)
    explicit = keys is not None
    wanted = list(keys) if explicit else sorted(WEIGHTS)
    for key in wanted:
        get_weight(key)  # unknown name: UnknownNameError with its hint, before anything is written
    ledger = _read_ledger(root)
    real = _real_files(root, ledger)
    if real:
        raise WeightError(f"{root} holds weight files that were not generated ({', '.join(real[:3])}"
                          f"{', ...' if len(real) > 3 else ''}); generate into an empty folder (weights.dir)")
    written: dict[str, Path] = {}
    for key in wanted:
        reason = NOT_GENERATED.get(key)
        if key in PIPELINE_KEYS and not tiny_pipelines:
            reason = "full-width pipelines are not generated (FLUX.1-Fill alone has 12 B parameters)"
        if reason is not None:
            if explicit:
                raise WeightError(f"cannot generate {key}: {reason}")
            continue
        w = get_weight(key)
        target = root / w.path
        done = ledger["files"].get(key)
        if done is not None and done.get("seed") == seed and target.exists():
            written[key] = target
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            WRITERS[key](w, target, seed)
        entry = {"path": w.path, "seed": seed}
        if not w.directory:
            entry["sha256"] = file_sha256(target)
        ledger["files"][key] = entry
        write_json(root / GENERATED_LEDGER, ledger)  # after each file: an interrupted run keeps what it made
        written[key] = target
    return written


def write_configured_weights(cfg, keys: Iterable[str] | None = None, stamp: str | os.PathLike | None = None
                             ) -> dict[str, Path]:
    """``write_weights`` under the config's weights root with its seed (``moebius weights generate``);
    ``stamp`` is touched last, once every file is there (the workflow's output)."""
    from moebius.atomic import write_text
    from moebius.weights import weights_root

    written = write_weights(weights_root(cfg.weights.dir), keys, seed=cfg.seed)
    if stamp is not None:
        write_text(Path(stamp), "".join(f"{k}\n" for k in sorted(written)))
    return written
