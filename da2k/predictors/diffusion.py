"""What the diffusion predictors (DepthFM, GeoWizard, Marigold) share: importing the optional
packages with a one-line hint, strict loading of hub/local components, precision, seeding and the
PIL resizes their official code does. Nothing here imports diffusers at module level."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
from PIL import Image

from da2k.errors import Da2kError
from da2k.predictors.base import from_pretrained


def require(extra: str, who: str, *modules: str) -> None:
    """Import `modules` or stop with one line naming the extra that installs them."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise Da2kError(f"{who} needs {name}: pip install 'da2k[{extra}]'") from None


def load_strict(cls: Any, repo: str, subfolder: str | None, who: str, local_flag: str) -> Any:
    """`cls.from_pretrained(repo, subfolder=...)` (diffusers or transformers) in eval mode, refusing
    any missing or unexpected weight (the loaders only warn about those). `local_flag` tells the
    user how to point at a local copy (e.g. `vae=DIR`)."""
    kwargs = {"subfolder": subfolder} if subfolder else {}
    where = f"{repo}/{subfolder}" if subfolder else repo
    model, info = from_pretrained(cls.from_pretrained, repo, who, local_flag, output_loading_info=True, **kwargs)
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        detail = "; ".join(f"{k.replace('_', ' ')}: {sorted(map(str, v))[:3]}" for k, v in problems.items())
        raise Da2kError(f"{who}: {cls.__name__} weights in {where} do not match its config ({detail})")
    return model.eval()


def cpu_generator(seed: int):
    """A fresh CPU generator: the noise of an image never depends on the device, the order of the
    images or the workers, and equals what `torch.manual_seed(seed)` gives the official code on CPU."""
    import torch

    return torch.Generator(device="cpu").manual_seed(int(seed))


def rgb_array(image: Image.Image) -> np.ndarray:
    """(3, h, w) uint8 of an RGB image (the official scripts' `np.array(image)` transposed)."""
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))


def resize_map(values: np.ndarray, size_wh: tuple[int, int], resample: int) -> np.ndarray:
    """A float map resized by PIL in mode F, as the official scripts resize their outputs back."""
    if values.shape[::-1] == tuple(size_wh):
        return values.astype(np.float32)
    return np.asarray(Image.fromarray(values.astype(np.float32)).resize(size_wh, resample), dtype=np.float32)
