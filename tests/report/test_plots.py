"""Figures: every one is written as a real PNG, carries the scale footnote, and a bad table is never drawn."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from moebius.errors import ReportError
from moebius.report.plots import comparable, footnote, make_plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plots(built):
    return make_plots(built["tables"]["table1"].parent, built["root"] / "results" / "plots",
                      {"distill": built["train_csv"]}, built["mask_csv"])


def test_every_figure_is_a_nonempty_png(plots):
    names = {p.name for p in plots}
    assert names == {"cfg_sweep.png", "efficiency.png", "table2_architecture_ablation.png",
                     "table5_loss_ablation.png", "mask_hole_ratio.png", "train_distill.png"}
    for p in plots:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 10_000, p


def test_footnote_names_scale_and_weights(built):
    t1 = pd.read_csv(built["tables"]["table1"])
    note = footnote([t1])
    assert note.startswith("smoke scale · weights: standin + trained")  # flux_fill rows use a stand-in
    assert "not comparable to the paper" in note and not comparable([t1])
    full = t1.assign(scale=t1["scale"].where(t1["reproduced"].isna(), "full"),
                     weights_kind=t1["weights_kind"].replace({"standin": "official", "trained": "official"}))
    assert comparable([full]) and "same protocol as the paper" in footnote([full])


def test_malformed_table_is_not_drawn(built, tmp_path):
    tables = tmp_path / "tables"
    shutil.copytree(built["tables"]["table1"].parent, tables)
    t6 = pd.read_csv(tables / "table6_cfg_sweep.csv")
    t6.drop(columns=["cfg_scale"]).to_csv(tables / "table6_cfg_sweep.csv", index=False)
    with pytest.raises(ReportError, match="table6: missing columns cfg_scale"):
        make_plots(tables, tmp_path / "plots", {}, None)
    assert not (tmp_path / "plots").exists()


def test_missing_training_csv_is_an_error(built, tmp_path):
    with pytest.raises(ReportError, match="run 'ghost'"):
        make_plots(built["tables"]["table1"].parent, tmp_path, {"ghost": tmp_path / "nope.csv"}, None)


def test_figures_drawn_in_two_processes_are_the_same_files(built, plots, tmp_path):
    """The report's last job draws in forked workers (report --workers): same PNGs, same order."""
    parallel = make_plots(built["tables"]["table1"].parent, tmp_path / "plots",
                          {"distill": built["train_csv"]}, built["mask_csv"], workers=2)
    assert [p.name for p in parallel] == [p.name for p in plots]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(parallel, plots))


def test_a_figure_that_fails_in_a_worker_fails_the_report(built, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,loss\n1,0.5\n")  # no step column: plot_training_curves raises in the worker
    with pytest.raises(ReportError, match="training metrics need a 'step' column"):
        make_plots(built["tables"]["table1"].parent, tmp_path / "plots", {"bad": bad, "distill": built["train_csv"]},
                   None, workers=2)
