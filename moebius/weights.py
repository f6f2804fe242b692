"""Registry of every external weight file the project uses, and where to find it locally.

Each entry records the source (URL or Hugging Face hub id + path), the file name, the sha256
where it is known (``None`` otherwise: a checksum is never guessed), and the licence. Files live
in one local weights directory, decided by ``weights_root`` alone: ``$MOEBIUS_WEIGHTS_DIR``, else the
``weights_dir`` argument (the config's ``weights.dir``), else ``./weights``. A missing file raises ``MissingWeightError`` with one line naming the file, where
to get it and the exact path to put it at; a file whose bytes contradict a known checksum raises
``WeightChecksumError``.

Checks: a full sha256 where the file is pinned (the lpips heads, measured from the installed
lpips 0.1.4 package); otherwise the hash prefix that torchvision's file names embed and torch.hub
verifies (``alexnet-owt-7be5be79.pth`` -> its sha256 starts with ``7be5be79``).

Generated files (the rehearsal, ``moebius.rehearsal.weights``): random-valued files in the official
formats cannot match an official digest. ``write_weights`` records the sha256 of each file it writes in a
ledger, ``GENERATED.json`` at the weights root (key -> path, sha256). ``resolve_weight`` then checks a
ledgered file against the ledger's digest instead of the official one: verification still runs (a
damaged or swapped generated file still fails), only the expected digest differs, and it is the weights
directory that says, in a file a person can read, that its files are generated. A real weights directory
has no ledger; a ledger entry never vouches for a file at another path. Never silently: the first time a
file is accepted by the ledger, ``resolve_weight`` logs a warning naming the ledger and the key, and the
file's weights kind is ``generated`` (``weight_kind``), never ``official``.

Weights kinds recorded in results: ``official`` (the published file), ``trained`` (a checkpoint
trained by this project), ``standin`` (a deterministic substitute at smoke scale, labelled so),
``generated`` (a random-valued file in the official format, listed in the ledger; labelled so, and, like
``standin``, never comparable with the paper).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from moebius.data.checksums import file_sha256
from moebius.errors import (  # noqa: F401 (re-exported)
    MissingWeightError,
    UnknownNameError,
    WeightChecksumError,
    WeightError,
)
from moebius.registry import Registry

ENV_VAR = "MOEBIUS_WEIGHTS_DIR"
DEFAULT_DIR = "weights"


@dataclass(frozen=True)
class WeightFile:
    """One external file (or, for a diffusers pipeline, one directory)."""

    key: str
    path: str  # where it lives under the weights directory
    source: str  # a URL, or "hf:<repo>/<file>" / "hf:<repo>" for Hugging Face
    licence: str
    used_by: str
    sha256: str | None = None  # full digest, only where known
    sha256_prefix: str | None = None  # torch.hub convention: the hash prefix in the file name
    url: str | None = None  # direct download URL, where one exists
    hub_id: str | None = None
    packaged: str | None = None  # "<package>:<path>" when an installed package ships the file
    directory: bool = False  # a diffusers pipeline folder: present when model_index.json is

    def where_to_get(self) -> str:
        """A direct URL, else the hub repository (a whole pipeline), else the source's description."""
        if self.url:
            return self.url
        if self.hub_id:
            return f"huggingface.co/{self.hub_id} (the whole repository)"
        return self.source


_HF = "https://huggingface.co"
_TORCHVISION_LICENCE = "BSD-3-Clause (torchvision); trained on ImageNet (its terms apply)"
_MOEBIUS_LICENCE = "Apache-2.0 per github.com/hustvl/Moebius README; MIT per the HF model card"
_PIXELHACKER_LICENCE = "MIT (HF model card hustvl/PixelHacker)"
# The checkpoints hustvl publishes for each of PixelHacker and Moebius: pretrained and one per benchmark
# family (`moebius train official --variant`).
OFFICIAL_VARIANTS = ("pretrained", "ft_places2", "ft_celebahq", "ft_ffhq")
_MAT_ONEDRIVE = ("https://mycuhk-my.sharepoint.com/:f:/g/personal/1155137927_link_cuhk_edu_hk/"
                 "EuY30ziF-G5BvwziuHNFzDkBVC6KBPRg69kCeHIu-BXORA?e=7OwJyE")


def _hf(key: str, repo: str, file: str, path: str, licence: str, used_by: str) -> WeightFile:
    return WeightFile(
        key=key, path=path, source=f"hf:{repo}/{file}", licence=licence, used_by=used_by,
        url=f"{_HF}/{repo}/resolve/main/{file}", hub_id=repo,
    )


def _torchvision(key: str, file: str, weights: str, used_by: str) -> WeightFile:
    """A torchvision checkpoint: its file name carries the sha256 prefix torch.hub checks (``name-<hash>.pth``)."""
    return WeightFile(
        key=key, path=f"torchvision/{file}", source=f"torchvision {weights}",
        url=f"https://download.pytorch.org/models/{file}", licence=_TORCHVISION_LICENCE, used_by=used_by,
        sha256_prefix=file.rsplit("-", 1)[1].removesuffix(".pth"),
    )


def _lpips_head(net: str, sha256: str) -> WeightFile:
    """An LPIPS linear head as the lpips package ships it (``weights/v0.1/<net>.pth``)."""
    return WeightFile(
        key=f"lpips_{net}_head", path=f"lpips/v0.1/{net}.pth", source=f"pip package lpips (weights/v0.1/{net}.pth)",
        licence="BSD-2-Clause (lpips)", used_by=f"LPIPS ({net}) linear heads", sha256=sha256,
        packaged=f"lpips:weights/v0.1/{net}.pth",
    )


_ENTRIES: list[WeightFile] = [
    WeightFile(
        key="inception_fid",
        path="torch-fidelity/weights-inception-2015-12-05-6726825d.pth",
        source="torch-fidelity v0.2.0 release",
        url="https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
        "weights-inception-2015-12-05-6726825d.pth",
        licence="Apache-2.0 (TensorFlow models; ported by pytorch-fid / torch-fidelity)",
        used_by="FID (torch-fidelity InceptionV3 2015-12-05)",
        # "6726825d" looks like a torch.hub hash prefix, but torch-fidelity never checks it and no
        # digest is published, so none is asserted here.
    ),
    _torchvision("lpips_alexnet_backbone", "alexnet-owt-7be5be79.pth", "AlexNet_Weights.IMAGENET1K_V1",
                 "LPIPS (alex) backbone"),
    _torchvision("lpips_vgg16_backbone", "vgg16-397923af.pth", "VGG16_Weights.IMAGENET1K_V1",
                 "LPIPS (vgg) backbone"),
    # The linear heads ship inside the lpips package; digests measured from lpips 0.1.4's files.
    _lpips_head("alex", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"),
    _lpips_head("vgg", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"),
    _hf("sdxl_vae", "hustvl/PixelHacker", "vae/diffusion_pytorch_model.bin",
        "pixelhacker/vae/diffusion_pytorch_model.bin", _PIXELHACKER_LICENCE,
        "SDXL f8d4 VAE (latent space of teacher and student)"),
    _hf("sdxl_vae_config", "hustvl/PixelHacker", "vae/config.json", "pixelhacker/vae/config.json",
        _PIXELHACKER_LICENCE, "SDXL f8d4 VAE config (scaling_factor 0.13025)"),
    *[
        _hf(f"pixelhacker_{v}", "hustvl/PixelHacker", f"{v}/diffusion_pytorch_model.bin",
            f"pixelhacker/{v}/diffusion_pytorch_model.bin", _PIXELHACKER_LICENCE,
            f"PixelHacker teacher ({v})")
        for v in OFFICIAL_VARIANTS
    ],
    *[
        _hf(f"moebius_{v}", "hustvl/Moebius", f"{v}/diffusion_pytorch_model.bin",
            f"moebius/{v}/diffusion_pytorch_model.bin", _MOEBIUS_LICENCE, f"Moebius student, official ({v})")
        for v in OFFICIAL_VARIANTS
    ],
    _hf("elatentlpips_sdxl_vgg16", "Mingguksky/elatentlpips", "elatentlpips_ckpt/sdxl_latent_vgg16.pth.tar",
        "elatentlpips/sdxl_latent_vgg16.pth.tar", "CC-BY-NC-4.0 (elatentlpips)",
        "E-LatentLPIPS latent VGG16-BN trunk (SDXL latents)"),
    _hf("elatentlpips_sdxl_vgg16_tuned", "Mingguksky/elatentlpips",
        "elatentlpips_ckpt/sdxl_latest_vgg16_tuned.pth", "elatentlpips/sdxl_latest_vgg16_tuned.pth",
        "CC-BY-NC-4.0 (elatentlpips)", "E-LatentLPIPS calibrated heads (SDXL latents)"),
    WeightFile(
        key="flux_fill_dev", path="pipelines/FLUX.1-Fill-dev", source="hf:black-forest-labs/FLUX.1-Fill-dev",
        hub_id="black-forest-labs/FLUX.1-Fill-dev", directory=True,
        licence="FLUX.1 [dev] Non-Commercial License (gated: accept it on the model page)",
        used_by="baseline FLUX.1-Fill-Dev (diffusers FluxFillPipeline, 50 steps)",
    ),
    WeightFile(
        key="sd35_large_inpainting", path="pipelines/stable-diffusion-3.5-large",
        source="hf:stabilityai/stable-diffusion-3.5-large", hub_id="stabilityai/stable-diffusion-3.5-large",
        directory=True, licence="Stability AI Community License (gated: accept it on the model page)",
        used_by="baseline SD3.5 Large-Inpainting (diffusers StableDiffusion3InpaintPipeline, 28 steps)",
    ),
    # MAT (baseline of Tables 3, 4, 7): the official network pickles run code when unpickled, so the
    # registry holds their safetensors conversion (`moebius weights convert-mat`, moebius.eval.mat_convert).
    *[
        WeightFile(
            key=key, path=f"mat/{name}.safetensors",
            source=f"{name}.pkl from the OneDrive folder linked in github.com/fenglinglwb/MAT's README "
            f"({_MAT_ONEDRIVE}), converted: moebius weights convert-mat {name}.pkl --out "
            f"<weights dir>/mat/{name}.safetensors --mat-repo <a clone of github.com/fenglinglwb/MAT>",
            licence="CC BY-NC 4.0 (MAT repository: research use only)", used_by=f"baseline MAT ({used})",
        )
        for key, name, used in (
            ("mat_places512", "Places_512", "Places2 benchmarks and LVIS; the 1.8M-image Places365-Standard model"),
            ("mat_celebahq512", "CelebA-HQ_512", "CelebA-HQ and DeepFakeFace benchmarks"),
            ("mat_ffhq512", "FFHQ_512", "FFHQ benchmark"),
        )
    ],
    # Feed-forward baselines (moebius.eval.baseline_torchscript). No sha256 is published for these
    # files: IOPaint publishes md5s for the two it hosts (checked on load); the sha256 of every file
    # used is recorded in the sample folder's meta.json.
    WeightFile(
        key="lama_big_lama", path="lama/big-lama.pt", source="LaMa big-lama as TorchScript (bin/to_jit.py), IOPaint release",
        url="https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
        licence="Apache-2.0 (github.com/advimman/lama LICENSE, code and released models; no separate weights "
        "terms stated); trained on Places365-Challenge (its terms apply)",
        used_by="baseline LaMa (big-lama, Places2), md5 e3aa4aaa15225a33ec84f9f4bc47e500 (IOPaint)",
    ),
    WeightFile(
        key="migan_512_places2", path="migan/migan_512_places2_traced.pt",
        source="MI-GAN 512 Places2 traced by MI-GAN's export script (migan_traced.pt), IOPaint release",
        url="https://github.com/Sanster/models/releases/download/migan/migan_traced.pt",
        licence="MIT (github.com/Picsart-AI-Research/MI-GAN LICENSE); trained on Places365 (its terms apply)",
        used_by="baseline MI-GAN on 512-px Places2 and LVIS, md5 76eb3b1a71c400ee3290524f7a11b89c (IOPaint)",
    ),
    *[
        WeightFile(
            key=key, path=f"migan/{key}_traced.pt",
            source=f"{key}.pt (state dict) from the {what} Google Drive folder of the MI-GAN README "
            f"(drive.google.com/drive/folders/{folder}), traced with `moebius weights export-gan {key}`",
            licence=licence, used_by=used_by,
        )
        for key, what, folder, licence, used_by in (
            ("migan_256_places2", "MI-GAN", "1xNtvN2lto0p5yFKOEEg9RioMjGrYM74w",
             "MIT (MI-GAN LICENSE); trained on Places365 (its terms apply)", "baseline MI-GAN on Places2 (256)"),
            ("migan_256_ffhq", "MI-GAN", "1xNtvN2lto0p5yFKOEEg9RioMjGrYM74w",
             "MIT (MI-GAN LICENSE); trained on FFHQ (CC BY-NC-SA 4.0)", "baseline MI-GAN on FFHQ (256)"),
            ("comodgan_256_ffhq", "Co-Mod-GAN", "1VATyNQQJW2VpuHND02bc-3_4ukJMHQ44",
             ("MIT (MI-GAN LICENSE; CoModGAN's design: github.com/zsyzzsoft/co-mod-gan, BSD-style licence); "
              "trained on FFHQ (CC BY-NC-SA 4.0)"), "baseline CoModGAN on CelebA-HQ (512, run at 256)"),
        )
    ],
    WeightFile(
        key="sd15_inpainting", path="pipelines/stable-diffusion-inpainting",
        source="hf:stable-diffusion-v1-5/stable-diffusion-inpainting (formerly runwayml/stable-diffusion-inpainting)",
        hub_id="stable-diffusion-v1-5/stable-diffusion-inpainting", directory=True,
        licence="CreativeML OpenRAIL-M (its use restrictions apply)",
        used_by="baseline SD (SD 1.5 inpainting; diffusers StableDiffusionInpaintPipeline, 50 steps)",
    ),
]

WEIGHTS: Registry[WeightFile] = Registry("weight", ((w.key, w) for w in _ENTRIES))


def list_weights() -> list[WeightFile]:
    """Every registered weight file, sorted by key."""
    return [WEIGHTS[k] for k in sorted(WEIGHTS)]


def get_weight(key: str) -> WeightFile:
    """The registry entry ``key``; ``UnknownNameError`` with a "did you mean" hint otherwise."""
    return WEIGHTS.get(key)


def weights_root(weights_dir: str | os.PathLike | None = None) -> Path:
    """The weights directory: ``$MOEBIUS_WEIGHTS_DIR``, else the argument (config ``weights.dir``), else
    ``./weights``. The environment wins because it is the machine's answer; the config is the project's.

    The only place that decides it: every caller passes ``cfg.weights.dir`` and lets this choose.
    """
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(weights_dir if weights_dir is not None else DEFAULT_DIR)


def _packaged_path(spec: str) -> Path | None:
    """A file shipped inside an installed package, found without importing it (lpips imports torch)."""
    package, rel = spec.split(":", 1)
    try:
        found = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / rel
    return path if path.is_file() else None


# Hashing a 900 MB checkpoint takes seconds: remember verified files by (path, size, mtime).
_VERIFIED: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """sha256 (hex) of a file, hashed once per process for a given (path, size, mtime)."""
    st = path.stat()
    cache_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if cache_key not in _VERIFIED:
        _VERIFIED[cache_key] = file_sha256(path)
    return _VERIFIED[cache_key]


GENERATED_LEDGER = "GENERATED.json"  # at the weights root; written only by moebius.rehearsal.weights
GENERATED_KIND = "generated"  # the weights kind of a ledgered file (moebius.records.WEIGHTS_KINDS)

log = logging.getLogger(__name__)
_ANNOUNCED: set[tuple[str, str]] = set()  # (ledger, key) already logged: one line per file and process


def generated_entry(key: str, weights_dir: str | os.PathLike | None = None) -> dict[str, str] | None:
    """The ledger entry ``{"path", "sha256"}`` of a generated (rehearsal) file ``key``, or None.

    None where the weights root has no ledger or the ledger does not list ``key`` at its registered
    path; an unreadable ledger is a ``WeightError`` (never silently the official check).
    """
    import json

    ledger = weights_root(weights_dir) / GENERATED_LEDGER
    if not ledger.is_file():
        return None
    try:
        files = json.loads(ledger.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightError(f"{ledger}: unreadable ledger of generated weights ({exc})") from exc
    entry = files.get(key) if isinstance(files, dict) else None
    if not isinstance(entry, dict) or entry.get("path") != get_weight(key).path:
        return None
    return entry


def weight_kind(key: str, weights_dir: str | os.PathLike | None = None) -> str:
    """``"generated"`` where the weights root's ledger lists ``key`` and its file is at the registered
    path, else ``"official"``: the kind every loader records for a file that ``resolve_weight`` found.

    A ledgered key whose file is absent resolves elsewhere (a packaged copy) or not at all, so it is not
    generated. Any code that records a weights kind for a registry file asks here, never assumes official.
    """
    w = get_weight(key)
    path = weights_root(weights_dir) / w.path
    present = (path / "model_index.json").is_file() if w.directory else path.is_file()
    return GENERATED_KIND if present and generated_entry(key, weights_dir) is not None else "official"


def _announce_ledger(key: str, weights_dir: str | os.PathLike | None) -> None:
    """One warning per (ledger, key) and process: a ledger in a weights directory is never silent."""
    ledger = str(weights_root(weights_dir) / GENERATED_LEDGER)
    if (ledger, key) in _ANNOUNCED:
        return
    _ANNOUNCED.add((ledger, key))
    log.warning("weight %s (%s) is accepted by the ledger of generated weights %s, not by its official "
                "digest: results from it are labelled weights_kind 'generated'", key, get_weight(key).path, ledger)


def _check_generated(w: WeightFile, path: Path, entry: dict[str, str]) -> None:
    if w.directory:
        return  # a pipeline folder: its files are checked by the library that reads them
    digest = cached_sha256(path)
    if digest != entry.get("sha256"):
        raise WeightChecksumError(
            f"{path}: sha256 {digest[:16]}... does not match the {str(entry.get('sha256'))[:16]}... that "
            f"{GENERATED_LEDGER} recorded when it generated {w.key}; generate it again"
        )


def _check(w: WeightFile, path: Path) -> None:
    if w.directory or (w.sha256 is None and w.sha256_prefix is None):
        return
    digest = cached_sha256(path)
    if w.sha256 is not None and digest != w.sha256:
        raise WeightChecksumError(
            f"{path}: sha256 {digest[:16]}... does not match the known {w.sha256[:16]}... of {w.key}; "
            f"replace it with the file from {w.where_to_get()}"
        )
    if w.sha256_prefix is not None and not digest.startswith(w.sha256_prefix):
        raise WeightChecksumError(
            f"{path}: sha256 {digest[:16]}... does not start with {w.sha256_prefix} as its name promises; "
            f"replace it with the file from {w.where_to_get()}"
        )


def resolve_weight(key: str, weights_dir: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """The local path of weight ``key``; ``MissingWeightError`` (one line: what, where from, where to)."""
    w = get_weight(key)
    path = weights_root(weights_dir) / w.path
    present = (path / "model_index.json").is_file() if w.directory else path.is_file()
    if not present and w.packaged is not None:
        shipped = _packaged_path(w.packaged)
        if shipped is not None:
            path, present = shipped, True
    if not present:
        what = "pipeline folder (with model_index.json)" if w.directory else "file"
        raise MissingWeightError(
            f"missing weight {w.key}: {what} {Path(w.path).name} not found; get it from {w.where_to_get()} "
            f"and put it at {path.resolve()}"
        )
    if verify:
        entry = generated_entry(key, weights_dir) if path == weights_root(weights_dir) / w.path else None
        if entry is not None:
            _check_generated(w, path, entry)
            _announce_ledger(key, weights_dir)
        else:
            _check(w, path)
    return path


def resolve_or_standin(
    key: str, allow_standin: bool, weights_dir: str | os.PathLike | None = None
) -> tuple[Path | None, str]:
    """``(path, kind)`` if the file is there (kind ``official``, or ``generated`` where the ledger lists it:
    ``weight_kind``); ``(None, "standin")`` if missing and allowed.

    A file that is present but fails its checksum always raises: a corrupt download must not be
    quietly replaced by a stand-in.
    """
    try:
        path = resolve_weight(key, weights_dir)
        return path, weight_kind(key, weights_dir)
    except MissingWeightError:
        if allow_standin:
            return None, "standin"
        raise
