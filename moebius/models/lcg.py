"""Latent Categories Guidance (LCG) token ids (paper Sec. 3.1, Fig. 1; PixelHacker).

The official ``RemovalModel`` owns an ``nn.Embedding(20, 3072)``; ten consecutive ids form one
conditioning sequence E_LCG (K = 10 tokens). Ids 0..9 are the "background" (removal) task, used as the
conditional branch of classifier-free guidance; ids 10..19 are the "foreground" task, used as the
unconditional branch. A CFG batch is ``[uncond, cond]``.

In training the official dataset (``RemovalDataset._get_input_ids``) gives each sample the ids of its
task category: a background (removal) sample 0..9, a foreground (object) sample 10..19; a sample of a
mask-free dataset is a background sample (``category_ids``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moebius.errors import ModelInputError

NUM_TOKENS = 10
"""Tokens per LCG sequence (m in Interactive-λ; ``rel_pos_emb`` is sized for exactly this many)."""

NUM_EMBEDDINGS = 2 * NUM_TOKENS
"""Rows of the embedding table: one background and one foreground sequence."""

CONDITIONAL_OFFSET = 0
UNCONDITIONAL_OFFSET = NUM_TOKENS


def lcg_ids(batch_size: int, conditional: bool, device: torch.device | str | None = None) -> torch.Tensor:
    """Return the (batch_size, 10) long ids: 0..9 if ``conditional`` (background) else 10..19."""
    if batch_size < 1:
        raise ModelInputError(f"batch_size must be >= 1, got {batch_size}")
    offset = CONDITIONAL_OFFSET if conditional else UNCONDITIONAL_OFFSET
    row = torch.arange(offset, offset + NUM_TOKENS, dtype=torch.long, device=device)  # (10,)
    return row.unsqueeze(0).expand(batch_size, NUM_TOKENS).contiguous()  # (B, 10)


def cfg_ids(batch_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Return the (2*batch_size, 10) ids of a CFG batch: unconditional rows first, then conditional."""
    return torch.cat([lcg_ids(batch_size, False, device), lcg_ids(batch_size, True, device)], dim=0)


TASK_CATEGORIES = ("background", "foreground")
"""Task categories of the official training data, in id order: background 0..9, foreground 10..19."""


def category_ids(categories: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
    """Return the (len(categories), 10) ids of samples of these task categories (official rule)."""
    rows = []
    for c in categories:
        if c not in TASK_CATEGORIES:
            raise ModelInputError(f"unknown LCG task category {c!r}; known: {', '.join(TASK_CATEGORIES)}")
        rows.append(lcg_ids(1, c == "background", device))
    if not rows:
        raise ModelInputError("category_ids needs at least one sample")
    return torch.cat(rows, dim=0)  # (B, 10)
