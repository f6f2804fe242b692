"""Per-mask random generators, seeded from (protocol, version, seed, image id).

MASKS.md ("Where the reference generators use NumPy's global RNG ..."): MAT, CoModGAN / MI-GAN and
LaMa all draw from NumPy's global RNG, so a mask depends on how many masks were drawn before it, in
which process, in which order (and LaMa's generator is not seeded at all; MI-GAN draws inside
DataLoader workers).

# DEVIATION (reference generators: global np.random): every mask gets its own
# ``numpy.random.Generator`` (PCG64) whose SeedSequence entropy is the SHA-256 of
# ``"moebius-mask|<protocol>|v<version>|<seed>|<image id>"``. A mask is therefore a pure function of
# those four values: a set is identical whatever the worker count, chunking or order, and one mask
# can be regenerated alone. hashlib is used, not Python's ``hash()``, which is salted per process.
# The masks follow the reference *distributions*, not the reference *streams*: no stored reference
# mask file can be reproduced bit for bit (the reference streams were never fixed either).
"""

from __future__ import annotations

import hashlib

import numpy as np

_KEY_PREFIX = "moebius-mask"  # namespaces our streams away from any other seeded use of the same seed


def seed_key(protocol: str, version: int, seed: int, image_id: str) -> str:
    """The text whose hash seeds one mask; the id is stringified so that 7 and "7" agree."""
    return f"{_KEY_PREFIX}|{protocol}|v{int(version)}|{int(seed)}|{image_id}"


def mask_rng(protocol: str, version: int, seed: int, image_id: str) -> np.random.Generator:
    """A fresh generator for one mask; same arguments, same stream, on any machine or process."""
    digest = hashlib.sha256(seed_key(protocol, version, seed, image_id).encode("utf-8")).digest()
    # 256 bits of entropy as eight uint32 words: SeedSequence mixes them into PCG64's state.
    words = np.frombuffer(digest, dtype="<u4").tolist()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
