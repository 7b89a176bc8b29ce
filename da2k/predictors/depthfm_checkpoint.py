"""Reading DepthFM checkpoints without unpickling code.

The official `depthfm-v1.ckpt` is a `torch.save` dict: `ldm_hparams` (the kwargs of the ldm
`UNetModel`), `state_dict` (its weights), `noising_step` (int) and `empty_text_embedding` (the
cross-attention context, a numpy array or a tensor). It is read with `weights_only=True` and an
allow-list of exactly the data types such a dict can hold: numpy arrays and dtypes, and, when
omegaconf is installed, omegaconf's plain containers (DictConfig/ListConfig and their node and
metadata classes) in case the hyper-parameters were saved as a config object. Anything else is
refused in one line. A safetensors copy holds the same: the ldm state dict plus an
`empty_text_embedding` tensor, with `ldm_hparams` (JSON) and `noising_step` in its metadata
(`save_safetensors` writes one).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from da2k.errors import Da2kError

OFFICIAL_URL = "https://ommer-lab.com/files/depthfm/depthfm-v1.ckpt"
EMPTY_TEXT = "empty_text_embedding"


@dataclass
class DepthFMCheckpoint:
    """What DepthFM needs from its checkpoint (tensors on the CPU, hyper-parameters as plain dicts)."""

    hparams: dict[str, Any]
    state_dict: dict[str, Any]
    noising_step: int
    empty_text_embedding: Any  # torch.Tensor (1, tokens, context_dim), float32
    path: Path


def _numpy_globals() -> list:
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    rebuild = multiarray._reconstruct
    dtypes = [type(np.dtype(code)) for code in ("f2", "f4", "f8", "i4", "i8", "u1", "b1")]
    # files written with numpy 1.x name it numpy.core..., with numpy 2.x numpy._core...
    return [
        (rebuild, "numpy.core.multiarray._reconstruct"),
        (rebuild, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *dtypes,
    ]


def _omegaconf_globals() -> list:
    try:
        import collections
        import typing

        from omegaconf import DictConfig, ListConfig, nodes
        from omegaconf.base import ContainerMetadata, Metadata
    except ImportError:
        return []
    node_types = [getattr(nodes, n) for n in ("AnyNode", "IntegerNode", "FloatNode", "BooleanNode", "StringNode")]
    return [DictConfig, ListConfig, ContainerMetadata, Metadata, *node_types, (typing.Any, "typing.Any")] + [
        int,
        float,
        bool,
        str,
        list,
        dict,
        tuple,
        collections.defaultdict,
    ]


def _plain(value: Any) -> Any:
    """omegaconf containers (if any) as plain Python values."""
    if type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value


def _load_torch(path: Path) -> dict:
    import torch

    try:
        with torch.serialization.safe_globals(_numpy_globals() + _omegaconf_globals()):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        hint = "omegaconf objects need: pip install 'da2k[depthfm]'; " if "omegaconf" in text else ""
        detail = next((line for line in text.splitlines() if "global" in line or "got <" in line), text.splitlines()[0])
        raise Da2kError(f"{path}: refusing to unpickle it ({hint}{detail.strip()})") from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise Da2kError(f"{path}: not a readable torch checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise Da2kError(f"{path}: expected DepthFM's checkpoint dict, got {type(data).__name__}")
    return data


def _load_safetensors(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise Da2kError(f"{path}: not a readable safetensors file ({exc})") from None
    if "ldm_hparams" not in meta or EMPTY_TEXT not in tensors:
        raise Da2kError(
            f"{path}: a DepthFM safetensors copy needs ldm_hparams and noising_step in its metadata and an "
            f"{EMPTY_TEXT} tensor (a UNet-only copy lacks them); use the official checkpoint ({OFFICIAL_URL})"
        )
    return {
        "ldm_hparams": json.loads(meta["ldm_hparams"]),
        "noising_step": int(meta.get("noising_step", 0)),
        EMPTY_TEXT: tensors.pop(EMPTY_TEXT),
        "state_dict": tensors,
    }


def _resolve(spec: str) -> Path:
    """A local file, or `OWNER/REPO/FILE` on the hub (cached by huggingface_hub)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    parts = spec.split("/")
    if len(parts) >= 3 and not spec.startswith((".", "/", "~")):
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])
        try:
            return Path(hf_hub_download(repo, filename))
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as exc:
            raise Da2kError(
                f"DepthFM checkpoint {filename} of hub repo {repo} is not available ({type(exc).__name__}); "
                "download it and pass depthfm:PATH"
            ) from None
    raise Da2kError(
        f"DepthFM checkpoint {path} not found: download depthfm-v1.ckpt ({OFFICIAL_URL}, a few GB) "
        "and pass depthfm:PATH (or OWNER/REPO/FILE for a copy on the hub)"
    )


def read_checkpoint(path: str | Path) -> DepthFMCheckpoint:
    """The DepthFM checkpoint at `path` (official `.ckpt` or our safetensors layout; a local file or
    `OWNER/REPO/FILE` on the hub)."""
    import torch

    path = _resolve(str(path))
    data = _load_safetensors(path) if path.suffix == ".safetensors" else _load_torch(path)
    missing = [k for k in ("ldm_hparams", "state_dict", "noising_step", EMPTY_TEXT) if k not in data]
    if missing:
        raise Da2kError(f"{path}: not a DepthFM checkpoint (no {', '.join(missing)})")
    hparams = _plain(data["ldm_hparams"])
    if not isinstance(hparams, dict):
        raise Da2kError(f"{path}: ldm_hparams must be a mapping, got {type(hparams).__name__}")
    embedding = torch.as_tensor(data[EMPTY_TEXT]).float()
    if embedding.ndim == 2:
        embedding = embedding[None]
    return DepthFMCheckpoint(
        hparams={k: _plain(v) for k, v in hparams.items()},
        state_dict=dict(data["state_dict"]),
        noising_step=int(data["noising_step"]),
        empty_text_embedding=embedding,
        path=path,
    )


def save_safetensors(ckpt: DepthFMCheckpoint, out: str | Path) -> Path:
    """Write `ckpt` as a safetensors file that `read_checkpoint` reads back (no pickle at all)."""
    from safetensors.torch import save_file

    out = Path(out)
    tensors = {k: v.contiguous() for k, v in ckpt.state_dict.items()}
    tensors[EMPTY_TEXT] = ckpt.empty_text_embedding.contiguous()
    meta = {"ldm_hparams": json.dumps(ckpt.hparams), "noising_step": str(ckpt.noising_step)}
    save_file(tensors, str(out), metadata=meta)
    return out
