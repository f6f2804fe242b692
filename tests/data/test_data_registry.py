"""Dataset registry: facts, lookups, and fetch_dataset() against a 127.0.0.1 server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from archives import tar_bytes, zip_bytes
from local_http_server import http_server  # noqa: F401 (pytest fixture)

from moebius.data.manifest import read_manifest, verify_manifest
from moebius.data.preprocess import PREPROCESSORS, encode_png, load_image
from moebius.data.registry import (
    DATASETS,
    fetch_dataset,
    get_dataset,
    list_datasets,
)
from moebius.errors import ChecksumError, DataError, DownloadError, UnknownNameError

REPO = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(7)


def _img(h=12, w=10) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


# --- facts --------------------------------------------------------------------------------------


def test_paper_counts_and_sources():
    places = get_dataset("places365")
    assert {s.name: s.count for s in places.splits} == {"train": 1_803_460, "val": 36_500, "val_256": 36_500,
                                                         "test": 328_500}
    assert all(a.url.startswith("http://data.csail.mit.edu/places/places365/") for a in places.archives)
    assert places.archive("val_large.tar").md5 == "9b71c4993ad89d2d8bcbdc4aef38042f"
    celeba = get_dataset("celebahq")
    assert (celeba.split("train").count, celeba.split("val").count) == (24_183, 2_993)
    ffhq = get_dataset("ffhq")
    assert ffhq.split("val", "last_10k").rule == "last" and ffhq.split("val", "first_10k").rule == "first"
    assert ffhq.split("val").name == "val_first_10k"  # MI-GAN's first 10K unless asked otherwise
    assert ffhq.split("train", "last_10k").count + ffhq.split("val", "last_10k").count == 70_000
    lvis = get_dataset("lvis")
    assert lvis.split("sample").count == 10_000 and lvis.split("sample").rule == "seeded"
    assert lvis.archive("lvis_v1_val.json.zip").url.startswith("https://dl.fbaipublicfiles.com/LVIS/")
    dff = get_dataset("deepfakeface")
    assert dff.hub_id == "OpenRL/DeepFakeFace" and dff.split("sample").count == 3_000
    assert dff.archive("wiki.zip").url.endswith("OpenRL/DeepFakeFace/resolve/main/wiki.zip")
    assert list_datasets("smoke") == ["smoke_natural", "smoke_ood_natural", "smoke_ood_portrait", "smoke_portrait"]


def test_no_invented_checksums():
    for spec in DATASETS.values():
        for a in spec.archives:
            assert a.sha256 is None  # none is published for any of these archives
            assert a.md5 is None or spec.name == "places365"
    assert get_dataset("places365").archive("val_256.tar").md5 is None  # not recorded here: ours on first download


def test_official_masks_are_registered_without_a_checksum():
    from moebius import cli
    from moebius.data.registry import OFFICIAL_MASKS, OFFICIAL_MASKS_URL

    assert OFFICIAL_MASKS.url is None and OFFICIAL_MASKS.sha256 is None and OFFICIAL_MASKS.md5 is None
    assert OFFICIAL_MASKS_URL.startswith("https://drive.google.com/drive/folders/")
    assert OFFICIAL_MASKS_URL in OFFICIAL_MASKS.manual and "moebius masks import" in OFFICIAL_MASKS.manual
    assert cli.OFFICIAL_MASKS_URL == OFFICIAL_MASKS_URL  # the copy that `--help` shows


def test_lookups_hint_on_typos():
    with pytest.raises(UnknownNameError, match="did you mean 'places365'"):
        get_dataset("place365")
    with pytest.raises(UnknownNameError, match="did you mean 'val'"):
        get_dataset("places365").split("vall")
    with pytest.raises(UnknownNameError, match="ffhq_validation"):
        get_dataset("ffhq").split("val", "middle_10k")


# The paper's evaluation protocols (Sec. 4.1): images and size per benchmark, and the mask protocol.
# config/full.yaml is the one benchmark table of the code; this checks it against the paper.
PAPER_PROTOCOLS = {
    "places2_test": (10_000, 512, "places2_test"),
    "places2_large": (36_500, 512, "mat_large_512"),
    "places2_small": (36_500, 512, "mat_small_512"),
    "places2_256": (36_500, 256, "migan_256"),
    "celebahq512": (2_993, 512, "mat_large_512"),
    "ffhq256": (10_000, 256, "lama_thick_256"),
    "lvis": (10_000, 512, "places2_test"),  # OOD natural: masks as Places2 (Test)
    "deepfakeface": (3_000, 512, "mat_large_512"),  # OOD portrait: masks as CelebA-HQ (512)
}


@pytest.mark.parametrize("config", ["full.yaml", "smoke.yaml"])
def test_config_benchmarks_resolve_against_the_registry(config):
    benchmarks = yaml.safe_load((REPO / "config" / config).read_text()).get("benchmarks", {})
    assert benchmarks
    for name, b in benchmarks.items():
        spec = get_dataset(b["dataset"])
        split = spec.split(b["split"])
        assert b["preprocess"] in PREPROCESSORS
        if config == "full.yaml":
            assert (b["n_images"], b["size"], b["mask_protocol"]) == PAPER_PROTOCOLS[name], name
            assert b["n_images"] <= (split.count or 0), name
    if config == "full.yaml":
        assert sorted(benchmarks) == sorted(PAPER_PROTOCOLS)


def test_full_config_follows_the_protocol_of_each_paper_row():
    """FFHQ (256): MI-GAN's first 10K; Places2 (256): Places' own 256 x 256 val images (MI-GAN);
    CelebA-HQ (512): MAT's whole faces, downscaled; 256-px benchmarks scored at the model's 512 (official)."""
    from moebius.config import DataConfig, SampleConfig, load_config

    cfg = load_config(REPO / "config" / "full.yaml")
    assert cfg.data.ffhq_validation == DataConfig().ffhq_validation == "first_10k"
    ffhq = cfg.benchmarks["ffhq256"]
    assert get_dataset(ffhq.dataset).split(ffhq.split, cfg.data.ffhq_validation).name == "val_first_10k"
    assert get_dataset("ffhq").split("train", cfg.data.ffhq_validation).rule == "last"  # trains on the other 60K
    assert (cfg.benchmarks["places2_256"].split, cfg.benchmarks["places2_256"].preprocess) == ("val_256", "migan_resize")
    assert cfg.benchmarks["celebahq512"].preprocess == "migan_resize"  # not a 512 crop out of a 1024 face
    assert cfg.sample.score_size == SampleConfig().score_size == "model"
    assert cfg.masks.source == "generated" and not cfg.masks.official.archives


# --- fetch --------------------------------------------------------------------------------------


def test_fetch_downloads_extracts_converts_and_records_checksum(http_server, tmp_path):
    images = {f"wiki/{d}/{i}.png": _img() for d, i in (("00", 1), ("00", 2), ("17", 3))}
    archive = zip_bytes({k: encode_png(v) for k, v in images.items()})
    http_server.files["/wiki.zip"] = archive
    raw, out = tmp_path / "raw", tmp_path / "data/deepfakeface/all"

    fetch_dataset("deepfakeface", raw, out, "all", base_url=http_server.url, check_counts=False, progress=False)

    df = read_manifest(out)
    assert list(df["id"]) == ["dff-wiki_00_1", "dff-wiki_00_2", "dff-wiki_17_3"]
    assert verify_manifest(out) == 3
    for (name, pixels), image_id in zip(sorted(images.items()), df["id"]):
        np.testing.assert_array_equal(load_image(out / f"{image_id}.png"), pixels)
    ledger = json.loads((raw / "checksums.json").read_text())
    assert ledger == {"wiki.zip": hashlib.sha256(archive).hexdigest()}

    # a later download is checked against the recorded checksum
    (raw / "wiki.zip").unlink()
    http_server.files["/wiki.zip"] = zip_bytes({"wiki/00/1.png": encode_png(_img())})
    with pytest.raises(ChecksumError):
        fetch_dataset("deepfakeface", raw, tmp_path / "again", "all", base_url=http_server.url, check_counts=False,
                      progress=False)
    assert not (raw / "wiki.zip").exists()


def test_fetch_checks_the_expected_count(http_server, tmp_path):
    http_server.files["/wiki.zip"] = zip_bytes({"wiki/a.png": encode_png(_img())})
    with pytest.raises(DataError, match="expected 30000"):
        fetch_dataset("deepfakeface", tmp_path / "raw", tmp_path / "out", "all", base_url=http_server.url,
                      progress=False)
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_fetch_checks_published_md5(http_server, tmp_path):
    http_server.files["/val_large.tar"] = tar_bytes({"val_large/Places365_val_00000001.png": encode_png(_img())})
    with pytest.raises(ChecksumError, match="md5"):
        fetch_dataset("places365", tmp_path / "raw", tmp_path / "out", "val", base_url=http_server.url,
                      check_counts=False, progress=False)
    assert not (tmp_path / "raw" / "val_large.tar").exists()


def test_fetch_places365_val_256_for_places2_256(http_server, tmp_path):
    """MI-GAN's Places2 (256) images: Places' own 256 x 256 validation archive, checksum recorded on first use."""
    pics = {n: _img(256, 256) for n in (2, 1)}
    archive = tar_bytes({f"val_256/Places365_val_{n:08d}.jpg": encode_png(pixels) for n, pixels in pics.items()})
    http_server.files["/val_256.tar"] = archive
    out = fetch_dataset("places365", tmp_path / "raw", tmp_path / "val_256", "val_256", base_url=http_server.url,
                        check_counts=False, progress=False)
    assert list(read_manifest(out)["id"]) == ["Places365_val_00000001", "Places365_val_00000002"]
    np.testing.assert_array_equal(load_image(out / "Places365_val_00000002.png"), pics[2])
    assert json.loads((tmp_path / "raw" / "checksums.json").read_text()) == {
        "val_256.tar": hashlib.sha256(archive).hexdigest()}
    assert json.loads((out / "split.json").read_text())["resolved"] == "val_256"


def test_fetch_celebahq_uses_the_celeba_partition_of_each_source_image(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    mapping = "idx orig_idx orig_file\n0 10 000011.jpg\n1 20 000021.jpg\n2 30 000031.jpg\n3 40 000041.jpg\n"
    pictures = {i: _img(16, 16) for i in range(4)}
    entries = {f"CelebAMask-HQ/CelebA-HQ-img/{i}.jpg": encode_png(p) for i, p in pictures.items()}  # PNG bytes: lossless
    entries["CelebAMask-HQ/CelebA-HQ-to-CelebA-mapping.txt"] = mapping.encode()
    (raw / "CelebAMask-HQ.zip").write_bytes(zip_bytes(entries))
    (raw / "list_eval_partition.txt").write_text("000011.jpg 0\n000021.jpg 1\n000031.jpg 2\n000041.jpg 1\n")

    out = fetch_dataset("celebahq", raw, tmp_path / "val", "val", check_counts=False, progress=False)
    df = read_manifest(out)
    assert list(df["id"]) == ["celebahq-00001", "celebahq-00003"]
    np.testing.assert_array_equal(load_image(out / "celebahq-00003.png"), pictures[3])
    assert set(json.loads((raw / "checksums.json").read_text())) == {"CelebAMask-HQ.zip", "list_eval_partition.txt"}


def _small_ffhq(monkeypatch) -> None:
    """A registry copy whose FFHQ 10K splits hold 3 images (the test archives have 10)."""
    from dataclasses import replace

    from moebius.data import registry
    from moebius.registry import Registry

    spec = registry.DATASETS["ffhq"]
    small = replace(spec, splits=tuple(replace(s, count=3 if s.count == 10_000 else s.count) for s in spec.splits))
    monkeypatch.setattr(registry, "DATASETS", Registry("dataset", {**dict(registry.DATASETS.items()), "ffhq": small}))


def test_fetch_ffhq_validation_convention(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    entries = {f"images1024x1024/{n // 1000 * 1000:05d}/{n:05d}.png": encode_png(_img(8, 8)) for n in range(70_000)[::7000]}
    (raw / "images1024x1024.zip").write_bytes(zip_bytes(entries))
    # 10 images: 0, 7000, ..., 63000; a 10K rule cannot apply, so check the rules via a tiny registry copy
    _small_ffhq(monkeypatch)
    last = fetch_dataset("ffhq", raw, tmp_path / "last", "val", ffhq_validation="last_10k", check_counts=False,
                         progress=False)
    first = fetch_dataset("ffhq", raw, tmp_path / "first", "val", ffhq_validation="first_10k", check_counts=False,
                          progress=False)
    assert list(read_manifest(last)["id"]) == ["ffhq-49000", "ffhq-56000", "ffhq-63000"]
    assert list(read_manifest(first)["id"]) == ["ffhq-00000", "ffhq-07000", "ffhq-14000"]


def test_ffhq_defaults_to_the_first_10k_and_every_record_names_the_split(tmp_path, monkeypatch):
    """FFHQ (256) follows MI-GAN (first 10K) by default; the split travels to the benchmark's records."""
    from moebius.data.benchmarks import (
        benchmark_settings,
        prepare_benchmark,
        source_stems,
    )

    raw = tmp_path / "raw"
    raw.mkdir()
    entries = {f"images1024x1024/{n:05d}.png": encode_png(_img(8, 8)) for n in range(0, 70_000, 7000)}
    (raw / "images1024x1024.zip").write_bytes(zip_bytes(entries))
    _small_ffhq(monkeypatch)
    val = fetch_dataset("ffhq", raw, tmp_path / "datasets/ffhq/val", "val", check_counts=False, progress=False)
    assert list(read_manifest(val)["id"]) == ["ffhq-00000", "ffhq-07000", "ffhq-14000"]
    split = json.loads((val / "split.json").read_text())
    assert (split["resolved"], split["rule"], split["n_images"], split["n_source"]) == ("val_first_10k", "first", 3, 10)
    bench = prepare_benchmark(val, tmp_path / "benchmarks/ffhq256", n_images=2, size=8, preprocess="migan_resize",
                              seed=0, rule="first")
    assert benchmark_settings(bench) == {"data_split": "ffhq/val_first_10k", "data_selection": "first 2 of 3",
                                         "data_preprocess": "migan_resize 8"}
    assert source_stems(bench) == {"ffhq-00000": "00000", "ffhq-07000": "07000"}  # the original file names


@pytest.mark.hostile(
    "a benchmark folder whose selection.json is not JSON, or lacks the rule and counts",
    "DataError naming the file when a result record is made from it",
)
@pytest.mark.parametrize("text", ["{not json", '{"split": {"dataset": "ffhq"}}'])
def test_benchmark_settings_refuse_a_broken_selection_record(tmp_path, text):
    from moebius.data.benchmarks import benchmark_settings

    assert benchmark_settings(tmp_path)["data_split"] == "unknown"  # a folder made by hand says so
    (tmp_path / "selection.json").write_text(text)
    with pytest.raises(DataError, match="selection.json"):
        benchmark_settings(tmp_path)


def test_fetch_refuses_manual_archives_that_are_absent_and_smoke_sets(tmp_path):
    with pytest.raises(DownloadError, match="CelebAMask-HQ.zip.*put it at"):
        fetch_dataset("celebahq", tmp_path / "raw", tmp_path / "out", "val", progress=False)
    with pytest.raises(DataError, match="make_smoke_dataset"):
        fetch_dataset("smoke_natural", tmp_path / "raw", tmp_path / "out", "train")


def test_fetch_lvis_finds_images_in_both_coco_zips(http_server, tmp_path):
    pics = {("train2017", 5): _img(), ("val2017", 9): _img(), ("train2017", 2): _img()}
    ann = {"images": [{"id": i, "coco_url": f"http://images.cocodataset.org/{sub}/{i:012d}.jpg"} for sub, i in pics]}
    http_server.files["/lvis_v1_val.json.zip"] = zip_bytes({"lvis_v1_val.json": json.dumps(ann).encode()})
    for sub in ("train2017", "val2017"):
        # COCO names its files .jpg; PNG bytes under that name keep the test lossless (Pillow sniffs the format)
        http_server.files[f"/{sub}.zip"] = zip_bytes(
            {f"{sub}/{i:012d}.jpg": encode_png(p) for (s, i), p in pics.items() if s == sub}
        )
    out = fetch_dataset("lvis", tmp_path / "raw", tmp_path / "out", "val", base_url=http_server.url,
                        check_counts=False, progress=False)
    df = read_manifest(out)
    assert list(df["id"]) == ["lvis-000000000002", "lvis-000000000005", "lvis-000000000009"]
    np.testing.assert_array_equal(load_image(out / "lvis-000000000009.png"), pics[("val2017", 9)])
    assert {e["path"] for e in http_server.log} == {"/lvis_v1_val.json.zip", "/train2017.zip", "/val2017.zip"}


@pytest.mark.hostile(
    "a corrupt image inside a downloaded dataset archive",
    "DataError naming the file; no manifest written for the split",
)
def test_fetch_names_a_corrupt_source_image(http_server, tmp_path):
    good = encode_png(_img())
    http_server.files["/wiki.zip"] = zip_bytes({"wiki/00/1.png": good, "wiki/00/2.png": good[: len(good) // 2]})
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"wiki/00/2\.png"):
        fetch_dataset("deepfakeface", tmp_path / "raw", out, "all", base_url=http_server.url, check_counts=False,
                      progress=False)
    assert not (out / "manifest.csv").exists()


@pytest.mark.hostile(
    "malformed list / annotation files: CelebA-HQ mapping with a short line, LVIS JSON that is not JSON or lacks keys",
    "DataError naming the file, not a traceback",
)
@pytest.mark.parametrize(
    "dataset,bad",
    [
        ("celebahq", "idx orig_idx orig_file\n0 10\n"),
        ("celebahq", "idx orig_idx orig_file\nx 10 000011.jpg\n"),
        ("lvis", "{not json"),
        ("lvis", '{"images": [{"id": 1}]}'),
        ("lvis", b"\xff\xfe binary"),
    ],
    ids=["celebahq-short-line", "celebahq-bad-index", "lvis-not-json", "lvis-no-url", "lvis-not-utf8"],
)
def test_fetch_reports_malformed_listing_files(tmp_path, monkeypatch, dataset, bad):
    raw = tmp_path / "raw"
    raw.mkdir()
    data = bad if isinstance(bad, bytes) else bad.encode()
    if dataset == "celebahq":
        (raw / "CelebAMask-HQ.zip").write_bytes(zip_bytes({"CelebAMask-HQ/CelebA-HQ-to-CelebA-mapping.txt": data}))
        (raw / "list_eval_partition.txt").write_text("000011.jpg 0\n")
        name, split = "CelebA-HQ-to-CelebA-mapping.txt", "val"
    else:
        for zname, entries in (("lvis_v1_val.json.zip", {"lvis_v1_val.json": data}), ("train2017.zip", {}),
                               ("val2017.zip", {})):
            (raw / zname).write_bytes(zip_bytes(entries))
        name, split = "lvis_v1_val.json", "val"
    from moebius.data import registry

    monkeypatch.setattr(registry, "download", lambda url, dest, **kw: dest)  # no network: the archives are in raw/
    with pytest.raises(DataError, match=name):
        fetch_dataset(dataset, raw, tmp_path / "out", split, check_counts=False, progress=False)
