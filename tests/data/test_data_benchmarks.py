"""prepare_benchmark(): selection + protocol preprocessing into a verified, versioned folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moebius.data.benchmarks import (
    data_version,
    prepare_benchmark,
    read_manifest,
    verify_manifest,
)
from moebius.data.preprocess import load_image, mat_crop, migan_resize
from moebius.data.selection import select_ids
from moebius.data.smoke import make_smoke_dataset
from moebius.errors import DataError, UnknownNameError


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    make_smoke_dataset("smoke_ood_natural", root, n_train=0, n_test=10, size=48, seed=3)
    return root / "smoke_ood_natural" / "test"


def test_seeded_benchmark_is_selected_preprocessed_and_recorded(dataset, tmp_path):
    out = prepare_benchmark(dataset, tmp_path / "b", n_images=4, size=32, preprocess="migan_resize", seed=11, rule="seeded")
    df = read_manifest(out)
    all_ids = list(read_manifest(dataset)["id"])
    assert list(df["id"]) == select_ids(all_ids, 4, 11, "seeded")
    assert verify_manifest(out) == 4
    for image_id in df["id"]:
        expected = migan_resize(load_image(dataset / f"{image_id}.png"), 32)
        np.testing.assert_array_equal(load_image(out / f"{image_id}.png"), expected)
    assert set(df["source"]) == {f"smoke_ood_natural/test/{i}.png" for i in df["id"]}
    record = json.loads((out / "selection.json").read_text())
    assert record["rule"] == "seeded" and record["seed"] == 11 and record["n_images"] == 4
    assert record["dataset_version"] == data_version(dataset)


def test_rerun_replaces_the_selection_and_changes_the_version(dataset, tmp_path):
    out = tmp_path / "b"
    prepare_benchmark(dataset, out, n_images=6, size=64, preprocess="mat_crop", seed=0, rule="first")
    v1 = data_version(out)
    first = load_image(out / "smoke_ood_natural-test-00000.png")
    np.testing.assert_array_equal(first, mat_crop(load_image(dataset / "smoke_ood_natural-test-00000.png"), 64))
    prepare_benchmark(dataset, out, n_images=2, size=64, preprocess="mat_crop", seed=0, rule="last")
    assert sorted(p.stem for p in out.glob("*.png")) == ["smoke_ood_natural-test-00008", "smoke_ood_natural-test-00009"]
    assert data_version(out) != v1
    prepare_benchmark(dataset, out, n_images=None, size=16, preprocess="lama", seed=0)
    assert verify_manifest(out) == 10


def test_bad_requests(dataset, tmp_path):
    with pytest.raises(DataError, match="only 10"):
        prepare_benchmark(dataset, tmp_path / "b", n_images=11, size=32, preprocess="mat_crop", seed=0)
    with pytest.raises(UnknownNameError):
        prepare_benchmark(dataset, tmp_path / "b", n_images=1, size=32, preprocess="bogus", seed=0)
    with pytest.raises(DataError, match="manifest not found"):
        prepare_benchmark(tmp_path / "empty", tmp_path / "b", n_images=1, size=32, preprocess="mat_crop", seed=0)
    assert not (tmp_path / "b" / "manifest.csv").exists()
