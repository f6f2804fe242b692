"""Every derived seed of the project, from one function: ``derive(namespace, *keys)``.

A derived seed is the SHA-256 of a text that names its namespace and its keys, read as an integer.
hashlib is used, not Python's ``hash()``, which is salted per process; so a seed is the same on any
machine, in any process, in any worker, whatever was drawn before it. Each namespace keeps the key
text and the byte layout it had before the namespaces were collected here, so that stored masks,
benchmark selections, smoke images and training streams stay identical (tests/test_pinned_outputs.py
pins one of each). New uses take a new namespace with a prefix of its own.

| namespace   | hashed text                                    | seed                                   |
| ----------- | ---------------------------------------------- | -------------------------------------- |
| ``mask``    | ``moebius-mask|<protocol>|v<version>|<seed>|<id>`` | all 256 bits (8 little-endian words) |
| ``sample``  | ``moebius-sample:<seed>:<id>``                 | first 8 bytes, big-endian, low 63 bits |
| ``train``   | ``<seed>/<key>/<key>...``                      | first 8 bytes, little-endian, top 63 bits |
| ``selection`` | ``<seed>:<id>``                              | all 256 bits, big-endian (a sort key)  |
| ``smoke``   | ``<dataset name>``                             | first 4 bytes, little-endian           |

``train`` and ``selection`` have no prefix of their own (their texts begin with the run seed); the
separators keep every namespace's texts apart only as far as keys cannot contain them: image ids
are file-name safe (letters, digits, ``_ . -``), so none holds ``|``, ``:`` or ``/``.

Masks (``mask_rng``), docs/mask_protocols.md ("Seeding (our departure)"): MAT,
CoModGAN / MI-GAN and LaMa all draw from NumPy's global RNG, so a mask depends on how many masks were
drawn before it, in which process, in which order (and LaMa's generator is not seeded at all;
MI-GAN draws inside DataLoader workers).

# DEVIATION (reference generators: global np.random): every mask gets its own
# ``numpy.random.Generator`` (PCG64) whose SeedSequence entropy is the SHA-256 of
# ``"moebius-mask|<protocol>|v<version>|<seed>|<image id>"``. A mask is therefore a pure function of
# those four values: a set is identical whatever the worker count, chunking or order, and one mask
# can be regenerated alone. The cost: the masks follow the reference *distributions*, not the
# reference *streams*: no stored reference mask file can be reproduced bit for bit (the reference
# streams were never fixed either).

Sampling (``image_seed``), after EDM's sampler: each image draws all of its noise from its own
generator seeded by (run seed, image id), so results do not depend on batch size or order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from moebius.errors import UnknownNameError

if TYPE_CHECKING:  # torch is imported only by torch_generator: the data and mask phases never need it
    import torch


@dataclass(frozen=True)
class Namespace:
    """How one family of seeds turns its keys into the hashed text, and the digest into a seed."""

    prefix: str | None  # first field of the hashed text; None: the text starts with the first key
    sep: str  # between the fields
    nbytes: int  # leading digest bytes that make the seed (32: the whole digest)
    byteorder: Literal["big", "little"]
    keep: Literal["all", "low63", "high63"] = "all"  # 63 bits: what torch.manual_seed / numpy take


NAMESPACES: dict[str, Namespace] = {
    "mask": Namespace("moebius-mask", "|", 32, "little"),
    "sample": Namespace("moebius-sample", ":", 8, "big", "low63"),
    "train": Namespace(None, "/", 8, "little", "high63"),
    "selection": Namespace(None, ":", 32, "big"),
    "smoke": Namespace(None, "", 4, "little"),
}


def _namespace(name: str) -> Namespace:
    if name not in NAMESPACES:
        raise UnknownNameError.of("seed namespace", name, NAMESPACES)
    return NAMESPACES[name]


def key_text(namespace: str, *keys: object) -> str:
    """The text whose SHA-256 is the seed; keys are stringified, so that 7 and "7" agree."""
    ns = _namespace(namespace)
    fields = ([ns.prefix] if ns.prefix is not None else []) + [str(k) for k in keys]
    return ns.sep.join(fields)


def derive(namespace: str, *keys: object) -> int:
    """The seed of ``keys`` in ``namespace``: a non-negative integer, a pure function of its arguments."""
    ns = _namespace(namespace)
    digest = hashlib.sha256(key_text(namespace, *keys).encode("utf-8")).digest()
    value = int.from_bytes(digest[: ns.nbytes], ns.byteorder)
    if ns.keep == "low63":
        return value & ((1 << 63) - 1)
    if ns.keep == "high63":
        return value >> 1
    return value


def _entropy(namespace: str, *keys: object) -> int | list[int]:
    """SeedSequence entropy: the seed, or for a whole digest its eight 32-bit words, low word first.

    The word list keeps leading zero words that SeedSequence(int) would drop, so it matches the
    words ``np.frombuffer(digest, "<u4")`` gave before this module existed.
    """
    value = derive(namespace, *keys)
    ns = _namespace(namespace)
    if ns.nbytes <= 8:
        return value
    return [(value >> (32 * i)) & 0xFFFFFFFF for i in range(ns.nbytes // 4)]


def numpy_rng(namespace: str, *keys: object) -> np.random.Generator:
    """A fresh PCG64 generator for ``keys``: same arguments, same stream, on any machine or process."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(_entropy(namespace, *keys))))


def torch_generator(namespace: str, *keys: object) -> "torch.Generator":
    """A fresh CPU ``torch.Generator`` seeded with ``derive(namespace, *keys)`` (a 63-bit namespace)."""
    import torch

    return torch.Generator(device="cpu").manual_seed(derive(namespace, *keys))


def mask_rng(protocol: str, version: int, seed: int, image_id: str) -> np.random.Generator:
    """The generator of one stored mask (see the DEVIATION above); the id is stringified."""
    return numpy_rng("mask", protocol, f"v{int(version)}", int(seed), str(image_id))


def image_seed(seed: int, image_id: str) -> int:
    """A 63-bit seed for one image's sampling noise, from the run seed and the image id."""
    return derive("sample", int(seed), image_id)
