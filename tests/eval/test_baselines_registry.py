"""The baseline table: which checkpoint serves which benchmark, at which size, and where the paper has rows."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pandas as pd
import pytest

from moebius.config import EVAL_MODELS, load_config
from moebius.errors import EvalError
from moebius.eval.baselines import (
    BASELINES,
    benchmarks_for,
    can_run,
    checkpoint_for,
    sample_settings,
    work_size,
)
from moebius.weights import WEIGHTS

ACADEMIC = ("lama", "migan", "comodgan", "sd15_inpaint")


@pytest.mark.parametrize("name, benchmark, key, size", [
    ("migan", "places2_test", "migan_512_places2", 512),
    ("migan", "places2_256", "migan_256_places2", 256),
    ("migan", "ffhq256", "migan_256_ffhq", 256),
    ("migan", "lvis", "migan_512_places2", 512),  # Tab. 7: the Places2 weights, zero-shot
    ("comodgan", "celebahq512", "comodgan_256_ffhq", 256),  # run at its native 256, resized back
    ("sd15_inpaint", "ffhq256", "sd15_inpainting", 512),  # SD 1.5 at its native 512
    ("lama", "ffhq256", "lama_big_lama", None),  # fully convolutional: the benchmark's own size
])
def test_full_scale_checkpoint_and_native_size(full_cfg, name, benchmark, key, size) -> None:
    assert checkpoint_for(full_cfg, name, benchmark).key == key
    assert work_size(full_cfg, name, benchmark) == size


def test_smoke_scale_shrinks_native_sizes_with_the_benchmark(smoke_cfg) -> None:
    # "512" benchmarks are 64 px at smoke scale and "256" ones 32 px: the checkpoints shrink alike.
    assert work_size(smoke_cfg, "migan", "places2_test") == 64
    assert work_size(smoke_cfg, "migan", "places2_256") == 32
    assert work_size(smoke_cfg, "sd15_inpaint", "ffhq256") == 64  # a resize, as at full scale
    assert work_size(smoke_cfg, "comodgan", "celebahq512") == 32


def test_no_checkpoint_for_a_target_is_an_error_naming_it(full_cfg) -> None:
    with pytest.raises(EvalError, match="no published MI-GAN checkpoint serves celebahq"):
        checkpoint_for(full_cfg, "migan", "celebahq512")
    with pytest.raises(EvalError, match="depends on the benchmark"):
        checkpoint_for(full_cfg, "migan", None)


def _paper_rows() -> dict[str, set[str]]:
    """Benchmarks with a reported cell per method name, from Tab. 3, 4 and 7 as transcribed."""
    rows: dict[str, set[str]] = {}
    for f in ("table3_natural.csv", "table4_portrait.csv"):
        for _, r in pd.read_csv(f"results/reference/{f}").iterrows():
            rows.setdefault(r["method"], set()).add(r["benchmark"])
    for _, r in pd.read_csv("results/reference/table7_ood.csv").iterrows():
        for bench in ("lvis", "deepfakeface"):
            if pd.notna(r[f"{bench}_fid"]):
                rows.setdefault(r["method"], set()).add(bench)
    return rows


@pytest.mark.parametrize("name", ACADEMIC)
def test_academic_baselines_run_exactly_where_the_paper_has_their_row(full_cfg, name) -> None:
    spec = BASELINES[name]
    assert set(spec.benchmarks) == _paper_rows()[spec.display]
    assert benchmarks_for(full_cfg, name, sorted(full_cfg.benchmarks)) == sorted(spec.benchmarks)


def test_every_checkpoint_is_a_registered_weight_and_every_runnable_model_is_evaluated() -> None:
    for spec in BASELINES.values():
        for ckpt in spec.checkpoints:
            assert ckpt.key in WEIGHTS, ckpt.key
    assert set(ACADEMIC) <= set(load_config("config/full.yaml").eval.models)
    assert set(ACADEMIC) <= set(EVAL_MODELS)


def test_portrait_substitutions_are_recorded_as_deviations(full_cfg) -> None:
    assert "DEVIATION" in sample_settings(full_cfg, "lama", "celebahq512")["checkpoint_note"]
    assert "checkpoint_note" not in sample_settings(full_cfg, "lama", "places2_test")
    comod = sample_settings(full_cfg, "comodgan", "celebahq512")
    assert comod["checkpoint"] == "comodgan_256_ffhq" and "DEVIATION" in comod["checkpoint_note"]
    assert "evaluate_fid_lpips" in sample_settings(full_cfg, "migan", "ffhq256")["paste_back"]


@pytest.mark.hostile("full scale with no weights directory for LaMa / MI-GAN / CoModGAN / SD",
                     "can_run says no with the registry's one line: the file, where to get it, where to put it")
@pytest.mark.parametrize("name, benchmark, file", [
    ("lama", "places2_test", "lama/big-lama.pt"),
    ("migan", "ffhq256", "migan/migan_256_ffhq_traced.pt"),
    ("comodgan", "celebahq512", "migan/comodgan_256_ffhq_traced.pt"),
    ("sd15_inpaint", "places2_test", "pipelines/stable-diffusion-inpainting"),
])
def test_missing_weights_are_one_line_naming_where_to_put_them(tmp_path, monkeypatch, name, benchmark, file) -> None:
    monkeypatch.setenv("MOEBIUS_WEIGHTS_DIR", str(tmp_path))
    cfg = load_config("config/full.yaml")
    ok, why = can_run(name, cfg, benchmark)
    assert not ok and "\n" not in why
    assert f"put it at {tmp_path / file}" in why and "get it from" in why


def test_smoke_without_standins_refuses(smoke_cfg) -> None:
    cfg = dataclasses.replace(smoke_cfg, weights=dataclasses.replace(smoke_cfg.weights, allow_standin=False))
    ok, why = can_run("lama", cfg, "places2_test")
    assert not ok and "allow_standin" in why


def test_the_registry_imports_no_torch() -> None:
    # Snakemake imports it while parsing the DAG (suite_benchmarks).
    code = ("import sys; from moebius.config import load_config; from moebius.eval.baselines import benchmarks_for;"
            "cfg = load_config('config/full.yaml'); benchmarks_for(cfg, 'migan', sorted(cfg.benchmarks));"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
