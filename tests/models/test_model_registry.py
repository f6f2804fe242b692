import pytest
import torch

from moebius.errors import UnknownNameError
from moebius.models.registry import MODEL_NAMES, build_model, model_spec


def test_names() -> None:
    assert MODEL_NAMES[:2] == ("student", "teacher")
    assert MODEL_NAMES[2:] == tuple(f"exp{i}" for i in range(1, 16))


def test_unknown_model_hints() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'student'"):
        build_model("studnet")
    with pytest.raises(UnknownNameError, match="exp16"):
        build_model("exp16")


def test_unknown_preset_hints() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'smoke'"):
        build_model("student", "smok")


def test_presets_share_topology() -> None:
    paper, smoke = model_spec("student", "paper"), model_spec("student", "smoke")
    assert (paper.self_attention, paper.cross_attention, paper.ffn, paper.conv) == (
        smoke.self_attention, smoke.cross_attention, smoke.ffn, smoke.conv,
    )
    assert paper.num_levels == smoke.num_levels and paper.mid_block == smoke.mid_block
    assert paper.latent_size // smoke.latent_size == 4


def test_smoke_model_attributes() -> None:
    model = build_model("exp5", "smoke")
    assert model.preset == "smoke" and model.latent_size == 16 and model.name == "exp5"
    assert model.final_layer_param == "diff_model.conv_out.conv_pw.weight"
    assert isinstance(model.get_parameter(model.coarse_layer_param), torch.nn.Parameter)


def test_student_linear_init_is_xavier() -> None:
    torch.manual_seed(0)
    model = build_model("student", "smoke")
    lin = model.diff_model.time_embedding.linear_2
    bound = (6 / (lin.in_features + lin.out_features)) ** 0.5
    assert float(lin.bias.detach().abs().max()) == 0.0
    assert float(lin.weight.detach().abs().max()) <= bound
    assert float(lin.weight.detach().abs().max()) > 0.9 * bound
