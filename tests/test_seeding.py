"""moebius.seeding: one derivation, each namespace's key text and byte layout as the stored data needs."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from moebius.errors import UnknownNameError
from moebius.seeding import NAMESPACES, derive, image_seed, key_text, mask_rng, numpy_rng, torch_generator


def test_key_texts_of_every_namespace() -> None:
    assert key_text("mask", "mat_large_512", "v1", 0, "img1") == "moebius-mask|mat_large_512|v1|0|img1"
    assert key_text("sample", 7, "a") == "moebius-sample:7:a"
    assert key_text("train", 5, "mask", 3) == "5/mask/3"
    assert key_text("selection", 0, "id2") == "0:id2"
    assert key_text("smoke", "smoke_natural") == "smoke_natural"
    assert sorted(NAMESPACES) == ["mask", "sample", "selection", "smoke", "train"]


def test_byte_layouts_match_their_definitions() -> None:
    """Each seed read from the digest the way its namespace says (written out here independently)."""
    d = hashlib.sha256(b"moebius-sample:7:a").digest()
    assert image_seed(7, "a") == int.from_bytes(d[:8], "big") & ((1 << 63) - 1)
    d = hashlib.sha256(b"5/mask/3").digest()
    assert derive("train", 5, "mask", 3) == int.from_bytes(d[:8], "little") >> 1
    d = hashlib.sha256(b"smoke_natural").digest()
    assert derive("smoke", "smoke_natural") == int.from_bytes(d[:4], "little")
    d = hashlib.sha256(b"0:id2").digest()
    assert derive("selection", 0, "id2") == int.from_bytes(d, "big")  # orders ids as the digests' bytes do


def test_mask_stream_uses_the_whole_digest_as_eight_words() -> None:
    """Many ids, so that digests whose top word is zero-led are exercised like any other."""
    for i in range(200):
        digest = hashlib.sha256(f"moebius-mask|migan_256|v1|3|id{i}".encode()).digest()
        words = np.frombuffer(digest, dtype="<u4").tolist()
        reference = np.random.Generator(np.random.PCG64(np.random.SeedSequence(words)))
        assert mask_rng("migan_256", 1, 3, f"id{i}").integers(1 << 30, size=3).tolist() == \
            reference.integers(1 << 30, size=3).tolist()


def test_a_zero_top_word_is_kept(monkeypatch) -> None:
    """SeedSequence(int) drops leading zero words; the mask namespace must keep all eight."""
    import moebius.seeding as seeding

    monkeypatch.setattr(seeding, "derive", lambda namespace, *keys: 5)  # a digest whose top 7 words are 0
    assert seeding._entropy("mask", "p") == [5, 0, 0, 0, 0, 0, 0, 0]
    assert seeding._entropy("train", 1) == 5  # 63-bit namespaces seed with the integer, as default_rng did


def test_seeds_fit_their_generators() -> None:
    for key in range(50):
        assert 0 <= image_seed(key, "x") < 2**63
        assert 0 <= derive("train", key, "init") < 2**63
    g = torch_generator("train", 1, "batch", 0)
    assert torch.randint(0, 1000, (4,), generator=g).tolist() == \
        torch.randint(0, 1000, (4,), generator=torch_generator("train", 1, "batch", 0)).tolist()
    assert numpy_rng("train", 1, "x").random() != numpy_rng("train", 1, "y").random()


@pytest.mark.hostile("a seed namespace that does not exist ('trian')", "UnknownNameError naming the close one")
def test_unknown_namespace_is_named() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'train'"):
        derive("trian", 1)
