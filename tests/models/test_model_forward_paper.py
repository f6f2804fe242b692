"""Paper-size (512 px -> 64×64 latent) forward passes on CPU: output and block_outputs as model_facts.md.

Slow (a paper-size build plus a forward takes tens of seconds on 2 cores): marked ``slow``; each model is
built once per module.
"""

from __future__ import annotations

import pytest
import torch

from moebius.models.lcg import lcg_ids
from moebius.models.registry import build_model

pytestmark = pytest.mark.slow

# model_facts.md, "block_outputs": (channels, side) per block
STUDENT_BLOCKS = [(320, 32), (640, 16), (1280, 16), (1280, 32), (640, 64), (320, 64)]
TEACHER_BLOCKS = [(320, 32), (640, 16), (1280, 8), (1280, 8), (1280, 8), (1280, 16), (1280, 32), (640, 64), (320, 64)]


def _forward(name: str) -> tuple[torch.nn.Module, object]:
    torch.manual_seed(0)
    model = build_model(name, "paper").eval()
    x = torch.randn(1, 9, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = model(x, 999, lcg_ids(1, conditional=True))
    return model, out


@pytest.fixture(scope="module")
def student_run():
    return _forward("student")


@pytest.fixture(scope="module")
def teacher_run():
    return _forward("teacher")


@pytest.mark.parametrize("run,blocks", [("student_run", STUDENT_BLOCKS), ("teacher_run", TEACHER_BLOCKS)])
def test_paper_forward_shapes(run: str, blocks: list[tuple[int, int]], request: pytest.FixtureRequest) -> None:
    model, out = request.getfixturevalue(run)
    assert out.sample.shape == (1, 4, 64, 64)
    assert torch.isfinite(out.sample).all()
    assert [(o.shape[1], o.shape[2]) for o in out.block_outputs] == blocks
    assert all(o.shape[2] == o.shape[3] for o in out.block_outputs)
    coarse = out.block_outputs[model.coarse_feature_index]
    assert tuple(coarse.shape) == (1, 1280, 16, 16)  # the L_C_KD feature of Sec. 3.3
