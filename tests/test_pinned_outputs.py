"""Pinned outputs of the real code paths (STYLE.md: "pinned output slices", after diffusers' tests).

Each number below was computed once from the code as it stood before the contracts were given one
owner each (issue 11), and written here as a literal (the official training-sample pipeline's pins:
when it was added, issue 12). A refactor that changes any of them changes
results: stored masks (their pixels), model forwards, the sampler, the VAE latents, the training
batch and every derived seed. Floats are compared with an absolute tolerance (1e-5 for a forward,
1e-4 for the 4-step sampler) that holds on any CPU; hashes and seeds are exact.
"""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
import torch

from moebius.config import SampleConfig
from moebius.masks import get_protocol, list_protocols
from moebius.masks.store import write_mask_set
from moebius.models.lcg import lcg_ids
from moebius.models.registry import build_model
from moebius.models.vae import build_vae

# ---------------------------------------------------------------------------------------------
# Stored masks: sha256 of the pixels of one stored mask per protocol (id "pin-0007", seed 2026,
# native size). The pixels, not the PNG bytes, so that an OpenCV / zlib build does not count.
# ---------------------------------------------------------------------------------------------

MASK_ID, MASK_SEED = "pin-0007", 2026
MASK_PIXELS_SHA256 = {
    "lama_medium_256": "9e96a382ac295420177b48ca14b39072b0437a585edbc14e9bc794b8453d68ce",
    "lama_medium_512": "af6f7c07a7ac6b2d9719b9c2bdbfb496b75a0fa7830fbf478dc169235a1504c2",
    "lama_thick_256": "05a6d578833d14df1634aca5474e0f70478f24208e172d24c440446d463221fc",
    "lama_thick_512": "4950c9838e7873c0566967560c5794028979fd08a3f145368726bb5a2e13807e",
    "lama_thin_256": "7de4cdb68759bf782c2bd0e3a3711b634e5496096f89651a6a112b6e98513a34",
    "lama_thin_512": "d5271e4f7f933803ab9cd6695cb338442ac560a720799852a8edd906962667cc",
    "mat_large_256": "9127baef9d74c0168766ed206d4adbedf2bfa13a4415499f04b273b41776d99f",
    "mat_large_512": "3e5a140a6aee5624f485d00bc1fdd0d3a55a438e14f79e31248c0266ce3cdbc4",
    "mat_small_256": "e9dea13c099affd95034f81ab81afd3d329c5dac6d27b40aafd4938f1399619f",
    "mat_small_512": "2a270c647312cea80b93c66a47da0df8df025d25c0eb42a486480166746aab35",
    "migan_256": "54d01f5bef935058e690d2cb9f7409693cc407a0301b549f774b1f9aed692777",
    "migan_512": "0a10bade6d2f767ab7ff4d1c58d73d177a4f706e3d51ecc0a5aaf7dd2dd7c76b",
    "places2_test": "f00d16addd1526c6ee6406588383b2e43f1ae5d0a6890b11a4279c1654e29db1",
}


def test_every_protocol_has_a_pinned_mask() -> None:
    assert sorted(MASK_PIXELS_SHA256) == list_protocols()


@pytest.mark.parametrize("protocol", sorted(MASK_PIXELS_SHA256))
def test_stored_mask_pixels_are_pinned(protocol, tmp_path) -> None:
    size = get_protocol(protocol).size
    write_mask_set(protocol, [MASK_ID], tmp_path, seed=MASK_SEED, size=size)
    pixels = cv2.imread(str(tmp_path / f"{MASK_ID}.png"), cv2.IMREAD_UNCHANGED)
    assert pixels.shape == (size, size) and pixels.dtype == np.uint8
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == MASK_PIXELS_SHA256[protocol]


# ---------------------------------------------------------------------------------------------
# Derived seeds: each namespace's key text and byte layout (exact integers)
# ---------------------------------------------------------------------------------------------


def test_derived_seeds_are_pinned() -> None:
    from moebius.data.selection import select_ids
    from moebius.seeding import derive, image_seed, mask_rng, numpy_rng, torch_generator

    assert image_seed(7, "a") == 8962714476612718052
    assert image_seed(7, "b") == 6979156964751566959
    assert derive("train", 5, "mask", 3) == 8039202257378647619
    assert derive("train", 2026, "init", "student") == 7754873765975243226
    assert numpy_rng("train", 5, "epoch", 0).permutation(10).tolist() == [3, 9, 8, 0, 4, 2, 1, 7, 5, 6]
    assert torch.randint(0, 1000, (3,), generator=torch_generator("train", 5, "batch", 1)).tolist() == [988, 521, 35]
    assert select_ids([f"id{i}" for i in range(10)], 3, 0, "seeded") == ["id2", "id6", "id7"]
    assert mask_rng("mat_large_512", 1, 2026, "pin-0007").integers(0, 2**31, 3).tolist() == [
        1381796557, 869836364, 1081904822,
    ]


def test_smoke_images_are_pinned() -> None:
    from moebius.data.smoke import smoke_image

    img, source = smoke_image("smoke_natural", "train", 3, 64, 0)
    assert source == "skimage.data.grass[319:511,96:288]+hflip"  # the crop the seeded generator chose
    assert np.abs(img[10, 10].astype(int) - [103, 75, 82]).max() <= 1
    assert np.abs(img[40, 50].astype(int) - [96, 70, 77]).max() <= 1
    img, source = smoke_image("smoke_ood_portrait", "train", 3, 64, 0)
    assert source == "skimage.data.lfw_subset[89][2:24,0:22]"
    assert np.abs(img[10, 10].astype(int) - [133, 119, 93]).max() <= 1


# ---------------------------------------------------------------------------------------------
# Smoke-preset forwards: seed 0 init, a fixed input, a slice of the output
# ---------------------------------------------------------------------------------------------

FORWARD = {
    "student": (
        [0.04969722032546997, -0.03155660256743431, -0.14384570717811584, 0.0672459602355957,
         -0.0008487795712426305, -0.059835776686668396],
        [-0.2115575075149536, -0.06760156154632568, -0.07072675228118896, -0.03876519575715065],
        [3.996281623840332, 4.499535083770752, -3.2972793579101562],
    ),
    "teacher": (
        [0.021778486669063568, 0.017306936904788017, -0.09305818378925323, -0.025878585875034332,
         -0.05306621640920639, 0.10005984455347061],
        [-0.09688220173120499, -0.0027547329664230347, -0.2273515909910202, -0.01650998182594776],
        [-0.05510697886347771, -0.006257457658648491, 0.10822207480669022],
    ),
}


def _close(actual: torch.Tensor, expected: list[float], atol: float) -> None:
    torch.testing.assert_close(actual.double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=atol)


@pytest.mark.parametrize("name", ["student", "teacher"])
def test_smoke_forward_is_pinned(name) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 9, 16, 16, generator=g)
    t, ids = torch.tensor([10, 900]), lcg_ids(2, True)
    torch.manual_seed(0)
    model = build_model(name, "smoke").eval()
    with torch.no_grad():
        out = model(x, t, ids)
    head, tail, coarse = FORWARD[name]
    _close(out.sample[0, 0, 0, :6], head, 1e-5)
    _close(out.sample[1, 3, -1, -4:], tail, 1e-5)
    _close(out.block_outputs[model.coarse_feature_index][0, 0, 0, :3], coarse, 1e-5)


# ---------------------------------------------------------------------------------------------
# VAE latents, the sampler and a training batch, on the smoke VAE (seed 0, scaling_factor 0.5)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    v = build_vae("smoke").eval()
    v.register_to_config(scaling_factor=0.5)  # not 1, so that a lost scale shows
    return v


@pytest.fixture(scope="module")
def images_masks():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(2, 3, 64, 64, generator=g) * 2 - 1
    masks = torch.zeros(2, 1, 64, 64)
    masks[0, :, 8:40, 12:44] = 1.0
    masks[1, :, 20:60, 4:30] = 1.0
    return images, masks


def test_latent_encode_and_decode_are_pinned(vae, images_masks) -> None:
    from moebius.diffusion.sampler import decode, encode
    from moebius.train.batches import encode as train_encode

    images, _ = images_masks
    eps = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        z = encode(vae, images, eps)
        _close(z[0, 0, 0, :5], [1.0214816331863403, 0.4121612310409546, -0.5739140510559082,
                                -0.6058797836303711, 1.181807041168213], 1e-5)
        _close(z[1, 3, -1, -3:], [1.273363471031189, 0.4268925189971924, -0.6691924333572388], 1e-5)
        _close(encode(vae, images, None)[0, 1, 2, :5], [0.06201273202896118, 0.14899197220802307,
                                                        0.04865062236785889, 0.10511985421180725,
                                                        0.11736950278282166], 1e-5)
        # training draws the posterior noise from a generator: the same numbers as eps above
        _close(train_encode(vae, images, torch.Generator().manual_seed(5))[0, 0, 0, :5],
               [1.0214816331863403, 0.4121612310409546, -0.5739140510559082, -0.6058797836303711,
                1.181807041168213], 1e-5)
        _close(decode(vae, z)[0, 0, 0, :5], [0.0877981036901474, 0.07045847177505493, -0.04047823324799538,
                                             -0.01053706556558609, 0.04889354109764099], 1e-5)


SAMPLES = {  # (image 0 at (20, 20) and image 1 at (40, 10), both in the hole: RGB)
    "noise": ([-0.13812045753002167, -0.3101350665092468, -0.5301825404167175],
              [0.4101565480232239, -0.27765896916389465, -0.3164938986301422]),
    "gt_noised": ([-0.23526835441589355, -0.3534327447414398, -1.0],
                  [0.16537436842918396, -0.13160331547260284, -0.5964981317520142]),
}


@pytest.mark.parametrize("start", ["noise", "gt_noised"])
def test_inpainted_batch_is_pinned(vae, images_masks, start) -> None:
    from moebius.diffusion.sampler import inpaint_batch
    from moebius.seeding import image_seed

    images, masks = images_masks
    torch.manual_seed(0)
    model = build_model("student", "smoke").eval()
    seeds = [image_seed(7, "a"), image_seed(7, "b")]
    # The hard composite keeps these float pins; the official blurred paste-back (8-bit levels) is
    # checked against a hand computation in tests/diffusion/test_diffusion_composite.py.
    out = inpaint_batch(model, vae, images, masks, seeds, 2.5, SampleConfig(steps=4, start=start, paste_back="hard"))
    first, second = SAMPLES[start]
    _close(out[0, :, 20, 20], first, 1e-4)
    _close(out[1, :, 40, 10], second, 1e-4)
    # the known region is the input, pasted back
    _close(out[0, 0, 0, :3], [-0.9914729595184326, -0.7888612747192383, -0.42831504344940186], 1e-4)


def test_training_batch_is_pinned(vae, images_masks) -> None:
    from moebius.train.batches import diffusion_batch
    from moebius.diffusion.schedule import scaled_linear_schedule

    images, masks = images_masks
    schedule = scaled_linear_schedule()
    with torch.no_grad():
        b = diffusion_batch(vae, images, masks, torch.Generator().manual_seed(11), schedule, "lognorm", 0.1, 0.5)
    assert b.t.tolist() == [429, 274] and b.ids[:, 0].tolist() == [0, 0]
    _close(b.x[0, :, 3, 4], [1.3591313362121582, 1.8734769821166992, 0.9454313516616821, -1.5213614702224731, 1.0,
                             -0.23208995163440704, 1.0127445459365845, 0.07524383068084717, 0.37842869758605957], 1e-5)
    _close(b.x[1, :, 10, 9], [-2.175872564315796, -0.9598715305328369, 0.17499200999736786, 0.24306879937648773, 0.0,
                              -0.69298255443573, 0.8756271600723267, 0.5214033126831055, -0.04731373488903046], 1e-5)
    _close(b.noise[0, 0, 0, :3], [-0.48750054836273193, 1.4016015529632568, -1.212956428527832], 1e-5)
    _close(b.z_t[1, 2, 5, :3], [-0.8693828582763672, -0.39406174421310425, 0.5064270496368408], 1e-5)
    # the training schedule's ᾱ at a few timesteps (float32 values)
    _close(schedule.alphas_cumprod[[0, 10, 500, 999]],
           [0.9991499781608582, 0.9904313087463379, 0.27633267641067505, 0.004660098347812891], 1e-7)


# ---------------------------------------------------------------------------------------------
# The official training-sample pipeline (issue 12): LANCZOS resize, LaMa hole, dilation, crop, flip
# ---------------------------------------------------------------------------------------------

OFFICIAL_SAMPLES = {  # position: (kernel, iterations, left, flipped, sha256 of the packed hole bits, pixel (10, 10))
    3: (3, 2, 5, False, "bc391e0220ffdd770482155d7c433ddbf6da389ac70b3535eec49469237cae88", [96, 51, 148]),
    5: (7, 2, 15, True, "c85f1af29bf05e38877443b9188d2d896bc14e723c4033fa67623f5cd2ac1606", [113, 98, 139]),
}


@pytest.mark.parametrize("position", sorted(OFFICIAL_SAMPLES))
def test_official_training_sample_is_pinned(position) -> None:
    from moebius.seeding import numpy_rng
    from moebius.train.data_pipeline import official_sample, resize_short_side

    img = np.random.default_rng(3).integers(0, 256, size=(48, 80, 3), dtype=np.uint8)
    base = resize_short_side(img, 32)  # (32, 53): LANCZOS
    assert base.shape == (32, 53, 3) and np.abs(base[5, 7].astype(int) - [145, 151, 101]).max() <= 1
    out, hole, aug = official_sample(numpy_rng("train", 5, "sample", position), base, 32, "lama_medium_512")
    kernel, iterations, left, flipped, digest, pixel = OFFICIAL_SAMPLES[position]
    assert (aug.kernel, aug.iterations, aug.top, aug.left, aug.flipped) == (kernel, iterations, 0, left, flipped)
    assert hashlib.sha256(np.packbits(hole).tobytes()).hexdigest() == digest
    assert np.abs(out[10, 10].astype(int) - pixel).max() <= 1
