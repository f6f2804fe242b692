"""results/index.html in a real browser: headless Chromium loads it with no console message, every image
decodes (naturalWidth > 0), nothing is fetched from outside the results folder, and a screenshot is taken.

The page is built by the CLI (`moebius report … --html … --grid …`) from tiny fixtures: synthetic records,
a training-metrics CSV, mask statistics and a benchmark with masks and samples of three models.

Chromium is required, never skipped: CI installs it (`.ci/run`); elsewhere install Debian's package with
`apt-get update && apt-get install -y chromium` (or point $MOEBIUS_CHROMIUM at a Chrome/Chromium binary).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "report"))  # the report tests' fixture builders (no package __init__ there)

from grid_fixture import grid_arg, write_grid_fixture  # noqa: E402
from report_records import REFERENCE_DIR, synthetic_records, write_record_files  # noqa: E402

MODELS = ("moebius", "pixelhacker", "flux_fill")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHECK_ID = "moebius-browser-check"
# Appended to a copy of the page (the page itself has no script): after every image has loaded or failed,
# write which images did not decode and which resources were not local files into the DOM.
CHECK_SCRIPT = f"""<script>
window.addEventListener("load", () => {{
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"));
  const external = performance.getEntriesByType("resource").map(e => e.name).filter(n => !n.startsWith("file:"));
  const out = document.createElement("pre");
  out.id = "{CHECK_ID}";
  out.textContent = JSON.stringify({{images: images.length, broken, external, width: document.body.scrollWidth}});
  document.body.appendChild(out);
}});
</script>"""


def chromium() -> str:
    found = os.environ.get("MOEBIUS_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not found:
        pytest.fail("headless Chromium is needed for the report page test and was not found: install it with "
                    "`apt-get update && apt-get install -y chromium` (Debian/Ubuntu; CI does this in .ci/run), "
                    "or set MOEBIUS_CHROMIUM to a Chrome/Chromium binary", pytrace=False)
    return found


def browse(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """One headless Chromium run on ``page`` with a fresh profile; console messages go to stderr."""
    args = [chromium(), *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            "--window-size=1280,2400", *extra, page.as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=180)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages (errors, warnings, logs, uncaught exceptions) in Chromium's log."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    results = root / "results"
    record_files = write_record_files(root, synthetic_records())
    train = root / "checkpoints" / "distill" / "train_metrics.csv"
    train.parent.mkdir(parents=True)
    steps = np.arange(1, 21)
    pd.DataFrame({"step": steps, "loss_total": 1 / steps, "lr": 1e-3}).to_csv(train, index=False)
    masks = results / "masks" / "hole_ratio_stats.csv"
    masks.parent.mkdir(parents=True)
    shares = {f"bin_{10 * k:02d}_{10 * (k + 1):02d}": 0.1 for k in range(10)}
    pd.DataFrame([{"protocol": "mat_small_512", "n": 20, "mean": 0.5, **shares}]).to_csv(masks, index=False)
    folders = write_grid_fixture(root, models=MODELS, n=5, size=32)
    args = [str(Path(sys.executable).parent / "moebius"), "report",
            *[a for f in record_files for a in ("--records", str(f))],
            "--reference", str(REFERENCE_DIR), "--train-metrics", f"distill={train}", "--mask-stats", str(masks),
            "--tables-dir", str(results / "tables"), "--plots-dir", str(results / "plots"),
            "--report", str(results / "report.md"), "--metrics-json", str(results / "metrics.json"),
            "--html", str(results / "index.html"), "--thumbs-dir", str(results / "thumbs"),
            "--grid", grid_arg(folders, models=MODELS), "--grid-images", "3"]
    built = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    return results / "index.html"


def test_page_loads_cleanly_in_headless_chromium(site: Path, tmp_path: Path) -> None:
    shot = tmp_path / "index.png"
    run = browse(site, tmp_path / "profile-shot", f"--screenshot={shot}")
    assert run.returncode == 0, run.stderr[-3000:]
    assert console_lines(run.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000  # a page, not a blank

    html = site.read_text(encoding="utf-8")
    n_img = len(re.findall(r"<img\b", html))
    assert n_img == 6 + 3 * (len(MODELS) + 2)  # 6 figures (5 plots + none of the grid figure) + 3 rows × 5 cells
    check = site.with_name("_browser_check.html")  # beside the page: the same relative links resolve
    check.write_text(html.replace("</body>", CHECK_SCRIPT + "\n</body>"), encoding="utf-8")
    run = browse(check, tmp_path / "profile-dom", "--dump-dom", "--virtual-time-budget=10000")
    assert run.returncode == 0, run.stderr[-3000:]
    assert console_lines(run.stderr) == []
    found = re.search(rf'<pre id="{CHECK_ID}">(.*?)</pre>', run.stdout, flags=re.S)
    assert found, "the check script did not run: " + run.stdout[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["images"] == n_img and result["broken"] == [] and result["external"] == []


@pytest.mark.hostile("the report page with one of its images deleted, loaded in Chromium",
                     "the browser check lists that image as broken (the check can fail)")
def test_the_browser_check_sees_a_missing_image(site: Path, tmp_path: Path) -> None:
    copy = tmp_path / "results"
    shutil.copytree(site.parent, copy)
    gone = next((copy / "thumbs").rglob("gt.png"))
    gone.unlink()
    check = copy / "_browser_check.html"
    check.write_text(site.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "\n</body>"), encoding="utf-8")
    run = browse(check, tmp_path / "profile", "--dump-dom", "--virtual-time-budget=10000")
    result = json.loads(re.search(rf'<pre id="{CHECK_ID}">(.*?)</pre>', run.stdout, flags=re.S).group(1)
                        .replace("&quot;", '"').replace("&amp;", "&"))
    assert result["broken"] == [gone.relative_to(copy).as_posix()]
