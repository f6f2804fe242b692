"""Training batches: images, training masks and the denoiser's 9-channel input (paper Sec. 3.1, 4.1).

Data order and every random draw are pure functions of (seed, position) or (seed, step, micro, rank),
never of a running RNG, so a run resumed from a checkpoint sees exactly the batches, masks, noise and
timesteps the uninterrupted run would have seen, whatever the number of DataLoader workers.

The sample stream is infinite: global position p = ((step·accum + micro)·world + rank)·B + i; epoch
e = p // N visits the N training images in a permutation seeded by (seed, e). Position p's sample
(crop, flip, hole, dilation) is drawn by ``moebius.train.data_pipeline`` from a generator seeded by
(seed, p): the official dataset's pipeline, or the project's (``train.pipeline``).

LCG ids (``diffusion_batch``): as the official dataset, a sample gets the ids of its task category;
every training dataset of this project (Places365, CelebA-HQ, FFHQ, the smoke sets) is mask-free, and a
mask-free sample is a background sample (ids 0..9). ``uncond_prob`` > 0 (``train.lcg_ids:
cfg_dropout``) gives that share of the samples the foreground ids 10..19 instead.

Denoiser input (official ``RemovalModel``): ``moebius.diffusion.latents`` owns it (VAE scale and
shift, the latent mask, cat[z_t, mask, z_masked]), the same functions the sampler calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from moebius.diffusion.latents import denoiser_input, encode, latent_mask
from moebius.diffusion.schedule import NoiseSchedule
from moebius.errors import TrainError
from moebius.seeding import numpy_rng
from moebius.train.noising import sample_noise, sample_timesteps

# ---------------------------------------------------------------------------------------------
# Images on disk
# ---------------------------------------------------------------------------------------------


def dataset_dir(data_root: str | Path, dataset: str, split: str) -> Path:
    """``<data>/datasets/<dataset>/<split>`` (DESIGN.md, dataset contract)."""
    return Path(data_root) / "datasets" / dataset / split


def list_images(data_root: str | Path, datasets: Sequence[str], split: str) -> list[Path]:
    """Every image of the given datasets' split, in manifest order (dataset by dataset)."""
    from moebius.data.manifest import read_manifest

    paths: list[Path] = []
    for name in datasets:
        folder = dataset_dir(data_root, name, split)
        if not (folder / "manifest.csv").is_file():
            raise TrainError(f"dataset {name}/{split} not found at {folder} (run `moebius data` first)")
        ids = read_manifest(folder)["id"].astype(str).tolist()
        paths.extend(folder / f"{i}.png" for i in ids)
    if not paths:
        raise TrainError(f"no training images in {', '.join(datasets)} ({split})")
    return paths


def data_versions(data_root: str | Path, datasets: Sequence[str], split: str) -> dict[str, str]:
    """``moebius.data.manifest.data_version`` of each dataset split: the data a run was trained on."""
    from moebius.data.manifest import data_version

    return {f"{name}/{split}": data_version(dataset_dir(data_root, name, split)) for name in datasets}


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float() / 127.5 - 1.0


CACHE_MAX_IMAGES = 4096  # decoded images kept per process: small (smoke, tests) sets only; 1.8M would not fit


class TrainStream(torch.utils.data.Dataset):
    """Position p of the infinite sample stream -> (image (3, S, S) in [-1, 1], mask (1, S, S), 1 = hole).

    ``pipeline`` (``moebius.train.data_pipeline``): ``official`` makes each sample with the official
    dataset's augmentations from a generator seeded by (seed, p), its hole from the one LaMa protocol
    in ``mask_protocols``; ``project`` centre-crops and draws the hole from a protocol picked uniformly
    from ``mask_protocols``. ``mask_protocols`` None or empty: no holes (VAE training).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        size: int,
        seed: int,
        mask_protocols: Sequence[str] | None,
        cache: bool = True,
        pipeline: str = "official",
    ) -> None:
        from moebius.train.data_pipeline import PIPELINES

        if pipeline not in PIPELINES:
            raise TrainError(f"unknown training pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
        self.paths = list(paths)
        self.size = size
        self.seed = seed
        self.pipeline = pipeline
        self.mask_protocols = list(mask_protocols) if mask_protocols else []
        if pipeline == "official" and len(self.mask_protocols) > 1:
            raise TrainError(f"the official training pipeline draws from one LaMa protocol, got {self.mask_protocols}")
        self._cache: dict[int, np.ndarray] | None = {} if cache and len(self.paths) <= CACHE_MAX_IMAGES else None
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:  # the stream is infinite; this is the number of distinct images
        return len(self.paths)

    def image_index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.paths))
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, numpy_rng("train", self.seed, "epoch", epoch).permutation(len(self.paths)))
        return int(self._perm[1][offset])

    def _base(self, index: int) -> np.ndarray:
        """The decoded image before any random draw: uint8, (h, w) with min = S (official) or (S, S)."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        from moebius.data.manifest import load_verified_image
        from moebius.train.data_pipeline import centre_square, resize_short_side

        # sha256 against the manifest beside the image, on the bytes decoded: a replaced or truncated
        # file fails loudly instead of training under the manifest's data version
        img = load_verified_image(self.paths[index])
        img = resize_short_side(img, self.size) if self.pipeline == "official" else centre_square(img, self.size)
        if self._cache is not None:
            self._cache[index] = img
        return img

    def load(self, index: int) -> torch.Tensor:
        """Image ``index`` without random draws, (3, S, S) in [-1, 1]: the centre square (the official
        pipeline's LANCZOS resize, then the centre crop); what the VAE's latent statistics read."""
        img = self._base(index)
        h, w = img.shape[:2]
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return _to_tensor(img[top : top + self.size, left : left + self.size])

    def mask(self, position: int) -> torch.Tensor:
        """The ``project`` pipeline's hole of ``position``."""
        rng = numpy_rng("train", self.seed, "mask", position)
        if not self.mask_protocols:  # VAE training: no masks
            return torch.zeros(1, self.size, self.size)
        from moebius.masks.generate import sample_training_mask

        hole = sample_training_mask(rng, self.size, self.mask_protocols)
        return torch.from_numpy(np.ascontiguousarray(hole, dtype=np.float32))[None]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.image_index(position)
        if self.pipeline == "project":
            return self.load(index), self.mask(position)
        from moebius.train.data_pipeline import official_sample

        rng = numpy_rng("train", self.seed, "sample", position)
        protocol = self.mask_protocols[0] if self.mask_protocols else None
        img, hole, _ = official_sample(rng, self._base(index), self.size, protocol)
        return _to_tensor(img), torch.from_numpy(hole.astype(np.float32))[None]


@dataclass(frozen=True)
class StreamLayout:
    """How a step's micro-batches map onto stream positions (world size, accumulation, batch size)."""

    batch_size: int
    accum: int
    world_size: int
    rank: int

    def positions(self, step: int, micro: int) -> list[int]:
        start = ((step * self.accum + micro) * self.world_size + self.rank) * self.batch_size
        return list(range(start, start + self.batch_size))


class StepBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Yields the position lists of every micro-batch from ``start_step`` to ``steps`` (exclusive)."""

    def __init__(self, layout: StreamLayout, start_step: int, steps: int) -> None:
        self.layout, self.start_step, self.steps = layout, start_step, steps

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.steps):
            for micro in range(self.layout.accum):
                yield self.layout.positions(step, micro)

    def __len__(self) -> int:
        return (self.steps - self.start_step) * self.layout.accum


def batch_loader(
    stream: TrainStream, layout: StreamLayout, start_step: int, steps: int, num_workers: int
) -> torch.utils.data.DataLoader:
    """A DataLoader over the deterministic stream; order does not depend on ``num_workers``."""
    return torch.utils.data.DataLoader(
        stream,
        batch_sampler=StepBatchSampler(layout, start_step, steps),
        num_workers=num_workers,
        persistent_workers=False,
    )


# ---------------------------------------------------------------------------------------------
# One diffusion training example per image: everything a loss needs
# ---------------------------------------------------------------------------------------------


@dataclass
class DiffusionBatch:
    """Denoiser input x (B, 9, h, w), timesteps t (B,), LCG ids (B, 10), true noise, z0 and z_t."""

    x: torch.Tensor
    t: torch.Tensor
    ids: torch.Tensor
    noise: torch.Tensor
    z0: torch.Tensor
    z_t: torch.Tensor


def diffusion_batch(
    vae: torch.nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    generator: torch.Generator,
    schedule: NoiseSchedule,
    timestep_sampling: str,
    noise_offset: float,
    uncond_prob: float,
    categories: Sequence[str] | None = None,
) -> DiffusionBatch:
    """Encode, noise and assemble one micro-batch; every draw comes from ``generator``.

    Ids follow each sample's task category (``categories``; None: all background, as every dataset
    here is mask-free). A share ``uncond_prob`` of the samples then gets the foreground ids (10..19)
    instead (CFG dropout; 0 under the official rule). The dropout draw is made either way, so the two
    rules see the same noise, timesteps and later draws.
    """
    from moebius.models.lcg import category_ids, lcg_ids

    b = images.shape[0]
    device = images.device
    z0 = encode(vae, images, generator)  # (B, 4, h, w)
    z_masked = encode(vae, images * (1.0 - (masks > 0.5).float()), generator)
    m = latent_mask(masks, tuple(z0.shape[-2:]))  # (B, 1, h, w)
    t = sample_timesteps(b, generator, timestep_sampling, schedule.num_train_timesteps).to(device)
    noise = sample_noise(tuple(z0.shape), generator, noise_offset).to(device, z0.dtype)
    z_t = schedule.add_noise(z0, noise, t)
    ids = category_ids(list(categories) if categories is not None else ["background"] * b, device)  # (B, 10)
    if len(ids) != b:
        raise TrainError(f"{len(ids)} task categories for a batch of {b}")
    uncond = (torch.rand(b, generator=generator) < uncond_prob).to(device)[:, None]  # (B, 1)
    ids = torch.where(uncond, lcg_ids(b, False, device), ids)  # (B, 10)
    return DiffusionBatch(denoiser_input(z_t, m, z_masked), t, ids, noise, z0, z_t)
