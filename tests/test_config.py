"""The config tree: strict loading, both scale files, the generated schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from moebius.config import (
    EVAL_MODELS,
    LOSS_NAMES,
    TABLE2_EXPERIMENTS,
    Config,
    ConfigError,
    config_from_dict,
    config_hash,
    json_schema,
    load_config,
    merge,
    read_yaml,
    to_dict,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["smoke", "rehearsal", "full"])
def test_scale_files_load_and_validate_against_schema(name: str) -> None:
    cfg = load_config(ROOT / "config" / f"{name}.yaml")
    assert cfg.scale == name
    data = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    jsonschema.validate(data, json_schema())


def test_full_scale_carries_the_paper_hyperparameters() -> None:
    cfg = load_config(ROOT / "config" / "full.yaml")
    train = cfg.distill.train
    assert (train.steps, train.global_batch, train.lr, train.weight_decay) == (138_000, 768, 2e-4, 0.1)
    assert train.lr_milestones == (111_000, 129_000)  # absolute steps (ablations: the schedule truncated)
    assert (cfg.distill.balance, cfg.distill.balance_sync) == ("official", "per_rank")
    assert (train.pipeline, train.lcg_ids, train.gradient_checkpointing) == ("official", "category", True)
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


@pytest.mark.hostile("a float written without a dot or exponent sign (lr: 2e-4, 1.0e5) in a config file", "read as the number it means, by the CLI and the schema alike")
def test_yaml_floats_without_a_dot_are_numbers(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) reads `2e-4` and `1.0e5` as strings; the config loader reads them as numbers,
    # so the dataclasses and the JSON schema (which Snakemake checks) both accept the file.
    good = tmp_path / "lr.yaml"
    good.write_text("distill:\n  train: {lr: 2e-4, noise_offset: 1.0e-2, weight_decay: 1E-1}\n")
    assert yaml.safe_load(good.read_text())["distill"]["train"]["lr"] == "2e-4"  # the trap
    data = read_yaml(good)
    assert isinstance(data["distill"]["train"]["lr"], float)
    jsonschema.validate(data, json_schema())
    train = load_config(ROOT / "config" / "smoke.yaml", good).distill.train
    assert train.lr == pytest.approx(2e-4) and train.noise_offset == pytest.approx(0.01)
    assert train.weight_decay == pytest.approx(0.1)
    # A quoted string stays a string, and both the dataclasses and the schema refuse it.
    with pytest.raises(ConfigError, match=r"config\.distill\.train\.lr: expected a number, got str '2e-4'"):
        config_from_dict({"distill": {"train": {"lr": "2e-4"}}})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"distill": {"train": {"lr": "2e-4"}}}, json_schema())


def test_later_files_override_earlier_ones(tmp_path: Path) -> None:
    override = tmp_path / "override.yaml"
    override.write_text("sample:\n  steps: 7\n")
    cfg = load_config(ROOT / "config" / "smoke.yaml", override)
    assert cfg.sample.steps == 7
    assert cfg.scale == "smoke"  # untouched keys survive the merge
    assert merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_config_hash_changes_with_any_value() -> None:
    base = Config()
    # the same in another process with another hash seed (no set or dict-order randomness in it)
    code = "from moebius.config import Config, config_hash; print(config_hash(Config()))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120)
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() == config_hash(base)
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


# ---------------------------------------------------------------------------------------------
# Ranges (field metadata) and names (check_config), through the CLI and the schema
# ---------------------------------------------------------------------------------------------

SMOKE = ROOT / "config" / "smoke.yaml"


def smoke_with(override: dict) -> dict:
    return merge(yaml.safe_load(SMOKE.read_text()), override)


# (override of smoke.yaml, the start of the one-line error). Each is valid YAML of the right type.
OUT_OF_RANGE = [
    ({"distill": {"train": {"lr": -1.0e-3}}}, "config.distill.train.lr: -0.001 is not allowed; must be > 0"),
    ({"distill": {"train": {"lr": 0}}}, "config.distill.train.lr: 0 is not allowed; must be > 0"),
    ({"sample": {"steps": 0}}, "config.sample.steps: 0 is not allowed; must be >= 1"),
    ({"finetune": {"targets": {"ffhq": {"steps": 0}}}}, "config.finetune.targets.ffhq.steps: 0 is not allowed"),
    ({"distill": {"train": {"batch_size": 0}}}, "config.distill.train.batch_size: 0 is not allowed; must be >= 1"),
    ({"distill": {"train": {"lr_milestones": [0.5, 1.2]}}},
     "config.distill.train.lr_milestones[0]: expected an integer, got float 0.5"),
    ({"distill": {"train": {"lr_milestones": [0, 10]}}},
     "config.distill.train.lr_milestones[0]: 0 is not allowed; must be >= 1"),
    ({"sample": {"strength": 1.5}}, "config.sample.strength: 1.5 is not allowed; must be > 0 and <= 1"),
    ({"benchmarks": {"places2_test": {"size": 60}}},
     "config.benchmarks.places2_test.size: 60 is not allowed; must be >= 8 and a multiple of 8"),
    ({"seed": -1}, "config.seed: -1 is not allowed; must be >= 0"),
    ({"eval": {"models": []}}, "config.eval.models: [] is not allowed; needs at least 1 item"),
    ({"eval": {"models": ["telea", "telea"]}}, "config.eval.models: 'telea' is listed twice"),
    ({"eval": {"cfg_sweep": {"places2_test": [2.0, -1.0]}}},
     "config.eval.cfg_sweep.places2_test[1]: -1.0 is not allowed; must be >= 0"),
    ({"eval": {"min_fid_images": 1}}, "config.eval.min_fid_images: 1 is not allowed; must be >= 2"),
    ({"eval": {"sampler_starts": ["noise", "noise"]}}, "config.eval.sampler_starts: 'noise' is listed twice"),
    ({"sample": {"pixelhacker_strength": 1.5}},
     "config.sample.pixelhacker_strength: 1.5 is not allowed; must be > 0 and <= 1"),
    ({"sample": {"paste_blur": 0}}, "config.sample.paste_blur: 0 is not allowed; must be > 0"),
]


@pytest.mark.hostile("a config value out of its range (lr <= 0, steps: 0, size 60, seed -1, strength 1.5, empty or repeated list)", "one-line ConfigError naming the dotted path, the value and the allowed range; the JSON schema refuses it too")
@pytest.mark.parametrize("override, message", OUT_OF_RANGE)
def test_values_out_of_range_are_refused_by_loader_and_schema(override: dict, message: str) -> None:
    data = smoke_with(override)
    with pytest.raises(ConfigError) as exc:
        config_from_dict(data)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json_schema())


@pytest.mark.hostile("lr: .nan or lr: .inf in a config file", "one-line ConfigError: must be a finite number")
@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"distill:\n  train: {{lr: {text}}}\n")
    with pytest.raises(ConfigError, match=r"config\.distill\.train\.lr: .* is not allowed; must be a finite number"):
        load_config(SMOKE, bad)


# Settings that are each in range but refer to something that does not exist or do not agree.
BAD_REFERENCES = [
    ({"distill": {"train": {"steps": 0}}},
     "config.distill.train.steps: 0 is not allowed; must be >= 1 (the distillation runs at every scale)"),
    ({"vae_train": {"steps": 0}}, "config.vae_train.steps: 0 is not allowed; must be >= 1 when model.vae_source is 'train'"),
    ({"ablation": {"benchmark": "places2_tset"}},
     "config.ablation.benchmark: unknown benchmark 'places2_tset' (did you mean 'places2_test'?)"),
    ({"eval": {"cfg_sweep": {"celeba512": [2.0]}}},
     "config.eval.cfg_sweep.celeba512: unknown benchmark 'celeba512' (did you mean 'celebahq512'?)"),
    ({"benchmarks": {"places2_large": {"mask_protocol": "mat_lage_512"}}},
     "config.benchmarks.places2_large.mask_protocol: unknown mask protocol 'mat_lage_512' (did you mean 'mat_large_512'?)"),
    ({"masks": {"train_protocols": ["lama_thik_512"]}},
     "config.masks.train_protocols[0]: unknown mask protocol 'lama_thik_512' (did you mean 'lama_thick_512'?)"),
    ({"masks": {"official_train_protocol": "mat_large_512"}},
     "config.masks.official_train_protocol: 'mat_large_512' is not a LaMa protocol; allowed: lama_medium_256"),
    ({"distill": {"train": {"lr_milestones": [28, 24]}}},
     "config.distill.train.lr_milestones: [28, 24] is not allowed; must be increasing steps"),
    ({"benchmarks": {"ffhq256": {"dataset": "smoke_portriat"}}},
     "config.benchmarks.ffhq256.dataset: unknown dataset 'smoke_portriat' (did you mean 'smoke_portrait'?)"),
    ({"distill": {"train": {"datasets": ["smoke_natrual"]}}},
     "config.distill.train.datasets[0]: unknown dataset 'smoke_natrual' (did you mean 'smoke_natural'?)"),
    ({"distill": {"train": {"datasets": ["places365"]}}},
     "config.distill.train.datasets[0]: 'places365' is a full-scale dataset but data.source is 'smoke'"),
    ({"benchmarks": {"places2_test": {"split": "tset"}}}, "config.benchmarks.places2_test.split: unknown smoke_natural split 'tset' (did you mean 'test'?); known: test, train"),
    ({"benchmarks": {"places2_test": {"n_images": 9}}},
     "config.benchmarks.places2_test.n_images: 9 is not allowed; must be <= 8"),
    ({"eval": {"models": ["moebius", "navier_stoke"]}},
     "config.eval.models[1]: unknown model 'navier_stoke' (did you mean 'navier_stokes'?)"),
    ({"eval": {"models": ["moebius", "ddnm"]}}, "config.eval.models[1]: unknown model 'ddnm'"),
    ({"distill": {"losses": ["c_kd", "f_kd", "taks"]}}, "config.distill.losses[2]: unknown loss 'taks' (did you mean 'task'?)"),
    ({"ablation": {"loss_combinations": {"cf": ["c_kd", "fkd"]}}},
     "config.ablation.loss_combinations.cf[1]: unknown loss 'fkd' (did you mean 'f_kd'?)"),
    ({"ablation": {"experiments": [1, 16]}},
     "config.ablation.experiments[1]: 16 is not a Table 2 experiment; allowed: 1..15"),
    ({"distill": {"train": {"global_batch": 12}}},
     "config.distill.train.global_batch: 12 is not a multiple of batch_size 8 x gpus 1 = 8; allowed: 8, 16, 24"),
    ({"distill": {"train": {"global_batch": 4}}}, "config.distill.train.global_batch: 4 is not a multiple of batch_size 8"),
    ({"finetune": {"targets": {"ffhq": {"gpus": 2}}}},
     "config.finetune.targets.ffhq.global_batch: 8 is not a multiple of batch_size 8 x gpus 2 = 16"),
    ({"sample": {"beta_start": 0.02}}, "config.sample.beta_start: 0.02 is not allowed; must be < beta_end (0.012)"),
    ({"sample": {"steps": 1001}}, "config.sample.steps: 1001 is not allowed; must be <= num_train_timesteps (1000)"),
    ({"sample": {"start": "gt_noised", "steps": 1, "strength": 0.5}},
     "config.sample.strength: 0.5 with 1 steps leaves no denoising step; must be >= 1"),
    ({"sample": {"steps": 2, "pixelhacker_strength": 0.4}},  # eval.sampler_starts runs gt_noised too
     "config.sample.pixelhacker_strength: 0.4 with 2 steps leaves no denoising step; must be >= 0.5"),
    ({"eval": {"sampler_starts": ["gt_noised"]}},
     "config.eval.sampler_starts: ['gt_noised'] must include sample.start ('noise')"),
]


def write_override(tmp_path: Path, override: dict) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


@pytest.mark.hostile("a config naming an unknown benchmark, mask protocol, dataset, split, model, loss or experiment, or a global batch that is no multiple of batch x gpus", "`moebius config validate`: one line naming the dotted path, the value and what is allowed (did you mean …), exit 2")
@pytest.mark.parametrize("override, message", BAD_REFERENCES)
def test_config_validate_names_the_path_value_and_what_is_allowed(
    monkeypatch, capsys, tmp_path: Path, override: dict, message: str
) -> None:
    from moebius.cli import main

    bad = write_override(tmp_path, override)
    monkeypatch.setattr(sys, "argv", ["moebius", "--config", str(SMOKE), "--config", str(bad), "config", "validate"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"moebius: error: {message}"), err


@pytest.mark.hostile("an empty, all-comment or `{}` config file", "one line: config file X is empty (not a silent full-scale run without benchmarks)")
@pytest.mark.parametrize("text", ["", "# nothing but a comment\n\n", "{}\n"])
def test_an_empty_config_file_is_an_error(run_cli, tmp_path: Path, text: str) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text(text)
    result = run_cli("--config", str(empty), "config", "validate")
    assert result.returncode == 2
    assert result.stderr.strip() == f"moebius: error: config file {empty} is empty"


@pytest.mark.hostile("a config with no benchmarks (only other settings)", "one-line ConfigError: at least one benchmark is needed")
def test_a_config_without_benchmarks_is_refused(tmp_path: Path) -> None:
    only_seed = tmp_path / "seed.yaml"
    only_seed.write_text("seed: 1\n")
    with pytest.raises(ConfigError, match=r"^config\.benchmarks: none configured"):
        load_config(only_seed)


@pytest.mark.hostile(
    "a config with a key given twice in one YAML mapping; a binary file or a directory given as the config",
    "one-line ConfigError naming the key and line (PyYAML would keep the last silently) / not UTF-8 text / "
    "is a directory; no traceback",
)
@pytest.mark.parametrize(("content", "match"), [
    (b"scale: smoke\nsample:\n  steps: 3\n  steps: 30\n", r"duplicate key 'steps' \(line 4\)"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\x00", "is not UTF-8 text"),
    (None, "is a directory"),  # None: a folder where the file should be
])
def test_unreadable_config_files_are_one_line(tmp_path: Path, content: bytes | None, match: str) -> None:
    config = tmp_path / "config.yaml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    with pytest.raises(ConfigError, match=match):
        read_yaml(config)


def test_check_config_accepts_what_the_scale_files_use() -> None:
    # Official weights are not trained here, so full scale's untrained VAE (steps 0) is fine...
    full = load_config(ROOT / "config" / "full.yaml")
    assert full.vae_train.steps == 0 and full.model.vae_source == "official"
    # ...and the global batches of both scales are whole multiples of batch_size x gpus.
    assert full.distill.train.global_batch % (full.distill.train.batch_size * full.distill.train.gpus) == 0


def test_name_copies_equal_their_torch_importing_owners() -> None:
    # config.py copies these so that validating a config never imports torch; keep them equal.
    from moebius.eval.baselines import BASELINES
    from moebius.models.variants import EXPERIMENTS
    from moebius.train.losses import LOSS_NAMES as OWNER_LOSSES

    assert LOSS_NAMES == OWNER_LOSSES
    assert EVAL_MODELS == tuple(n for n, s in BASELINES.items() if s.family != "reported")
    assert TABLE2_EXPERIMENTS == tuple(sorted(EXPERIMENTS))


def test_config_choices_equal_their_registries() -> None:
    # Literal fields that copy a registry's names (the schema's enums and the CLI's choices come from them)
    from moebius.config import (
        BenchmarkConfig,
        DataConfig,
        ModelConfig,
        OfficialMasksConfig,
        ProfileConfig,
        literal_choices,
    )
    from moebius.data.preprocess import PREPROCESSORS
    from moebius.data.registry import FFHQ_VALIDATION
    from moebius.data.selection import RULES
    from moebius.masks.official import PAIRINGS
    from moebius.masks.polarity import POLARITIES
    from moebius.models.presets import PRESETS

    assert literal_choices(BenchmarkConfig, "preprocess") == PREPROCESSORS.names()
    assert literal_choices(BenchmarkConfig, "selection") == tuple(r for r in RULES.names() if r != "all")
    assert literal_choices(DataConfig, "ffhq_validation") == FFHQ_VALIDATION.names()
    assert literal_choices(OfficialMasksConfig, "polarity") == tuple(POLARITIES)
    assert literal_choices(OfficialMasksConfig, "pairing") == tuple(PAIRINGS)
    assert literal_choices(ModelConfig, "preset") == literal_choices(ProfileConfig, "preset") == PRESETS.names()


def test_loading_a_config_imports_neither_torch_nor_matplotlib() -> None:
    code = (
        "import sys; from moebius.config import load_config; load_config('config/smoke.yaml', 'config/full.yaml');"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


# What a rehearsal may change from full.yaml: where it writes and reads, and how much work it does.
# Anything else (presets, image sizes, benchmarks, protocols, formulas, switches) must be full.yaml's.
REHEARSAL_SIZES = (
    r"scale", r"paths\.\w+", r"data\.source", r"data\.rehearsal_images", r"benchmarks\.\w+\.n_images",
    r"(distill|finetune)\.train\.(steps|batch_size|global_batch|gpus|checkpoint_every|log_every|num_workers)",
    r"finetune\.targets\.\w+\.(steps|global_batch|gpus)", r"ablation\.(steps|gpus|kd_val_batches|kd_val_batch_size)",
    # the schedule scaled to 2 steps; bf16 is what precision: auto picks on the recipe's GPUs
    r"distill\.train\.lr_milestones", r"(distill|finetune)\.train\.precision",
    r"masks\.stats_n", r"sample\.(steps|batch_size)",
    r"eval\.(bootstrap|min_fid_images|batch_size|flux_steps|sd35_steps)", r"eval\.cfg_sweep\.\w+",
    r"profile\.(warmup|repeats)", r"weights\.dir",
)


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def test_rehearsal_differs_from_full_only_in_sizes_of_work() -> None:
    import re

    full = _flat(to_dict(load_config(ROOT / "config" / "full.yaml")))
    rehearsal = _flat(to_dict(load_config(ROOT / "config" / "rehearsal.yaml")))
    assert set(full) == set(rehearsal)
    changed = {k for k in full if full[k] != rehearsal[k]}
    others = sorted(k for k in changed if not any(re.fullmatch(p, k) for p in REHEARSAL_SIZES))
    assert not others, f"rehearsal.yaml changes more than sizes of work: {others}"
    for bench, scales in load_config(ROOT / "config" / "rehearsal.yaml").eval.cfg_sweep.items():
        assert set(scales) <= set(full[f"eval.cfg_sweep.{bench}"])  # fewer points of the same sweep
    assert rehearsal["model.preset"] == "paper" and rehearsal["scale"] == "rehearsal"


@pytest.mark.hostile("scale: rehearsal with data.source: download, or a full-scale run with data.source: rehearsal",
                     "one-line ConfigError naming data.source: a rehearsal reads only the generated sources")
@pytest.mark.parametrize("scale, source", [("rehearsal", "download"), ("full", "rehearsal")])
def test_rehearsal_scale_and_source_go_together(scale: str, source: str) -> None:
    with pytest.raises(ConfigError, match=r"config\.data\.source: .*rehearsal"):
        load_config(ROOT / "config" / "full.yaml", overrides={"scale": scale, "data": {"source": source}})
