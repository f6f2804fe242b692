"""MAT's official checkpoints → safetensors, without unpickling them in this process; safe loading.

The official files (``Places_512.pkl``, ``CelebA-HQ_512.pkl``, ``FFHQ_512.pkl``, from the OneDrive
folder linked in github.com/fenglinglwb/MAT's README) are StyleGAN2-ADA network pickles: dicts of
``G``, ``D``, ``G_ema`` whose classes are ``torch_utils.persistence`` classes that carry their module's
*source code* and ``exec`` it when unpickled. So loading one runs code. Here:

- ``convert_mat_pickle`` unpickles in a **separate, isolated interpreter** (``python -I``: no
  environment variables, no user site, no script folder on ``sys.path``; only the user-given MAT
  clone added), started in an empty temporary working directory, which writes ``G_ema``'s state dict
  as safetensors. This process then reads that file with ``safetensors`` only, checks that it loads
  into ``moebius.eval.mat.MATGenerator`` with ``strict=True``, and installs it atomically. The
  isolation keeps the checkpoint's code away from the harness's state; it is not a sandbox: the code
  still runs with your permissions, so convert only files you trust (the official ones).
- ``load_mat_state`` reads weights for inference and accepts safetensors only: a pickle or a
  ``torch.save`` archive is refused with one line, before any byte of it is interpreted.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from moebius.atomic import atomic_path
from moebius.data.checksums import file_sha256
from moebius.errors import ModelConfigError, WeightError
from moebius.eval.mat import MATGenerator, config_from_state_dict

FORMAT = "moebius-mat-state/1"  # safetensors metadata "format" of files written here
CONVERT_TIMEOUT_S = 1800

# Run by the child interpreter: argv = [pickle, output, MAT clone]. One "mat-convert: ..." line on
# stderr and exit status 3 for every expected failure.
_CHILD = r'''
import json, pickle, sys, types

def fail(msg):
    sys.stderr.write("mat-convert: " + " ".join(str(msg).split()) + "\n")
    sys.exit(3)

pkl, out, repo = sys.argv[1:4]
sys.path.insert(0, repo)
try:
    import timm.models.layers  # noqa: F401
except ImportError:
    # MAT's networks/mat.py imports DropPath, to_2tuple and trunc_normal_ from timm and calls only
    # to_2tuple (on an int); without timm, stand in for that one helper.
    layers = types.ModuleType("timm.models.layers")
    layers.to_2tuple = lambda x: tuple(x) if isinstance(x, (tuple, list)) else (x, x)
    def _absent(*args, **kwargs):
        raise ImportError("timm is not installed")
    layers.DropPath = layers.trunc_normal_ = _absent
    timm, models = types.ModuleType("timm"), types.ModuleType("timm.models")
    timm.models, models.layers = models, layers
    sys.modules.update({"timm": timm, "timm.models": models, "timm.models.layers": layers})
import torch
from safetensors.torch import save_file

try:
    with open(pkl, "rb") as fh:
        data = pickle.load(fh)
except ModuleNotFoundError as exc:
    fail(f"unpickling {pkl} needs module {exc.name!r}; is {repo} a clone of github.com/fenglinglwb/MAT?")
except Exception as exc:
    fail(f"cannot unpickle {pkl}: {type(exc).__name__}: {exc}")
G = data.get("G_ema") if isinstance(data, dict) else None
if not isinstance(G, torch.nn.Module):
    keys = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
    fail(f"{pkl} holds no G_ema network (found: {keys})")
state = {k: v.detach().cpu().contiguous().clone() for k, v in G.state_dict().items()}
init = getattr(G, "init_kwargs", None)
meta = {"format": sys.argv[4], "class": type(G).__name__,
        "init_kwargs": json.dumps(dict(init) if init else {}, default=str, sort_keys=True)}
save_file(state, out, metadata=meta)
'''


def _child_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line.removeprefix("mat-convert: ") for line in lines if line.startswith("mat-convert: ")]
    return ours[-1] if ours else (lines[-1] if lines else "no message")


def convert_mat_pickle(pkl: str | os.PathLike, out: str | os.PathLike, mat_repo: str | os.PathLike,
                       timeout_s: float = CONVERT_TIMEOUT_S) -> dict:
    """Write ``G_ema`` of the MAT network pickle ``pkl`` to ``out`` (safetensors); returns a summary
    (out, sha256, tensors, parameters, config). ``mat_repo``: a clone of github.com/fenglinglwb/MAT,
    whose ``torch_utils`` / ``dnnlib`` the pickle refers to."""
    pkl, out, repo = Path(pkl), Path(out), Path(mat_repo)
    if not pkl.is_file():
        raise WeightError(f"{pkl}: no such file")
    if not (repo / "torch_utils" / "persistence.py").is_file():
        raise WeightError(f"--mat-repo {repo} is not a clone of github.com/fenglinglwb/MAT "
                          f"(no torch_utils/persistence.py)")
    if out.suffix != ".safetensors":
        raise WeightError(f"{out}: the converted file must end in .safetensors")
    with tempfile.TemporaryDirectory(prefix="moebius-mat-convert-") as tmp:
        work = Path(tmp) / "cwd"  # empty: the pickled source's sys.path.insert(0, '../') finds nothing to import
        work.mkdir()
        staged = Path(tmp) / "state.safetensors"
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "LC_ALL": "C.UTF-8",
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        cmd = [sys.executable, "-I", "-c", _CHILD, str(pkl.resolve()), str(staged), str(repo.resolve()), FORMAT]
        try:
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise WeightError(f"converting {pkl} took more than {timeout_s:g} s; stopped") from None
        if proc.returncode != 0:
            raise WeightError(f"converting {pkl} failed: {_child_error(proc.stderr)}")
        state, sha256 = load_mat_state(staged)
        model = mat_from_state(state, str(pkl))
        with atomic_path(out) as tmp_out:
            shutil.copyfile(staged, tmp_out)
    return {"out": str(out), "sha256": sha256, "tensors": len(state),
            "parameters": sum(p.numel() for p in model.parameters()), "config": asdict(model.cfg)}


# ---------------------------------------------------------------------------------------------
# Reading converted files (this process: safetensors only)
# ---------------------------------------------------------------------------------------------


def _format_of(head: bytes) -> str | None:
    """What the first bytes say when they are not safetensors (8-byte header length, then '{')."""
    if len(head) >= 9 and head[8:9] == b"{":
        return None
    if head[:1] == b"\x80" or head[:1] in (b"(", b"]", b"}", b"c"):
        return "a Python pickle (unpickling runs code)"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive such as torch.save writes (holds a pickle, which runs code)"
    return "not a safetensors file"


def load_mat_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict, sha256) of a safetensors file; anything else (a pickle, ``torch.save``) is refused
    with one line and never deserialised."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightError(f"{path}: no such file")
    with open(path, "rb") as fh:
        head = fh.read(9)
    what = _format_of(head)
    if what is not None:
        raise WeightError(f"{path} is {what}; refusing to load it in this process. Convert an official MAT "
                          f"checkpoint first: moebius weights convert-mat PKL --out STATE.safetensors --mat-repo DIR")
    sha256 = file_sha256(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, ValueError, OSError) as exc:
        raise WeightError(f"{path}: not a readable safetensors file ({(str(exc).splitlines() or [''])[0]})") from exc
    return state, sha256


def mat_from_state(state: dict[str, torch.Tensor], source: str) -> MATGenerator:
    """A ``MATGenerator`` (widths read from the shapes) holding ``state``, loaded with ``strict=True``."""
    try:
        cfg = config_from_state_dict(state)
    except ModelConfigError as exc:
        raise WeightError(f"{source}: {exc}") from None
    model = MATGenerator(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in expected if k in state and tuple(state[k].shape) != expected[k])
    if missing or unexpected or wrong:
        parts = [f"{len(v)} {name} (first: {v[0]})" for name, v in
                 (("missing", missing), ("unexpected", unexpected), ("with another shape", wrong)) if v]
        raise WeightError(f"{source} does not fit MAT {asdict(cfg)}: keys {'; '.join(parts)}")
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)
