"""moebius.layout: every contract path, from the config alone, without torch."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from moebius import layout
from moebius.config import Paths, config_hash, load_config
from moebius.errors import UnknownNameError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "config" / "smoke.yaml"


@pytest.fixture(scope="module")
def cfg():
    return load_config(SMOKE)


def test_file_names_equal_their_writers() -> None:
    from moebius.data.manifest import MANIFEST_NAME
    from moebius.eval import inpaint
    from moebius.masks.store import MANIFEST as MASK_MANIFEST
    from moebius.train.state import METRICS_CSV, RUN_JSON

    assert layout.MANIFEST == MANIFEST_NAME == MASK_MANIFEST
    assert (layout.RUN_JSON, layout.TRAIN_METRICS) == (RUN_JSON, METRICS_CSV)
    assert (layout.META, layout.SWEEP) == (inpaint.META, inpaint.SWEEP)


def test_paths_follow_the_config_paths(cfg, tmp_path: Path) -> None:
    roots = Paths(data=str(tmp_path / "d"), masks=str(tmp_path / "m"), checkpoints=str(tmp_path / "c"),
                  results=str(tmp_path / "r"), logs=str(tmp_path / "l"))
    moved = replace(cfg, paths=roots)
    assert layout.benchmark_manifest(moved, "ffhq256") == tmp_path / "d" / "benchmarks" / "ffhq256" / "manifest.csv"
    assert layout.dataset_manifest(moved, "smoke_portrait", "test") == \
        tmp_path / "d" / "datasets" / "smoke_portrait" / "test" / "manifest.csv"
    assert layout.mask_dir(moved, "ffhq256") == tmp_path / "m" / "lama_thick_256" / "v1" / "ffhq256"
    assert layout.sample_run(moved, "main", "moebius", "ffhq256") == tmp_path / "c" / "finetune" / "moebius_ffhq"
    assert layout.sample_dir(moved, "ood", "telea", "lvis") == tmp_path / "r" / "samples" / "ood" / "telea" / "lvis"
    assert layout.record_file(moved, "main", "telea") == tmp_path / "r" / "records" / "main" / "telea.json"
    assert layout.record_file(moved, "cfg_sweep", "moebius", "places2_test") == \
        tmp_path / "r" / "records" / "cfg_sweep" / "moebius" / "places2_test.json"
    assert layout.resolved_config(moved) == tmp_path / "l" / "config" / "resolved.yaml"
    assert layout.config_archive(moved) == tmp_path / "l" / "config" / f"{config_hash(moved)}.yaml"


def test_the_scoring_mask_set_follows_the_mask_source(cfg, tmp_path: Path) -> None:
    override = tmp_path / "official.yaml"
    override.write_text(yaml.safe_dump({
        "benchmarks": {"celebahq512": {"mask_source": "official"}},
        "masks": {"official": {"archives": {"celebahq512": str(tmp_path / "masks.zip")}}},
    }))
    mixed = load_config(SMOKE, override)
    assert layout.mask_dir(mixed, "celebahq512") == Path(cfg.paths.masks) / "official" / "v1" / "celebahq512"
    assert layout.mask_dir(mixed, "places2_large") == Path(cfg.paths.masks) / "mat_large_512" / "v1" / "places2_large"


def test_the_run_behind_a_sample_folder(cfg) -> None:
    ck = Path(cfg.paths.checkpoints)
    # Ours are scored with the weights fine-tuned for the benchmark's family (celebahq512 -> celebahq).
    assert layout.sample_run(cfg, "main", "pixelhacker", "celebahq512") == ck / "finetune" / "pixelhacker_celebahq"
    assert layout.sample_run(cfg, "cfg_sweep", "moebius", "places2_test") == ck / "finetune" / "moebius_places2"
    assert layout.sample_run(cfg, "ood", "telea", "lvis") is None  # a baseline has no run
    assert layout.sample_vae(cfg, "ood", "telea", "lvis") is None
    assert layout.sample_vae(cfg, "main", "moebius", "lvis") == ck / "vae"
    assert layout.sample_run(cfg, "ablation_arch", "exp3", "places2_test") == ck / "ablation_arch" / "exp3"
    assert layout.sample_run(cfg, "ablation_loss", "loss_cf", "places2_test") == ck / "ablation_loss" / "cf"
    with pytest.raises(UnknownNameError, match="did you mean 'ablation_arch'"):
        layout.sample_run(cfg, "ablation_ach", "exp3", "places2_test")


def test_suites_split_in_distribution_from_zero_shot(cfg) -> None:
    main, ood = layout.suite_benchmarks(cfg, "main"), layout.suite_benchmarks(cfg, "ood")
    assert ood == ["deepfakeface", "lvis"]
    assert set(main) | set(ood) == set(cfg.benchmarks) and not set(main) & set(ood)
    with pytest.raises(UnknownNameError):
        layout.suite_benchmarks(cfg, "cfg_sweep")  # not a suite: one process per benchmark


def test_layout_imports_neither_torch_nor_matplotlib() -> None:
    # The rules call it while Snakemake parses the DAG.
    code = (
        "import sys; from moebius import layout; from moebius.config import load_config;"
        "c = load_config('config/full.yaml');"
        "[layout.mask_dir(c, b) for b in c.benchmarks]; [layout.sample_run(c, 'main', 'moebius', b) for b in c.benchmarks];"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
