"""Image decoding and the geometric preprocessing each evaluation protocol applies (Sec. 4.1).

Three conventions appear in the benchmarks the paper reuses (MASKS.md):

* ``mat_crop`` (MAT; Places2 Test / Large / Small, CelebA-HQ 512, the OOD sets): reflect-pad an
  image that is smaller than S on either side up to S, then take the central S x S crop. No
  resampling, so pixels are the originals.
* ``migan_resize`` (MI-GAN / CoModGAN; Places2 256, FFHQ 256): bicubic resize to S x S. A square
  image is simply resized. For a non-square image the published protocols do not say what
  happens; by default we take the central square (side = the shorter side) first and then resize,
  so the aspect ratio is kept (``non_square="stretch"`` resizes the whole image instead).
* ``lama_crop`` (LaMa): bicubic resize so the shorter side is S, then the central S x S crop.

All functions take and return uint8 H x W x 3 numpy arrays. Resampling uses Pillow's bicubic
filter (which antialiases when shrinking, as PIL-based reference loaders do).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from moebius.atomic import atomic_path
from moebius.errors import DataError
from moebius.registry import Registry

# ---------------------------------------------------------------------------------------------
# Reading and writing pixels
# ---------------------------------------------------------------------------------------------


def load_image(path: str | os.PathLike, data: bytes | None = None) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3); ``DataError`` naming the file if it is unreadable.

    ``data``: the file's bytes when the caller has already read them (to check their sha256
    against a manifest, ``manifest.load_verified_image``), so the pixels decoded are exactly the
    bytes checked. Truncated files are an error (Pillow's LOAD_TRUNCATED_IMAGES stays off): a
    half-downloaded JPEG must not silently become a grey-bottomed evaluation image.
    """
    path = Path(path)
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                # 16/32-bit greyscale: scale to 8 bits instead of letting convert() clip at 255
                arr = np.asarray(img, dtype=np.float64)
                peak = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
                grey = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
            rgb = img.convert("RGB")
    except FileNotFoundError as exc:
        raise DataError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read image {path}: {reason}") from exc
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def encode_png(img: np.ndarray) -> bytes:
    """PNG bytes of a uint8 HWC image; deterministic (no timestamps or text chunks)."""
    _check_image(img)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def save_png(path: str | os.PathLike, img: np.ndarray) -> bytes:
    """Write ``img`` as PNG atomically; return the bytes written (callers hash them)."""
    data = encode_png(img)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def _check_image(img: np.ndarray) -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        desc = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise DataError(f"expected a uint8 H x W x 3 image, got {desc}")
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise DataError(f"empty image of shape {img.shape}")


def _check_size(size: int) -> None:
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise DataError(f"target size must be a positive integer, got {size!r}")


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def resize_bicubic(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of a uint8 HWC image to (height, width)."""
    _check_image(img)
    if img.shape[:2] == (height, width):
        return img.copy()
    out = Image.fromarray(img).resize((width, height), resample=Image.Resampling.BICUBIC)
    return np.asarray(out, dtype=np.uint8)


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` window (the image must be at least that big)."""
    h, w = img.shape[:2]
    if h < size or w < size:
        raise DataError(f"cannot crop {size}x{size} from a {h}x{w} image")
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[top : top + size, left : left + size])


def _reflect_pad_axis(img: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Pad ``axis`` up to ``size`` by reflection (split evenly, the extra pixel after)."""
    n = img.shape[axis]
    if n >= size:
        return img
    before = (size - n) // 2
    widths = [(0, 0)] * img.ndim
    widths[axis] = (before, size - n - before)
    # numpy's reflect needs at least two pixels along the axis; a 1-pixel line can only repeat
    return np.pad(img, widths, mode="reflect" if n > 1 else "edge")


def mat_crop(img: np.ndarray, size: int) -> np.ndarray:
    """MAT: reflect-pad to at least ``size`` on both sides, then the central square crop."""
    _check_image(img)
    _check_size(size)
    img = _reflect_pad_axis(img, 0, size)
    img = _reflect_pad_axis(img, 1, size)
    return center_crop(img, size)


def migan_resize(img: np.ndarray, size: int, non_square: str = "center_crop") -> np.ndarray:
    """MI-GAN / CoModGAN: bicubic resize to ``size`` x ``size``.

    ``non_square``: ``"center_crop"`` (default) crops the central square of side min(H, W) before
    resizing, keeping the aspect ratio; ``"stretch"`` resizes the whole image anisotropically.
    """
    _check_image(img)
    _check_size(size)
    if non_square == "center_crop":
        img = center_crop(img, min(img.shape[:2]))
    elif non_square != "stretch":
        raise DataError(f"non_square must be 'center_crop' or 'stretch', got {non_square!r}")
    return resize_bicubic(img, size, size)


def lama_crop(img: np.ndarray, size: int) -> np.ndarray:
    """LaMa: bicubic resize so the shorter side equals ``size``, then the central square crop."""
    _check_image(img)
    _check_size(size)
    h, w = img.shape[:2]
    scale = size / min(h, w)
    # round, but never below `size`, so the crop always fits
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    return center_crop(resize_bicubic(img, new_h, new_w), size)


PREPROCESSORS: Registry[Callable[[np.ndarray, int], np.ndarray]] = Registry("preprocessing", {
    "mat_crop": mat_crop,
    "migan_resize": migan_resize,
    "lama_crop": lama_crop,
})
_ALIASES = {"mat": "mat_crop", "migan": "migan_resize", "lama": "lama_crop"}  # short names, not offered as choices


def get_preprocessor(name: str) -> Callable[[np.ndarray, int], np.ndarray]:
    """The preprocessing function called ``name`` (also ``mat`` / ``migan`` / ``lama``)."""
    return PREPROCESSORS.get(_ALIASES.get(name, name))


def preprocess(img: np.ndarray, name: str, size: int) -> np.ndarray:
    """Apply the protocol preprocessing ``name`` at side ``size``."""
    return get_preprocessor(name)(img, size)
