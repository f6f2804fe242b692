"""Weight files: round trips in both formats, strict-load errors that name the offending keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from safetensors import safe_open

from moebius.models.checkpoint import CheckpointError, load_state_dict_file, load_weights, save_weights
from moebius.models.registry import build_model


@pytest.fixture(scope="module")
def student() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("student", "smoke")
    model(torch.randn(2, 9, 16, 16), 5, torch.zeros(2, 10, dtype=torch.long))  # move BN running stats
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_round_trip(student, tmp_path: Path) -> None:
    path = tmp_path / "w" / "student.safetensors"
    save_weights(student, path, metadata={"config_hash": "abc"})
    assert [p.name for p in path.parent.iterdir()] == ["student.safetensors"]  # no temp file left
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
    assert (meta["moebius.name"], meta["moebius.preset"], meta["config_hash"]) == ("student", "smoke", "abc")
    fresh = build_model("student", "smoke")
    assert not _same(fresh, student)
    load_weights(fresh, path)
    assert _same(fresh, student)
    assert int(fresh.diff_model.conv_in.bn1.num_batches_tracked) == 1


def test_torch_bin_round_trip(student, tmp_path: Path) -> None:
    path = tmp_path / "official.bin"
    torch.save(student.state_dict(), path)  # the official checkpoints are torch.save'd state dicts
    fresh = load_weights(build_model("student", "smoke"), path)
    assert _same(fresh, student)


def test_mismatches_are_listed(student, tmp_path: Path) -> None:
    state = dict(student.state_dict())
    del state["embedding_layer.weight"]
    state["diff_model.extra.weight"] = torch.zeros(1)
    state["diff_model.conv_out.conv_pw.weight"] = torch.zeros(3, 32, 1, 1)
    path = tmp_path / "bad.bin"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model("student", "smoke"), path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "1 missing: embedding_layer.weight" in msg
    assert "1 unexpected: diff_model.extra.weight" in msg
    assert "diff_model.conv_out.conv_pw.weight (3, 32, 1, 1) vs model (4, 32, 1, 1)" in msg


def test_non_strict_ignores_missing_but_not_shapes(student, tmp_path: Path) -> None:
    state = {k: v for k, v in student.state_dict().items() if k != "embedding_layer.weight"}
    path = tmp_path / "partial.bin"
    torch.save(state, path)
    model = load_weights(build_model("student", "smoke"), path, strict=False)
    assert torch.equal(model.diff_model.conv_out.conv_pw.weight, student.diff_model.conv_out.conv_pw.weight)
    with pytest.raises(CheckpointError, match="shape-mismatched"):
        load_weights(build_model("teacher", "smoke"), path, strict=False)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_state_dict_file(tmp_path / "none.bin")
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown checkpoint format"):
        load_state_dict_file(tmp_path / "w.npz")
    (tmp_path / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state_dict_file(tmp_path / "broken.safetensors")
    torch.save({"a": 1}, tmp_path / "notensors.pt")
    with pytest.raises(CheckpointError, match="flat state dict"):
        load_state_dict_file(tmp_path / "notensors.pt")


def test_save_needs_safetensors_suffix(student, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="safetensors"):
        save_weights(student, tmp_path / "w.bin")


@pytest.mark.hostile(
    "an official-style .bin whose pickle calls open() when loaded (a code-carrying checkpoint)",
    "CheckpointError, one line: the file carries code and is refused; the code never runs; no weights_only=False advice",
)
def test_code_carrying_pickle_is_refused_without_pytorch_advice(student, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.bin"
    torch.save({**student.state_dict(), "payload": Payload()}, path)
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model("student", "smoke"), path)
    msg = str(err.value)
    assert msg.startswith(f"refused {path}: it carries code (io.open)") and "\n" not in msg
    assert "weights_only=False" not in msg and "trust" not in msg and "\x1b" not in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__  # PyTorch's advice is not chained in
    assert not marker.exists()


@pytest.mark.hostile(
    "weight files cut short: a .safetensors at half its bytes, a .bin (zip) at half, an empty .pt",
    "CheckpointError, one line naming the file as truncated or corrupt",
)
@pytest.mark.parametrize("name, keep", [("w.safetensors", 0.5), ("w.bin", 0.5), ("w.pt", 0.0)])
def test_truncated_files_are_one_line(student, tmp_path: Path, name: str, keep: float) -> None:
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_weights(student, path)
    else:
        torch.save(student.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError) as err:
        load_weights(build_model("student", "smoke"), path)
    msg = str(err.value)
    assert msg.startswith(f"cannot read {path}: truncated or corrupt") and "\n" not in msg
