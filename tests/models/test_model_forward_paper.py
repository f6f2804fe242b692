"""Paper-size (512 px -> 64×64 latent) forward passes on CPU: output and block_outputs as model_facts.md.

Slow (a paper-size build plus a forward takes tens of seconds on 2 cores): marked ``slow``; each model is
built once for this module and test_forward_equivalence.
"""

from __future__ import annotations

import pytest
import torch


pytestmark = pytest.mark.slow

# model_facts.md, "block_outputs": (channels, side) per block
STUDENT_BLOCKS = [(320, 32), (640, 16), (1280, 16), (1280, 32), (640, 64), (320, 64)]
TEACHER_BLOCKS = [(320, 32), (640, 16), (1280, 8), (1280, 8), (1280, 8), (1280, 16), (1280, 32), (640, 64), (320, 64)]


# The seed-0 model's forward on one conditional row of seed-7 noise at t = 10, shared with
# test_forward_equivalence (tests/models/conftest.py ``paper_forwards``): one paper build per model.
@pytest.fixture(scope="module")
def student_run(paper_forwards):
    return paper_forwards.take("student")


@pytest.fixture(scope="module")
def teacher_run(paper_forwards):
    return paper_forwards.take("teacher")


@pytest.mark.parametrize("run,blocks", [("student_run", STUDENT_BLOCKS), ("teacher_run", TEACHER_BLOCKS)])
def test_paper_forward_shapes(run: str, blocks: list[tuple[int, int]], request: pytest.FixtureRequest) -> None:
    model, out = request.getfixturevalue(run)
    assert out.sample.shape == (1, 4, 64, 64)
    assert torch.isfinite(out.sample).all()
    assert [(o.shape[1], o.shape[2]) for o in out.block_outputs] == blocks
    assert all(o.shape[2] == o.shape[3] for o in out.block_outputs)
    coarse = out.block_outputs[model.coarse_feature_index]
    assert tuple(coarse.shape) == (1, 1280, 16, 16)  # the L_C_KD feature of Sec. 3.3
