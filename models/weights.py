"""Finding and loading checkpoints: a local path, `$DA2K_WEIGHTS_DIR`, or the hub (cached).

Loading never unpickles arbitrary objects (`torch.load(weights_only=True)` or safetensors) and
always matches keys strictly; the only remap is `remap_state_dict` (pure, tested).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .errors import ModelError, WeightsUnavailable
from .hub import hub_file
from .registry import Variant

WEIGHTS_DIR_ENV = "DA2K_WEIGHTS_DIR"


def _candidates(variant: Variant) -> list[str]:
    return [n for n in (variant.filename, *variant.alt_filenames) if n]


def _find_in_dir(directory: Path, variant: Variant) -> Path | None:
    for name in _candidates(variant):
        if (directory / name).is_file():
            return directory / name
    return None


def resolve_weights(variant: Variant, weights: str | os.PathLike | None = None) -> Path:
    """Path of the checkpoint for `variant`: `weights` (file or directory), then
    `$DA2K_WEIGHTS_DIR`, then the hub via `huggingface_hub.hf_hub_download` (cached)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        if path.is_dir():
            found = _find_in_dir(path, variant)
            if found:
                return found
            raise ModelError(f"no {' or '.join(_candidates(variant)) or 'checkpoint'} for {variant.name} in {path}")
        raise ModelError(f"weights file {path} does not exist")

    env_dir = os.environ.get(WEIGHTS_DIR_ENV)
    if env_dir:
        found = _find_in_dir(Path(env_dir).expanduser(), variant)
        if found:
            return found

    if variant.hub_repo is None or variant.filename is None:
        raise WeightsUnavailable(variant.note or f"{variant.name} has no public weights", "pass --weights PATH")
    return hub_file(variant.hub_repo, variant.filename)


def checkpoint_source(variant: Variant, path: str | os.PathLike) -> str:
    """Where a resolved checkpoint came from, for result files: `hub:<repo>@<revision>/<file>`
    when `path` lies in the `huggingface_hub` cache snapshot of `variant`'s hub repo, else
    "local file" (never the local path itself, which is private to the machine)."""
    if variant.hub_repo:
        parts = Path(path).parts
        folder = "models--" + variant.hub_repo.replace("/", "--")
        for i in range(len(parts) - 3):
            if parts[i] == folder and parts[i + 1] == "snapshots":
                return f"hub:{variant.hub_repo}@{parts[i + 2]}/{'/'.join(parts[i + 3 :])}"
    return "local file"


def remap_state_dict(state: dict) -> dict[str, torch.Tensor]:
    """Unwrap `{"model": ...}` / `{"state_dict": ...}` containers and DDP's `module.` prefix."""
    for key in ("model", "state_dict"):
        if key in state and isinstance(state[key], dict) and not isinstance(state[key], torch.Tensor):
            state = state[key]
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _not_a_checkpoint(path: Path, exc: Exception) -> str:
    """Why `path` could not be read as tensors, in one line (never PyTorch's advice to turn
    off weights-only loading: that would run whatever code the file carries)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return err.strerror or type(err).__name__
    if not head:
        return "the file is empty (an interrupted download or copy?)"
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80" or path.suffix == ".safetensors"):
        return "it is not a PyTorch or safetensors checkpoint"
    if "weights only" in str(exc).lower() or "weights_only" in str(exc):
        return "it holds Python objects besides tensors; refused, as loading them could run code"
    first = str(exc).strip().splitlines()
    return f"it is damaged ({first[0].split('. ')[0] if first else type(exc).__name__})"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a `.safetensors` or a `.pth`/`.bin` file (weights-only unpickling)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any reading failure is a bad file, said in one line
        raise ModelError(f"cannot read checkpoint {path}: {_not_a_checkpoint(path, exc)}") from None
    if not isinstance(state, dict):
        raise ModelError(f"checkpoint {path} does not hold a state dict")
    state = remap_state_dict(state)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"checkpoint {path} does not hold a state dict (values other than tensors)")
    return state


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, name: str) -> None:
    """`load_state_dict(strict=True)` with a readable one-line error on any mismatch."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise ModelError(f"{source} is not a {name} checkpoint: " + ", ".join(parts))
    model.load_state_dict(state, strict=True)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
