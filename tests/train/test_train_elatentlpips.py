"""E-LatentLPIPS: the official state-dict layout loads strict; the stand-in behaves like a distance."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moebius.errors import TrainError
from moebius.train.elatentlpips import (
    ELatentLPIPS,
    build_perceptual_net,
    load_elatentlpips,
    standin_elatentlpips,
)

MANIFEST = Path(__file__).parent / "manifests" / "elatentlpips_sdxl_state_dict.tsv"  # measured from the official code


def _manifest() -> dict[str, tuple[tuple[int, ...], str]]:
    rows = MANIFEST.read_text().splitlines()[1:]
    out = {}
    for line in rows:
        key, shape, dtype, _ = line.split("\t")
        out[key] = (() if shape == "scalar" else tuple(int(s) for s in shape.split("x")), dtype)
    return out


def test_state_dict_matches_official_manifest_and_loads_strict(tmp_path):
    ref = _manifest()
    net = ELatentLPIPS()
    ours = {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}
    assert ours == ref  # same keys (lin* and lins.* both), shapes and dtypes
    # a file built from the manifest alone (as the official .pth is) loads through the strict loader
    fake = {k: (torch.zeros(s, dtype=torch.int64) if d == "int64" else torch.rand(s)) for k, (s, d) in ref.items()}
    for i in range(5):  # the official file stores each head twice, as the same tensor
        fake[f"lins.{i}.model.1.weight"] = fake[f"lin{i}.model.1.weight"]
    torch.save(fake, tmp_path / "sdxl_latest_vgg16_tuned.pth")
    loaded = load_elatentlpips(tmp_path / "sdxl_latest_vgg16_tuned.pth")
    assert torch.equal(loaded.lin3.model[1].weight, fake["lin3.model.1.weight"])
    assert loaded.lins[3] is loaded.lin3


def test_a_wrong_file_is_a_clear_error(tmp_path):
    torch.save({"net.slice1.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(TrainError, match="not an E-LatentLPIPS"):
        load_elatentlpips(tmp_path / "bad.pth")


def test_standin_is_deterministic_and_a_distance():
    a, b = standin_elatentlpips(), standin_elatentlpips()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(3, 4, 16, 16, generator=g), torch.randn(3, 4, 16, 16, generator=g)
    d_same = a(z0, z0)
    d_near = a(z0, z0 + 0.05 * z1)
    d_far = a(z0, z1)
    assert d_same.shape == (3,)
    assert torch.allclose(d_same, torch.zeros(3), atol=1e-6)
    assert bool((d_far > d_near).all()) and bool((d_near > 0).all())


def test_gradient_flows_to_the_input_but_not_the_network():
    net, kind = build_perceptual_net("standin", None)
    assert kind == "standin"
    z = torch.randn(2, 4, 16, 16, requires_grad=True)
    net(z, torch.zeros_like(z)).sum().backward()
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training  # BatchNorm stays on its calibrated statistics


def test_unknown_kind_is_an_error():
    with pytest.raises(TrainError, match="unknown perceptual"):
        build_perceptual_net("lpips", None)
