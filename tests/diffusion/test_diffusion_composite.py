"""The three ways output meets input (composite.finish), the official blurred paste-back by hand."""

from __future__ import annotations

import math

import pytest
import torch

from moebius.diffusion import SamplerError, blurred_mask, composite, finish, paste_back, paste_leak


def _edge_mask(size: int = 40, edge: int = 20) -> torch.Tensor:
    """(1,1,size,size): hole (1) from column ``edge`` on, known before it."""
    m = torch.zeros(1, 1, size, size)
    m[..., edge:] = 1.0
    return m


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_blurred_mask_is_a_sigma_3_gaussian_of_the_hole() -> None:
    """PIL GaussianBlur(radius=3) is σ = 3 px: a straight edge becomes 255·Φ((x − 19.5)/3) (±3 levels)."""
    row = (blurred_mask(_edge_mask(), 3.0)[0, 0, 5] * 255).tolist()
    for x in range(40):
        assert row[x] == pytest.approx(255 * _phi((x - 19.5) / 3.0), abs=3.5), x
    # the blurred side is the hole (1 = hole, as the official mask is 255 = hole), 8-bit levels
    assert row[0] == 0 and row[39] == 255 and row[19] < 127.5 < row[20]
    assert all(abs(v - round(v)) < 1e-9 for v in row)
    with pytest.raises(SamplerError, match="> 0"):
        blurred_mask(_edge_mask(), 0.0)


def test_paste_back_matches_a_hand_computation() -> None:
    """out = ⌊(⌊255·(x+1)/2⌋/255 · m + (1 − m) · input/255) · 255⌋ on 8-bit levels, m = blurred/255."""
    mask = _edge_mask()
    image = torch.full((1, 3, 40, 40), 40 / 127.5 - 1)  # input level 40 everywhere
    output = torch.full((1, 3, 40, 40), 0.3)  # decoded 0.3 → level ⌊0.65 · 255⌋ = ⌊165.75⌋ = 165
    levels = ((paste_back(output, image, mask, 3.0) + 1) * 127.5).round()[0, 0, 5]
    m = (blurred_mask(mask, 3.0)[0, 0, 5] * 255).round().tolist()
    assert (m[19], m[20]) == (111, 144)  # the two pixels either side of the edge
    assert levels[20] == math.floor((165 * 144 + 40 * 111) / 255)  # first hole pixel: 110 (43 % input)
    assert levels[19] == math.floor((165 * 111 + 40 * 144) / 255)  # last known pixel: 94 (output bleeds in)
    assert levels[0] == 40 and levels[39] == 165  # far from the edge: input / output exactly
    assert (levels[20], levels[19]) == (110, 94)


def test_finish_modes() -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 24, 24, generator=g) * 2 - 1
    output = torch.rand(2, 3, 24, 24, generator=g) * 2.4 - 1.2  # decoders overshoot [-1, 1]
    mask = torch.zeros(2, 1, 24, 24)
    mask[:, :, 6:18, 4:12] = 1.0
    hole = mask.expand_as(image) > 0.5
    hard = finish(output, image, mask, "hard")
    torch.testing.assert_close(hard, composite(output, image, mask))
    assert torch.equal(hard[~hole], image[~hole]) and torch.equal(hard[hole], output[hole])
    # none: the decoded image everywhere, on the official 8-bit levels (truncated, clamped)
    none = finish(output, image, mask, "none")
    expected = torch.floor(((output + 1) / 2).clamp(0, 1) * 255) / 127.5 - 1
    torch.testing.assert_close(none, expected, rtol=0, atol=1e-6)
    assert (none[~hole] - image[~hole]).abs().max() > 0.1  # known pixels are not pasted back
    blurred = finish(output, image, mask, "blurred", 3.0)
    assert blurred.shape == image.shape and blurred.min() >= -1 and blurred.max() <= 1
    with pytest.raises(SamplerError, match="unknown paste-back mode"):
        finish(output, image, mask, "soft")
    with pytest.raises(SamplerError, match="must be"):
        finish(output, image, mask[:, :, :12], "hard")


def test_paste_leak_of_a_straight_edge() -> None:
    """Hole = 20 columns: leak = Σ_d (1 − Φ((d + 0.5)/3)) / 20 over the hole columns ≈ 0.06."""
    expected = sum(1 - _phi((d + 0.5) / 3.0) for d in range(20)) / 20
    assert paste_leak(_edge_mask(), 3.0) == pytest.approx(expected, abs=0.002)
    assert paste_leak(torch.zeros(1, 1, 8, 8)) == 0.0
