"""Regenerate the MAT reference data of tests/eval/test_mat.py from the official code.

    python tests/eval/manifests/make_mat_reference.py --mat-repo /path/to/MAT-clone [--full] [--mat-commit SHA]

Needs a clone of github.com/fenglinglwb/MAT (its networks/, torch_utils/, dnnlib/ are imported here,
in this process: it is our own tool, run by hand, never by the harness). Runs on a CPU: the official
custom ops (upfirdn2d, bias_act) take their reference PyTorch paths there. Writes, beside this file:

- ``mat_state_dict.tsv``: key, shape, dtype, param|buffer of the official ``Generator(z_dim=512,
  c_dim=0, w_dim=512, img_resolution=512, img_channels=3)`` (the G_ema of every 512-px checkpoint).
- ``mat_reference_<res>.json``: the official generator at ``res`` px, every tensor filled by
  ``moebius.eval.mat.deterministic_state`` (seed below), run on ``reference_inputs`` with
  noise_mode='const'; pixels of its output and of its stage-1 output at fixed positions. The official
  ``F.dropout`` of the two style-manipulation steps (active at inference) is replaced by the same
  Bernoulli(1/2) draws ``moebius.eval.mat.draw_inputs`` makes, from the same generator.

It also checks the end-to-end path and prints the differences: the filled official generator is
pickled as the official training loop does (persistence pickle: classes carry their source), converted
by ``moebius.eval.mat_convert.convert_mat_pickle`` (isolated subprocess → safetensors), loaded into
``MATGenerator`` through ``load_mat_state`` and run on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SEED = 20220330  # deterministic_state seed of the pinned weights
INPUT_SEED = 7


def reference_inputs(resolution: int, z_dim: int, keep_shapes, seed: int = INPUT_SEED):
    """(images (1,3,R,R) in [-1,1], known (1,1,R,R) 1 = known, z, keep1, keep2), all from one generator.

    The hole: a large rectangle (whole 8x8-token windows invalid at the 64x64 token grid, so the masked
    attention and the mask update both act) plus a small square.
    """
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(1, 3, resolution, resolution, generator=g) * 2 - 1
    known = torch.ones(1, 1, resolution, resolution)
    s = resolution / 128
    known[..., int(16 * s): int(100 * s), int(20 * s): int(90 * s)] = 0
    known[..., int(104 * s): int(116 * s), int(100 * s): int(112 * s)] = 0
    z = torch.randn(1, z_dim, generator=g)
    keep1 = (torch.rand(1, *keep_shapes[0], generator=g) < 0.5).float()
    keep2 = (torch.rand(1, *keep_shapes[1], generator=g) < 0.5).float()
    return images, known, z, keep1, keep2


def positions(resolution: int, known: torch.Tensor, n: int = 64) -> list[list[int]]:
    """n (channel, y, x) positions inside the hole, fixed by a seeded generator."""
    g = torch.Generator().manual_seed(1)
    hole = (known[0, 0] == 0).nonzero()
    pick = hole[torch.randperm(len(hole), generator=g)[:n]]
    chans = torch.randint(0, 3, (n,), generator=g)
    return [[int(c), int(y), int(x)] for c, (y, x) in zip(chans, pick)]


def _official(mat_repo: Path):
    sys.path.insert(0, str(mat_repo))
    try:
        import timm.models.layers
    except ImportError:  # MAT imports three names from timm and calls only to_2tuple
        layers = types.ModuleType("timm.models.layers")
        layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
        layers.DropPath = layers.trunc_normal_ = None
        timm, models = types.ModuleType("timm"), types.ModuleType("timm.models")
        timm.models, models.layers = models, layers
        sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
    from networks.mat import Generator

    return Generator


def write_manifest(Generator) -> None:
    torch.manual_seed(0)
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=512, img_channels=3)
    params = dict(G.named_parameters())
    lines = ["key\tshape\tdtype\tkind"]
    for k, v in G.state_dict().items():
        shape = "x".join(str(s) for s in v.shape) or "scalar"
        lines.append(f"{k}\t{shape}\t{str(v.dtype).removeprefix('torch.')}\t{'param' if k in params else 'buffer'}")
    (HERE / "mat_state_dict.tsv").write_text("\n".join(lines) + "\n")
    print(f"mat_state_dict.tsv: {len(lines) - 1} tensors")


def reference(Generator, resolution: int, mat_repo: Path, mat_commit: str | None) -> None:
    from moebius.eval.mat import MATConfig, MATGenerator, deterministic_state
    from moebius.eval.mat_convert import (
        convert_mat_pickle,
        load_mat_state,
        mat_from_state,
    )

    ours = MATGenerator(MATConfig(resolution=resolution)).eval()
    G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3).eval()
    state = deterministic_state(ours, SEED)
    G.load_state_dict(state, strict=True)  # same keys: the same values land in both trees
    ours.load_state_dict(state, strict=True)
    images, known, z, keep1, keep2 = reference_inputs(resolution, 512, ours.keep_shapes())

    draws = iter([keep1, keep2])
    real_dropout = torch.nn.functional.dropout

    def dropout(x, p=0.5, training=True, inplace=False):  # the official mul_map = dropout(0.5 * ones)
        keep = next(draws)
        assert keep.shape == x.shape and p == 0.5, (keep.shape, x.shape, p)
        return x * keep / (1 - p)

    torch.nn.functional.dropout = dropout
    try:
        with torch.no_grad():
            out, stage1 = G(images, known, z, None, truncation_psi=1, noise_mode="const", return_stg1=True)
    finally:
        torch.nn.functional.dropout = real_dropout
    with torch.no_grad():
        mine, mine1 = ours(images, known, z, keep1, keep2, return_stage1=True)
    scale = out.abs().max().item()
    print(f"{resolution}px direct: max |ours - official| = {(mine - out).abs().max().item():.3g} "
          f"(stage 1: {(mine1 - stage1).abs().max().item():.3g}; output max |x| {scale:.3g})")

    with tempfile.TemporaryDirectory() as tmp:
        pkl = Path(tmp) / "G.pkl"
        with open(pkl, "wb") as fh:
            pickle.dump({"G_ema": G, "G": G, "D": None}, fh)
        summary = convert_mat_pickle(pkl, Path(tmp) / "G.safetensors", mat_repo)
        conv, sha = load_mat_state(Path(tmp) / "G.safetensors")
        model = mat_from_state(conv, "converted")
        with torch.no_grad():
            via = model(images, known, z, keep1, keep2)
    print(f"{resolution}px via convert-mat: max |ours - official| = {(via - out).abs().max().item():.3g} "
          f"({summary['tensors']} tensors, {summary['parameters']} parameters, sha256 {sha[:12]}...)")

    pos = positions(resolution, known)
    commit = mat_commit or subprocess.run(["git", "-C", str(mat_repo), "rev-parse", "HEAD"], capture_output=True,
                                          text=True, check=False).stdout.strip()
    hole = (known == 0).expand_as(out)
    ref = {
        "source": "github.com/fenglinglwb/MAT networks/mat.py, Generator(z_dim=512, c_dim=0, w_dim=512, "
                  f"img_resolution={resolution}, img_channels=3), noise_mode='const', truncation_psi=1",
        "mat_commit": commit or "unknown",
        "torch": torch.__version__,
        "resolution": resolution, "weights_seed": SEED, "input_seed": INPUT_SEED,
        "positions": pos,
        "output": [out[0, c, y, x].item() for c, y, x in pos],
        "stage1": [stage1[0, c, y, x].item() for c, y, x in pos],
        "hole_mean": out[hole].mean().item(), "hole_std": out[hole].std().item(),
        "known_equal_input": bool(torch.equal(out[~hole], images[~hole])),
    }
    (HERE / f"mat_reference_{resolution}.json").write_text(json.dumps(ref, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mat-repo", type=Path, required=True)
    parser.add_argument("--full", action="store_true", help="also the 512-px reference (a few minutes on a CPU)")
    parser.add_argument("--mat-commit", help="the MAT commit, when --mat-repo is not a git checkout")
    args = parser.parse_args()
    Generator = _official(args.mat_repo.resolve())
    write_manifest(Generator)
    for res in (128, 512) if args.full else (128,):
        reference(Generator, res, args.mat_repo.resolve(), args.mat_commit)


if __name__ == "__main__":
    main()
