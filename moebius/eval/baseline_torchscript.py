"""Feed-forward baselines in their published TorchScript format: LaMa, MI-GAN, CoModGAN.

Formats and call signatures (read from the projects' own code):
- **LaMa** ``big-lama.pt``: LaMa's ``bin/to_jit.py`` traces ``JITWrapper(image, mask) ->
  batch["inpainted"]`` with image (1,3,H,W) float in [0,1], mask (1,1,H,W) float in {0,1} (1 = hole),
  H and W multiples of 8; the output is already ``mask·predicted + (1−mask)·image`` in [0,1]. The
  widely used copy is IOPaint's release (``iopaint/model/lama.py``: LAMA_MODEL_URL, LAMA_MODEL_MD5;
  its ``pad_mod = 8``). Inference here follows LaMa's ``bin/predict.py``: pad bottom/right to a
  multiple of 8 (numpy "symmetric"), run, crop, clip, and quantise to uint8 by truncation.
- **MI-GAN / CoModGAN**: MI-GAN's ``scripts/export_inference_model.py`` traces the generator on
  ``torch.ones(1, 4, R, R)`` into ``*_traced.pt``; input ``cat([known − 0.5, image·known])`` with image in
  [-1,1] and ``known`` = 1 outside the hole, output (1,3,R,R) in about [-1,1]; R is fixed (the traced
  upsampling filters and noise constants are R-sized). IOPaint ships MI-GAN 512 Places2 so
  (``iopaint/model/mi_gan.py``: MIGAN_MODEL_URL, MIGAN_MODEL_MD5); the other MI-GAN and the CoModGAN
  checkpoints are published as state dicts only, and ``export_gan`` traces them with MI-GAN's own
  classes. CoModGAN draws its latent z and noise inputs from the global RNG inside the trace, so each
  image is run under its own seed. Compositing follows ``scripts/evaluate_fid_lpips.py``:
  ``known·image + (1−known)·output`` in float at the model's size.

Loading never unpickles arbitrary objects: ``torch.jit.load`` reads a TorchScript archive (code in
TorchScript's own IR, compiled by TorchScript; tensors restored by its restricted unpickler that only
builds TorchScript types), unlike ``torch.load``, which would run any pickled Python callable. The
exporter reads state dicts with ``torch.load(weights_only=True)`` (tensors only).

Smoke scale writes stand-ins in the same format (``torch.jit.script`` of tiny modules with the same
call signature and the same size rules, ``torch.jit.save``) into a temporary folder of the sampling
job, from a fixed seed, and loads them through the same ``load_torchscript``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import sys
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from moebius.atomic import atomic_path
from moebius.config import Config
from moebius.errors import EvalError, WeightChecksumError, WeightError
from moebius.eval.baselines import BASELINES, BaselineSpec, Checkpoint, Loaded, resolve

# md5 digests published with the files (IOPaint's download checks), by moebius.weights key. No
# sha256 is published for any of these files; the sha256 of each file used is recorded in meta.json.
PUBLISHED_MD5 = {
    "lama_big_lama": "e3aa4aaa15225a33ec84f9f4bc47e500",  # IOPaint iopaint/model/lama.py LAMA_MODEL_MD5
    "migan_512_places2": "76eb3b1a71c400ee3290524f7a11b89c",  # IOPaint iopaint/model/mi_gan.py MIGAN_MODEL_MD5
}
LAMA_PAD = 8  # LaMa configs/prediction/default.yaml: dataset.pad_out_to_modulo
COMODGAN_NUM_WS = {256: 14, 512: 16}  # MI-GAN scripts/demo.py: CoModGANMapping(num_ws=...)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_torchscript(path: Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """A TorchScript archive as a module in eval mode; anything else is a one-line ``EvalError``."""
    path = Path(path)
    # A TorchScript archive is a zip (code/, constants.pkl, data/); a legacy pickle is refused here
    # before any reader sees it.
    if not zipfile.is_zipfile(path):
        raise EvalError(f"{path}: not a TorchScript archive (expected the zip torch.jit.save writes)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 flags torch.jit as deprecated
        try:
            module = torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise EvalError(f"{path}: not a readable TorchScript archive ({reason})") from exc
    return module.eval()


def _check_md5(key: str, path: Path, weights_dir: str | None = None) -> str | None:
    from moebius.weights import generated_entry

    known = PUBLISHED_MD5.get(key)
    if known is None or generated_entry(key, weights_dir) is not None:
        return None  # a generated (rehearsal) file: resolve_weight checked it against its ledger instead
    digest = file_digest(path, "md5")
    if digest != known:
        raise WeightChecksumError(f"{path}: md5 {digest} does not match the published {known} of {key}; "
                                  f"download it again")
    return digest


# ---------------------------------------------------------------------------------------------
# Stand-ins (smoke scale): same format, same signature, same size rules
# ---------------------------------------------------------------------------------------------


class StandinLama(nn.Module):
    """``forward(image [0,1], mask {0,1}) -> mask·pred + (1−mask)·image``; sides must be multiples of 8."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(4, 16, 3, padding=1)
        self.conv_ctx = nn.Conv2d(16, 16, 1)
        self.conv_out = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] % 8 != 0 or image.shape[-2] % 8 != 0:
            raise RuntimeError("big-lama stand-in: height and width must be multiples of 8")
        f = F.relu(self.conv_in(torch.cat([image * (1 - mask), mask], dim=1)))  # (B,16,H,W)
        ctx = F.interpolate(F.avg_pool2d(f, 8), scale_factor=8.0, mode="nearest")  # 8x8-cell context, like LaMa's /8
        pred = torch.sigmoid(self.conv_out(f + self.conv_ctx(ctx)))  # (B,3,H,W) in (0,1)
        return mask * pred + (1 - mask) * image


class StandinGan(nn.Module):
    """``forward(cat([known − 0.5, image·known])) -> image``, only at its fixed ``size``; optional noise."""

    def __init__(self, size: int, noise: float) -> None:
        super().__init__()
        self.size = size
        self.noise = noise  # > 0: stochastic like CoModGAN (global RNG, seeded per image by the runner)
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            raise RuntimeError("fixed-size generator stand-in: input side differs from its resolution")
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        if self.noise > 0:
            y = y + self.noise * torch.randn_like(y)
        return torch.tanh(y)


def write_standin(name: str, key: str, size: int | None, folder: Path) -> Path:
    """Write the stand-in of weight ``key`` (method ``name``) as a TorchScript archive; return its path."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(key.encode()))  # fixed per file: the same stand-in in every job
        if name == "lama":
            module: nn.Module = StandinLama()
        else:
            if size is None:
                raise EvalError(f"{name}: a fixed-size generator needs its size")
            module = StandinGan(size, noise=0.05 if name == "comodgan" else 0.0)
    path = Path(folder) / f"{key}.standin.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch >= 2.9 flags torch.jit as deprecated
        torch.jit.save(torch.jit.script(module.eval()), str(path))
    return path


# ---------------------------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------------------------


def pad_symmetric(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (B,C,H,W) at the bottom and right to multiples of ``multiple``, mirroring with the edge
    repeated (numpy's "symmetric", as LaMa's ``pad_img_to_modulo``)."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph > h or pw > w:
        raise EvalError(f"image {h}x{w} is too small to pad to a multiple of {multiple}")
    if ph:
        x = torch.cat([x, x.flip(-2)[..., :ph, :]], dim=-2)
    if pw:
        x = torch.cat([x, x.flip(-1)[..., :pw]], dim=-1)
    return x


def _lama_runner(model, device: torch.device):
    def run(images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        outs = []
        for img, m in zip(images, masks):  # one image at a time, as bin/predict.py (batch of 1)
            x = ((img[None].float() + 1.0) / 2.0).clamp(0, 1).to(device)  # (1,3,H,W) in [0,1]
            hole = (m[None] > 0.5).float().to(device)  # (1,1,H,W), 1 = hole (predict.py: mask > 0)
            h, w = x.shape[-2:]
            y = model(pad_symmetric(x, LAMA_PAD), pad_symmetric(hole, LAMA_PAD))[..., :h, :w]
            y = torch.floor(y.float().clamp(0, 1) * 255.0) / 255.0  # np.clip(x*255, 0, 255).astype(uint8)
            outs.append(y.cpu() * 2.0 - 1.0)
        return torch.cat(outs).to(images.device)

    return run


def _gan_runner(model, size: int, device: torch.device, name: str):
    def run(images: torch.Tensor, masks: torch.Tensor, seeds: list[int], guidance: float | None) -> torch.Tensor:
        if tuple(images.shape[-2:]) != (size, size):
            raise EvalError(f"{name}: this checkpoint runs at {size}x{size} px only, got "
                            f"{images.shape[-2]}x{images.shape[-1]} (resize to its native size first)")
        outs = []
        for img, m, seed in zip(images, masks, seeds):
            known = (m[None] <= 0.5).float()  # (1,1,R,R), 1 = known (MI-GAN's convention)
            x = img[None].float()
            inp = torch.cat([known - 0.5, x * known], dim=1).to(device)  # (1,4,R,R)
            forked = [device.index or 0] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=forked):
                torch.manual_seed(int(seed))  # CoModGAN's z and noise: from this image's seed only
                y = model(inp).float().clamp(-1, 1).to(x.device)  # (1,3,R,R)
            outs.append(known * x + (1 - known) * y)  # evaluate_fid_lpips.py: masks·imgs + (1−masks)·output
        return torch.cat(outs).to(images.device)

    return run


def load(cfg: Config, spec: BaselineSpec, checkpoint: Checkpoint, size: int | None) -> Loaded:
    """The runner of ``lama`` / ``migan`` / ``comodgan``: the published (or stand-in) TorchScript file."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    path, kind = resolve(cfg, spec.name, checkpoint.key)
    if spec.name != "lama":
        size = size or checkpoint.size  # a fixed-size network: its native size unless the scale shrinks it
    info: dict[str, Any] = {"kind": kind, "key": checkpoint.key, "format": "TorchScript"}
    with contextlib.ExitStack() as stack:
        if path is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="moebius-standin-"))
            file = write_standin(spec.name, checkpoint.key, size, Path(folder))
            info["file"] = None
            info["standin"] = f"torch.jit.script of {'StandinLama' if spec.name == 'lama' else 'StandinGan'}" \
                              f", seed crc32({checkpoint.key!r})"
        else:
            file = Path(path)
            info["file"] = str(file)
            try:
                info["md5_published"] = _check_md5(checkpoint.key, file, cfg.weights.dir)
            except WeightChecksumError as exc:
                raise EvalError(f"{spec.name}: {exc}") from exc
        info["sha256"] = file_digest(file, "sha256")  # recorded on first use: no sha256 is published
        model = load_torchscript(file, device)  # read fully into memory: the temporary folder can go
    if spec.name == "lama":
        return Loaded(_lama_runner(model, device), info)
    return Loaded(_gan_runner(model, int(size), device, spec.name), {**info, "size": size})


# ---------------------------------------------------------------------------------------------
# Export: a published state dict → the TorchScript file the registry expects
# ---------------------------------------------------------------------------------------------


def gan_checkpoint(key: str) -> tuple[BaselineSpec, Checkpoint]:
    """The (method, checkpoint) of a MI-GAN / CoModGAN weight key."""
    for spec in BASELINES.values():
        if spec.name in ("migan", "comodgan"):
            for ckpt in spec.checkpoints:
                if ckpt.key == key:
                    return spec, ckpt
    known = sorted(c.key for n in ("migan", "comodgan") for c in BASELINES[n].checkpoints)
    raise WeightError(f"{key!r} is not a MI-GAN / CoModGAN checkpoint; known: {', '.join(known)}")


@contextlib.contextmanager
def _repo_on_path(repo: Path):
    """Import MI-GAN's packages (lib, torch_utils, dnnlib) from ``repo``, then forget them again."""
    before = set(sys.modules)
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        sys.path.remove(str(repo))
        for mod in set(sys.modules) - before:
            if mod.split(".")[0] in ("lib", "torch_utils", "dnnlib"):
                del sys.modules[mod]


def _migan_generator(name: str, size: int, repo: Path) -> nn.Module:
    """MI-GAN's own generator class for ``name`` at ``size``, as its scripts/demo.py builds it."""
    if not (repo / "lib" / "model_zoo").is_dir():
        raise WeightError(f"{repo} is not a clone of github.com/Picsart-AI-Research/MI-GAN (no lib/model_zoo)")
    with _repo_on_path(repo):
        try:
            if name == "migan":
                return importlib.import_module("lib.model_zoo.migan_inference").Generator(resolution=size)
            zoo = importlib.import_module("lib.model_zoo.comodgan")
            return zoo.Generator(zoo.Mapping(num_ws=COMODGAN_NUM_WS[size]), zoo.Encoder(resolution=size),
                                 zoo.Synthesis(resolution=size))
        except ImportError as exc:  # the user's clone of MI-GAN (third-party code), not this package
            raise WeightError(f"cannot import MI-GAN's model classes from {repo}: {exc}") from exc


def export_gan(key: str, migan_repo: Path, state_dict: Path, out: Path | None = None,
               weights_dir: str | None = None, device: str | None = None) -> Path:
    """Trace a published MI-GAN / CoModGAN state dict into the TorchScript file the registry expects.

    What MI-GAN's ``scripts/export_inference_model.py`` does for its own models: build the generator
    with the repository's classes, load the state dict (``strict``), ``torch.jit.trace`` it on
    ``torch.ones(1, 4, R, R)``. Trace on the device that will run it (CoModGAN's traced noise
    inputs keep the device they were traced on). Returns the path written (atomically).
    """
    from moebius.weights import WEIGHTS, weights_root

    spec, ckpt = gan_checkpoint(key)
    size = int(ckpt.size)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = _migan_generator(spec.name, size, Path(migan_repo))
    try:
        # A state dict holds tensors only: weights_only=True refuses any other pickled object.
        state = torch.load(Path(state_dict), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # pickle.UnpicklingError, RuntimeError (not a torch file), ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightError(f"{state_dict}: not a loadable state dict ({reason})") from exc
    if not isinstance(state, dict):
        raise WeightError(f"{state_dict}: expected a state dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightError(f"{state_dict} does not fit {spec.display} {size}: "
                          f"{(str(exc).splitlines() or [''])[0]}") from exc
    model = model.eval().to(device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings of the constant-folded Python branches
        traced = torch.jit.trace(model, torch.ones(1, 4, size, size, device=device), check_trace=False)
    target = Path(out) if out is not None else weights_root(weights_dir) / WEIGHTS[key].path
    with atomic_path(target) as tmp:
        traced.save(str(tmp))
    return target
