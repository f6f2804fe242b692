"""Smoke-scale datasets made locally from photographs shipped inside scikit-image.

Stand-ins for the paper's data (Places365, CelebA-HQ / FFHQ, LVIS, DeepFakeFace) that need no
download: every image is a seeded crop of a real photograph from ``skimage.data`` (only those that
load offline; several skimage images need ``pooch`` and are avoided), resized to ``size`` px, with
a random horizontal flip and colour jitter.

* ``smoke_natural``: astronaut, coffee, chelsea, rocket, brick, grass.
* ``smoke_ood_natural``: hubble_deep_field, stereo_motorcycle (left view), camera, coins, clock,
  gravel: other photographs, so no source pixel is shared with ``smoke_natural``.
* ``smoke_portrait``: LFW faces 0-69 of ``skimage.data.lfw_subset()`` (25 x 25 greyscale),
  upscaled bicubically and colourised with a random skin tone.
* ``smoke_ood_portrait``: LFW faces 70-99: identities never seen by ``smoke_portrait``.

Within a dataset, train and test never share source pixels either: a natural photo's left 70 %
feeds ``train`` and its right 30 % feeds ``test``; portrait faces are split by identity (the first
~80 % of a dataset's faces for ``train``, the rest for ``test``), as real benchmarks split people.
Greyscale photos get a random per-channel tint so every image is RGB with colour.

Every image has its own generator seeded from (seed, dataset, split, index), so image *i* does not
depend on how many images are made, and the PNG bytes are identical across runs.
Output: ``<out_root>/<name>/<split>/<name>-<split>-<index:05d>.png`` + ``manifest.csv``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from moebius.data.manifest import ManifestRow, row_for_png, write_manifest
from moebius.data.preprocess import resize_bicubic, save_png
from moebius.errors import DataError
from moebius.registry import Registry
from moebius.seeding import derive

SPLITS = ("train", "test")
TRAIN_FRACTION = 0.7  # natural: share of each photo's width that feeds `train`
FACE_TRAIN_FRACTION = 0.8  # portrait: share of a dataset's identities that feed `train`


@dataclass(frozen=True)
class SmokeSpec:
    """Where a smoke dataset's pixels come from."""

    domain: str  # natural | portrait
    photos: tuple[str, ...] = ()  # skimage.data function names (natural)
    faces: tuple[int, int] = (0, 0)  # [start, stop) indices into lfw_subset (portrait)


SMOKE_DATASETS: Registry[SmokeSpec] = Registry("smoke dataset", {
    "smoke_natural": SmokeSpec("natural", photos=("astronaut", "coffee", "chelsea", "rocket", "brick", "grass")),
    "smoke_portrait": SmokeSpec("portrait", faces=(0, 70)),
    "smoke_ood_natural": SmokeSpec(
        "natural", photos=("hubble_deep_field", "stereo_motorcycle", "camera", "coins", "clock", "gravel")
    ),
    "smoke_ood_portrait": SmokeSpec("portrait", faces=(70, 100)),
})


# ---------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    """A skimage sample photo as uint8 RGB (greyscale photos are repeated to three channels)."""
    import skimage.data  # local import: only smoke data needs scikit-image

    img = getattr(skimage.data, name)()
    if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
        img = img[0]
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise DataError(f"skimage.data.{name} is {img.dtype}, expected uint8")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


@functools.lru_cache(maxsize=1)
def _faces() -> np.ndarray:
    """The 100 LFW faces of ``skimage.data.lfw_subset`` (the next 100 entries are non-faces)."""
    import skimage.data

    faces = np.asarray(skimage.data.lfw_subset())[:100]
    if faces.dtype != np.uint8:  # older skimage returned floats in [0, 1]
        faces = np.clip(np.round(faces * 255.0), 0, 255).astype(np.uint8)
    return faces


# ---------------------------------------------------------------------------------------------
# Augmentation
# ---------------------------------------------------------------------------------------------


def _jitter(img: np.ndarray, rng: np.random.Generator, tint: bool) -> np.ndarray:
    """Brightness / contrast / saturation jitter (+ a random tint for greyscale sources)."""
    x = img.astype(np.float64)
    if tint:
        x = x * rng.uniform(0.7, 1.3, size=3)
    x = x * rng.uniform(0.85, 1.15)  # brightness
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.8, 1.2) + mean  # contrast
    grey = x.mean(axis=2, keepdims=True)
    x = (x - grey) * rng.uniform(0.7, 1.3) + grey  # saturation
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _natural_image(spec: SmokeSpec, split: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    name = spec.photos[rng.integers(len(spec.photos))]
    photo = _photo(name)
    h, w = photo.shape[:2]
    cut = int(round(w * TRAIN_FRACTION))
    x0, x1 = (0, cut) if split == "train" else (cut, w)  # disjoint columns for train / test
    region_w = x1 - x0
    side = max(8, int(min(h, region_w) * rng.uniform(0.35, 0.95)))
    top = int(rng.integers(0, h - side + 1))
    left = x0 + int(rng.integers(0, region_w - side + 1))
    crop = photo[top : top + side, left : left + side]
    img = resize_bicubic(crop, size, size)
    flip = bool(rng.random() < 0.5)
    if flip:
        img = img[:, ::-1]
    grey_source = bool(np.array_equal(photo[..., 0], photo[..., 1]) and np.array_equal(photo[..., 1], photo[..., 2]))
    img = _jitter(img, rng, tint=grey_source)
    source = f"skimage.data.{name}[{top}:{top + side},{left}:{left + side}]" + ("+hflip" if flip else "")
    return img, source


def _face_range(spec: SmokeSpec, split: str) -> range:
    start, stop = spec.faces
    cut = start + int(round((stop - start) * FACE_TRAIN_FRACTION))
    return range(start, cut) if split == "train" else range(cut, stop)


def _portrait_image(spec: SmokeSpec, split: str, size: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    faces = _face_range(spec, split)
    index = faces[int(rng.integers(len(faces)))]
    face = _faces()[index]
    side = int(rng.integers(21, 26))  # a slightly different framing of a 25 px face each time
    top, left = int(rng.integers(0, 26 - side)), int(rng.integers(0, 26 - side))
    crop = np.repeat(face[top : top + side, left : left + side, None], 3, axis=2)
    img = resize_bicubic(crop, size, size)
    flip = bool(rng.random() < 0.5)
    if flip:
        img = img[:, ::-1]
    skin = np.array([rng.uniform(0.95, 1.1), rng.uniform(0.72, 0.9), rng.uniform(0.55, 0.8)])
    img = np.clip(np.round(img.astype(np.float64) * skin), 0, 255).astype(np.uint8)
    img = _jitter(img, rng, tint=False)
    source = f"skimage.data.lfw_subset[{index}][{top}:{top + side},{left}:{left + side}]" + ("+hflip" if flip else "")
    return img, source


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------


def get_smoke_spec(name: str) -> SmokeSpec:
    """The smoke dataset ``name``; ``UnknownNameError`` with a "did you mean" hint otherwise."""
    return SMOKE_DATASETS.get(name)


def smoke_image(name: str, split: str, index: int, size: int = 64, seed: int = 0) -> tuple[np.ndarray, str]:
    """Image ``index`` of ``name``/``split`` and a description of its source crop."""
    spec = get_smoke_spec(name)
    if split not in SPLITS:
        raise DataError(f"smoke split must be one of {', '.join(SPLITS)}, got {split!r}")
    rng = np.random.default_rng([seed, derive("smoke", name), SPLITS.index(split), index])
    make = _natural_image if spec.domain == "natural" else _portrait_image
    img, source = make(spec, split, size, rng)
    return np.ascontiguousarray(img), source


def make_smoke_dataset(
    name: str, out_root: Path, n_train: int, n_test: int, size: int = 64, seed: int = 0
) -> Path:
    """Write ``<out_root>/<name>/{train,test}/<id>.png`` + ``manifest.csv``; return ``<out_root>/<name>``."""
    get_smoke_spec(name)
    for label, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, int) or value < 0:
            raise DataError(f"{label} must be a non-negative integer, got {value!r}")
    if not isinstance(size, int) or size < 8:
        raise DataError(f"smoke image size must be an integer >= 8, got {size!r}")
    root = Path(out_root) / name
    for split, count in (("train", n_train), ("test", n_test)):
        split_dir = root / split
        split_dir.mkdir(parents=True, exist_ok=True)
        rows: list[ManifestRow] = []
        for index in range(count):
            image_id = f"{name}-{split}-{index:05d}"
            img, source = smoke_image(name, split, index, size, seed)
            png = save_png(split_dir / f"{image_id}.png", img)
            rows.append(row_for_png(image_id, source, png, size, size))
        keep = {f"{r.id}.png" for r in rows}
        for stale in split_dir.glob(f"{name}-{split}-*.png"):  # left by an earlier, larger run
            if stale.name not in keep:
                stale.unlink()
        write_manifest(split_dir, rows)
    return root
