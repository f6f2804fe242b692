"""results/index.html: offline, every link resolves, paper-layout tables with coloured deltas, bins, grids."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from grid_fixture import grid_arg, hole_of, image_of, write_grid_fixture
from PIL import Image

from moebius.errors import MoebiusError, ReportError
from moebius.report.deviations import collect_markers
from moebius.report.html import delta_class, write_html
from moebius.report.page import write_report
from moebius.report.plots import make_plots
from moebius.report.qualitative import INPUT, TRUTH, make_grids, parse_grid, pick_ids, thumbnail

MODELS = ("moebius", "pixelhacker", "flux_fill")


class _Links(HTMLParser):
    """Every src/href, every tag name, and the text of each <td class=...> with its class."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.imgs: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = {k: v or "" for k, v in attrs}
        self.links += [a[k] for k in ("src", "href") if k in a]
        if tag == "img":
            self.imgs.append(a)


@pytest.fixture(scope="module")
def page(built):
    results = built["root"] / "results"
    folders = write_grid_fixture(built["root"], models=MODELS, n=6, size=32)
    plots = make_plots(results / "tables", results / "plots", {}, built["mask_csv"])
    grids = make_grids([parse_grid(grid_arg(folders, models=MODELS))], results / "thumbs", results / "plots", 4)
    figures = plots + [f for _, f in grids]
    write_report(built["tables"], figures, built["records"], results / "report.md", results / "metrics.json")
    out = write_html(results / "index.html", built["tables"], figures, built["records"], grids, results / "report.md")
    text = out.read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(text)
    return {"html": text, "path": out, "results": results, "links": parser, "grids": grids, "figures": figures,
            "folders": folders}


def test_delta_class_steps() -> None:
    assert [delta_class(x) for x in (0.01, -0.01, 0.1, -0.3, 0.6, -2.0, 0.0)] == [
        "d-pos-1", "d-neg-1", "d-pos-2", "d-neg-3", "d-pos-4", "d-neg-4", "d-eq"]
    assert delta_class(float("nan")) == ""


def test_marker_text_is_escaped_and_code_spans_pair_up() -> None:
    from moebius.report.html import _inline

    assert _inline("own ``numpy.random.Generator`` (PCG64), `x` <b> & **note**") == (
        "own <code>numpy.random.Generator</code> (PCG64), <code>x</code> &lt;b&gt; &amp; <strong>note</strong>")


def test_offline_and_every_link_resolves(page) -> None:
    html, links = page["html"], page["links"]
    assert "script" not in links.tags and "<script" not in html.lower()
    assert "@import" not in html and not re.search(r"url\((?!data:)", html)
    for link in links.links:
        if link.startswith(("#", "data:")):
            continue
        assert not re.match(r"^[a-z]+:|^//|^/", link), f"not a relative link: {link}"
        assert (page["results"] / link.split("#")[0]).is_file(), link
    srcs = {img["src"] for img in links.imgs}
    assert {f"plots/{p.name}" for p in page["figures"] if not p.name.startswith("qualitative_")} <= srcs
    assert all(img.get("width") and img.get("height") and img.get("alt") for img in links.imgs)


def test_tables_keep_the_paper_layout_and_colour_the_delta(page, built) -> None:
    html = page["html"]
    t1 = pd.read_csv(built["tables"]["table1"])
    row = t1[(t1["method"] == "Moebius") & (t1["benchmark"] == "places2_small") & (t1["metric"] == "fid")].iloc[0]
    rel = row["rel_delta"]
    assert rel > 0.5  # 3.7 reproduced vs the paper's number: the strongest red step
    cell = re.search(r'<td class="cell (d-[a-z]+-\d)"[^>]*><span class="rep">3\.7</span>'
                     r'<span class="ref">paper ([0-9.]+)</span><span class="delta">([^<]+)</span>', html)
    assert cell is not None
    assert cell.group(1) == delta_class(rel) == "d-pos-4"
    assert float(cell.group(2)) == pytest.approx(row["reported"])
    assert cell.group(3) == f"{100 * rel:+.1f}%"
    # A method the paper reports and we never run: its number, greyed, uncoloured.
    assert re.search(r'<td class="cell paper-only"[^>]*>[0-9.]+</td>', html)
    # Column groups in the paper's order: Places2 (Small) before CelebA-HQ (512) before FFHQ (256).
    t1_html = html.split('id="table1"', 1)[1].split("</table>", 1)[0]
    assert t1_html.index("Places2 (Small)") < t1_html.index("CelebA-HQ (512)") < t1_html.index("FFHQ (256)")
    # Hovering a reproduced cell names its record.
    assert "record: " in t1_html and "main/moebius/places2_small/fid" in t1_html


def test_banner_bins_provenance_and_paper_vs_code(page) -> None:
    html = page["html"]
    assert "Stand-in weights were used." in html and "Smoke scale:" in html
    bins = html.split('id="bins"', 1)[1].split('id="qualitative"', 1)[0]
    assert "LVIS (OOD natural) <small>(ood)</small>" in bins and "FID by hole ratio" in bins
    assert '<th class="num">40-50</th>' in bins and ">22 <small>(n=12)</small>" in bins
    assert "<code>cfg0123abcd</code>" in html and "<code>2.3.1</code>" in html
    section = html.split('id="paper-vs-code"', 1)[1]
    for marker in collect_markers():
        assert f"<code>{marker.path}:{marker.line}</code>" in section
    assert "<td>balance</td><td><code>distill.balance</code></td>" in section


def test_grid_shows_the_same_images_and_masks_for_every_model(page) -> None:
    (grid, figure), = page["grids"]
    assert [c.key for c in grid.columns] == [INPUT, *MODELS, TRUTH]
    assert [c.weights_kind for c in grid.columns] == ["", "trained", "trained", "standin", ""]
    # 6 images with growing holes, 4 picked: the smallest and the largest hole are both shown.
    assert [r.image_id for r in grid.rows] == ["img0", "img2", "img3", "img5"]
    for row in grid.rows:
        i = int(row.image_id.removeprefix("img"))
        assert row.hole_ratio == pytest.approx(hole_of(i, 6, 32).mean())
        cells = {c.key: np.asarray(Image.open(t).convert("RGB")) for c, t in zip(grid.columns, row.thumbs)}
        hole = np.repeat(np.repeat(hole_of(i, 6, 32), 4, 0), 4, 1)  # 32 px → 128 px, whole factor
        truth = thumbnail(image_of(i, 32))
        assert cells[TRUTH].shape == (128, 128, 3) and np.array_equal(cells[TRUTH], truth)
        assert (cells[INPUT][hole] == 255).all() and np.array_equal(cells[INPUT][~hole], truth[~hole])
        for k, model in enumerate(MODELS):
            assert (cells[model][hole] == 40 * (k + 1)).all() and np.array_equal(cells[model][~hole], truth[~hole])
    grid_html = page["html"].split('id="qualitative"', 1)[1].split('id="figures"', 1)[0]
    assert grid_html.count("<tr><th class=\"row\">") == 4
    assert grid_html.count("<img ") == 4 * len(grid.columns)
    assert f'href="plots/{figure.name}"' in grid_html and figure.read_bytes()[:4] == b"\x89PNG"


def test_pick_ids_spreads_along_the_hole_ratio() -> None:
    ratios = {f"i{k}": r for k, r in enumerate([0.5, 0.1, 0.9, 0.3, 0.7])}
    assert pick_ids(ratios, 3) == ["i1", "i0", "i2"]
    assert pick_ids(ratios, 10) == ["i1", "i3", "i0", "i4", "i2"]
    assert pick_ids(ratios, 1) == ["i0"]


@pytest.mark.hostile("a qualitative grid whose model has no sample for any image of the benchmark",
                     "ReportError naming the benchmark, the models and the samples folder")
def test_grid_without_samples_is_an_error(tmp_path: Path) -> None:
    folders = write_grid_fixture(tmp_path, models=("moebius",), n=3)
    spec = parse_grid(grid_arg(folders, models=("moebius", "telea")))
    with pytest.raises(ReportError, match=r"places2_small: no image id .* \(moebius, telea\)"):
        make_grids([spec], tmp_path / "thumbs", tmp_path / "plots")


@pytest.mark.hostile("a model's sample of another size than the ground truth (e.g. not resized back)",
                     "ReportError naming the sample and both sizes, no grid drawn")
def test_sample_of_the_wrong_size_is_an_error(tmp_path: Path) -> None:
    folders = write_grid_fixture(tmp_path, models=("moebius",), n=2)
    for png in (folders["samples"] / "moebius" / "places2_small").glob("*.png"):
        Image.new("RGB", (16, 16)).save(png)
    with pytest.raises(ReportError, match=r"img0\.png is 16x16, the ground truth 32x32"):
        make_grids([parse_grid(grid_arg(folders, models=("moebius",)))], tmp_path / "thumbs", tmp_path / "plots")


def test_sample_at_the_model_size_is_drawn_beside_its_truth(tmp_path: Path) -> None:
    # sample.score_size: model writes a 32-px benchmark's samples at the model's 64 px (eval/score_size.py)
    folders = write_grid_fixture(tmp_path, models=("moebius",), n=2)
    out = folders["samples"] / "moebius" / "places2_small"
    for png in out.glob("*.png"):
        Image.new("RGB", (64, 64), (10, 200, 30)).save(png)
    with pytest.raises(ReportError, match=r"is 64x64, the ground truth 32x32"):  # no meta: not allowed
        make_grids([parse_grid(grid_arg(folders, models=("moebius",)))], tmp_path / "thumbs", tmp_path / "plots")
    (out / "meta.json").write_text('{"resized": {"mode": "model", "from": 32, "to": 64}}', encoding="utf-8")
    [(grid, _)] = make_grids([parse_grid(grid_arg(folders, models=("moebius",)))], tmp_path / "thumbs",
                             tmp_path / "plots")
    for row in grid.rows:
        cells = {c.key: np.asarray(Image.open(t)) for c, t in zip(grid.columns, row.thumbs)}
        assert cells["moebius"].shape == cells[TRUTH].shape  # same thumbnail side
        assert (cells["moebius"] == (10, 200, 30)).all()


@pytest.mark.hostile("a --grid naming '../../etc' as its experiment, or an incomplete --grid",
                     "ReportError before anything is read or written")
def test_grid_spec_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="cannot be a folder name"):
        parse_grid(f"experiment=../../etc,benchmark=b,images={tmp_path},masks={tmp_path},samples={tmp_path},models=m")
    with pytest.raises(ReportError, match="lacks masks, models"):
        parse_grid(f"experiment=main,benchmark=b,images={tmp_path},samples={tmp_path}")


@pytest.mark.hostile("a ground-truth image overwritten after its manifest was written",
                     "the checksum error names the image; no grid shows pixels the data version does not name")
def test_grid_verifies_the_ground_truth(tmp_path: Path) -> None:
    folders = write_grid_fixture(tmp_path, models=("moebius",), n=2)
    Image.new("RGB", (32, 32), (1, 2, 3)).save(folders["images"] / "img1.png")
    with pytest.raises(MoebiusError, match="img1.png"):
        make_grids([parse_grid(grid_arg(folders, models=("moebius",)))], tmp_path / "thumbs", tmp_path / "plots", 2)


def test_missing_image_is_never_linked(built, tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="image for the page not found"):
        write_html(tmp_path / "index.html", built["tables"], [tmp_path / "gone.png"], built["records"])
    assert not (tmp_path / "index.html").exists()


def test_cli_refuses_a_malformed_grid(run_cli, built, tmp_path: Path) -> None:
    rec = next(built["root"].glob("results/records/main/moebius/*.json"))
    result = run_cli("report", "--records", str(rec), "--tables-dir", str(tmp_path / "t"), "--plots-dir",
                     str(tmp_path / "p"), "--report", str(tmp_path / "r.md"), "--metrics-json", str(tmp_path / "m.json"),
                     "--html", str(tmp_path / "index.html"), "--grid", "experiment=main,benchmark=b")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("moebius: error: grid 'experiment=main,benchmark=b' lacks")
    assert not (tmp_path / "t").exists()
