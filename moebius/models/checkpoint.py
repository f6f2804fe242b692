"""Reading and writing model weights (official ``.bin``/``.pt`` checkpoints and our ``.safetensors``).

Official Moebius/PixelHacker checkpoints are ``torch.save``d state dicts loaded with
``load_state_dict(strict=True)``; we read them with ``weights_only=True`` (no pickled code runs) and
report every problem in one line instead of PyTorch's multi-line dump: a file that carries code is
refused as such (we never relay PyTorch's advice to lift the restriction), a truncated or corrupt file
is named, and a mismatch lists the missing / unexpected / shape-mismatched keys (first few + counts).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from moebius.atomic import atomic_path
from moebius.errors import CheckpointError

TORCH_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
_SHOWN = 5  # keys listed per kind of mismatch


def _reason(exc: BaseException) -> str:
    """The first line of an exception, without terminal colour codes, cut to a readable length."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    first = text[0].strip() if text else type(exc).__name__
    return first if len(first) <= 200 else first[:197] + "..."


def _refused_code(exc: BaseException) -> str | None:
    """What a ``weights_only`` refusal says the file would run (``builtins.print``), or None if ``exc``
    is not such a refusal (a corrupt file, a truncated archive, ...)."""
    text = str(exc)
    if "Weights only load failed" not in text and "WeightsUnpickler" not in text:
        return None
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    return found.group(1) if found else "a pickled object that is not a tensor"


def torch_load(path: str | os.PathLike) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU, every failure a one-line ``CheckpointError``.

    A file that carries code (a pickled reference to a function or class) is refused and said to be so;
    the message never invites loading it without the restriction.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except OSError:
        raise  # disk and permission errors keep their own one-line form (moebius.cli)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and tensor errors come in many types
        code = _refused_code(exc)
        if code is not None:
            raise CheckpointError(
                f"refused {p}: it carries code ({code}), not only tensors, and moebius never runs code "
                "from a checkpoint; ask for a plain state dict or a .safetensors file"
            ) from None
        raise CheckpointError(f"cannot read {p}: truncated or corrupt torch file ({_reason(exc)})") from exc


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file as a dict of CPU tensors; a truncated or corrupt file is a ``CheckpointError``."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        return load_file(str(p), device="cpu")
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError, or a header that is not JSON
        raise CheckpointError(f"cannot read {p}: truncated or corrupt safetensors file ({_reason(exc)})") from exc


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``.bin``/``.pt``/...), on CPU."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    suffix = p.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        state = read_safetensors(p)
    elif suffix in TORCH_SUFFIXES:
        state = torch_load(p)
    else:
        raise CheckpointError(f"unknown checkpoint format {suffix!r} for {p}; use .safetensors, .bin or .pt")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # Lightning-style wrapper
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{p} does not hold a flat state dict of tensors")
    return state


def _listing(kind: str, keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    return f"{len(keys)} {kind}: {', '.join(keys[:_SHOWN])}{more}"


def check_state_dict(
    model: nn.Module, state: dict[str, torch.Tensor], strict: bool = True, source: str | os.PathLike | None = None
) -> None:
    """Raise ``CheckpointError`` listing missing / unexpected / shape-mismatched keys (first few of each);
    ``source`` (the file) starts the message when given."""
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
        where = f"{source} does not fit" if source is not None else "weights do not fit"
        raise CheckpointError(f"{where} {type(model).__name__}: " + "; ".join(problems))


def load_weights(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load ``path`` into ``model`` (in place; returns it). Mismatches raise ``CheckpointError``."""
    state = load_state_dict_file(path)
    check_state_dict(model, state, strict=strict, source=path)
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
