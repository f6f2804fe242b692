"""Registry of the datasets behind every benchmark of the paper (Sec. 4.1, Tab. 1, 3, 4, 7).

For each dataset: where its files come from (URL or hub id; ``None`` = a manual download, named in
``manual``), the archive names, checksums where the publisher gives one (Places365's md5 sums, as
torchvision records them), the expected image counts, how each split is built, and which
benchmark protocol (image count, size, preprocessing) uses it. Where no checksum is published the
rule is "record ours on first download" (``checksums.ChecksumLedger``).

``fetch_dataset`` is the full-scale path: download (resumable, verified), extract (safely), list
the split's images, select them with ``select_ids``, and convert them into the common layout
``<out_dir>/<id>.png`` + ``manifest.csv``. Images keep their original size there; the benchmark
step (``benchmarks.prepare_benchmark``) applies the protocol's crop / resize.

Smoke datasets are made locally from photographs shipped with scikit-image (``smoke.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from moebius.atomic import write_json
from moebius.data.checksums import ChecksumLedger, file_sha256
from moebius.data.download import archive_kind, download, extract, verify_file
from moebius.data.manifest import MANIFEST_NAME, ManifestRow, row_for_png, write_manifest
from moebius.data.preprocess import load_image, save_png
from moebius.data.selection import select_ids
from moebius.errors import DataError, DownloadError
from moebius.registry import Registry

__all__ = [
    "Archive",
    "DATASETS",
    "FFHQ_VALIDATION",
    "OFFICIAL_MASKS",
    "OFFICIAL_MASKS_URL",
    "Archive",
    "DatasetSpec",
    "Split",
    "fetch_dataset",
    "get_dataset",
    "list_datasets",
    "select_ids",
]

Lister = Callable[[Path, str], list[tuple[str, Path]]]  # (raw_dir, split) -> [(id, image path)]

# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Archive:
    """One file to download (an archive, or a plain list file)."""

    name: str  # file name in the raw directory; also the last URL component when a base URL is injected
    url: str | None  # None: no direct link (Google Drive, gated); see `manual`
    md5: str | None = None  # as published
    sha256: str | None = None  # as published; None -> ours is recorded on first download
    size: int | None = None  # bytes, where published
    manual: str = ""  # how to obtain it when `url` is None

    @property
    def is_archive(self) -> bool:
        return bool(re.search(r"\.(zip|tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$", self.name.lower()))

    @property
    def stem(self) -> str:
        """Directory name it is extracted to under ``<raw_dir>/extracted/``."""
        return re.sub(r"\.(zip|tar|tar\.gz|tgz|tar\.bz2|tar\.xz)$", "", self.name, flags=re.IGNORECASE)


@dataclass(frozen=True)
class Split:
    """A split as the project uses it: listed from ``source`` and then selected by ``rule``."""

    name: str
    archives: tuple[str, ...]  # Archive names needed
    count: int | None  # images the split has once selected (None: set by the caller)
    source: str = ""  # the lister's split the ids come from ("" = `name`)
    source_count: int | None = None  # images the listed source must have (None = not checked)
    rule: str = "all"  # see selection.select_ids
    seed: int = 0  # for rule "seeded"
    note: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """Everything known about one dataset."""

    name: str
    title: str
    domain: str  # natural | portrait
    scale: str  # full | smoke
    homepage: str
    licence: str
    archives: tuple[Archive, ...]
    splits: tuple[Split, ...]
    hub_id: str | None = None
    note: str = ""
    lister: Lister | None = field(default=None, repr=False, compare=False)

    def archive(self, name: str) -> Archive:
        return Registry(f"{self.name} archive", ((a.name, a) for a in self.archives)).get(name)

    def split(self, name: str, ffhq_validation: str = "first_10k") -> Split:
        """The split ``name``; for FFHQ, ``val`` / ``train`` follow ``ffhq_validation``."""
        if self.name == "ffhq" and name in ("train", "val"):
            name = f"{name}_{_check_ffhq_validation(ffhq_validation)}"
        return Registry(f"{self.name} split", ((s.name, s) for s in self.splits)).get(name)


# ---------------------------------------------------------------------------------------------
# Listers: (raw_dir, split) -> ordered [(id, path)]; extracted archives live in raw/extracted/<stem>
# ---------------------------------------------------------------------------------------------

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def _extracted(raw_dir: Path, stem: str) -> Path:
    return raw_dir / "extracted" / stem


def _find_dir(root: Path, name: str, depth: int = 3) -> Path:
    """``root/name`` or the shallowest ``root/**/name`` within ``depth`` levels (archives nest)."""
    frontier = [root]
    for _ in range(depth + 1):
        for d in frontier:
            if (d / name).is_dir():
                return d / name
        frontier = sorted(c for d in frontier if d.is_dir() for c in d.iterdir() if c.is_dir())
    raise DataError(f"directory {name!r} not found under {root} (is the archive extracted there?)")


def _find_file(roots: list[Path], name: str) -> Path:
    for root in roots:
        if (root / name).is_file():
            return root / name
        hits = sorted(root.rglob(name)) if root.is_dir() else []
        if hits:
            return hits[0]
    raise DataError(f"file {name!r} not found under {', '.join(map(str, roots))}")


def _images_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())


def _read_text(path: Path) -> str:
    """A list or annotation file's text; ``DataError`` if it is not UTF-8 text."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a UTF-8 text file ({exc.reason} at byte {exc.start})") from exc


def _fields(path: Path, line: str, n: int) -> list[str]:
    """The whitespace-separated fields of one line of a list file, at least ``n`` of them."""
    fields = line.split()
    if len(fields) < n:
        raise DataError(f"{path}: malformed line {line[:80]!r} (expected {n} columns)")
    return fields


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-") or "x"


def _list_places365(raw_dir: Path, split: str) -> list[tuple[str, Path]]:
    if split in ("val", "test"):
        folder = _find_dir(_extracted(raw_dir, f"{split}_large"), f"{split}_large")
        return [(p.stem, p) for p in _images_in(folder)]  # Places365_val_00000001 etc.
    if split == "val_256":  # the same 36,500 images, as Places publishes them at 256 x 256
        folder = _find_dir(_extracted(raw_dir, "val_256"), "val_256")
        return [(p.stem, p) for p in _images_in(folder)]
    if split == "train":
        lists = _extracted(raw_dir, "filelist_places365-standard")
        listing = _find_file([lists], "places365_train_standard.txt")
        root = _find_dir(_extracted(raw_dir, "train_large_places365standard"), "data_large")
        out = []
        for line in _read_text(listing).splitlines():
            if line.strip():
                rel = line.split()[0].lstrip("/")  # "/a/airfield/00000001.jpg 0"
                out.append(("Places365_train_" + _safe_id(rel.rsplit(".", 1)[0].replace("/", "_")), root / rel))
        return out
    raise DataError(f"places365 has no split {split!r}")


def _list_celebahq(raw_dir: Path, split: str) -> list[tuple[str, Path]]:
    """CelebA-HQ images whose CelebA source image is in CelebA's ``split`` partition (MAT's split)."""
    part_of = {"train": "0", "val": "1", "test": "2"}[split]
    roots = [_extracted(raw_dir, "CelebAMask-HQ"), raw_dir]
    mapping = _find_file(roots, "CelebA-HQ-to-CelebA-mapping.txt")
    partition_file = _find_file([raw_dir], "list_eval_partition.txt")
    partition = dict(
        _fields(partition_file, line, 2)[:2] for line in _read_text(partition_file).splitlines() if line.strip()
    )
    images = mapping.parent / "CelebA-HQ-img"
    out = []
    for line in _read_text(mapping).splitlines()[1:]:  # header: idx orig_idx orig_file
        if not line.strip():
            continue
        idx, _orig_idx, orig_file = _fields(mapping, line, 3)[:3]
        if not idx.isdigit():
            raise DataError(f"{mapping}: malformed line {line[:80]!r} (the first column is not an index)")
        if orig_file not in partition:
            raise DataError(f"{orig_file} (CelebA-HQ {idx}) is not in {partition_file}")
        if partition[orig_file] == part_of:
            out.append((f"celebahq-{int(idx):05d}", images / f"{int(idx)}.jpg"))
    return out


def _list_ffhq(raw_dir: Path, split: str) -> list[tuple[str, Path]]:
    folder = _find_dir(_extracted(raw_dir, "images1024x1024"), "images1024x1024", depth=1)
    files = sorted((p for p in _images_in(folder) if p.stem.isdigit()), key=lambda p: int(p.stem))
    return [(f"ffhq-{int(p.stem):05d}", p) for p in files]  # all 70K in index order; rules pick the split


def _list_lvis(raw_dir: Path, split: str) -> list[tuple[str, Path]]:
    """LVIS v1 images (a subset of COCO 2017 train + val), in annotation-file order."""
    ann = _find_file([_extracted(raw_dir, f"lvis_v1_{split}.json")], f"lvis_v1_{split}.json")
    try:
        images = []
        for im in json.loads(_read_text(ann))["images"]:
            parts = str(im["coco_url"]).rstrip("/").split("/")  # .../train2017/000000397133.jpg
            if len(parts) < 2:
                raise ValueError(f"coco_url {im['coco_url']!r} names no folder")
            images.append((int(im["id"]), parts[-2], parts[-1]))
    except (ValueError, KeyError, TypeError) as exc:  # not JSON, or not LVIS's layout
        raise DataError(f"malformed LVIS annotation file {ann}: {type(exc).__name__} {exc}") from exc
    roots = {sub: _find_dir(_extracted(raw_dir, sub), sub, depth=1) for sub in ("train2017", "val2017")
             if _extracted(raw_dir, sub).exists()}
    out = []
    for image_id, sub, file_name in images:
        if sub not in roots:
            raise DataError(f"LVIS image {image_id} lives in COCO {sub}, which is not extracted under {raw_dir}")
        out.append((f"lvis-{image_id:012d}", roots[sub] / file_name))
    return out


def _list_deepfakeface(raw_dir: Path, split: str) -> list[tuple[str, Path]]:
    root = _extracted(raw_dir, "wiki")
    out = [("dff-" + _safe_id(str(p.relative_to(root).with_suffix("")).replace("/", "_")), p) for p in _images_in(root)]
    return out


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

PLACES365_BASE = "http://data.csail.mit.edu/places/places365/"
SPLIT_NAME = "split.json"  # beside a fetched split's manifest: which split (as resolved) it holds
FFHQ_VALIDATION: Registry[str] = Registry("ffhq_validation", {
    "first_10k": "CoModGAN / MI-GAN convention (the paper's FFHQ (256) row): images 0-9999 are evaluated, "
                 "10000-69999 train",
    "last_10k": "official FFHQ split: images 60000-69999 validate, 0-59999 train",
})


def _check_ffhq_validation(value: str) -> str:
    FFHQ_VALIDATION.get(value)
    return value


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _register(spec: DatasetSpec) -> None:
    DATASETS.register(spec.name, spec)


def _whole(name: str, archives: tuple[str, ...], count: int, note: str = "") -> Split:
    """A split that is all of its listed source: exactly ``count`` images, each kept."""
    return Split(name, archives, count, source_count=count, note=note)


def _full(name: str, title: str, domain: str, *, homepage: str, licence: str, archives: tuple[Archive, ...],
          splits: tuple[Split, ...], lister: Lister, note: str = "", hub_id: str | None = None) -> None:
    """Register a full-scale dataset: the publisher's files, listed by ``lister`` once extracted."""
    _register(DatasetSpec(name=name, title=title, domain=domain, scale="full", homepage=homepage, licence=licence,
                          archives=archives, splits=splits, hub_id=hub_id, note=note, lister=lister))


_full(
    "places365", "Places365-Standard (high resolution)", "natural",
    homepage="http://places2.csail.mit.edu/download.html",
    licence="research and non-commercial use (Places terms of use)",
    archives=(
        Archive("filelist_places365-standard.tar", PLACES365_BASE + "filelist_places365-standard.tar",
                md5="35a0585fee1fa656440f3ab298f8479c"),
        Archive("train_large_places365standard.tar", PLACES365_BASE + "train_large_places365standard.tar",
                md5="67e186b496a84c929568076ed01a8aa1"),  # 105 GB
        Archive("val_large.tar", PLACES365_BASE + "val_large.tar",
                md5="9b71c4993ad89d2d8bcbdc4aef38042f"),  # 2.1 GB
        # The 256 x 256 validation images (each image resized to a square, aspect ratio not kept),
        # which MI-GAN evaluates Places2 (256) on. No md5 recorded here: ours is kept on first download.
        Archive("val_256.tar", PLACES365_BASE + "val_256.tar"),
        Archive("test_large.tar", PLACES365_BASE + "test_large.tar",
                md5="41a4b6b724b1d2cd862fb3871ed59913"),  # 19 GB
    ),
    splits=(
        _whole("train", ("filelist_places365-standard.tar", "train_large_places365standard.tar"), 1_803_460),
        _whole("val", ("val_large.tar",), 36_500,
               note="MAT evaluates all 36,500 validation images (512 centre crops)"),
        _whole("val_256", ("val_256.tar",), 36_500,
               note="MI-GAN's Places2 (256): the 36,500 validation images as Places publishes them at 256 x 256"),
        _whole("test", ("test_large.tar",), 328_500,
               note="Places2 (Test) draws a seeded 10K from here (a reconstruction: no public list exists)"),
    ),
    note="md5 sums as published on the Places2 site (recorded by torchvision.datasets.Places365)",
    lister=_list_places365,
)

_full(
    "celebahq", "CelebA-HQ (MAT split)", "portrait",
    homepage="https://github.com/switchablenorms/CelebAMask-HQ",
    licence="non-commercial research (CelebA agreement)",
    archives=(
        Archive("CelebAMask-HQ.zip", None,
                manual="Google Drive link on https://github.com/switchablenorms/CelebAMask-HQ "
                       "(holds CelebA-HQ-img/0..29999.jpg and CelebA-HQ-to-CelebA-mapping.txt)"),
        Archive("list_eval_partition.txt", None,
                manual="CelebA 'Eval' folder on https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"),
    ),
    splits=tuple(
        _whole(name, ("CelebAMask-HQ.zip", "list_eval_partition.txt"), count)
        for name, count in (("train", 24_183), ("val", 2_993), ("test", 2_824))
    ),
    note="a CelebA-HQ image belongs to the CelebA partition (0 train / 1 val / 2 test) of its source "
         "CelebA image; this gives MAT's 24,183 train / 2,993 validation images (1024 px)",
    lister=_list_celebahq,
)

_FFHQ_ARCHIVES = ("images1024x1024.zip",)
_full(
    "ffhq", "Flickr-Faces-HQ", "portrait",
    homepage="https://github.com/NVlabs/ffhq-dataset",
    licence="CC BY-NC-SA 4.0 (dataset); images under their Flickr licences",
    archives=(
        Archive("images1024x1024.zip", None,
                manual="89 GB; Google Drive via download_ffhq.py in https://github.com/NVlabs/ffhq-dataset"),
    ),
    splits=(
        Split("train_last_10k", _FFHQ_ARCHIVES, 60_000, source="all", source_count=70_000, rule="first"),
        Split("val_last_10k", _FFHQ_ARCHIVES, 10_000, source="all", source_count=70_000, rule="last",
              note=FFHQ_VALIDATION["last_10k"]),
        Split("train_first_10k", _FFHQ_ARCHIVES, 60_000, source="all", source_count=70_000, rule="last"),
        Split("val_first_10k", _FFHQ_ARCHIVES, 10_000, source="all", source_count=70_000, rule="first",
              note=FFHQ_VALIDATION["first_10k"]),
        _whole("all", _FFHQ_ARCHIVES, 70_000),
    ),
    note="ask for split 'train' / 'val' with ffhq_validation = first_10k (MI-GAN, the default) or last_10k "
         "(FFHQ's own split)",
    lister=_list_ffhq,
)

_LVIS = "https://dl.fbaipublicfiles.com/LVIS/"
_COCO = "http://images.cocodataset.org/zips/"
_full(
    "lvis", "LVIS v1 (images = COCO 2017)", "natural",
    homepage="https://www.lvisdataset.org/dataset",
    licence="annotations CC BY 4.0; images under their Flickr licences (COCO terms)",
    archives=(
        Archive("lvis_v1_val.json.zip", _LVIS + "lvis_v1_val.json.zip"),
        Archive("lvis_v1_train.json.zip", _LVIS + "lvis_v1_train.json.zip"),
        Archive("train2017.zip", _COCO + "train2017.zip"),  # 18 GB
        Archive("val2017.zip", _COCO + "val2017.zip"),  # 1 GB
    ),
    splits=(
        _whole("val", ("lvis_v1_val.json.zip", "train2017.zip", "val2017.zip"), 19_809),
        _whole("train", ("lvis_v1_train.json.zip", "train2017.zip", "val2017.zip"), 100_170),
        Split("sample", ("lvis_v1_val.json.zip", "train2017.zip", "val2017.zip"), 10_000, source="val",
              source_count=19_809, rule="seeded", seed=0,
              note="Tab. 7 OOD natural: a seeded 10K of LVIS v1 val (the paper names no list; a reconstruction)"),
    ),
    note="LVIS v1 val images come from both COCO 2017 train and val, so both image zips are needed",
    lister=_list_lvis,
)

_full(
    "deepfakeface", "DeepFakeFace, real 'wiki' subset (IMDB-WIKI faces)", "portrait",
    homepage="https://huggingface.co/datasets/OpenRL/DeepFakeFace",
    licence="see the dataset card (IMDB-WIKI images: non-commercial research)",
    hub_id="OpenRL/DeepFakeFace",
    archives=(Archive("wiki.zip", "https://huggingface.co/datasets/OpenRL/DeepFakeFace/resolve/main/wiki.zip"),),
    splits=(
        _whole("all", ("wiki.zip",), 30_000, note="30K real images per the DFF paper"),
        Split("sample", ("wiki.zip",), 3_000, source="all", source_count=30_000, rule="seeded", seed=0,
              note="Tab. 7 OOD portrait: a seeded 3K (the paper names no list; a reconstruction)"),
    ),
    lister=_list_deepfakeface,
)

_SMOKE_SPLITS = (Split("train", (), None), Split("test", (), None))
for _name, _domain, _desc in (
    ("smoke_natural", "natural", "crops of skimage photos (astronaut, coffee, chelsea, rocket, brick, grass)"),
    ("smoke_portrait", "portrait", "LFW faces 0-69 of skimage.data.lfw_subset, upscaled and colourised"),
    ("smoke_ood_natural", "natural",
     "crops of other skimage photos (hubble, motorcycle, camera, coins, clock, gravel)"),
    ("smoke_ood_portrait", "portrait", "LFW faces 70-99 of skimage.data.lfw_subset (identities unseen in training)"),
):
    _register(
        DatasetSpec(
            name=_name, title=_desc, domain=_domain, scale="smoke", homepage="https://scikit-image.org",
            licence="scikit-image sample data (public domain / CC0 / see skimage.data docs)",
            archives=(), splits=_SMOKE_SPLITS, note="made locally by moebius.data.smoke.make_smoke_dataset",
        )
    )


# The evaluation masks the Moebius authors publish (github.com/hustvl/Moebius README, "Evaluation
# Resources"): one Google Drive folder, so no direct download link, no published checksum and no stated
# layout or polarity. `moebius masks import` takes the archive or folder as downloaded and records its
# sha256 on first import (moebius.masks.official); a later import of other bytes is refused.
OFFICIAL_MASKS_URL = "https://drive.google.com/drive/folders/13J91fdQt2RnHp4j-VzdtSrHRHPA1OxJ5?usp=sharing"
OFFICIAL_MASKS = Archive(
    name="moebius_evaluation_masks",
    url=None,  # a Drive folder is not a file URL
    sha256=None,  # none published: recorded on first import
    manual=f"download the benchmark's masks from the Google Drive folder {OFFICIAL_MASKS_URL} (linked from "
           "https://github.com/hustvl/Moebius, README 'Evaluation Resources'), then run "
           "`moebius masks import <archive or folder> --benchmark <name>`",
)
# The image sources that README names beside the masks (for the record; our datasets above come from
# the publishers): Places2 http://places2.csail.mit.edu/download-private.html, CelebA-HQ
# https://openxlab.org.cn/datasets/OpenDataLab/CelebA-HQ, FFHQ a Google Drive folder
# (https://drive.google.com/drive/folders/1tZUcXDBeOibC6jcMCtgRRz67pzrAHeHL).


def get_dataset(name: str) -> DatasetSpec:
    """The registered dataset ``name``; ``UnknownNameError`` with a "did you mean" hint otherwise."""
    return DATASETS.get(name)


def list_datasets(scale: str | None = None) -> list[str]:
    """Registered dataset names, optionally only those of one scale (``full`` / ``smoke``)."""
    return sorted(n for n, s in DATASETS.items() if scale is None or s.scale == scale)


# ---------------------------------------------------------------------------------------------
# Full-scale fetch
# ---------------------------------------------------------------------------------------------


def _obtain(archive: Archive, raw_dir: Path, ledger: ChecksumLedger, base_url: str | None, progress: bool) -> Path:
    """Download (or accept a manually placed) ``archive``; verify it; record our sha256 if new."""
    dest = raw_dir / archive.name
    known_sha = archive.sha256 or ledger.get(archive.name)
    url = f"{base_url.rstrip('/')}/{archive.name}" if base_url else archive.url
    if url is None:
        if not dest.exists():
            raise DownloadError(f"{archive.name} has no direct download: {archive.manual}; put it at {dest}")
        verify_file(dest, sha256=known_sha, md5=archive.md5, expected_size=archive.size)
    else:
        download(url, dest, sha256=known_sha, expected_size=archive.size, progress=progress, md5=archive.md5)
    if archive.sha256 is None and archive.name not in ledger:
        ledger.record(archive.name, file_sha256(dest))
    return dest


def fetch_dataset(
    name: str,
    raw_dir: Path,
    out_dir: Path,
    split: str,
    *,
    base_url: str | None = None,
    ffhq_validation: str = "first_10k",
    seed: int | None = None,
    check_counts: bool = True,
    progress: bool = True,
    spec: DatasetSpec | None = None,
) -> Path:
    """Download, extract, select and convert one split into ``<out_dir>/<id>.png`` + manifest.csv.

    ``raw_dir`` keeps the downloads, ``checksums.json`` and ``extracted/``; ``base_url`` replaces
    every archive's host and path (a mirror, or a local test server): the URL becomes
    ``<base_url>/<archive name>``. ``seed`` overrides the split's sampling seed. With
    ``check_counts`` the listed images must number exactly what the registry expects. ``spec``
    replaces the registry's record of ``name`` (the rehearsal's copy, whose checksums and counts
    are those of its generated archives: ``moebius.rehearsal.sources.rehearsal_spec``). Returns
    ``out_dir``.
    """
    if spec is None:
        spec = get_dataset(name)
    elif spec.name != name:
        raise DataError(f"fetch_dataset({name!r}) was given the record of {spec.name!r}")
    if spec.scale != "full" or spec.lister is None:
        raise DataError(f"{name} is a smoke dataset: make it with moebius.data.smoke.make_smoke_dataset")
    sp = spec.split(split, ffhq_validation)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    ledger = ChecksumLedger(raw_dir)
    for archive_name in sp.archives:
        archive = spec.archive(archive_name)
        path = _obtain(archive, raw_dir, ledger, base_url, progress)
        if archive.is_archive:
            archive_kind(path)  # fail early and clearly on something that is not an archive
            extract(path, raw_dir / "extracted" / archive.stem)

    entries = spec.lister(raw_dir, sp.source or sp.name)
    if check_counts and sp.source_count is not None and len(entries) != sp.source_count:
        raise DataError(f"{name}/{sp.source or sp.name}: found {len(entries)} images, expected {sp.source_count}")
    paths = dict(entries)
    if len(paths) != len(entries):
        raise DataError(f"{name}/{split}: the listing yields duplicate ids")
    n = sp.count if sp.rule != "all" else None
    chosen = select_ids([i for i, _ in entries], n, sp.seed if seed is None else seed, sp.rule)

    rows: list[ManifestRow] = []
    for image_id in chosen:
        img = load_image(paths[image_id])  # DataError naming the file if it is corrupt
        png = save_png(out_dir / f"{image_id}.png", img)
        path = paths[image_id]
        source = str(path.relative_to(raw_dir)) if path.is_relative_to(raw_dir) else str(path)
        rows.append(row_for_png(image_id, source, png, img.shape[1], img.shape[0]))
    out_dir.mkdir(parents=True, exist_ok=True)
    # A folder fetched before under other settings (FFHQ's other 10K lives at the same path) keeps only
    # this selection's images, as a benchmark folder does; its old manifest goes first, so that a crash
    # meanwhile leaves a folder without one (incomplete), not one whose manifest lists removed images.
    keep = {f"{image_id}.png" for image_id in chosen}
    stale = [p for p in out_dir.glob("*.png") if p.name not in keep]
    if stale:
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
        for p in stale:
            p.unlink()
    # Which split this folder holds, as resolved (FFHQ's "val" is first or last 10K): benchmarks copy it
    # into their selection.json and every result record names it (benchmarks.benchmark_settings).
    write_json(out_dir / SPLIT_NAME, {
        "dataset": name, "split": split, "resolved": sp.name, "source": sp.source or sp.name, "rule": sp.rule,
        "seed": (sp.seed if seed is None else seed) if sp.rule == "seeded" else None,
        "n_images": len(chosen), "n_source": len(entries), "note": sp.note,
    })
    write_manifest(out_dir, rows)
    return out_dir
