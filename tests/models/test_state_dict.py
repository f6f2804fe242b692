"""The student, teacher and VAE have the official state-dict keys, shapes and order, and load strictly."""

from __future__ import annotations

import pytest
import torch

from moebius.models.checkpoint import CheckpointError, check_state_dict
from moebius.models.registry import build_model
from moebius.models.vae import build_vae


def _layout(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


@pytest.mark.parametrize("name,manifest", [("student", "moebius_unet"), ("teacher", "pixelhacker_unet")])
def test_unet_layout_equals_manifest(name: str, manifest: str, read_manifest) -> None:
    with torch.device("meta"):  # layout only: no memory, no init time
        model = build_model(name, "paper")
    assert _layout(model) == [(k, s) for k, s, _ in read_manifest(manifest)]


def test_student_loads_zero_manifest_strictly(zero_state_dict) -> None:
    with torch.device("meta"):
        model = build_model("student", "paper")
    state = zero_state_dict("moebius_unet")
    check_state_dict(model, state, strict=True)
    model.load_state_dict(state, strict=True, assign=True)
    assert float(model.diff_model.conv_out.conv_pw.weight.detach().abs().sum()) == 0.0
    assert int(model.diff_model.conv_in.bn1.num_batches_tracked) == 0


def test_teacher_loads_zero_manifest_strictly(zero_state_dict) -> None:
    with torch.device("meta"):
        model = build_model("teacher", "paper")
    state = zero_state_dict("pixelhacker_unet")
    check_state_dict(model, state, strict=True)
    model.load_state_dict(state, strict=True, assign=True)  # assign: no second 3.4 GB copy
    assert model.diff_model.conv_out.weight.device.type == "cpu"
    assert float(model.diff_model.mid_block.resnets[1].conv2.weight.detach().abs().sum()) == 0.0


def test_vae_layout_and_strict_load(read_manifest, zero_state_dict) -> None:
    vae = build_vae("paper")
    assert _layout(vae) == [(k, s) for k, s, _ in read_manifest("vae")]
    vae.load_state_dict(zero_state_dict("vae"), strict=True)
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863


def test_wrong_manifest_is_reported_clearly(zero_state_dict) -> None:
    with torch.device("meta"):
        model = build_model("student", "paper")
    expected = r"missing: diff_model\.conv_in\.conv_dw\.weight.*unexpected: diff_model\.conv_in\.weight"
    with pytest.raises(CheckpointError, match=expected):
        with torch.device("meta"):  # shapes are all check_state_dict reads
            state = zero_state_dict("pixelhacker_unet")
        check_state_dict(model, state, strict=True)
