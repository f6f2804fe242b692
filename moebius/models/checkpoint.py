"""Reading and writing model weights (official ``.bin``/``.pt`` checkpoints and our ``.safetensors``).

Official Moebius/PixelHacker checkpoints are ``torch.save``d state dicts loaded with
``load_state_dict(strict=True)``; we read them with ``weights_only=True`` (no pickled code runs) and
report every mismatch in one clear error instead of PyTorch's multi-line dump.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from moebius.atomic import atomic_path
from moebius.errors import CheckpointError

TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
_SHOWN = 5  # keys listed per kind of mismatch


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``.bin``/``.pt``/...), on CPU."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    suffix = p.suffix.lower()
    try:
        if suffix == SAFETENSORS_SUFFIX:
            state = load_file(str(p), device="cpu")
        elif suffix in TORCH_SUFFIXES:
            state = torch.load(p, map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(f"unknown checkpoint format {suffix!r} for {p}; use .safetensors, .bin or .pt")
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - corrupt file, pickle refused by weights_only, ...
        raise CheckpointError(f"cannot read checkpoint {p}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # Lightning-style wrapper
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p} does not hold a flat state dict of tensors")
    return state


def _listing(kind: str, keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN])}{more}"


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True) -> None:
    """Raise ``CheckpointError`` listing missing / unexpected / shape-mismatched keys (first few of each)."""
    own = model.state_dict()
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    missing = [k for k in own if k not in state] if strict else []
    unexpected = [k for k in state if k not in own] if strict else []
    problems = [
        _listing(kind, keys)
        for kind, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched))
        if keys
    ]
    if problems:
        raise CheckpointError(f"weights do not fit {type(model).__name__}: " + "; ".join(problems))


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load ``path`` into ``model`` (in place; returns it). Mismatches raise ``CheckpointError``."""
    state = load_state_dict_file(path)
    check_state_dict(model, state, strict=strict)
    model.load_state_dict(state, strict=strict)
    return model


def save_weights(model: nn.Module, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write ``model.state_dict()`` as ``.safetensors``, atomically (contiguous CPU copies).

    The file's metadata records the model's ``name`` and ``preset`` when it has them, plus ``metadata``
    (e.g. a config hash), so a checkpoint says what it holds.
    """
    p = Path(path)
    if p.suffix.lower() != SAFETENSORS_SUFFIX:
        raise CheckpointError(f"save_weights writes .safetensors, got {p.name}")
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "pt"}
    for attr in ("name", "preset"):
        if isinstance(getattr(model, attr, None), str):
            meta[f"moebius.{attr}"] = getattr(model, attr)
    meta.update(metadata or {})
    with atomic_path(p) as tmp:
        save_file(state, str(tmp), metadata=meta)
