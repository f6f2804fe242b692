"""Training curves in DVCLive's layout: the files DVCLive would write, and `dvc plots show` reads them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from moebius.errors import TrainError
from moebius.train.live import live_dir, write_live

ROOT = Path(__file__).resolve().parents[2]
DVC = Path(sys.executable).parent / "dvc"


def _rows(n: int) -> list[dict[str, float]]:
    return [{"step": s, "loss_total": 1.0 / s, "w_f_kd": 0.5 + s / 100, "lr": 1e-3} for s in range(1, n + 1)]


def test_layout_matches_dvclive(tmp_path: Path) -> None:
    out = write_live(tmp_path / "distill", _rows(4) + [{"step": 5, "loss_total": 0.15}])
    assert out == tmp_path / "distill" / "dvclive" == live_dir(tmp_path / "distill")
    tsvs = sorted(p.name for p in (out / "plots" / "metrics").iterdir())
    assert tsvs == ["loss_total.tsv", "lr.tsv", "w_f_kd.tsv"]
    loss = (out / "plots" / "metrics" / "loss_total.tsv").read_text().splitlines()
    assert loss[0] == "step\tloss_total" and loss[2] == "2\t0.5" and loss[-1] == "5\t0.15"
    assert len((out / "plots" / "metrics" / "lr.tsv").read_text().splitlines()) == 1 + 4  # not logged at step 5
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["step"] == 5 and summary["loss_total"] == pytest.approx(0.15) and summary["lr"] == pytest.approx(1e-3)


def test_rewrite_is_idempotent_and_drops_stale_series(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_live(run, [{"step": 1, "old_metric": 2.0}])
    write_live(run, _rows(3))
    first = {p.name: p.read_bytes() for p in (live_dir(run) / "plots" / "metrics").iterdir()}
    write_live(run, _rows(3))  # a resumed run re-writes the same rows: same bytes
    assert {p.name: p.read_bytes() for p in (live_dir(run) / "plots" / "metrics").iterdir()} == first
    assert "old_metric.tsv" not in first


@pytest.mark.hostile("training rows with a metric name holding '../', or steps that go backwards",
                     "TrainError naming the name or the steps; nothing written outside the run folder")
def test_unsafe_names_and_unordered_steps_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainError, match="cannot be a file name"):
        write_live(tmp_path / "run", [{"step": 1, "../../escape": 1.0}])
    assert not (tmp_path / "escape.tsv").exists()
    with pytest.raises(TrainError, match="must increase"):
        write_live(tmp_path / "run", [{"step": 2, "loss": 1.0}, {"step": 2, "loss": 0.5}])


def test_nan_is_null_in_the_summary(tmp_path: Path) -> None:
    out = write_live(tmp_path / "run", [{"step": 1, "loss_total": float("nan")}])
    assert json.loads((out / "metrics.json").read_text())["loss_total"] is None


def test_dvc_plots_show_reads_the_repository_entries(tmp_path: Path) -> None:
    """The plots entries of this repository's dvc.yaml, on runs written by write_live, through real DVC."""
    entries = [e for e in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
               if "dvclive" in next(iter(e))]
    assert {"checkpoints/distill/dvclive/plots/metrics", "checkpoints/vae/dvclive/plots/metrics"} <= {
        next(iter(e)) for e in entries}
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run([str(DVC), "init", "--no-scm", "-q"], cwd=project, check=True, timeout=120)
    (project / "dvc.yaml").write_text(yaml.safe_dump({"plots": entries}))
    write_live(project / "checkpoints" / "distill", _rows(6))
    shutil.copytree(project / "checkpoints" / "distill", project / "checkpoints" / "vae")
    shown = subprocess.run([str(DVC), "plots", "show", "--json"], cwd=project, capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)["data"]
    series = data["checkpoints/distill/dvclive/plots/metrics/loss_total.tsv"][0]["content"]["data"]["values"]
    assert [int(v["step"]) for v in series] == list(range(1, 7))
    assert float(series[1]["loss_total"]) == pytest.approx(0.5)
    assert "checkpoints/vae/dvclive/plots/metrics/w_f_kd.tsv" in data
    encoding = data["checkpoints/distill/dvclive/plots/metrics/lr.tsv"][0]["content"]["encoding"]
    assert encoding["x"]["field"] == "step"
