"""Image decoding and the MAT / MI-GAN / LaMa preprocessing geometry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from moebius.data.preprocess import (
    get_preprocessor,
    lama_crop,
    load_image,
    mat_crop,
    migan_resize,
    preprocess,
    save_png,
)
from moebius.errors import DataError, UnknownNameError

RNG = np.random.default_rng(1234)


def _random(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --- load_image ---------------------------------------------------------------------------------


def test_load_png_roundtrip_and_jpeg(tmp_path):
    img = _random(17, 23)
    save_png(tmp_path / "a.png", img)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), img)
    Image.fromarray(img).save(tmp_path / "a.jpg", quality=95)
    out = load_image(tmp_path / "a.jpg")
    assert out.shape == (17, 23, 3) and out.dtype == np.uint8


def test_load_converts_grey_rgba_and_16bit_to_rgb(tmp_path):
    grey = RNG.integers(0, 256, size=(9, 11), dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (9, 11, 3)
    np.testing.assert_array_equal(out[..., 0], grey)
    np.testing.assert_array_equal(out[..., 2], grey)

    rgba = np.dstack([_random(5, 6), np.full((5, 6), 128, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgba[..., :3])

    deep = np.array([[0, 65535], [32768, 257]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 255 and out[1, 1, 0] == 1 and 127 <= out[1, 0, 0] <= 128


@pytest.mark.parametrize("kind", ["garbage", "truncated_png", "truncated_jpeg", "empty"])
def test_unreadable_images_raise_data_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"bad_{kind}.img"
    if kind == "garbage":
        path.write_bytes(b"not an image at all" * 10)
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        fmt = "PNG" if kind == "truncated_png" else "JPEG"
        Image.fromarray(_random(64, 64)).save(path, format=fmt)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as err:
        load_image(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_missing_image_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_png_bytes_are_deterministic(tmp_path):
    img = _random(20, 20)
    assert save_png(tmp_path / "1.png", img) == save_png(tmp_path / "2.png", img)


# --- MAT ----------------------------------------------------------------------------------------


def test_mat_crop_of_a_large_image_is_the_exact_central_window():
    img = _random(600, 401)
    out = mat_crop(img, 256)
    # central window: top = (600-256)//2 = 172, left = (401-256)//2 = 72
    np.testing.assert_array_equal(out, img[172:428, 72:328])


def test_mat_crop_reflect_pads_a_small_side():
    img = _random(300, 100)
    out = mat_crop(img, 128)
    assert out.shape == (128, 128, 3)
    # width 100 -> 128: 14 columns before, 14 after; the original sits in the middle, untouched
    np.testing.assert_array_equal(out[:, 14:114], img[86:214])
    # reflection mirrors around the edge pixel without repeating it
    np.testing.assert_array_equal(out[:, 13], img[86:214, 1])
    np.testing.assert_array_equal(out[:, 0], img[86:214, 14])
    np.testing.assert_array_equal(out[:, 114], img[86:214, 98])


def test_mat_crop_handles_images_far_smaller_than_the_target():
    img = _random(5, 1)
    out = mat_crop(img, 32)
    assert out.shape == (32, 32, 3)
    assert set(map(tuple, out.reshape(-1, 3))) <= set(map(tuple, img.reshape(-1, 3)))


# --- MI-GAN -------------------------------------------------------------------------------------


def test_migan_resize_square_and_constant_images():
    flat = np.full((300, 300, 3), (10, 200, 90), np.uint8)
    out = migan_resize(flat, 64)
    assert out.shape == (64, 64, 3)
    assert (out == (10, 200, 90)).all()


def test_migan_non_square_center_crop_drops_the_sides_stretch_keeps_them():
    img = np.full((100, 200, 3), 128, np.uint8)
    img[:, :20] = (255, 0, 0)  # a red band at the far left, outside the central square
    cropped = migan_resize(img, 50)
    stretched = migan_resize(img, 50, non_square="stretch")
    assert cropped.shape == stretched.shape == (50, 50, 3)
    assert (cropped[..., 0].astype(int) - cropped[..., 1]).max() < 5  # no red left
    assert (stretched[:, 1, 0].astype(int) - stretched[:, 1, 1]).min() > 200  # the red band survives
    with pytest.raises(DataError):
        migan_resize(img, 50, non_square="squash")


# --- LaMa ---------------------------------------------------------------------------------------


def test_lama_crop_scales_the_short_side_then_crops_the_long_one():
    img = np.full((300, 600, 3), 128, np.uint8)
    img[:30] = (0, 0, 255)  # top 10 %: kept (the short side is scaled, not cropped)
    img[:, :60] = (255, 0, 0)  # left 10 %: cropped away
    out = lama_crop(img, 64)
    assert out.shape == (64, 64, 3)
    assert out[0, 32, 2] > 200 and out[0, 32, 0] < 60  # blue top row
    assert (out[20:, :, 0].astype(int) - out[20:, :, 1]).max() < 5  # no red anywhere


def test_registry_names_aliases_and_typos():
    img = _random(80, 80)
    np.testing.assert_array_equal(preprocess(img, "mat", 64), preprocess(img, "mat_crop", 64))
    assert get_preprocessor("lama") is lama_crop
    with pytest.raises(UnknownNameError, match="did you mean 'migan_resize'"):
        get_preprocessor("migan_resise")


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 4), np.uint8)])
def test_non_rgb_uint8_input_is_rejected(bad):
    with pytest.raises(DataError):
        mat_crop(bad, 4)
