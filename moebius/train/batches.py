"""Training batches: images, training masks and the denoiser's 9-channel input (paper Sec. 3.1, 4.1).

Data order and every random draw are pure functions of (seed, position) or (seed, step, micro, rank),
never of a running RNG, so a run resumed from a checkpoint sees exactly the batches, masks, noise and
timesteps the uninterrupted run would have seen, whatever the number of DataLoader workers.

The sample stream is infinite: global position p = ((step·accum + micro)·world + rank)·B + i; epoch
e = p // N visits the N training images in a permutation seeded by (seed, e). The mask of position p
is drawn by ``moebius.masks.generate.sample_training_mask`` from a generator seeded by (seed, p).

Denoiser input (official ``RemovalModel``): ``moebius.diffusion.latents`` owns it (VAE scale and
shift, the latent mask, cat[z_t, mask, z_masked]), the same functions the sampler calls.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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


def _to_tensor(img: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, size, size) in [-1, 1]; centre-crop to square, bicubic resize."""
    h, w = img.shape[:2]
    if (h, w) != (size, size):
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        pil = Image.fromarray(img[top : top + side, left : left + side])
        img = np.asarray(pil.resize((size, size), Image.BICUBIC))
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).float() / 127.5 - 1.0


class TrainStream(torch.utils.data.Dataset):
    """Position p of the infinite sample stream -> (image (3, S, S) in [-1, 1], mask (1, S, S), 1 = hole)."""

    def __init__(
        self,
        paths: Sequence[Path],
        size: int,
        seed: int,
        mask_protocols: Sequence[str] | None,
        cache: bool = True,
    ) -> None:
        self.paths = list(paths)
        self.size = size
        self.seed = seed
        self.mask_protocols = list(mask_protocols) if mask_protocols else []
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None
        self._perm: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:  # the stream is infinite; this is the number of distinct images
        return len(self.paths)

    def image_index(self, position: int) -> int:
        epoch, offset = divmod(position, len(self.paths))
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, numpy_rng("train", self.seed, "epoch", epoch).permutation(len(self.paths)))
        return int(self._perm[1][offset])

    def load(self, index: int) -> torch.Tensor:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        from moebius.data.manifest import load_verified_image

        # sha256 against the manifest beside the image, on the bytes decoded: a replaced or truncated
        # file fails loudly instead of training under the manifest's data version
        img = _to_tensor(load_verified_image(self.paths[index]), self.size)
        if self._cache is not None:
            self._cache[index] = img
        return img

    def mask(self, position: int) -> torch.Tensor:
        rng = numpy_rng("train", self.seed, "mask", position)
        if not self.mask_protocols:  # VAE training: no masks
            return torch.zeros(1, self.size, self.size)
        from moebius.masks.generate import sample_training_mask

        hole = sample_training_mask(rng, self.size, self.mask_protocols)
        return torch.from_numpy(np.ascontiguousarray(hole, dtype=np.float32))[None]

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.load(self.image_index(position)), self.mask(position)


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
) -> DiffusionBatch:
    """Encode, noise and assemble one micro-batch; every draw comes from ``generator``.

    A share ``uncond_prob`` of the samples gets the unconditional LCG ids (10..19) instead of the
    conditional ones (0..9), so the unconditional branch of classifier-free guidance is trained too.
    """
    from moebius.models.lcg import lcg_ids

    b = images.shape[0]
    device = images.device
    z0 = encode(vae, images, generator)  # (B, 4, h, w)
    z_masked = encode(vae, images * (1.0 - (masks > 0.5).float()), generator)
    m = latent_mask(masks, tuple(z0.shape[-2:]))  # (B, 1, h, w)
    t = sample_timesteps(b, generator, timestep_sampling, schedule.num_train_timesteps).to(device)
    noise = sample_noise(tuple(z0.shape), generator, noise_offset).to(device, z0.dtype)
    z_t = schedule.add_noise(z0, noise, t)
    uncond = (torch.rand(b, generator=generator) < uncond_prob).to(device)[:, None]  # (B, 1)
    ids = torch.where(uncond, lcg_ids(b, False, device), lcg_ids(b, True, device))  # (B, 10)
    return DiffusionBatch(denoiser_input(z_t, m, z_masked), t, ids, noise, z0, z_t)
