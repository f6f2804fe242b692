"""Official weights as run directories (DESIGN.md, "Official weights"): full scale starts from them.

The official checkpoints (HF hustvl/Moebius and hustvl/PixelHacker: pretrained, ft_places2,
ft_celebahq, ft_ffhq; PixelHacker's vae/) are plain ``torch.save`` state dicts with the keys
``embedding_layer.weight`` and ``diff_model.*``; the VAE is a diffusers folder. ``prepare_official``
resolves one through ``moebius.weights.resolve_weight``, loads it strict with ``weights_only=True``
(never unpickling arbitrary objects) and writes the same run-directory layout as a trained run,
labelled weights_kind "official" (or "generated": a random-valued file that the weights directory's
ledger lists, ``moebius.weights.weight_kind``; never recorded as official).

An installed run does not copy the official file. Its run.json names it (``weights_file``, with the
sha256, size and mtime it had when installed) and ``load_installed`` reads it from there, checked
against that sha256. A copy would only change the container (torch.save -> safetensors) and would double
the disk of every official checkpoint: 17 GB at full or rehearsal scale (the teacher, the VAE, six ft_*).
"""

from __future__ import annotations

import datetime as _dt
import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from moebius.atomic import write_json, write_text
from moebius.config import Config, config_hash, to_dict
from moebius.errors import TrainError
from moebius.report.names import OFFICIAL_KINDS, key_of_build
from moebius.train.state import METRICS_CSV, RUN_JSON, WEIGHTS_NAME
from moebius.weights import OFFICIAL_VARIANTS, cached_sha256

VARIANTS = OFFICIAL_VARIANTS
KINDS = OFFICIAL_KINDS  # vae | student | teacher (build names)
VAE_WEIGHT = "sdxl_vae"
VAE_CONFIG_WEIGHT = "sdxl_vae_config"  # PixelHacker's vae/config.json (scaling_factor 0.13025)


def weight_name(kind: str, variant: str) -> str:
    """The ``moebius.weights`` registry name of an official file: the denoisers' files are named by
    model key and variant (``moebius_ft_ffhq`` holds the student fine-tuned on FFHQ)."""
    if kind not in KINDS:
        raise TrainError(f"unknown official weights kind {kind!r} ({' | '.join(KINDS)})")
    if kind == "vae":
        return VAE_WEIGHT
    if variant not in VARIANTS:
        raise TrainError(f"unknown official variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return f"{key_of_build(kind)}_{variant}"


def _resolve(name: str, cfg: Config) -> Path:
    from moebius.weights import resolve_weight

    return Path(resolve_weight(name, cfg.weights.dir))


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A plain state dict from .safetensors or a torch.save file (weights_only)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        # mmap: the 3.4 GB teacher file is paged in while load_state_dict copies it into the module,
        # never held as a second full copy in memory (a zip-format torch.save file is needed for it)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # pickle errors come in many types; all mean "not a plain state dict"
        raise TrainError(f"cannot read {path} as a plain state dict: {str(exc).splitlines()[0]}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TrainError(f"{path} does not hold a state dict")
    return state


def _load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        miss = ", ".join(result.missing_keys[:3])
        extra = ", ".join(result.unexpected_keys[:3])
        raise TrainError(
            f"{source} does not match the model: {len(result.missing_keys)} missing ({miss}), "
            f"{len(result.unexpected_keys)} unexpected ({extra})"
        )


def _vae_files(path: Path) -> tuple[dict[str, Any] | None, Path]:
    """(config or None, weights file) of a diffusers VAE folder or a single weights file."""
    if path.is_dir():
        config = json.loads((path / "config.json").read_text(encoding="utf-8")) if (path / "config.json").is_file() else None
        for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin", WEIGHTS_NAME):
            if (path / name).is_file():
                return config, path / name
        raise TrainError(f"no VAE weights in {path}")
    return None, path


def _vae_config(cfg: Config) -> dict[str, Any] | None:
    """The official VAE config.json if the weights dir has it (else the preset's packaged config)."""
    try:
        path = _resolve(VAE_CONFIG_WEIGHT, cfg)
    except Exception:  # missing or unknown: build_vae(preset) carries the same SDXL config
        return None
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_official(cfg: Config, kind: str, variant: str) -> tuple[nn.Module, dict[str, Any]]:
    """(module with the official weights loaded strict, run.json fields) of vae | teacher | student.

    ``prepare_official`` writes it as a run dir; ``moebius inpaint --weights official`` uses it as is.
    """
    from moebius.train.runs import build_autoencoder, build_denoiser

    name = weight_name(kind, variant)
    source = _resolve(name, cfg)
    if not source.exists():
        raise TrainError(f"official weights {name} resolved to a missing path: {source}")
    from moebius.weights import weight_kind

    info: dict[str, Any] = {"preset": cfg.model.preset, "weights_kind": weight_kind(name, cfg.weights.dir),
                            "weights": name, "variant": variant}
    try:
        if kind == "vae":
            from diffusers import AutoencoderKL

            config, weights = _vae_files(source)
            if config is None:
                config = _vae_config(cfg)
            module = (
                AutoencoderKL.from_config({k: v for k, v in config.items() if not k.startswith("_")})
                if config is not None
                else build_autoencoder(cfg.model.preset)
            )
            _load_strict(module, read_state_dict(weights), weights)
            info.update(kind="vae", model="vae")
        else:
            module = build_denoiser(kind, cfg.model.preset)
            _load_strict(module, read_state_dict(source), source)
            info.update(kind=kind if variant == "pretrained" else "finetune", model=kind)
            if variant != "pretrained":
                info["target"] = variant.removeprefix("ft_")
    except TrainError:
        raise
    except RuntimeError as exc:  # shape mismatches from load_state_dict
        raise TrainError(f"{source} does not fit {kind}: {str(exc).splitlines()[0]}") from exc
    info["source_file"] = str(source)
    info["weights_file"] = str(_weights_file(kind, source).resolve())
    return module, info


def _weights_file(kind: str, source: Path) -> Path:
    """The file holding the tensors: the VAE's is inside its diffusers folder."""
    return _vae_files(source)[1] if kind == "vae" else source


def _reference(path: Path) -> dict[str, Any]:
    """What run.json records of the official file an installed run reads."""
    st = path.stat()
    digest = cached_sha256(path)  # resolve_weight has just hashed it: a cache hit
    return {"weights_file": str(path), "weights_sha256": digest, "weights_bytes": st.st_size,
            "weights_mtime_ns": st.st_mtime_ns}


def installed_weights(run_dir: Path, info: dict[str, Any]) -> Path:
    """The official file of an installed run, checked to be the one installed.

    Its recorded path, or else the same registry entry resolved in this machine's weights directory (a
    run folder pulled with DVC onto another machine). Size and mtime as recorded mean unchanged; anything
    else is hashed and must give the recorded sha256.
    """
    recorded = Path(info["weights_file"])
    path = recorded
    if not recorded.is_file():
        try:
            from moebius.weights import resolve_weight

            weights_dir = info.get("config", {}).get("weights", {}).get("dir")
            found = Path(resolve_weight(info["weights"], weights_dir, verify=False))
            path = _weights_file(info["kind"], found)
        except Exception:  # noqa: BLE001 - missing, unknown or unreadable: the one-line error below
            path = recorded
    if not path.is_file():
        raise TrainError(
            f"{run_dir} is an installed run of {info.get('weights')}, whose file {recorded} is missing; "
            "put the official weights back (moebius weights) or install the run again"
        )
    st = path.stat()
    same = st.st_size == info.get("weights_bytes") and st.st_mtime_ns == info.get("weights_mtime_ns")
    if not same and cached_sha256(path) != info.get("weights_sha256"):
        raise TrainError(
            f"{path} is not the file {run_dir} installed (sha256 {str(info.get('weights_sha256'))[:16]}...); "
            "install the run again to use it"
        )
    return path


def load_installed(module: nn.Module, run_dir: Path, info: dict[str, Any]) -> None:
    """Load the official file an installed run names into ``module`` (strict, weights_only, mmap)."""
    path = installed_weights(Path(run_dir), info)
    _load_strict(module, read_state_dict(path), path)


def prepare_official(cfg: Config, kind: str, variant: str, out_dir: Path) -> Path:
    """Install official weights (vae | teacher | student; pretrained | ft_places2 | ...) as a run dir."""
    from moebius.train.runs import VAE_CONFIG

    out_dir = Path(out_dir)
    module, info = load_official(cfg, kind, variant)
    if kind == "vae":
        write_text(out_dir / VAE_CONFIG, module.to_json_string())
    source = info.pop("source_file")
    reference = _reference(Path(info.pop("weights_file")))
    (out_dir / WEIGHTS_NAME).unlink(missing_ok=True)  # a copy an earlier install wrote: superseded
    write_text(out_dir / METRICS_CSV, "step\n")
    write_json(
        out_dir / RUN_JSON,
        {
            **info,
            **reference,
            "steps": 0,
            "source_file": str(source),
            "seed": cfg.seed,
            "scale": cfg.scale,
            "config_hash": config_hash(cfg),
            "config": to_dict(cfg),
            "data_versions": {},
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )
    return out_dir
