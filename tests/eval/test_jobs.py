"""`moebius sample | sample-suite | score | score-suite` by (experiment, model, benchmark): the folders come
from moebius.layout, the same functions the Snakemake rules build their inputs and outputs from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from moebius import layout
from moebius.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "config" / "smoke.yaml"


@pytest.fixture
def moebius(monkeypatch, tmp_path, moebius_cli):
    """``moebius(*args) -> (exit status, stderr)`` through ``moebius.cli.main`` with the smoke config and
    every `paths` entry under ``tmp_path`` (results under a folder whose name holds a comma)."""
    monkeypatch.chdir(tmp_path)
    roots = {k: str(tmp_path / k) for k in ("data", "masks", "checkpoints", "logs")}
    roots["results"] = str(tmp_path / "results,v2")  # a comma broke the old `--task k=v,...` options
    local = tmp_path / "local.yaml"
    local.write_text(yaml.safe_dump({"paths": roots, "eval": {"cfg_sweep": {"celebahq512": [1.0, 3.0]}, "bootstrap": 0}}))

    def run(*args: str) -> tuple[int, str]:
        return moebius_cli("--config", SMOKE, "--config", local, *args)

    run.cfg = load_config(SMOKE, local)
    return run


def _prepare(moebius, benchmark: str) -> None:
    """The benchmark's images and generated mask set, where the layout puts them (as the DAG would)."""
    cfg = moebius.cfg
    bench = cfg.benchmark(benchmark)
    for args in (
        ("data", "smoke", "--dataset", bench.dataset, "--out-root", str(layout.datasets_root(cfg))),
        ("data", "benchmark", "--benchmark", benchmark, "--dataset-dir", str(layout.dataset_dir(cfg, bench.dataset, bench.split)),
         "--out", str(layout.benchmark_dir(cfg, benchmark))),
        ("masks", "generate", "--benchmark", benchmark, "--images", str(layout.benchmark_dir(cfg, benchmark)),
         "--out", str(layout.mask_dir(cfg, benchmark))),
    ):
        code, err = moebius(*args)
        assert code == 0, err


@pytest.fixture
def scored(monkeypatch) -> list[dict]:
    """The calls the scoring commands make to ``evaluate_samples`` (which returns no record here: these
    tests are about which folders are scored; the real scoring runs in the slow test below)."""
    calls: list[dict] = []

    def fake(cfg, samples, images, masks, *, model, benchmark, settings=None):
        calls.append({"samples": Path(samples), "images": Path(images), "masks": Path(masks), "model": model,
                      "benchmark": benchmark, "settings": settings})
        return []

    monkeypatch.setattr("moebius.eval.jobs.evaluate_samples", fake)
    return calls


def test_suite_sampled_and_scored_by_names(moebius, scored) -> None:
    _prepare(moebius, "ffhq256")
    cfg = moebius.cfg
    code, err = moebius("sample-suite", "--experiment", "main", "--model", "telea", "--benchmark", "ffhq256")
    assert code == 0, err
    folder = layout.sample_dir(cfg, "main", "telea", "ffhq256")
    assert "results,v2" in str(folder)
    assert len(list(folder.glob("*.png"))) == cfg.benchmark("ffhq256").n_images and (folder / "meta.json").is_file()
    suite = json.loads(layout.suite_file(cfg, "main", "telea").read_text())
    assert suite["samples"] == {"ffhq256": str(folder)}

    code, err = moebius("score-suite", "--experiment", "main", "--model", "telea", "--benchmark", "ffhq256")
    assert code == 0, err
    assert scored == [{"samples": folder, "images": layout.benchmark_dir(cfg, "ffhq256"),
                       "masks": layout.mask_dir(cfg, "ffhq256"), "model": "telea", "benchmark": "ffhq256",
                       "settings": {"experiment": "main"}}]
    assert json.loads(layout.record_file(cfg, "main", "telea").read_text()) == []


def test_cfg_sweep_takes_its_scales_from_the_config(moebius, scored) -> None:
    _prepare(moebius, "celebahq512")
    cfg = moebius.cfg
    code, err = moebius("sample", "--experiment", "cfg_sweep", "--model", "telea", "--benchmark", "celebahq512")
    assert code == 0, err
    sweep = json.loads(layout.sample_done(cfg, "cfg_sweep", "telea", "celebahq512").read_text())
    assert sweep == {"guidance": [1.0, 3.0], "folders": ["g1.0", "g3.0"]}

    code, err = moebius("score", "--experiment", "cfg_sweep", "--model", "telea", "--benchmark", "celebahq512",
                        "--setting", "note=a,b", "--setting", "experiment=main")
    assert code == 0, err
    folder = layout.sample_dir(cfg, "cfg_sweep", "telea", "celebahq512")
    assert [(c["samples"], c["settings"]) for c in scored] == [
        (folder / "g1.0", {"note": "a,b", "experiment": "cfg_sweep", "cfg_scale": 1.0}),
        (folder / "g3.0", {"note": "a,b", "experiment": "cfg_sweep", "cfg_scale": 3.0}),
    ]
    assert layout.record_file(cfg, "cfg_sweep", "telea", "celebahq512").is_file()


@pytest.mark.slow
def test_suite_scored_for_real(moebius) -> None:
    _prepare(moebius, "ffhq256")
    for command in ("sample-suite", "score-suite"):
        code, err = moebius(command, "--experiment", "main", "--model", "telea", "--benchmark", "ffhq256")
        assert code == 0, err
    records = json.loads(layout.record_file(moebius.cfg, "main", "telea").read_text())
    assert {r["metric"] for r in records} >= {"fid", "lpips"}
    assert {(r["benchmark"], r["model"], r["settings"]["experiment"]) for r in records} == {("ffhq256", "telea", "main")}


@pytest.mark.hostile("`moebius sample` with neither --experiment nor --out; `sample-suite --benchmark` outside the "
                     "suite; `score --setting` without `=`",
                     "one line each, before anything is read or written")
@pytest.mark.parametrize("args, message", [
    (("sample", "--model", "telea", "--benchmark", "ffhq256"), "needs --experiment"),
    (("sample-suite", "--experiment", "ood", "--model", "telea", "--benchmark", "ffhq256"), "not in the ood suite of telea"),
    (("sample-suite", "--experiment", "ood", "--model", "telea", "--benchmark", "ffhq265"), "did you mean 'ffhq256'"),
    (("score", "--experiment", "main", "--model", "telea", "--benchmark", "ffhq256", "--setting", "note"),
     "--setting expects KEY=VALUE, got 'note'"),
])
def test_names_that_do_not_resolve_are_one_line(moebius, tmp_path: Path, args: tuple, message: str) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    code, err = moebius(*args)
    lines = [line for line in err.splitlines() if line.startswith("moebius: error:")]
    assert code == 2 and "Traceback" not in err and len(lines) == 1 and message in lines[0], err
    assert sorted(p for p in tmp_path.rglob("*")) == before
