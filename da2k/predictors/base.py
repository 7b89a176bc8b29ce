"""The predictor interface: anything that turns an image into a depth or disparity map.

`Predictor.predict(image) -> Prediction` (a (h, w) map at any resolution, its kind, and how it
maps onto the image), plus an `id`, a `checkpoint_sha256` and the `settings` recorded in result
files. Evaluation calls `prepare` (decode, resize: any thread) and `forward` (the network: the
calling thread) separately so decoding of the next images overlaps the forward.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from da2k.errors import Da2kError
from da2k.scoring import KINDS

ImageLoader = Callable[[], Image.Image]


@dataclass
class Prediction:
    """A model output: `values` (h, w) at any resolution, `kind` (`disparity`: larger = closer,
    or `depth`), and the bilinear convention that resizes it onto the image (EXIF-applied)."""

    values: np.ndarray
    kind: str
    align_corners: bool = False


PredictionMap = Prediction  # the name the team notes use


def check_kind(kind: str | None, source: str) -> str:
    if kind not in KINDS:
        raise Da2kError(f"{source}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


def as_map(values: Any, source: str) -> np.ndarray:
    """A 2-D float array from a numpy array or a torch tensor, squeezing singleton axes."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim > 2:
        arr = arr.squeeze()
    if arr.ndim != 2 or arr.size == 0 or not np.issubdtype(arr.dtype, np.number):
        raise Da2kError(f"{source}: expected a 2-D numeric (h, w) map, got shape {np.shape(values)}")
    return arr.astype(np.float64 if arr.dtype == np.float64 else np.float32)


class Predictor:
    """Base class; subclasses set the attributes and implement `prepare`/`forward`.

    id: the model name in results (`vitl`, `hf:Intel/dpt-large`); family: the `predictor` field;
    kind: the declared output kind; cacheable: whether per-image values may be cached;
    timed: whether `forward` runs a network, so its time per image is a latency worth recording;
    compile: whether the network runs `torch.compile`d (`compile_seconds` then says how long
    compiling took so far).
    """

    id: str = ""
    family: str = ""
    kind: str = "disparity"
    input_size: int | None = None
    cacheable: bool = True
    timed: bool = True
    compile: bool = False

    def __init__(self) -> None:
        self.settings: dict = {}

    @property
    def checkpoint_sha256(self) -> str | None:
        return None

    @property
    def checkpoint_source(self) -> str | None:
        """Where the weights came from: `hub:<repo>@<revision>[/<file>]`, "local file" or
        "local folder"; None when there are no weights (maps computed elsewhere)."""
        return None

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling so far (0 when nothing is compiled)."""
        return 0.0

    @property
    def n_params(self) -> int | None:
        """Parameters of the network (`self.model`, when it is a torch module), else None."""
        model = getattr(self, "model", None)
        if model is None or not hasattr(model, "parameters"):
            return None
        return sum(p.numel() for p in model.parameters())

    def prepare(self, key: str, load: ImageLoader) -> Any:
        """CPU-side work for one image (decode, resize); runs in a worker thread."""
        return load()

    def forward(self, prepared: Any) -> Prediction:
        """The model on a prepared input; runs in the calling thread."""
        raise NotImplementedError

    def predict(self, image: Image.Image, key: str = "") -> Prediction:
        """Single image (RGB, EXIF applied) -> Prediction."""
        return self.forward(self.prepare(key, lambda: image))

    def describe(self) -> dict:
        """The `model` block of a result file."""
        return {
            "id": self.id,
            "predictor": self.family,
            "kind": self.kind,
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint_source": self.checkpoint_source,
            "n_params": self.n_params,
            "input_size": self.input_size,
            "settings": dict(self.settings),
        }


def hub_source(repo: str, revision: str | None) -> str:
    """`checkpoint_source` of weights named by a hub repo id or a local folder."""
    if Path(repo).is_dir():
        return "local folder"
    return f"hub:{repo}@{revision}" if revision else f"hub:{repo}"


def folder_weights_sha256(repo: str, revision: str | None, marker: str = "config.json") -> str | None:
    """sha256 over the weight files (any depth: pipelines keep them in subfolders) of a local
    folder or of the cached hub snapshot holding `marker`; None if not found."""
    folder = Path(repo)
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo, marker, revision=revision)
        if not isinstance(cached, str):
            return None
        folder = Path(cached).parent
    files = sorted(p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        return None
    from da2k.models import file_sha256

    if len(files) == 1:
        return file_sha256(files[0])
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _hub_reason(offline_setting: str, endpoint: str) -> str | None:
    from da2k.models.hub import hub_offline_reason

    return hub_offline_reason()


def looks_local(repo: str) -> bool:
    """A folder path rather than a hub id (`owner/name`): absolute, relative with ./ ../ ~, or deeper."""
    return Path(repo).is_absolute() or repo.startswith(("./", "../", "~")) or repo.count("/") > 1


def hub_unavailable(repo: str) -> str | None:
    """Why the hub cannot be asked for `repo` now (offline by setting, or one quick probe found
    it unreachable), or None (also for a local folder). Probed once per process and setting."""
    if Path(repo).expanduser().exists():
        return None
    return _hub_reason(os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("HF_ENDPOINT", ""))


def from_pretrained(load: Callable[..., Any], repo: str, who: str, local_flag: str, **kwargs: Any) -> Any:
    """`load(repo, **kwargs)` (a transformers/diffusers `from_pretrained`). When the hub cannot be
    asked, only the local hub cache is read (no retry loops); any failure is one line naming what
    was missing, why, and how to point at a local copy (`local_flag`)."""
    if looks_local(repo) and not Path(repo).expanduser().exists():
        raise Da2kError(f"{who}: the folder {repo} does not exist; pass a local model folder or a hub id OWNER/NAME")
    reason = hub_unavailable(repo)
    if reason:
        kwargs["local_files_only"] = True
    where = f"{repo}/{kwargs['subfolder']}" if kwargs.get("subfolder") else repo
    try:
        return load(str(repo), **kwargs)
    except (OSError, ValueError) as exc:  # missing files, offline, not a valid repo id
        if reason:
            raise Da2kError(
                f"{who}: {where} is not in the local hub cache ({reason}): download it where the hub is "
                f"reachable (huggingface-cli download {repo}) or pass {local_flag}"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Da2kError(f"{who}: cannot load {where} ({first}); or pass {local_flag}") from None
