"""The config tree: strict loading, both scale files, the generated schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from moebius.config import Config, ConfigError, config_from_dict, config_hash, json_schema, load_config, merge

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["smoke", "full"])
def test_scale_files_load_and_validate_against_schema(name: str) -> None:
    cfg = load_config(ROOT / "config" / f"{name}.yaml")
    assert cfg.scale == name
    data = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    jsonschema.validate(data, json_schema())


def test_full_scale_carries_the_paper_hyperparameters() -> None:
    cfg = load_config(ROOT / "config" / "full.yaml")
    train = cfg.distill.train
    assert (train.steps, train.global_batch, train.lr, train.weight_decay) == (138_000, 768, 2e-4, 0.1)
    assert [round(m * train.steps) for m in train.lr_milestones] == [111_000, 129_000]
    assert (cfg.sample.steps, cfg.sample.cfg_natural, cfg.sample.cfg_portrait) == (20, 2.5, 2.0)
    assert cfg.benchmarks["celebahq512"].n_images == 2993
    assert cfg.benchmarks["places2_large"].n_images == 36500
    assert {t: cfg.finetune.targets[t].steps for t in cfg.finetune.targets} == {
        "places2": 51_000,
        "celebahq": 60_000,
        "ffhq": 117_000,
    }


def test_smoke_and_full_share_benchmark_names_and_protocols() -> None:
    smoke = load_config(ROOT / "config" / "smoke.yaml")
    full = load_config(ROOT / "config" / "full.yaml")
    assert sorted(smoke.benchmarks) == sorted(full.benchmarks)
    for name in full.benchmarks:
        assert smoke.benchmarks[name].mask_protocol == full.benchmarks[name].mask_protocol


def test_unknown_key_is_rejected_with_its_path_and_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"config\.distill\.train: unknown key 'stpes' \(did you mean 'steps'\?\)"):
        config_from_dict({"distill": {"train": {"stpes": 3}}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"seed": "zero"}, r"config\.seed: expected an integer"),
        ({"seed": True}, r"config\.seed: expected an integer"),
        ({"sample": {"start": "middle"}}, r"config\.sample\.start: 'middle' is not one of"),
        ({"distill": {"train": {"lr": "fast"}}}, r"config\.distill\.train\.lr: expected a number"),
        ({"masks": {"train_protocols": "mat"}}, r"config\.masks\.train_protocols: expected a list"),
        ({"benchmarks": {"x": {"dataset": "d"}}}, r"config\.benchmarks\.x: missing required key"),
    ],
)
def test_wrong_types_are_rejected(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_numeric_strings_from_yaml_become_floats() -> None:
    # YAML 1.1 reads `2e-4` (no dot) as a string; the loader accepts it as the number it means.
    assert config_from_dict({"distill": {"train": {"lr": "2e-4"}}}).distill.train.lr == 2e-4


def test_later_files_override_earlier_ones(tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("sample:\n  steps: 7\n")
    cfg = load_config(ROOT / "config" / "smoke.yaml", override)
    assert cfg.sample.steps == 7
    assert cfg.scale == "smoke"  # untouched keys survive the merge
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_config_hash_changes_with_any_value() -> None:
    base = Config()
    assert config_hash(base) == config_hash(Config())
    assert config_hash(base) != config_hash(config_from_dict({"seed": 1}))


def test_bad_yaml_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scale: [smoke\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_committed_schema_matches_the_dataclasses() -> None:
    committed = json.loads((ROOT / "workflow" / "schemas" / "config.schema.json").read_text())
    assert committed == json_schema(), "regenerate with: moebius config schema --out workflow/schemas/config.schema.json"
    assert committed["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_rejects_unknown_keys_and_wrong_types() -> None:
    schema = json_schema()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sacle": "smoke"}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sample": {"steps": "twenty"}}, schema)


def test_benchmark_lookup_hints_the_closest_name() -> None:
    cfg = load_config(ROOT / "config" / "smoke.yaml")
    assert cfg.benchmark("places2_test") is cfg.benchmarks["places2_test"]
    with pytest.raises(ConfigError, match=r"unknown benchmark 'places2_tset' \(did you mean 'places2_test'\?\)"):
        cfg.benchmark("places2_tset")
