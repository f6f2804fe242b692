"""The authors' published evaluation masks as a stored set: `moebius masks import` and what reads it."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from archives import zip_bytes
from PIL import Image

from moebius.config import ConfigError, load_config
from moebius.data.benchmarks import prepare_benchmark
from moebius.data.manifest import row_for_png, write_manifest
from moebius.data.preprocess import save_png
from moebius.errors import ChecksumError, MaskError, UnsafeArchiveError
from moebius.masks import (
    import_official_masks,
    mask_set_settings,
    official_dir,
    read_mask_set,
)

SIZE = 16
ORIGINALS = (1, 2, 10)  # CelebA-HQ-style names: by name "1" < "10" < "2", by id 00001 < 00002 < 00010
IDS = [f"celebahq-{n:05d}" for n in ORIGINALS]


def _hole(n: int) -> np.ndarray:
    """A distinct hole per original image (bool, True = hole), so a wrong pairing shows."""
    hole = np.zeros((SIZE, SIZE), bool)
    hole[2 : 2 + n % 7 + 3, 1 : 1 + n] = True
    return hole


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    """A prepared benchmark whose dataset manifest names the original files (as fetch_dataset writes it)."""
    data = tmp_path / "datasets" / "celebahq" / "val"
    rng = np.random.default_rng(0)
    rows = []
    for n, image_id in zip(ORIGINALS, IDS):
        png = save_png(data / f"{image_id}.png", rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
        rows.append(row_for_png(image_id, f"extracted/CelebAMask-HQ/CelebA-HQ-img/{n}.jpg", png, SIZE, SIZE))
    write_manifest(data, rows)
    return prepare_benchmark(data, tmp_path / "benchmarks" / "celebahq512", n_images=None, size=SIZE,
                             preprocess="migan_resize", seed=0)


def _archive(tmp_path: Path, names: dict[int, str], polarity: str = "255_hole", name: str = "masks.zip",
             extra: dict[str, bytes] | None = None) -> Path:
    """A zip in the layout of the official Drive folder: one folder of single-channel 0/255 PNGs."""
    entries = {}
    for n, file_name in names.items():
        hole = _hole(n)
        pixels = np.where(hole if polarity == "255_hole" else ~hole, 255, 0).astype(np.uint8)
        entries[f"celebahq/{file_name}"] = _png(pixels)
    entries.update(extra or {})
    path = tmp_path / name
    path.write_bytes(zip_bytes(entries))
    return path


def _stored(tmp_path: Path) -> Path:
    """Where the tests store the imported set: ``<tmp_path>/masks/official/v1/celebahq512``."""
    return official_dir(tmp_path / "masks", "celebahq512")


def _import(source: Path, bench: Path, tmp_path: Path, **kw) -> dict:
    return import_official_masks(source, "celebahq512", bench, _stored(tmp_path), **kw)


def _imported(tmp_path: Path, bench: Path) -> Path:
    """The masks named by their original files, imported once; the stored set's folder."""
    _import(_archive(tmp_path, {n: f"{n}.png" for n in ORIGINALS}), bench, tmp_path)
    return _stored(tmp_path)


def test_import_by_original_names_writes_the_stored_layout(tmp_path, bench) -> None:
    archive = _archive(tmp_path, {n: f"{n}.png" for n in ORIGINALS})
    summary = _import(archive, bench, tmp_path)
    out = tmp_path / "masks" / "official" / "v1" / "celebahq512"
    assert summary["dir"] == str(out) and summary["n"] == 3 and summary["size"] == SIZE
    masks, info = read_mask_set(out, IDS, SIZE)  # the stored-set reader takes it like a generated set
    for n, image_id in zip(ORIGINALS, IDS):
        assert np.array_equal(masks[image_id], _hole(n)), image_id
    assert info.polarity == "255_hole" and (info.protocol, info.version) == ("official", "1")
    manifest = pd.read_csv(out / "manifest.csv", dtype=str)
    assert list(manifest["id"]) == IDS
    assert list(manifest["source_file"]) == [f"celebahq/{n}.png" for n in ORIGINALS]
    assert [float(r) for r in manifest["hole_ratio"]] == pytest.approx([_hole(n).mean() for n in ORIGINALS])
    assert all(manifest["sha256"][k] == hashlib.sha256((out / f"{i}.png").read_bytes()).hexdigest()
               for k, i in enumerate(IDS))
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert json.loads((tmp_path / "masks" / "official" / "v1" / "checksums.json").read_text()) == {"celebahq512": sha}
    record = json.loads((out / "import.json").read_text())
    assert record["source_sha256"] == sha and record["pairing"] == "stem" and not record["converted"]
    manifest_sha = hashlib.sha256((out / "manifest.csv").read_bytes()).hexdigest()
    assert summary["manifest_sha256"] == manifest_sha
    assert mask_set_settings(out) == {"mask_source": "official", "mask_set": f"official v1 sha256:{manifest_sha}",
                                      "mask_manifest_sha256": manifest_sha}
    _import(archive, bench, tmp_path)  # the same bytes again: accepted


def test_sorted_pairing_follows_the_official_scripts_name_order(tmp_path, bench) -> None:
    # The official script pairs the i-th mask with the i-th image, both sorted by file name: the images
    # 1, 10, 2 (CelebA-HQ names) go with 000000, 000001, 000002.
    by_name = sorted(ORIGINALS, key=str)
    archive = _archive(tmp_path, {n: f"{k:06d}.png" for k, n in enumerate(by_name)})
    with pytest.raises(MaskError, match="pair with no image id"):
        _import(archive, bench, tmp_path)  # sequential names are no ids: stem pairing refuses
    _import(archive, bench, tmp_path, pairing="sorted")
    masks, _ = read_mask_set(_stored(tmp_path), IDS, SIZE)
    for n, image_id in zip(ORIGINALS, IDS):
        assert np.array_equal(masks[image_id], _hole(n)), image_id


def test_masks_stored_255_known_are_inverted_and_say_so(tmp_path, bench) -> None:
    archive = _archive(tmp_path, {n: f"{n}.png" for n in ORIGINALS}, polarity="255_known")
    summary = _import(archive, bench, tmp_path, polarity="255_known")
    out = _stored(tmp_path)
    masks, _ = read_mask_set(out, IDS, SIZE)
    assert all(np.array_equal(masks[i], _hole(n)) for n, i in zip(ORIGINALS, IDS))
    assert summary["converted"] and json.loads((out / "import.json").read_text())["conversion"] == \
        "inverted 255_known -> 255_hole"
    assert set(pd.read_csv(out / "manifest.csv")["source_polarity"]) == {"255_known"}


def test_grey_pixels_are_binarised_at_128_and_counted(tmp_path, bench) -> None:
    """As the pipeline reads a mask (`/ 255 >= 0.5`); a lossy set shows in grey_pixels."""
    root = tmp_path / "folder"
    root.mkdir()
    for n in ORIGINALS:
        pixels = np.where(_hole(n), 200, 30).astype(np.uint8)  # grey: as if saved lossy
        pixels[0, 0] = 128  # exactly the threshold: hole
        Image.fromarray(pixels).convert("RGB").save(root / f"{n}.png")  # and three channels
    summary = _import(root, bench, tmp_path)  # a folder works as well as an archive
    masks, _ = read_mask_set(_stored(tmp_path), IDS, SIZE)
    for n, image_id in zip(ORIGINALS, IDS):
        want = _hole(n).copy()
        want[0, 0] = True
        assert np.array_equal(masks[image_id], want)
    assert summary["grey_pixels"] == 3 * SIZE * SIZE


@pytest.mark.hostile(
    "official masks whose count, size or names do not match the benchmark's images (one too few, 32 px for a "
    "16-px benchmark, a name that is no id, two files with one name)",
    "one-line MaskError before anything is written: no manifest, no mask, no checksum recorded",
)
@pytest.mark.parametrize("case, message", [
    ("count", "2 official mask file.*has 3 images"),
    ("size", "is 32x32, the benchmark's images are 16x16"),
    ("stray", r"pair with no image id.*celebahq/11\.png"),
    ("duplicate", "two official mask files are named '2'"),
])
def test_import_refuses_a_set_that_does_not_match_the_benchmark(tmp_path, bench, case, message) -> None:
    names = {n: f"{n}.png" for n in ORIGINALS}
    extra = {}
    if case == "count":
        del names[10]
    elif case == "stray":
        names[10] = "11.png"
    elif case == "duplicate":
        names[10] = "2.jpg"
    if case == "size":
        extra = {"celebahq/10.png": _png(np.zeros((32, 32), np.uint8))}
        del names[10]
    archive = _archive(tmp_path, names, extra=extra)
    with pytest.raises(MaskError, match=message):
        _import(archive, bench, tmp_path)
    assert not (tmp_path / "masks").exists() or not list((tmp_path / "masks").rglob("*.png"))
    assert not (tmp_path / "masks" / "official" / "v1" / "checksums.json").exists()


@pytest.mark.hostile(
    "a second import of other official masks for a benchmark already imported (a changed or corrupted download)",
    "ChecksumError against the sha256 recorded on first import; the stored set is left as it was",
)
def test_a_different_archive_later_is_refused(tmp_path, bench) -> None:
    out = _imported(tmp_path, bench)
    before = (out / "manifest.csv").read_bytes()
    other = _archive(tmp_path, {n: f"{n}.png" for n in ORIGINALS}, polarity="255_known", name="other.zip")
    with pytest.raises(ChecksumError, match="recorded for celebahq512 on first import"):
        _import(other, bench, tmp_path)
    assert (out / "manifest.csv").read_bytes() == before


@pytest.mark.hostile(
    "an imported official mask replaced on disk after the import",
    "MaskError naming the file (its sha256 differs from the manifest) when a sampling job reads the set",
)
def test_a_replaced_imported_mask_is_refused(tmp_path, bench) -> None:
    out = _imported(tmp_path, bench)
    # same hole ratio, other pixels: only the checksum can tell
    Image.fromarray(np.where(np.roll(_hole(1), 1, axis=0), 255, 0).astype(np.uint8)).save(out / f"{IDS[0]}.png")
    with pytest.raises(MaskError, match=f"{IDS[0]}.png: sha256 .* does not match"):
        read_mask_set(out, IDS, SIZE)


@pytest.mark.hostile(
    "an official-mask archive with a member named ../escape.png, and one with an unreadable mask file",
    "UnsafeArchiveError / one-line MaskError; nothing extracted outside, no set written",
)
def test_unsafe_or_corrupt_archives_are_refused(tmp_path, bench) -> None:
    names = {n: f"{n}.png" for n in ORIGINALS}
    bad = _archive(tmp_path, names, extra={"../escape.png": _png(np.zeros((SIZE, SIZE), np.uint8))})
    with pytest.raises(UnsafeArchiveError):
        _import(bad, bench, tmp_path)
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "masks" / "escape.png").exists()
    noise = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    half = _png(noise)[:200]  # header intact (the size check passes), pixel data cut short
    truncated = _archive(tmp_path, {1: "1.png", 2: "2.png"}, name="t.zip", extra={"celebahq/10.png": half})
    with pytest.raises(MaskError, match="celebahq/10.png: not a readable image"):
        _import(truncated, bench, tmp_path)
    assert not _stored(tmp_path).exists()  # not even a partial set
    assert not [p for p in (tmp_path / "masks" / "official" / "v1").iterdir() if p.name.endswith(".import")]


@pytest.mark.hostile(
    "`moebius masks import` with an archive holding one mask fewer than the benchmark has images",
    "one line `moebius: error: …` naming both counts, exit 2",
)
def test_cli_import_one_line_errors_and_success(tmp_path, bench, run_cli) -> None:
    out = tmp_path / "set"
    short = _archive(tmp_path, {1: "1.png", 2: "2.png"}, name="short.zip")
    res = run_cli("masks", "import", str(short), "--benchmark", "celebahq512", "--images", str(bench), "--out", str(out))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "moebius: error: celebahq512: 2 official mask file(s)" in res.stderr and "has 3 images" in res.stderr
    full = _archive(tmp_path, {n: f"{n}.png" for n in ORIGINALS})
    res = run_cli("masks", "import", str(full), "--benchmark", "celebahq512", "--images", str(bench), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "imported 3 official masks of celebahq512" in res.stdout and "255 read as hole" in res.stdout
    assert (out / "manifest.csv").is_file()
    res = run_cli("masks", "import", "--help")
    assert "drive.google.com" in res.stdout


@pytest.mark.hostile(
    "a config that scores a benchmark with the official masks but names no archive for it, or names an "
    "archive for a benchmark that does not exist",
    "ConfigError naming the key, before anything runs",
)
def test_config_official_source_needs_an_archive(tmp_path) -> None:
    base = yaml.safe_load(Path("config/smoke.yaml").read_text())
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({**base, "masks": {**base["masks"], "source": "official"}}))
    with pytest.raises(ConfigError, match="masks.official.archives: no archive for benchmark"):
        load_config(cfg_file)
    cfg_file.write_text(yaml.safe_dump({**base, "masks": {**base["masks"], "official": {"archives": {"ffhq265": "x"}}}}))
    with pytest.raises(ConfigError, match="did you mean 'ffhq256'"):
        load_config(cfg_file)
    one = {**base, "masks": {**base["masks"], "official": {"archives": {"ffhq256": "x.zip"}}}}
    one["benchmarks"] = {**base["benchmarks"], "ffhq256": {**base["benchmarks"]["ffhq256"], "mask_source": "official"}}
    cfg_file.write_text(yaml.safe_dump(one))
    cfg = load_config(cfg_file)  # one benchmark official, the others generated
    assert cfg.mask_source("ffhq256") == "official" and cfg.mask_source("celebahq512") == "generated"


def test_official_source_makes_the_dag_import_and_read_the_official_sets(tmp_path) -> None:
    """masks.source: official → one import job per benchmark, no generated set, and every sampling and
    scoring job reads masks/official/v1/<benchmark>."""
    import re
    import subprocess
    import sys

    base = yaml.safe_load(Path("config/smoke.yaml").read_text())
    archives = {}
    for name in base["benchmarks"]:
        archives[name] = str(tmp_path / f"{name}.zip")
        Path(archives[name]).write_bytes(b"placeholder: a dry run reads no input")
    cfg_file = tmp_path / "official.yaml"
    cfg_file.write_text(yaml.safe_dump({**base, "masks": {**base["masks"], "source": "official",
                                                           "official": {"archives": archives}}}))
    snakemake = Path(sys.executable).parent / "snakemake"
    result = subprocess.run([str(snakemake) if snakemake.exists() else "snakemake", "--nolock", "all", "-n",
                             "--forceall", "-p", "--configfile", str(cfg_file)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    counts = {m.group(1): int(m.group(2))
              for m in re.finditer(r"^(\w+)\s+(\d+)$", result.stdout.split("Job stats:", 1)[1], flags=re.MULTILINE)}
    assert counts["official_mask_set"] == len(base["benchmarks"]) and "mask_set" not in counts
    assert f"masks import {archives['ffhq256']} --benchmark ffhq256" in result.stdout
    # Jobs name their benchmark and the CLI finds the set through moebius.layout; the DAG's inputs
    # (mask manifests), the leak rule's --masks BENCH=DIR and the report's grids show which sets those are.
    used = (set(re.findall(r"masks=(masks/[^,\s]+)", result.stdout))
            | set(re.findall(r"(masks/[\w/.-]+)/manifest\.csv", result.stdout))
            | set(re.findall(r"--masks (?:\w+=)?(\S+)", result.stdout)))
    assert used and all(u.startswith("masks/official/v1/") for u in used), sorted(used)
