"""Rehearsal sources: every full-scale dataset, generated in its real layout, served on 127.0.0.1 and
fetched by the real fetch_dataset, then cut into config/full.yaml's benchmarks by the real prepare_benchmark."""

from __future__ import annotations

import http.client
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from moebius.config import load_config
from moebius.data.benchmarks import benchmark_settings, prepare_benchmark
from moebius.data.checksums import file_sha256
from moebius.data.download import download
from moebius.data.manifest import read_manifest, verify_manifest
from moebius.data.registry import fetch_dataset, get_dataset, list_datasets
from moebius.errors import ChecksumError, DataError
from moebius.rehearsal.server import serve
from moebius.rehearsal.sources import (
    SOURCES_NAME,
    fetch_rehearsal_dataset,
    ffhq_indices,
    record_checksums,
    rehearsal_counts,
    rehearsal_n_images,
    rehearsal_spec,
    write_sources,
)

REPO = Path(__file__).resolve().parents[2]
N = 3  # images per split


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sources")
    write_sources(folder, n_images=N, seed=0)
    return folder


@pytest.fixture(scope="module")
def server(sources):
    with serve(sources) as running:
        yield running


@pytest.fixture(scope="module")
def full():
    return load_config(REPO / "config" / "full.yaml")


def _fetch(server, tmp_path: Path, dataset: str, split: str, **kw) -> Path:
    """The real fetch, from the loopback server, with the rehearsal's record of the dataset."""
    return fetch_dataset(dataset, tmp_path / "raw", tmp_path / "datasets" / dataset / split, split,
                         base_url=server.url, progress=False, spec=rehearsal_spec(dataset, server.folder), **kw)


def _bench(full, tmp_path: Path, name: str, dataset_dir: Path, sources: Path) -> Path:
    """config/full.yaml's benchmark ``name``, prepared as the workflow does, at the rehearsal's image count."""
    b = full.benchmarks[name]
    n = rehearsal_n_images(b.dataset, b.split, b.n_images, sources)
    out = prepare_benchmark(dataset_dir, tmp_path / "benchmarks" / name, n_images=n, size=b.size,
                            preprocess=b.preprocess, seed=full.seed, rule=b.selection)
    df = read_manifest(out)
    assert len(df) == n and set(df["width"]) == {b.size} and set(df["height"]) == {b.size}
    assert verify_manifest(out) == n
    return out


def _sizes(folder: Path) -> dict[str, tuple[int, int]]:
    df = read_manifest(folder)
    return {i: (int(h), int(w)) for i, h, w in zip(df["id"], df["height"], df["width"])}


# --- the generated files -------------------------------------------------------------------------


def test_every_registry_archive_is_generated_and_recorded(sources):
    record = json.loads((sources / SOURCES_NAME).read_text())
    for name in list_datasets("full"):
        for archive in get_dataset(name).archives:
            assert (sources / archive.name).is_file()
            assert record["archives"][archive.name]["sha256"] == file_sha256(sources / archive.name)
    # the generated checksums sit in the fields the real archives fill: Places365's md5, else none (the ledger)
    places = rehearsal_spec("places365", sources)
    assert places.archive("val_large.tar").md5 == record["archives"]["val_large.tar"]["md5"]
    assert places.archive("val_large.tar").md5 != get_dataset("places365").archive("val_large.tar").md5
    assert places.archive("val_256.tar").md5 is None  # none published, none here
    assert all(a.sha256 is None and a.md5 is None for a in rehearsal_spec("lvis", sources).archives)
    assert rehearsal_spec("ffhq", sources).split("val", "first_10k").count == N


def test_archives_have_the_published_inner_layout(sources):
    with tarfile.open(sources / "val_large.tar") as tf:
        assert "val_large/Places365_val_00000001.jpg" in tf.getnames()
    with tarfile.open(sources / "filelist_places365-standard.tar") as tf:
        assert {"categories_places365.txt", "places365_train_standard.txt", "places365_val.txt"} <= set(tf.getnames())
        first = tf.extractfile("places365_train_standard.txt").read().decode().splitlines()[0]
    assert first == "/a/airfield/00000001.jpg 0"
    with tarfile.open(sources / "train_large_places365standard.tar") as tf:
        assert "data_large/a/airfield/00000001.jpg" in tf.getnames()  # not <archive name>/: as Places ships it
    with zipfile.ZipFile(sources / "images1024x1024.zip") as zf:
        assert "images1024x1024/63000/63333.png" in zf.namelist()
    with zipfile.ZipFile(sources / "lvis_v1_val.json.zip") as zf:
        assert zf.namelist() == ["lvis_v1_val.json"]
    lines = (sources / "list_eval_partition.txt").read_text().splitlines()
    assert len(lines) == 202_599 and lines[162_770] == "162771.jpg 1" and lines[-1] == "202599.jpg 2"


def test_generation_is_deterministic(tmp_path):
    a = write_sources(tmp_path / "a", n_images=2, seed=5, datasets=["deepfakeface", "lvis"])
    b = write_sources(tmp_path / "b", n_images=2, seed=5, datasets=["deepfakeface", "lvis"])
    c = write_sources(tmp_path / "c", n_images=2, seed=6, datasets=["deepfakeface"])
    assert a == b and set(a) == {"wiki.zip", "lvis_v1_val.json.zip", "lvis_v1_train.json.zip", "train2017.zip",
                                 "val2017.zip"}
    assert c["wiki.zip"] != a["wiki.zip"]


# --- each dataset through the real fetch and benchmark code ---------------------------------------


def test_places365_val_val256_test_and_their_benchmarks(server, sources, full, tmp_path):
    val = _fetch(server, tmp_path, "places365", "val")
    sizes = _sizes(val)
    assert list(sizes) == [f"Places365_val_{i:08d}" for i in (1, 2, 3)]
    assert sizes["Places365_val_00000001"] == (512, 683) and sizes["Places365_val_00000002"] == (683, 512)
    # the md5 archive is checked by its md5 field; its sha256 is still recorded on first download
    assert json.loads((tmp_path / "raw" / "checksums.json").read_text())["val_large.tar"] == file_sha256(
        sources / "val_large.tar")
    for name in ("places2_large", "places2_small"):
        assert set(read_manifest(_bench(full, tmp_path, name, val, sources))["id"]) == set(sizes)

    v256 = _fetch(server, tmp_path, "places365", "val_256")
    assert set(_sizes(v256).values()) == {(256, 256)} and set(_sizes(v256)) == set(sizes)
    _bench(full, tmp_path, "places2_256", v256, sources)

    test = _fetch(server, tmp_path, "places365", "test")
    assert len(_sizes(test)) == rehearsal_counts(N)["places365"]["test"][0]
    bench = _bench(full, tmp_path, "places2_test", test, sources)  # a seeded part of the test split
    assert benchmark_settings(bench)["data_selection"] == f"seeded {N} of {2 * N}, seed 0"
    fetched = [e["path"] for e in server.log if e["status"] == 200]
    assert {"/val_large.tar", "/val_256.tar", "/test_large.tar"} <= set(fetched)


def test_places365_train_follows_the_file_list(server, tmp_path):
    train = _fetch(server, tmp_path, "places365", "train")
    assert sorted(_sizes(train)) == ["Places365_train_a_airfield_00000001", "Places365_train_a_alley_00000001",
                                     "Places365_train_a_apartment_building_outdoor_00000001"]
    assert read_manifest(train)["source"].str.contains("data_large/a/apartment_building/outdoor/").any()


def _celebahq_partition(sources: Path) -> dict[str, str]:
    """CelebA-HQ idx -> partition, read from the generated files independently of the lister."""
    with zipfile.ZipFile(sources / "CelebAMask-HQ.zip") as zf:
        mapping = zf.read("CelebAMask-HQ/CelebA-HQ-to-CelebA-mapping.txt").decode().splitlines()[1:]
    part = dict(line.split() for line in (sources / "list_eval_partition.txt").read_text().splitlines())
    return {f"celebahq-{int(line.split()[0]):05d}": part[line.split()[2]] for line in mapping}


def test_celebahq_val_is_the_celeba_partition(server, sources, full, tmp_path):
    partition = _celebahq_partition(sources)
    expected = sorted(i for i, p in partition.items() if p == "1")
    val = _fetch(server, tmp_path, "celebahq", "val")
    assert sorted(_sizes(val)) == expected and len(expected) == N
    assert expected != sorted(partition)[:N]  # the partitions interleave: index order alone would be wrong
    assert set(_sizes(val).values()) == {(1024, 1024)}
    _bench(full, tmp_path, "celebahq512", val, sources)


def test_celebahq_placed_by_hand_is_checked_against_the_ledger(sources, tmp_path):
    """CelebA-HQ has no direct link: the user puts the files in raw/; the ledger's sha256 checks them."""
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("CelebAMask-HQ.zip", "list_eval_partition.txt"):
        shutil.copy(sources / name, raw / name)
    record_checksums(raw, sources, "celebahq")
    spec = rehearsal_spec("celebahq", sources)
    test = fetch_dataset("celebahq", raw, tmp_path / "test", "test", progress=False, spec=spec)
    assert sorted(_sizes(test)) == sorted(i for i, p in _celebahq_partition(sources).items() if p == "2")
    with open(raw / "list_eval_partition.txt", "a") as fh:
        fh.write("202600.jpg 2\n")  # the hand-placed copy changed since it was recorded
    with pytest.raises(ChecksumError, match="list_eval_partition.txt"):
        fetch_dataset("celebahq", raw, tmp_path / "val", "val", progress=False, spec=spec)


@pytest.mark.parametrize("validation", ["first_10k", "last_10k"])
def test_ffhq_validation_is_the_10k_the_convention_names(server, sources, full, tmp_path, validation):
    val = _fetch(server, tmp_path, "ffhq", "val", ffhq_validation=validation)
    indices = sorted(int(i.split("-")[1]) for i in _sizes(val))
    assert len(indices) == N
    # MI-GAN's FFHQ (256): images 0-9999; FFHQ's own validation: 60000-69999
    assert all(i < 10_000 for i in indices) if validation == "first_10k" else all(i >= 60_000 for i in indices)
    assert set(indices) < set(ffhq_indices(N))
    assert set(_sizes(val).values()) == {(1024, 1024)}
    bench = _bench(full, tmp_path, "ffhq256", val, sources)
    assert benchmark_settings(bench)["data_split"] == f"ffhq/val_{validation}"


@pytest.mark.slow
def test_ffhq_train_is_the_other_images(server, tmp_path):
    val = _fetch(server, tmp_path / "v", "ffhq", "val", ffhq_validation="first_10k")
    train = _fetch(server, tmp_path / "t", "ffhq", "train", ffhq_validation="first_10k")
    assert set(_sizes(val)) | set(_sizes(train)) == {f"ffhq-{i:05d}" for i in ffhq_indices(N)}
    assert all(int(i.split("-")[1]) >= 10_000 for i in _sizes(train))


def test_lvis_sample_draws_from_both_coco_folders(server, sources, full, tmp_path):
    with zipfile.ZipFile(sources / "lvis_v1_val.json.zip") as zf:
        images = json.loads(zf.read("lvis_v1_val.json"))["images"]
    listed = {f"lvis-{im['id']:012d}": im for im in images}
    assert {im["coco_url"].split("/")[-2] for im in images} == {"train2017", "val2017"}
    sample = _fetch(server, tmp_path, "lvis", "sample")
    sizes = _sizes(sample)
    assert len(sizes) == N and set(sizes) < set(listed)  # a seeded part of LVIS val, nothing else
    for image_id, (h, w) in sizes.items():
        assert (h, w) == (listed[image_id]["height"], listed[image_id]["width"])
    bench = _bench(full, tmp_path, "lvis", sample, sources)
    assert benchmark_settings(bench)["data_split"] == "lvis/sample"
    # LVIS val from the same raw folder: the archives are reused, checked against the ledger, not fetched again
    requests = len(server.log)
    val = _fetch(server, tmp_path, "lvis", "val")
    assert set(_sizes(val)) == set(listed) and len(server.log) == requests


def test_deepfakeface_sample_through_the_one_call(sources, full, tmp_path):
    """fetch_rehearsal_dataset: serve, fetch with the rehearsal's record, stop serving."""
    sample = fetch_rehearsal_dataset("deepfakeface", tmp_path / "raw", tmp_path / "sample", "sample", sources,
                                     progress=False)
    ids = sorted(_sizes(sample))
    with zipfile.ZipFile(sources / "wiki.zip") as zf:
        files = [n for n in zf.namelist() if n.endswith(".jpg")]
    assert len(ids) == N and len(files) == 2 * N
    assert all(i.startswith("dff-wiki_") for i in ids)
    _bench(full, tmp_path, "deepfakeface", sample, sources)


# --- hostile --------------------------------------------------------------------------------------


@pytest.mark.hostile(
    "a served dataset archive whose bytes differ from its recorded checksum (published md5, or the ledger's sha256)",
    "ChecksumError; the download is deleted, nothing is extracted, no dataset folder is written",
)
@pytest.mark.parametrize("dataset,split,archive", [("places365", "val", "val_large.tar"),
                                                   ("deepfakeface", "all", "wiki.zip")])
def test_a_substituted_archive_is_refused_before_extraction(sources, tmp_path, dataset, split, archive):
    served = tmp_path / "served"
    served.mkdir()
    for a in get_dataset(dataset).archives:
        shutil.copy(sources / a.name, served / a.name)
    shutil.copy(sources / SOURCES_NAME, served / SOURCES_NAME)
    spec = rehearsal_spec(dataset, served)  # the checksums of the archives as generated
    raw = tmp_path / "raw"
    record_checksums(raw, served, dataset)  # the ledger, as a first download would have left it
    other = tmp_path / "other"
    write_sources(other, n_images=N, seed=1, datasets=[dataset])  # same layout, other bytes
    shutil.copy(other / archive, served / archive)
    with serve(served) as server, pytest.raises(ChecksumError, match=archive):
        fetch_dataset(dataset, raw, tmp_path / "out", split, base_url=server.url, progress=False, spec=spec)
    assert not (raw / archive).exists() and not (raw / f"{archive}.part").exists()
    assert not (raw / "extracted").exists() and not (tmp_path / "out").exists()


def test_spec_for_another_dataset_is_refused(sources, tmp_path):
    with pytest.raises(DataError, match="record of 'lvis'"):
        fetch_dataset("ffhq", tmp_path / "raw", tmp_path / "out", "val", spec=rehearsal_spec("lvis", sources))


# --- the server -----------------------------------------------------------------------------------


def _get(url: str, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    conn.close()
    return out


def test_server_answers_range_head_and_416(sources, server):
    data = (sources / "val_256.tar").read_bytes()
    assert server.url.startswith("http://127.0.0.1:")
    status, headers, body = _get(server.url, "/val_256.tar", {"Range": "bytes=100-"})
    assert (status, headers["Content-Range"], body) == (206, f"bytes 100-{len(data) - 1}/{len(data)}", data[100:])
    status, headers, body = _get(server.url, "/val_256.tar", method="HEAD")
    assert (status, int(headers["Content-Length"]), body) == (200, len(data), b"")
    status, headers, _ = _get(server.url, "/val_256.tar", {"Range": f"bytes={len(data)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")


def test_real_download_resumes_from_the_server(sources, server, tmp_path):
    data = (sources / "wiki.zip").read_bytes()
    dest = tmp_path / "wiki.zip"
    (tmp_path / "wiki.zip.part").write_bytes(data[:1000])  # an earlier transfer cut off
    download(f"{server.url}/wiki.zip", dest, sha256=file_sha256(sources / "wiki.zip"), progress=False)
    assert dest.read_bytes() == data
    assert [e["range"] for e in server.log if e["path"] == "/wiki.zip"][-1] == "bytes=1000-"


@pytest.mark.hostile(
    "requests for paths outside the served folder (.., encoded ../, sub-paths) or for its hidden temporaries",
    "404; only the plain files directly in the folder are served",
)
def test_server_serves_nothing_outside_its_folder(tmp_path):
    inside = tmp_path / "served"
    inside.mkdir()
    (tmp_path / "secret.txt").write_text("outside")
    (inside / "sub").mkdir()
    (inside / "sub" / "x.txt").write_text("below")
    (inside / ".part.tmp").write_text("half")
    (inside / "ok.txt").write_text("ok")
    with serve(inside) as server:
        assert _get(server.url, "/ok.txt")[0] == 200
        for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/sub/x.txt", "/.part.tmp", "/", "/sub"):
            assert _get(server.url, path)[0] == 404, path


def test_switching_the_ffhq_convention_leaves_only_the_new_images(server, tmp_path):
    """FFHQ's val folder is the same path under either convention: a refetch must not keep the other 10K."""
    first = _fetch(server, tmp_path, "ffhq", "val", ffhq_validation="first_10k")
    last = _fetch(server, tmp_path, "ffhq", "val", ffhq_validation="last_10k")
    assert first == last
    ids = set(read_manifest(last)["id"])
    assert all(int(i.split("-")[1]) >= 60_000 for i in ids)
    assert {p.stem for p in last.glob("*.png")} == ids  # the folder holds exactly its manifest's images
