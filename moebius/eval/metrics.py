"""FID and LPIPS of composited samples against their ground truth (paper Tab. 1, 3-7).

Conventions (protocols/MASKS.md, "Evaluation conventions"):

* FID — torch-fidelity's InceptionV3 (2015-12-05 TF weights, the "2048" pool features) on uint8
  images, against the ground-truth images paired by file stem; the number of images is recorded,
  because FID depends strongly on it (MAT #63).
* LPIPS — the ``lpips`` package, net and input range configurable: alex on [-1, 1] (MAT, the default)
  or [0, 1] with ``normalize=True`` (MI-GAN); mean over images.
* Per hole-ratio bin (LaMa): the same scores on the images whose mask hole ratio (mask manifest) falls
  in each 10% bin; only bins with >= 2 images are reported. A bin's FID needs ``eval.min_fid_images``
  images (2048 at full scale, the feature dimension: below it the covariance is singular and the
  small-sample bias dominates); a smaller bin gets a ``fid_bin`` record without a value, marked
  ``withheld: "too few"``, and keeps its LPIPS (a per-image mean, fine at any count).
* Confidence intervals, fixed seed, over image ids: for LPIPS (a mean) the percentile bootstrap; for FID
  centred half-sampling (``fid_interval``), because FID is biased upward by duplicated images, so a
  with-replacement bootstrap interval can exclude the point estimate. FID is re-computed from the
  cached Inception features of each resampled id set, never from new forward passes.

Pairing is by file stem; a name present on one side only is an ``EvalError`` that names the first
mismatched ids (the silent failure of MAT #86 / #131), and paired files must have the same size.
The ground-truth folder is verified against its manifest's checksums before it is scored
(``moebius.data.manifest.verify_manifest``), and any unreadable image or manifest is one ``EvalError``.

Weights never download: the official files come from ``moebius.weights`` (or a file of the right
name in ``$TORCH_HOME/hub/checkpoints``); without them, and only where ``allow_standin`` is set,
deterministic stand-ins are used and every record says ``weights_kind = "standin"``:
* Inception: torch-fidelity's own module with a fixed-seed Kaiming-normal init (PyTorch's default
  init gives features ~1e-8 and FID ~ 0, ENVIRONMENT.md).
* LPIPS: a fixed-seed random torchvision backbone (``pnet_rand=True``) with the shipped linear heads.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from moebius.atomic import atomic_path
from moebius.config import Config
from moebius.data.benchmarks import benchmark_settings
from moebius.data.manifest import data_version, read_table, verify_manifest
from moebius.device import resolve_device
from moebius.errors import EvalError
from moebius.eval.score_size import scoring_truth
from moebius.progress import progress
from moebius.records import make_record

FID_FEATURE = "2048"  # torch-fidelity's FID layer of InceptionV3
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
LPIPS_BACKBONE_KEYS = {"alex": "lpips_alexnet_backbone", "vgg": "lpips_vgg16_backbone"}
LPIPS_BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
LPIPS_HEAD_KEYS = {"alex": "lpips_alex_head", "vgg": "lpips_vgg_head"}
CI_LEVEL = 0.95
MIN_BIN_IMAGES = 2
TOO_FEW = "too few"  # what a per-bin FID below eval.min_fid_images shows instead of a number
# meta.json "sampler" keys → the switch names (moebius.switches) they record: a record says which form
# made its samples, even where that differs from the config's default (other start, PixelHacker's paste).
_SAMPLER_SWITCHES = {"start": "sampler_start", "paste_back": "paste_back"}
# meta.json "sampler" keys of the opt-in speed paths (sample.precision, sample.compile) → record settings:
# bf16 / fp16 change the samples, so a record says which precision made them (absent: older folders, fp32).
_SAMPLER_SPEED = {"precision": "sample_precision", "compile": "sample_compile"}


# ---------------------------------------------------------------------------------------------
# Pairing and loading
# ---------------------------------------------------------------------------------------------


def _png_ids(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise EvalError(f"image folder {directory} does not exist")
    return {p.stem: p for p in sorted(directory.glob("*.png"))}


def _first(ids: set[str], k: int = 5) -> str:
    shown = sorted(ids)[:k]
    return ", ".join(shown) + (f" (+{len(ids) - k} more)" if len(ids) > k else "")


def pair_by_stem(results_dir: str | Path, truth_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """``[(id, result png, ground-truth png)]`` sorted by id; any unpaired name is an EvalError."""
    results, truth = _png_ids(Path(results_dir)), _png_ids(Path(truth_dir))
    only_results, only_truth = set(results) - set(truth), set(truth) - set(results)
    if only_results or only_truth:
        parts = []
        if only_results:
            parts.append(f"{len(only_results)} only in results {results_dir} ({_first(only_results)})")
        if only_truth:
            parts.append(f"{len(only_truth)} only in ground truth {truth_dir} ({_first(only_truth)})")
        raise EvalError("results and ground truth do not pair by file name: " + "; ".join(parts))
    if not results:
        raise EvalError(f"no PNG images in {results_dir}")
    return [(i, results[i], truth[i]) for i in sorted(results)]


_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)  # what PIL raises on bad bytes


def _reason(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def load_uint8(path: str | Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except _UNREADABLE as exc:
        raise EvalError(f"cannot read image {path}: {_reason(exc)}") from exc


def _load_batch(paths: Sequence[Path]) -> torch.Tensor:
    arrays = [load_uint8(p) for p in paths]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise EvalError(f"images of one set must share one size, got {sorted(shapes)} (e.g. {paths[0]})")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W) uint8


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except _UNREADABLE as exc:
        raise EvalError(f"cannot read image {path}: {_reason(exc)}") from exc


def _check_same_size(pairs: Sequence[tuple[Path, Path]]) -> None:
    for a, b in pairs:
        size_a, size_b = _image_size(a), _image_size(b)
        if size_a != size_b:
            raise EvalError(f"{Path(a).stem}: result {a} is {size_a[0]}x{size_a[1]} but ground truth {b} "
                            f"is {size_b[0]}x{size_b[1]}")


# ---------------------------------------------------------------------------------------------
# Weights: official file, or a labelled deterministic stand-in
# ---------------------------------------------------------------------------------------------


def _official_path(key: str | None, file_name: str | None, weights_dir: str | Path | None) -> Path | None:
    """The official file from the weights registry, else from torch.hub's cache; None if absent."""
    if key is not None:
        from moebius.weights import MissingWeightError, resolve_weight

        try:
            return resolve_weight(key, weights_dir)
        except MissingWeightError:
            pass
    if file_name is not None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / file_name
        if cached.is_file():
            return cached
    return None


def _file_kind(key: str | None, weights_dir: str | Path | None) -> str:
    """The weights kind of a file ``_official_path`` found: ``generated`` where the weights directory's
    ledger lists it (``moebius.weights.weight_kind``), else ``official`` (torch.hub's cache included)."""
    from moebius.weights import weight_kind

    return "official" if key is None else weight_kind(key, weights_dir)


def _missing(key: str, file_name: str, weights_dir: str | Path | None) -> Exception:
    from moebius.weights import MissingWeightError, resolve_weight

    try:
        resolve_weight(key, weights_dir)  # raises the registry's one-line message
    except MissingWeightError as exc:
        return exc
    return EvalError(f"missing weight {key}")  # pragma: no cover - resolve_weight found it after all


_STANDIN_MARKER = "moebius_standin_seed"
STANDIN_INPUT_SIZE = 75  # the smallest input InceptionV3's stride stack takes (1 x 1 after Mixed_7c)


def _build_inception_class() -> type[nn.Module]:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class InceptionV3Features(FeatureExtractorInceptionV3):
        """torch-fidelity's InceptionV3; a state dict ``{marker: seed}`` selects the seeded stand-in.

        torch-fidelity's constructor always loads a state dict (downloading when given no path). We
        hand it an in-memory file instead: the real weights (read by us with ``weights_only=True``),
        or a one-key marker that this override turns into a fixed-seed Kaiming-normal init.

        The stand-in resizes its input to ``STANDIN_INPUT_SIZE`` instead of 299 px (the real weights
        always see 299, as torch-fidelity's). Its features are random projections at any size, so
        nothing measurable is lost; the cost falls 16x, and it was most of a smoke scoring job's time.
        """

        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
            if isinstance(state_dict, dict) and set(state_dict) == {_STANDIN_MARKER}:
                _kaiming_init(self, int(state_dict[_STANDIN_MARKER]))
                self.INPUT_IMAGE_SIZE = STANDIN_INPUT_SIZE  # the instance's; the class keeps 299
                return nn.modules.module._IncompatibleKeys([], [])
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    return InceptionV3Features


def _kaiming_init(module: nn.Module, seed: int) -> None:
    """Deterministic init: Kaiming-normal conv/linear weights in module order, zero biases, BN identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()  # running mean 0, var 1, weight 1, bias 0: identity in eval mode


_INCEPTION_CLASS: type[nn.Module] | None = None
TORCH_FIDELITY_NAME = "inception-v3-compat-moebius"

# Stand-in networks already built in this process, by everything that determines them. A scoring
# suite asks for the same Inception and LPIPS once per benchmark, and each build was ~0.25 s of random
# init (most of it AlexNet's classifier, which lpips then drops). Only stand-ins: a network with
# weights from a file is built afresh each time, so a file replaced in between is always read.
_STANDIN_NETS: dict[tuple, nn.Module] = {}


def inception_class() -> type[nn.Module]:
    """The extractor class, registered once with ``torch_fidelity.register_feature_extractor``."""
    global _INCEPTION_CLASS
    if _INCEPTION_CLASS is None:
        import torch_fidelity
        from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

        _INCEPTION_CLASS = _build_inception_class()
        if TORCH_FIDELITY_NAME not in FEATURE_EXTRACTORS_REGISTRY:
            torch_fidelity.register_feature_extractor(TORCH_FIDELITY_NAME, _INCEPTION_CLASS)
    return _INCEPTION_CLASS


def _state_dict_file(obj: Any) -> io.BytesIO:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def inception_weights_file(
    allow_standin: bool, weights_dir: str | Path | None = None, standin_seed: int = 0
) -> tuple[io.BytesIO, str]:
    """``(in-memory state-dict file for feature_extractor_weights_path, weights kind)``; never downloads."""
    path = _official_path("inception_fid", INCEPTION_FILE, weights_dir)
    if path is not None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return _state_dict_file(state), _file_kind("inception_fid", weights_dir)
    if not allow_standin:
        raise _missing("inception_fid", INCEPTION_FILE, weights_dir)
    return _state_dict_file({_STANDIN_MARKER: standin_seed}), "standin"


def build_inception(
    allow_standin: bool, weights_dir: str | Path | None = None, standin_seed: int = 0, device: str = "auto"
) -> tuple[nn.Module, str]:
    """torch-fidelity's InceptionV3 (features "2048") on ``device`` and its weights kind."""
    weights, kind = inception_weights_file(allow_standin, weights_dir, standin_seed)
    dev = resolve_device(device)
    memo = ("inception", standin_seed, STANDIN_INPUT_SIZE, str(dev))
    if kind == "standin" and memo in _STANDIN_NETS:
        return _STANDIN_NETS[memo], kind
    extractor = inception_class()(TORCH_FIDELITY_NAME, [FID_FEATURE], feature_extractor_weights_path=weights)
    extractor = extractor.to(dev).eval()
    if kind == "standin":
        _STANDIN_NETS[memo] = extractor
    return extractor, kind


@torch.no_grad()
def inception_features(paths: Sequence[Path], extractor: nn.Module, batch_size: int = 32) -> torch.Tensor:
    """(N, 2048) float64 pool features of the images at ``paths``, in order."""
    device = next(extractor.parameters()).device
    feats = []
    with progress(total=len(paths), desc="Inception features", unit="img") as bar:
        for start in range(0, len(paths), batch_size):
            batch = _load_batch(paths[start:start + batch_size]).to(device)
            (f,) = extractor(batch)
            feats.append(f.to("cpu", torch.float64))
            bar.update(len(batch))
    return torch.cat(feats)


# ---------------------------------------------------------------------------------------------
# FID from features
# ---------------------------------------------------------------------------------------------


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n x D each), exactly.

    FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), S = unbiased covariance, as TTUR and
    torch-fidelity define it.
    """
    # Speed only, the value is exact: torch-fidelity takes eigvals of the non-symmetric D x D product
    # S1 S2 (58 s for D = 2048 on two cores). With centred features A1, A2 the non-zero eigenvalues
    # of S1 S2 are the squared singular values of A1 A2^T / sqrt((n1-1)(n2-1)), so when a set is
    # smaller than D we take those singular values; otherwise tr sqrt(S1 S2) = sum sqrt(eig(
    # S1^1/2 S2 S1^1/2)) with symmetric eigen-decompositions. Both are exact; a test checks them
    # against torch-fidelity's own function.
    a, b = real.to(torch.float64), fake.to(torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise EvalError(f"FID needs two (n, D) feature sets with the same D, got {tuple(a.shape)} and {tuple(b.shape)}")
    n1, n2, dim = a.shape[0], b.shape[0], a.shape[1]
    if n1 < 2 or n2 < 2:
        raise EvalError(f"FID needs at least 2 images per set, got {n1} and {n2}")
    mu1, mu2 = a.mean(0), b.mean(0)
    a_c, b_c = a - mu1, b - mu2
    mean_term = float((mu1 - mu2).square().sum())
    trace_1 = float(a_c.square().sum()) / (n1 - 1)
    trace_2 = float(b_c.square().sum()) / (n2 - 1)
    if min(n1, n2) <= dim:
        cross = torch.linalg.svdvals(a_c @ b_c.T).sum() / math.sqrt((n1 - 1) * (n2 - 1))
    else:
        s1 = a_c.T @ a_c / (n1 - 1)
        s2 = b_c.T @ b_c / (n2 - 1)
        evals, evecs = torch.linalg.eigh(s1)
        s1_half = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T
        cross = torch.linalg.eigvalsh(s1_half @ s2 @ s1_half).clamp_min(0).sqrt().sum()
    return mean_term + trace_1 + trace_2 - 2 * float(cross)


@dataclass
class FidResult:
    """FID, the number of images per set, the Inception weights kind, and the cached features."""

    value: float
    n_images: int
    weights_kind: str
    real_features: torch.Tensor
    fake_features: torch.Tensor


def compute_fid(
    real_paths: Sequence[str | Path],
    fake_paths: Sequence[str | Path],
    *,
    allow_standin: bool = False,
    weights_dir: str | Path | None = None,
    batch_size: int = 32,
    standin_seed: int = 0,
    device: str = "auto",
    real_cache_dir: str | Path | None = None,
) -> FidResult:
    """FID between two image lists (uint8 files) with torch-fidelity's InceptionV3 "2048" features.

    With ``real_cache_dir``, the real set's features are kept there, keyed by the real files' bytes
    and the extractor: every model scored on a benchmark shares them (Inception is the cost on CPU).
    """
    if len(real_paths) < 2 or len(fake_paths) < 2:
        raise EvalError(f"FID needs at least 2 images per set, got {len(real_paths)} and {len(fake_paths)}")
    extractor, kind = build_inception(allow_standin, weights_dir, standin_seed, device)
    real = _cached_features([Path(p) for p in real_paths], extractor, batch_size, kind, standin_seed, real_cache_dir)
    fake = inception_features([Path(p) for p in fake_paths], extractor, batch_size)
    return FidResult(fid_from_features(real, fake), len(fake_paths), kind, real, fake)


def _cached_features(
    paths: list[Path], extractor: nn.Module, batch_size: int, kind: str, seed: int, cache_dir: str | Path | None
) -> torch.Tensor:
    if cache_dir is None:
        return inception_features(paths, extractor, batch_size)
    size = getattr(extractor, "INPUT_IMAGE_SIZE", "")  # the stand-in's features once came at 299 px
    digest = hashlib.sha256(f"{kind}:{seed if kind == 'standin' else ''}:{size}".encode())
    for path in paths:
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    cache = Path(cache_dir) / f"inception_{digest.hexdigest()[:16]}.npy"
    if cache.is_file():
        try:
            cached = np.load(cache, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            cached = None  # a damaged cache entry is recomputed and rewritten below
        if cached is not None and cached.ndim == 2 and cached.shape[0] == len(paths):
            return torch.from_numpy(cached)
    features = inception_features(paths, extractor, batch_size)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, features.numpy())
    return features


# ---------------------------------------------------------------------------------------------
# LPIPS
# ---------------------------------------------------------------------------------------------


def _load_backbone(model: nn.Module, path: Path) -> None:
    """Load a torchvision ``features.*`` state dict into lpips' sliced backbone (same module objects)."""
    by_index: dict[str, nn.Module] = {}
    for sl in model.net.children():
        for name, child in sl.named_children():
            by_index[name] = child
    grouped: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in torch.load(path, map_location="cpu", weights_only=True).items():
        parts = key.split(".", 2)
        if parts[0] == "features":
            grouped.setdefault(parts[1], {})[parts[2]] = value
    expected = {i for i, m in by_index.items() if any(True for _ in m.parameters())}
    if set(grouped) != expected:
        raise EvalError(f"{path}: backbone layers {sorted(grouped)} do not match lpips' {sorted(expected)}")
    for index, sub in grouped.items():
        by_index[index].load_state_dict(sub, strict=True)


def _check_heads(model: nn.Module, path: Path) -> None:
    """lpips reads the head file with ``strict=False``: a file without the ``lin<k>`` keys (another
    prefix, another net) would leave the heads at their random init without a word. Compare first."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    expected = {k for k in own if k.startswith("lin") and not k.startswith("lins.")}
    found = set(state) if isinstance(state, dict) else set()
    if found != expected or any(tuple(state[k].shape) != tuple(own[k].shape) for k in expected):
        raise EvalError(f"{path}: LPIPS heads {sorted(found)[:3]} do not match lpips' {sorted(expected)[:3]} "
                        f"({len(found)} vs {len(expected)} keys, or other shapes)")
    for k in expected:  # what lpips loaded must be what the file holds
        if not torch.equal(own[k], state[k].to(own[k].dtype)):
            raise EvalError(f"{path}: lpips did not load head {k} from it")


def build_lpips(
    net: str = "alex",
    allow_standin: bool = False,
    weights_dir: str | Path | None = None,
    standin_seed: int = 0,
    device: str = "auto",
) -> tuple[nn.Module, str]:
    """``lpips.LPIPS`` with the official backbone (never downloaded) or a seeded random one."""
    import lpips

    head = None  # None: lpips loads the heads shipped in its package
    if net in LPIPS_HEAD_KEYS:
        from moebius.weights import MissingWeightError, resolve_weight

        try:  # the same shipped file, checksum-verified by the registry
            head = str(resolve_weight(LPIPS_HEAD_KEYS[net], weights_dir))
        except MissingWeightError:
            head = None
    backbone = _official_path(LPIPS_BACKBONE_KEYS.get(net), LPIPS_BACKBONE_FILES.get(net), weights_dir)
    if backbone is None and not allow_standin:
        if net not in LPIPS_BACKBONE_KEYS:
            raise EvalError(f"no official weight registered for the lpips {net!r} backbone; use alex or vgg")
        raise _missing(LPIPS_BACKBONE_KEYS[net], LPIPS_BACKBONE_FILES[net], weights_dir)
    dev = resolve_device(device)
    memo = ("lpips", net, head, standin_seed, str(dev))
    if backbone is None and memo in _STANDIN_NETS:
        return _STANDIN_NETS[memo], "standin"
    # pnet_rand=True always: torchvision never downloads; the official backbone is loaded below.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(standin_seed)
        model = lpips.LPIPS(net=net, pnet_rand=True, model_path=head, verbose=False)
    if head is not None:
        _check_heads(model, Path(head))
    kind = "standin"
    if backbone is not None:
        _load_backbone(model, backbone)
        kinds = {_file_kind(LPIPS_BACKBONE_KEYS.get(net), weights_dir)}
        if head is not None:
            kinds.add(_file_kind(LPIPS_HEAD_KEYS[net], weights_dir))
        kind = "generated" if "generated" in kinds else "official"  # one generated file labels the whole net
    model = model.to(dev).eval()
    if kind == "standin":
        _STANDIN_NETS[memo] = model
    return model, kind


@dataclass
class LpipsResult:
    """Mean LPIPS, per-image scores (pair order) and the backbone's weights kind."""

    value: float
    per_image: np.ndarray
    weights_kind: str


@torch.no_grad()
def compute_lpips(
    pairs: Sequence[tuple[str | Path, str | Path]],
    net: str = "alex",
    lpips_range: str = "minus_one_one",
    *,
    allow_standin: bool = False,
    weights_dir: str | Path | None = None,
    batch_size: int = 32,
    standin_seed: int = 0,
    device: str = "auto",
) -> LpipsResult:
    """LPIPS of each (result, ground truth) pair; ``lpips_range`` "minus_one_one" (MAT) or "zero_one" (MI-GAN)."""
    if lpips_range not in ("minus_one_one", "zero_one"):
        raise EvalError(f"lpips_range must be 'minus_one_one' or 'zero_one', got {lpips_range!r}")
    if not pairs:
        raise EvalError("compute_lpips: no image pairs")
    pairs = [(Path(a), Path(b)) for a, b in pairs]
    _check_same_size(pairs)
    model, kind = build_lpips(net, allow_standin, weights_dir, standin_seed, device)
    dev = next(model.parameters()).device
    scores = []
    with progress(total=len(pairs), desc="LPIPS", unit="pair") as bar:
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            x = _load_batch([a for a, _ in chunk]).to(dev, torch.float32) / 255.0  # (B, 3, H, W) in [0, 1]
            y = _load_batch([b for _, b in chunk]).to(dev, torch.float32) / 255.0
            if lpips_range == "minus_one_one":
                d = model(x * 2 - 1, y * 2 - 1, normalize=False)
            else:
                d = model(x, y, normalize=True)
            scores.append(d.flatten().to("cpu", torch.float64))
            bar.update(len(chunk))
    per_image = torch.cat(scores).numpy()
    return LpipsResult(float(per_image.mean()), per_image, kind)


# ---------------------------------------------------------------------------------------------
# Bins and bootstrap
# ---------------------------------------------------------------------------------------------


def hole_bin_labels(ratios: Sequence[float], n_bins: int = 10) -> list[str]:
    """LaMa-style bin label per hole ratio: "0.4-0.5" means 0.4 <= r < 0.5 (the last bin includes 1)."""
    labels = []
    decimals = max(1, math.ceil(math.log10(n_bins)))
    for r in ratios:
        if not 0.0 <= r <= 1.0:
            raise EvalError(f"hole ratio {r} is outside [0, 1]")
        k = min(int(r * n_bins), n_bins - 1)
        labels.append(f"{k / n_bins:.{decimals}f}-{(k + 1) / n_bins:.{decimals}f}")
    return labels


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) image indices drawn with replacement from a fixed-seed generator."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _percentile_ci(values: np.ndarray) -> tuple[float, float]:
    alpha = (1 - CI_LEVEL) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def bootstrap_mean_ci(scores: np.ndarray, resamples: int, seed: int) -> tuple[float, float] | None:
    """Percentile CI of the mean of per-image scores; None when off or too few images."""
    if resamples <= 0 or len(scores) < 2:
        return None
    idx = bootstrap_indices(len(scores), resamples, seed)
    return _percentile_ci(np.asarray(scores)[idx].mean(axis=1))


def half_sample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n // 2) image indices, each row drawn *without* replacement (fixed seed)."""
    g = np.random.default_rng(seed)
    return np.stack([g.permutation(n)[: n // 2] for _ in range(resamples)]) if resamples > 0 else np.empty((0, n // 2), int)


def fid_interval(
    real: torch.Tensor, fake: torch.Tensor, resamples: int, seed: int, device: str = "cpu"
) -> tuple[float, float] | None:
    """95 % interval of FID by centred half-sampling (the same ids on both sides: the sets are paired).

    FID has an upward bias that falls like 1/n, and a with-replacement bootstrap makes it worse: each
    resample repeats ~37 % of the images, so every resampled FID sits above the point estimate and the
    percentile interval can exclude it. Half-samples (n/2 ids without replacement) have no duplicates,
    and their spread estimates the spread of the full-sample FID (the finite-population factor
    (1 − m/n)/m equals 1/n at m = n/2). Their own bias (larger: n/2 images) is removed by centring:
        FID_n + [q_2.5(FID_half) − mean(FID_half),  q_97.5(FID_half) − mean(FID_half)].
    Needs at least 4 images (two per half). Cost per resample is one FID on n/2 cached feature rows.
    """
    n = len(real)
    if resamples <= 0 or n < 4:
        return None
    dev = resolve_device(device)
    real, fake = real.to(dev), fake.to(dev)
    point = fid_from_features(real, fake)
    idx = torch.from_numpy(half_sample_indices(n, resamples, seed)).to(dev)
    values = np.array([fid_from_features(real[row], fake[row]) for row in idx])
    lo, hi = _percentile_ci(values)
    centre = float(values.mean())
    return max(0.0, point + lo - centre), point + hi - centre  # FID >= 0


# ---------------------------------------------------------------------------------------------
# One (model, benchmark): every record
# ---------------------------------------------------------------------------------------------


def _read_meta(samples_dir: Path) -> dict:
    path = samples_dir / "meta.json"
    if not path.is_file():
        raise EvalError(f"{path} is missing: samples must carry their weights_kind")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvalError(f"{path} is not valid JSON ({_reason(exc)})") from exc
    if not isinstance(meta, dict):
        raise EvalError(f"{path} is not a JSON object")
    return meta


def _hole_ratios(masks_dir: Path, ids: Sequence[str]) -> list[float]:
    path = masks_dir / "manifest.csv"
    df = read_table(path, EvalError, f"mask manifest {path} is missing", f"unreadable mask manifest {path}",
                    dtype={"id": str})
    if not {"id", "hole_ratio"} <= set(df.columns):
        raise EvalError(f"mask manifest {path} lacks the id / hole_ratio columns")
    values = pd.to_numeric(df["hole_ratio"], errors="coerce")
    bad = df["id"][values.isna() | (values < 0) | (values > 1)]
    if len(bad):
        raise EvalError(f"mask manifest {path}: hole_ratio of {bad.iloc[0]!r} is not a number in [0, 1]")
    ratios = dict(zip(df["id"], values.astype(float)))
    missing = [i for i in ids if i not in ratios]
    if missing:
        raise EvalError(f"{len(missing)} evaluated ids have no mask in {path} ({_first(set(missing))})")
    return [ratios[i] for i in ids]


def _mask_settings(masks_dir: Path) -> dict:
    from moebius.masks import MaskError, mask_set_settings

    try:
        return mask_set_settings(masks_dir)
    except MaskError as exc:
        raise EvalError(str(exc)) from exc


def sampler_settings(cfg: Config, meta: dict) -> dict[str, Any]:
    """The sampler form a sample folder's ``meta.json`` says it was made with, as record settings.

    Overrides the config-derived switch values (``moebius.switches``) only for samples of our own
    sampler; ``variant`` names a start other than ``sample.start``, so the tables keep those rows apart.
    """
    sampler = meta.get("sampler")
    if not isinstance(sampler, dict) or sampler.get("start") not in ("noise", "gt_noised"):
        return {}  # a baseline's own pipeline: the switches do not apply
    keys = {**_SAMPLER_SWITCHES, **_SAMPLER_SPEED}
    out: dict[str, Any] = {name: sampler[key] for key, name in keys.items() if key in sampler}
    if isinstance(meta.get("guidance"), (int, float)) and not isinstance(meta.get("guidance"), bool):
        out["guidance"] = float(meta["guidance"])
    if sampler["start"] != cfg.sample.start:
        out["variant"] = f"start={sampler['start']}"
    return out


def evaluate_samples(
    cfg: Config,
    samples_dir: str | Path,
    real_dir: str | Path,
    masks_dir: str | Path,
    *,
    model: str,
    benchmark: str,
    settings: dict | None = None,
    device: str = "auto",
) -> list[dict]:
    """FID, LPIPS and their per-hole-ratio-bin values for one sample folder, as result records.

    ``samples_dir``: composited ``<id>.png`` + ``meta.json``; ``real_dir``: ground-truth ``<id>.png``
    (+ ``manifest.csv``, whose hash is the data version); ``masks_dir``: the benchmark's mask set
    (``manifest.csv`` with ``hole_ratio``). Records: metric "fid" and "lpips" (value, 95% bootstrap CI,
    n_images), and "fid_bin" / "lpips_bin" with settings ``{"hole_bin": "0.4-0.5"}`` for bins of >= 2
    images ("fid_bin" withheld as "too few" below ``eval.min_fid_images``). Every record carries the
    sampler form of its samples (``meta.json``: ``sampler_start``, ``paste_back``, ``guidance``), and
    ``variant: "start=<s>"`` when our sampler started otherwise than ``sample.start`` (extra table rows).
    Nothing is written; the caller passes the list to ``records.write_records``.
    """
    samples_dir, real_dir, masks_dir = Path(samples_dir), Path(real_dir), Path(masks_dir)
    verify_manifest(real_dir)  # score against exactly the pixels the data version names
    meta = _read_meta(samples_dir)
    samples_kind = meta.get("weights_kind")
    if samples_kind is None:
        raise EvalError(f"{samples_dir / 'meta.json'} has no weights_kind")
    # Samples at the model's size (sample.score_size = model) score against the LANCZOS-resized truth.
    truth_dir, size_settings = scoring_truth(meta, real_dir, Path(cfg.paths.results) / "cache" / "score_truth")
    pairs = pair_by_stem(samples_dir, truth_dir)
    _check_same_size([(s, r) for _, s, r in pairs])  # before any network runs
    ids = [i for i, _, _ in pairs]
    ratios = _hole_ratios(masks_dir, ids)
    bins = hole_bin_labels(ratios, cfg.eval.hole_bins)

    allow, seed = cfg.weights.allow_standin, cfg.seed
    wdir = cfg.weights.dir  # moebius.weights.weights_root lets $MOEBIUS_WEIGHTS_DIR win
    fid = compute_fid([r for _, _, r in pairs], [s for _, s, _ in pairs], allow_standin=allow, weights_dir=wdir,
                      batch_size=cfg.eval.batch_size, standin_seed=seed, device=device,
                      real_cache_dir=Path(cfg.paths.results) / "cache" / "fid_real")
    lp = compute_lpips([(s, r) for _, s, r in pairs], cfg.eval.lpips_net, cfg.eval.lpips_range,
                       allow_standin=allow, weights_dir=wdir, batch_size=cfg.eval.batch_size,
                       standin_seed=seed, device=device)

    version = data_version(real_dir)
    base = {
        **sampler_settings(cfg, meta),
        **(settings or {}),
        "lpips_net": cfg.eval.lpips_net,
        "lpips_range": cfg.eval.lpips_range,
        "bootstrap": cfg.eval.bootstrap,
        "ci_level": CI_LEVEL,
        **size_settings,
        **benchmark_settings(real_dir),  # which split, selection and preprocessing the images are
        **_mask_settings(masks_dir),  # mask_source, mask_set (protocol + version, or official + sha256)
    }
    if meta.get("weights"):  # the model file behind the samples (e.g. MAT: key, sha256, widths)
        base["model_weights"] = meta["weights"]

    def kind(extractor_kind: str) -> str:
        # a stand-in or generated network anywhere labels the number: it is never an official-weights result
        for label in ("standin", "generated"):
            if label in (extractor_kind, samples_kind):
                return label
        return samples_kind

    def record(metric: str, value: float | None, n: int, ci: tuple[float, float] | None, extractor_kind: str,
               withheld: str | None = None, **extra: Any) -> dict:
        return make_record(cfg, model=model, benchmark=benchmark, metric=metric, value=value, n_images=n,
                           weights_kind=kind(extractor_kind), data_version=version,
                           settings={**base, **extra}, ci=ci, withheld=withheld)

    boot = cfg.eval.bootstrap
    records = [
        record("fid", fid.value, len(ids), fid_interval(fid.real_features, fid.fake_features, boot, seed, device),
               fid.weights_kind, fid_features=f"inception_v3_{fid.weights_kind}"),
        record("lpips", lp.value, len(ids), bootstrap_mean_ci(lp.per_image, boot, seed), lp.weights_kind),
    ]
    labels = np.asarray(bins)
    for label in sorted(set(bins)):
        sel = np.flatnonzero(labels == label)
        if len(sel) < MIN_BIN_IMAGES:
            continue
        if len(sel) < cfg.eval.min_fid_images:
            records.append(record("fid_bin", None, len(sel), None, fid.weights_kind, withheld=TOO_FEW,
                                  hole_bin=label, min_fid_images=cfg.eval.min_fid_images))
        else:
            rows = torch.from_numpy(sel)
            real_b, fake_b = fid.real_features[rows], fid.fake_features[rows]
            records.append(record("fid_bin", fid_from_features(real_b, fake_b), len(sel),
                                  fid_interval(real_b, fake_b, boot, seed, device), fid.weights_kind,
                                  hole_bin=label, min_fid_images=cfg.eval.min_fid_images))
        records.append(record("lpips_bin", float(lp.per_image[sel].mean()), len(sel),
                              bootstrap_mean_ci(lp.per_image[sel], boot, seed), lp.weights_kind, hole_bin=label))
    return records
