"""Parameter counts of every model against model_facts.md, and Table 2's switch table against the paper."""

from __future__ import annotations

import csv

import pytest
import torch

from moebius.models.presets import get_preset
from moebius.models.registry import MODEL_NAMES, build_model
from moebius.models.student import student_spec
from moebius.models.variants import EXPERIMENTS, variant_spec

# "Table 2 variants" and "State dicts and parameter counts" in docs/model_facts.md
FACT_PARAMS = {
    "student": 226_041_531,
    "teacher": 862_251_708,
    1: 525_918_108, 11: 525_918_108,
    2: 496_415_908, 12: 496_415_908,
    3: 514_463_308, 13: 514_463_308,
    4: 478_049_308, 14: 478_049_308,
    5: 314_867_331, 15: 314_867_331,
    6: 484_961_108, 7: 484_961_108,
    8: 273_910_331,
    9: 226_041_531, 10: 226_041_531,
}


def _meta(name: str) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(name, "paper")


@pytest.mark.parametrize("key", list(FACT_PARAMS))
def test_parameter_count(key: str | int) -> None:
    name = key if isinstance(key, str) else f"exp{key}"
    assert sum(p.numel() for p in _meta(name).parameters()) == FACT_PARAMS[key]


def test_student_buffers() -> None:
    model = _meta("student")
    assert sum(b.numel() for b in model.buffers()) == 152_950
    assert len(model.state_dict()) == 1203


def test_exp9_is_the_student(read_manifest) -> None:
    # Against values that do not come from the code: the paper's student (Sec. 3.2: Local-λ,
    # Interactive-λ, Mix-FFN, DWConv, trained with KD) and the official Moebius checkpoint's layout.
    assert (EXPERIMENTS[9].self_attention, EXPERIMENTS[9].cross_attention, EXPERIMENTS[9].ffn,
            EXPERIMENTS[9].conv, EXPERIMENTS[9].kd) == ("LocalLambda", "InteractiveLambda", "MixFFN", "DWConv", True)
    official = [(k, torch.Size(s)) for k, s, _ in read_manifest("moebius_unet")]
    assert [(k, v.shape) for k, v in _meta("exp9").state_dict().items()] == official
    spec = student_spec(get_preset("paper"))
    assert (spec.self_attention, spec.cross_attention, spec.ffn, spec.conv, spec.block_out_channels, spec.mid_block) == (
        "LocalLambda", "InteractiveLambda", "MixFFN", "DWConv", (320, 640, 1280), False)


def test_experiment_table_matches_paper_csv(manifest_dir) -> None:
    with open(manifest_dir / "table2_architecture_ablation.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(EXPERIMENTS) == 15
    for row in rows:
        e = EXPERIMENTS[int(row["exp"])]
        assert (e.self_attention, e.cross_attention, e.ffn, e.conv) == (
            row["self_attention"], row["cross_attention"], row["ffn"], row["conv"],
        )
        assert e.kd == (row["kd"] == "true")
        # reported params (M) agree with the built model's count
        assert round(FACT_PARAMS[e.exp] / 1e6) == int(row["params_m"])


def test_pairs_share_architecture() -> None:
    preset = get_preset("smoke")
    assert variant_spec(EXPERIMENTS[1], preset) == variant_spec(EXPERIMENTS[11], preset)
    assert variant_spec(EXPERIMENTS[6], preset) == variant_spec(EXPERIMENTS[7], preset)
    assert variant_spec(EXPERIMENTS[1], preset) != variant_spec(EXPERIMENTS[5], preset)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_named_layers_exist(name: str) -> None:
    model = _meta(name)
    params = dict(model.named_parameters())
    assert model.final_layer_param in params and model.coarse_layer_param in params
    assert params[model.final_layer_param].shape[0] == 4  # the ε output layer
    dw = model.spec.conv == "DWConv"
    assert model.final_layer_param == ("diff_model.conv_out.conv_pw.weight" if dw else "diff_model.conv_out.weight")
    if name == "teacher":
        assert model.coarse_feature_index == 5
        assert model.coarse_layer_param == "diff_model.up_blocks.0.upsamplers.0.conv.weight"
    else:
        assert model.coarse_feature_index == 2
        assert model.coarse_layer_param == "diff_model.down_blocks.2.attentions.1.proj_out.weight"
    assert model.latent_size == 64 and model.preset == "paper"
