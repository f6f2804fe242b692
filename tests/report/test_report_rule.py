"""The workflow's `report` rule on tiny inputs, then `snakemake --report`: every registered output is in it.

The rule's inputs are listed by Snakemake's own dry run and written as tiny fixtures
(``workflow_fixture``), so the rule runs alone (``--allowed-rules report``) in a copy of the workflow,
in under a minute, without the rest of the DAG. `snakemake --report` needs the metadata of a finished
job, which that run leaves behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workflow_fixture import make_project, report_inputs, write_inputs

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "MOEBIUS_CORES": "1"}


def _snakemake(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=project, env=_env(), capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> dict:
    project = make_project(ROOT, tmp_path_factory.mktemp("workflow") / "project")
    inputs = report_inputs(project, str(BIN / "snakemake"), _env())
    write_inputs(project, inputs)
    stamp = time.time() - 3600  # one mtime for every input: nothing upstream looks newer than anything else
    for rel in inputs:
        os.utime(project / rel, (stamp, stamp))
    planned = _snakemake(project, "report", "-n", "--nolock", "--allowed-rules", "report")
    assert planned.returncode == 0, planned.stderr[-3000:]
    table = planned.stdout.split("Job stats:", 1)[1].strip().split("\n\n", 1)[0]
    jobs = re.findall(r"^(\w+)\s+\d+$", table, flags=re.M)
    assert [j for j in jobs if j != "total"] == ["report"], planned.stdout[-2000:]
    start = time.perf_counter()
    run = _snakemake(project, "report", "--cores", "1", "--nolock", "--allowed-rules", "report")
    seconds = time.perf_counter() - start
    log = (project / "logs" / "report.log").read_text() if (project / "logs" / "report.log").exists() else ""
    assert run.returncode == 0, run.stderr[-4000:] + log[-3000:]
    return {"project": project, "seconds": seconds}


@pytest.mark.slow
def test_report_rule_writes_page_thumbnails_and_every_declared_figure(ran) -> None:
    results = ran["project"] / "results"
    html = (results / "index.html").read_text(encoding="utf-8")
    grids = sorted(p.name for p in (results / "plots").glob("qualitative_*.png"))
    assert grids == [f"qualitative_{e}_{b}.png" for e, b in
                     [("main", b) for b in ("celebahq512", "ffhq256", "places2_256", "places2_large", "places2_small",
                                            "places2_test")] + [("ood", "deepfakeface"), ("ood", "lvis")]]
    assert html.count('<table class="grid">') == 8
    for src in re.findall(r'src="([^"]+)"', html):
        assert (results / src).is_file(), src
    # grids × images, each image folder: the masked input, the ground truth and one cell per model, the
    # same models for every image of a grid (the models differ between grids: baselines by benchmark)
    grid_dirs = sorted(d for d in (results / "thumbs").glob("*/*") if d.is_dir())
    assert len(grid_dirs) == 8
    for grid_dir in grid_dirs:
        cells = [sorted(p.name for p in img.glob("*.png")) for img in sorted(grid_dir.iterdir())]
        assert len(cells) == 4 and all(c == cells[0] for c in cells), grid_dir
        assert {"input.png", "gt.png", "moebius.png"} <= set(cells[0]) and len(cells[0]) >= 5, cells[0]
    print(f"report rule on the fixture: {ran['seconds']:.1f} s (Snakemake start-up included)")


@pytest.mark.slow
def test_snakemake_report_lists_every_registered_output(ran, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    made = _snakemake(ran["project"], "report", "--nolock", "--allowed-rules", "report", "--report", str(out))
    assert made.returncode == 0, made.stderr[-4000:]
    text = out.read_text(encoding="utf-8")
    for category in ("1. Report", "2. Tables", "3. Figures", "4. Qualitative", "Training curves", "Paper tables"):
        assert category in text, category
    for name in ("index.html", "report.md", "table1_headline.csv", "efficiency.csv", "cfg_sweep.png",
                 "mask_hole_ratio.png", "train_distill.png", "qualitative_main_places2_small.png"):
        assert f"Adding {name}" in made.stderr, name
    assert not re.search(r"<script[^>]+src=\"https?:", text)  # Snakemake's report carries its own scripts
