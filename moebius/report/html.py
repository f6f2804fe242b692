"""The report as one offline web page, ``results/index.html``: tables, figures, grids, provenance.

What ``report.md`` says, plus what Markdown shows badly: every paper table in the paper's layout
(methods down, benchmark × metric across) with the reproduced value beside the reported one and the
relative delta coloured by sign and size; FID / LPIPS per hole-ratio bin; the qualitative grids
(``moebius.report.qualitative``); every figure; the provenance and the "Paper vs code" section
(``moebius.report.deviations.paper_vs_code``, the same data ``report.md`` renders).

The page works from a folder or a DVC checkout with no network: no scripts, no web fonts, no CDN,
CSS inline, every image a relative link to a file under ``results/`` (tables, plots, thumbnails),
so the folder can be moved or zipped as a whole.
"""

from __future__ import annotations

import html
import math
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from moebius.atomic import write_text
from moebius.errors import ReportError
from moebius.report.deviations import INTRO as PAPER_VS_CODE_INTRO
from moebius.report.deviations import effect_text, paper_vs_code
from moebius.report.names import BENCHMARK_NAMES, display_name
from moebius.report.page import notices, provenance, table_summary
from moebius.report.qualitative import Grid
from moebius.report.schema import TABLES, read_tables

# |rel Δ| bounds of the colour steps: within 5 %, 20 %, 50 %, beyond.
DELTA_STEPS = (0.05, 0.20, 0.50)
BIN_METRICS = {"fid_bin": "FID", "lpips_bin": "LPIPS"}
_NO_EXTRAS = {"table6": ("domain", "cfg_scale")}  # already in the setting column

CSS = """
:root { --pos: 214, 39, 40; --neg: 31, 119, 180; --ink: #1b1f24; --muted: #5b6470; --line: #d6dae0; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1280px; padding: 1rem 1.5rem 4rem; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { margin-top: 2.4rem; border-bottom: 1px solid var(--line); }
h3 { margin-top: 1.6rem; } code { font-size: .88em; background: #f1f3f5; padding: 0 .2em; border-radius: 3px; }
nav ol { columns: 2; font-size: .95rem; } a { color: #0b5cad; }
.notice { border-left: 5px solid; padding: .5rem .9rem; margin: .6rem 0; border-radius: 3px; }
.notice.WARNING { border-color: #d29922; background: #fff8e6; } .notice.NOTE { border-color: #3a7bd5; background: #eef5ff; }
.notice.CAUTION { border-color: #cf222e; background: #ffefef; }
.scroll { overflow-x: auto; margin: .5rem 0 1rem; }
table { border-collapse: collapse; font-size: .86rem; }
th, td { border: 1px solid var(--line); padding: .25rem .45rem; vertical-align: top; }
th { background: #f6f8fa; text-align: left; } td.num, th.num { text-align: right; white-space: nowrap; }
td.cell { text-align: right; white-space: nowrap; min-width: 6.5rem; }
.rep { font-weight: 600; } .ref { display: block; color: var(--muted); font-size: .78rem; }
.delta { display: block; font-size: .78rem; }
.paper-only { color: var(--muted); } .ours-only .delta { color: var(--muted); }
.d-pos-1 { background: rgba(var(--pos), .10); } .d-pos-2 { background: rgba(var(--pos), .22); }
.d-pos-3 { background: rgba(var(--pos), .38); } .d-pos-4 { background: rgba(var(--pos), .58); }
.d-neg-1 { background: rgba(var(--neg), .10); } .d-neg-2 { background: rgba(var(--neg), .22); }
.d-neg-3 { background: rgba(var(--neg), .38); } .d-neg-4 { background: rgba(var(--neg), .58); }
.d-eq { background: #eef7ee; }
.legend span { display: inline-block; padding: .1rem .5rem; margin: 0 .15rem .2rem 0; border: 1px solid var(--line);
               font-size: .8rem; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .85rem; }
table.grid td, table.grid th { border: 0; padding: 2px; text-align: center; font-size: .78rem; }
table.grid th.row { text-align: right; font-weight: normal; color: var(--muted); padding-right: .5rem; }
table.grid img { display: block; image-rendering: pixelated; border: 1px solid var(--line); }
.kind { display: block; color: var(--muted); font-weight: normal; }
dl.prov { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; } dl.prov dt { font-weight: 600; }
"""


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escape, then turn Markdown's `code` and **bold** (used by the shared texts) into tags."""
    out = _e(text)
    out = re.sub(r"``(.+?)``|`([^`]+)`", lambda m: f"<code>{m.group(1) or m.group(2)}</code>", out)  # RST or MD
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(start).resolve())).as_posix()


def _href(path: Path, start: Path) -> str:
    return _e(_rel(path, start).replace("%", "%25").replace("#", "%23").replace("?", "%3F"))


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    x = float(x)
    return f"{x:.0f}" if x.is_integer() and abs(x) >= 1 else f"{x:.4g}"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def delta_class(rel: float) -> str:
    """CSS class of a relative delta: ``d-pos-k`` above the paper, ``d-neg-k`` below, k = size step 1..4."""
    if _missing(rel):
        return ""
    if rel == 0:
        return "d-eq"
    size = 1 + sum(abs(rel) >= s for s in DELTA_STEPS)
    return f"d-{'pos' if rel > 0 else 'neg'}-{size}"


def _img(path: Path, here: Path, alt: str) -> str:
    try:
        with Image.open(path) as im:  # header only: width/height keep the layout still while loading
            w, h = im.size
    except OSError as exc:
        raise ReportError(f"image for the page unreadable: {path} ({exc})") from exc
    return f'<img src="{_href(path, here)}" width="{w}" height="{h}" alt="{_e(alt)}">'


# ---------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------

def _notices(prov: dict[str, Any]) -> list[str]:
    return [f'<div class="notice {n.level}"><strong>{_e(n.headline)}</strong> {_inline(n.detail)}</div>'
            for n in notices(prov)]


def _summary(frames: dict[str, pd.DataFrame], tables: dict[str, Path], here: Path) -> list[str]:
    out = ['<div class="scroll"><table><thead><tr><th>table</th><th>file</th><th class="num">reproduced / cells</th>'
           '<th class="num">paired with paper</th><th class="num">median rel Δ</th><th class="num">median rel Δ FID</th>'
           '<th class="num">median rel Δ LPIPS</th><th>weights kinds</th></tr></thead><tbody>']
    for name, df in frames.items():
        s = table_summary(df)
        cells = "".join(f'<td class="num {delta_class(s[k])}">{_pct(s[k])}</td>'
                        for k in ("median_rel_delta", "median_rel_delta_fid", "median_rel_delta_lpips"))
        out.append(f'<tr><td><a href="#{name}">{_e(TABLES[name].title)}</a></td>'
                   f'<td><a href="{_href(tables[name], here)}">{_e(Path(tables[name]).name)}</a></td>'
                   f'<td class="num">{s["n_reproduced"]} / {s["n_cells"]}</td><td class="num">{s["n_paired"]}</td>'
                   f'{cells}<td>{_e(", ".join(s["weights_kinds"]) or "reported only")}</td></tr>')
    return out + ["</tbody></table></div>"]


def _pct(rel: float) -> str:
    return "—" if _missing(rel) else f"{100 * rel:+.1f}%"


def _legend() -> str:
    spans = [f'<span class="d-neg-{k}">below paper, {lab}</span>' for k, lab in _step_labels()][::-1]
    spans += ['<span class="d-eq">equal</span>']
    spans += [f'<span class="d-pos-{k}">above paper, {lab}</span>' for k, lab in _step_labels()]
    return ('<p class="legend">rel Δ = (reproduced − reported) / reported. Every metric here is lower-is-better, '
            'so red (above the paper) is worse and blue (below) better; the shade is the size: '
            + "".join(spans) + "</p>")


def _step_labels() -> list[tuple[int, str]]:
    bounds = [0.0, *DELTA_STEPS]
    labels = [f"&lt; {100 * DELTA_STEPS[0]:.0f}%"]
    labels += [f"{100 * lo:.0f}–{100 * hi:.0f}%" for lo, hi in zip(bounds[1:], DELTA_STEPS[1:])]
    labels += [f"≥ {100 * DELTA_STEPS[-1]:.0f}%"]
    return list(enumerate(labels, start=1))


def _cell(row: pd.Series | None) -> str:
    if row is None:
        return '<td class="cell"></td>'
    rep, ref, rel = row["reproduced"], row["reported"], row["rel_delta"]
    if _missing(rep):
        return f'<td class="cell paper-only" title="reported by the paper; not reproduced here">{_num(ref)}</td>'
    tip = []
    if not _missing(row.get("ci_low")) and not _missing(row.get("ci_high")):
        tip.append(f"CI [{_num(row['ci_low'])}, {_num(row['ci_high'])}]")
    if not _missing(row.get("n_images")):
        tip.append(f"n = {int(row['n_images'])} images")
    tip.append(f"weights: {row['weights_kind']} · scale: {row['scale']}")
    if isinstance(row.get("device"), str) and row["device"]:
        tip.append(f"device: {row['device']}")
    tip.append(f"record: {row['record_source']} · {row['record_key']}")
    body = f'<span class="rep">{_num(rep)}</span>'
    if _missing(ref):
        body += '<span class="delta">no paper value</span>'
        cls = "ours-only"
    else:
        body += f'<span class="ref">paper {_num(ref)}</span><span class="delta">{_pct(rel)}</span>'
        cls = delta_class(rel)
    return f'<td class="cell {cls}" title="{_e(" · ".join(tip))}">{body}</td>'


def _paper_table(name: str, df: pd.DataFrame) -> list[str]:
    """One paper table in the paper's shape: a row per (method, setting), a column per (benchmark, metric)."""
    spec = TABLES[name]
    if df.empty:
        return ["<p>(no rows)</p>"]
    columns = [(b, m) for b in spec.benchmarks for m in spec.metrics
               if ((df["benchmark"] == b) & (df["metric"] == m)).any()]
    settings = ["" if pd.isna(x) else str(x) for x in df["setting"]]  # CSV reads an empty setting as NaN
    keys = list(dict.fromkeys(zip(df["method"], settings)))
    extras = [c for c in spec.extra_columns if c not in _NO_EXTRAS.get(name, ())]
    by_key: dict[tuple[str, str, str, str], pd.Series] = {}
    first: dict[tuple[str, str], pd.Series] = {}  # the row that carries a method's extra columns
    for _, r in df.iterrows():
        setting = "" if pd.isna(r["setting"]) else str(r["setting"])
        by_key[(r["method"], setting, r["benchmark"], r["metric"])] = r
        first.setdefault((r["method"], setting), r)
    has_setting = any(s for _, s in keys)
    head1 = ['<th rowspan="2">method</th>'] + (['<th rowspan="2">setting</th>'] if has_setting else [])
    head1 += [f'<th rowspan="2">{_e(c)}</th>' for c in extras]
    benches = list(dict.fromkeys(b for b, _ in columns))
    head1 += [f'<th colspan="{sum(1 for b2, _ in columns if b2 == b)}">{_e(BENCHMARK_NAMES.get(b, b))}</th>'
              for b in benches]
    head2 = [f'<th class="num">{_e(m)}</th>' for _, m in columns]
    out = ['<div class="scroll"><table class="paper">', f"<thead><tr>{''.join(head1)}</tr><tr>{''.join(head2)}</tr>"
           "</thead><tbody>"]
    for method, setting in keys:
        lead = first[(method, setting)]
        cells = [f"<th>{_e(method)}</th>"] + ([f"<td>{_e(setting)}</td>"] if has_setting else [])
        cells += [f"<td>{_e('' if _missing(lead.get(c)) else lead.get(c))}</td>" for c in extras]
        cells += [_cell(by_key.get((method, setting, b, m))) for b, m in columns]
        out.append(f"<tr>{''.join(cells)}</tr>")
    return out + ["</tbody></table></div>"]


def _bin_key(label: str) -> float:
    try:
        return float(str(label).split("-")[0])
    except ValueError:
        return math.inf


def _hole_bins(records: Sequence[dict[str, Any]]) -> list[str]:
    """FID and LPIPS per hole-ratio bin: one table per (experiment, benchmark), models down, metric × bin across."""
    groups: dict[tuple[str, str], dict[tuple[str, str, str], dict]] = defaultdict(dict)
    for r in records:
        if r["metric"] not in BIN_METRICS:
            continue
        settings = r.get("settings") or {}
        label = settings.get("hole_bin")
        if label is None:
            continue
        groups[(str(settings.get("experiment", "")), r["benchmark"])][(r["metric"], r["model"], str(label))] = r
    if not groups:
        return ["<p>No per-bin records (bins need at least two images each).</p>"]
    out = ["<p>Each cell: the score over the images whose hole covers that share of the image (n = images).</p>"]
    for (exp, bench), cells in sorted(groups.items()):
        models = list(dict.fromkeys(m for _, m, _ in cells))
        metrics = [m for m in BIN_METRICS if any(k[0] == m for k in cells)]
        bins = {m: sorted({b for k, _, b in cells if k == m}, key=_bin_key) for m in metrics}
        out.append(f"<h3>{_e(BENCHMARK_NAMES.get(bench, bench))} <small>({_e(exp)})</small></h3>")
        head1 = "".join(f'<th colspan="{len(bins[m])}">{BIN_METRICS[m]} by hole ratio</th>' for m in metrics)
        head2 = "".join(f'<th class="num">{_e(b)}</th>' for m in metrics for b in bins[m])
        out.append(f'<div class="scroll"><table><thead><tr><th rowspan="2">model</th>{head1}</tr>'
                   f"<tr>{head2}</tr></thead><tbody>")
        for model in models:
            row = []
            for m in metrics:
                for b in bins[m]:
                    rec = cells.get((m, model, b))
                    if rec is None:
                        row.append('<td class="num"></td>')
                        continue
                    tip = f"n = {rec.get('n_images')} images · weights: {rec.get('weights_kind')}"
                    row.append(f'<td class="num" title="{_e(tip)}">{_num(rec["value"])} '
                               f'<small>(n={_e(rec.get("n_images"))})</small></td>')
            out.append(f"<tr><th>{_e(display_name(model))}</th>{''.join(row)}</tr>")
        out.append("</tbody></table></div>")
    return out


def _grids(grids: Sequence[tuple[Grid, Path]], here: Path) -> list[str]:
    if not grids:
        return ["<p>No qualitative grids were made.</p>"]
    from moebius.report.qualitative import grid_note

    out = []
    for grid, figure in grids:
        bench = BENCHMARK_NAMES.get(grid.spec.benchmark, grid.spec.benchmark)
        out.append(f'<h3 id="grid-{_e(grid.spec.experiment)}-{_e(grid.spec.benchmark)}">{_e(bench)} '
                   f"<small>({_e(grid.spec.experiment)})</small></h3>")
        head = "".join(f"<th>{_e(c.label)}" + (f'<span class="kind">{_e(c.weights_kind)}</span>' if c.weights_kind else "")
                       + "</th>" for c in grid.columns)
        out.append(f'<div class="scroll"><table class="grid"><thead><tr><th></th>{head}</tr></thead><tbody>')
        for row in grid.rows:
            cells = "".join(f"<td>{_img(t, here, f'{c.label}, image {row.image_id}')}</td>"
                            for c, t in zip(grid.columns, row.thumbs))
            out.append(f'<tr><th class="row">{_e(row.image_id)}<br>hole {100 * row.hole_ratio:.0f}%</th>{cells}</tr>')
        out.append("</tbody></table></div>")
        out.append(f'<p><small>{_e(grid_note(grid))}. As one figure: '
                   f'<a href="{_href(figure, here)}">{_e(Path(figure).name)}</a></small></p>')
    return out


FIGURE_GROUPS = (("train_", "Training curves"), ("mask_", "Masks"), ("qualitative_", "Qualitative grids (one figure each)"))


def _figures(plots: Sequence[Path], here: Path) -> list[str]:
    groups: dict[str, list[Path]] = defaultdict(list)
    for p in plots:
        title = next((t for prefix, t in FIGURE_GROUPS if Path(p).name.startswith(prefix)), "Paper tables")
        groups[title].append(Path(p))
    order = ["Paper tables", *(t for _, t in FIGURE_GROUPS)]
    out = []
    for title in order:
        if not groups.get(title):
            continue
        out.append(f"<h3>{_e(title)}</h3>")
        if title == FIGURE_GROUPS[-1][1]:  # the grids are on the page above; their figures are only linked
            out.append("<ul>" + "".join(f'<li><a href="{_href(p, here)}">{_e(p.name)}</a></li>' for p in groups[title])
                       + "</ul>")
            continue
        for p in groups[title]:
            out.append(f'<figure id="fig-{_e(p.stem)}">{_img(p, here, p.stem)}'
                       f'<figcaption><a href="{_href(p, here)}">{_e(p.name)}</a></figcaption></figure>')
    return out or ["<p>(no figures were made)</p>"]


def _provenance(prov: dict[str, Any]) -> list[str]:
    def many(values: Iterable[str]) -> str:
        return ", ".join(f"<code>{_e(v)}</code>" for v in values) or "—"

    out = ['<dl class="prov">']
    for label, key in (("scale", "scale"), ("weights kinds", "weights_kind"), ("git commit", "git_commit"),
                       ("config hash", "config_hash"), ("seed", "seed")):
        out.append(f"<dt>{label}</dt><dd>{many(prov[key])}</dd>")
    out.append(f"<dt>records</dt><dd>{prov['n_records']}</dd></dl>")
    out.append("<h3>Data versions</h3><table><thead><tr><th>benchmark</th><th>data version</th></tr></thead><tbody>")
    out += [f"<tr><td>{_e(BENCHMARK_NAMES.get(b, b))}</td><td>{many(v)}</td></tr>" for b, v in prov["data_version"].items()]
    out.append("</tbody></table><h3>Library versions</h3>"
               "<table><thead><tr><th>library</th><th>version</th></tr></thead><tbody>")
    out += [f"<tr><td>{_e(lib)}</td><td>{many(v)}{' ⚠ mixed' if len(v) > 1 else ''}</td></tr>"
            for lib, v in prov["library_versions"].items()]
    return out + ["</tbody></table>"]


def _paper_vs_code(records: Sequence[dict[str, Any]], package_dir: Path | None) -> list[str]:
    section = paper_vs_code(list(records), package_dir)
    out = [f"<p>{_inline(PAPER_VS_CODE_INTRO)}</p>",
           '<div class="scroll"><table><thead><tr><th>switch</th><th>config key</th><th>paper</th>'
           "<th>official code</th><th>this run</th><th>measured effect of flipping</th></tr></thead><tbody>"]
    for s in section.switches:
        used = ", ".join(f"<code>{_e(u)}</code>" for u in s.used) or "not recorded"
        out.append(f"<tr><td>{_e(s.name)}</td><td>{'<code>' + _e(s.key) + '</code>' if s.key else '—'}</td>"
                   f"<td>{_inline(s.paper)}</td><td>{_inline(s.official)}</td><td>{used}</td>"
                   f"<td>{_e(effect_text(s))}</td></tr>")
    out.append(f"</tbody></table></div><h3>Every DEVIATION marker ({len(section.markers)})</h3>"
               '<div class="scroll"><table><thead><tr><th>where</th><th>departs from</th><th>what, why, cost</th>'
               "</tr></thead><tbody>")
    out += [f"<tr><td><code>{_e(m.path)}:{m.line}</code></td><td>{_e(m.source) or '—'}</td><td>{_inline(m.text)}</td></tr>"
            for m in section.markers]
    return out + ["</tbody></table></div>"]


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

def write_html(out_html: Path, tables: dict[str, Path], plots: Sequence[Path], records: Sequence[dict[str, Any]],
               grids: Sequence[tuple[Grid, Path]] = (), report_md: Path | None = None,
               package_dir: Path | None = None) -> Path:
    """Write the page; every linked file must exist (a page with a broken image is never written)."""
    out_html = Path(out_html)
    here = out_html.parent
    if not records:
        raise ReportError("no records: nothing was reproduced, refusing to write an empty page")
    frames = read_tables(tables)
    for p in [*plots, *(f for _, f in grids), *(t for g, _ in grids for r in g.rows for t in r.thumbs)]:
        if not Path(p).is_file():
            raise ReportError(f"image for the page not found: {p}")
    if report_md is not None and not Path(report_md).is_file():
        raise ReportError(f"report page to link not found: {report_md}")
    prov = provenance(list(records))

    sections = [("summary", "How far from the paper"), ("tables", "Tables"), ("bins", "By hole ratio"),
                ("qualitative", "Qualitative comparison"), ("figures", "Figures"), ("provenance", "Provenance"),
                ("paper-vs-code", "Paper vs code")]
    body = ["<h1>Moebius reproduction report</h1>",
            "<p>Every reproduced number is one result record (hover a cell for its record, CI and image count; "
            "<code>moebius trace TABLE.csv ROW</code> prints it)."
            + (f' The same content as Markdown: <a href="{_href(report_md, here)}">{_e(Path(report_md).name)}</a>.'
               if report_md is not None else "") + "</p>"]
    body += _notices(prov)
    body.append("<nav><ol>" + "".join(f'<li><a href="#{k}">{_e(t)}</a></li>' for k, t in sections) + "</ol></nav>")

    body += ['<h2 id="summary">How far from the paper</h2>', _legend(), *_summary(frames, tables, here)]
    body.append('<h2 id="tables">Tables</h2>')
    for name, df in frames.items():
        body.append(f'<h3 id="{name}">{_e(TABLES[name].title)} '
                    f'<small><a href="{_href(tables[name], here)}">{_e(Path(tables[name]).name)}</a></small></h3>')
        body += _paper_table(name, df)
    body += ['<h2 id="bins">By hole ratio</h2>', *_hole_bins(records)]
    body += ['<h2 id="qualitative">Qualitative comparison</h2>',
             "<p>Masked input (hole in white), each model's composited output and the ground truth: the same "
             "images and masks for every model, picked evenly from the smallest hole to the largest.</p>",
             *_grids(grids, here)]
    body += ['<h2 id="figures">Figures</h2>', *_figures(plots, here)]
    body += ['<h2 id="provenance">Provenance</h2>', *_provenance(prov)]
    body += ['<h2 id="paper-vs-code">Paper vs code</h2>', *_paper_vs_code(records, package_dir)]

    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            '<link rel="icon" href="data:,">\n'  # no favicon request: the page loads nothing it does not link
            "<title>Moebius reproduction report</title>\n<style>" + CSS + "</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")
    write_text(out_html, page)
    return out_html
