"""Image in, network tensor out: the official single-image preprocessing without OpenCV.

Official path (Depth-Anything-V2 `image2tensor`): RGB / 255, resize keeping the aspect ratio so
that both sides are >= input_size and multiples of 14 (`lower_bound`), bicubic (OpenCV
INTER_CUBIC, a = -0.75; torch's bicubic with antialias off uses the same kernel and edge
replication), ImageNet normalisation.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .errors import ModelError

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]


def load_image(src: ImageSource) -> Image.Image:
    """RGB `PIL.Image` with EXIF orientation applied. Arrays are HxWx3 uint8 RGB."""
    if isinstance(src, np.ndarray):
        if src.ndim != 3 or src.shape[2] != 3 or src.dtype != np.uint8:
            raise ModelError(f"expected an HxWx3 uint8 RGB array, got shape {src.shape} {src.dtype}")
        return Image.fromarray(src, "RGB")
    if isinstance(src, Image.Image):
        return ImageOps.exif_transpose(src).convert("RGB")
    path = Path(src)
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated or corrupt files fail here, not later
            return ImageOps.exif_transpose(im).convert("RGB")
    except FileNotFoundError:
        raise ModelError(f"image {path} does not exist") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ModelError(f"cannot read image {path}: {exc}") from None


def _multiple_at_least(x: float, minimum: int, multiple: int) -> int:
    y = round(x / multiple) * multiple  # round half to even, as numpy's np.round
    if y < minimum:
        y = math.ceil(x / multiple) * multiple
    return int(y)


def network_size(height: int, width: int, input_size: int, multiple: int = 14) -> tuple[int, int]:
    """(h, w) the network sees: aspect kept, short side >= input_size, both multiples of 14."""
    scale = max(input_size / height, input_size / width)
    return (
        _multiple_at_least(scale * height, input_size, multiple),
        _multiple_at_least(scale * width, input_size, multiple),
    )


def to_network_input(
    image: Image.Image, input_size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """(1, 3, h, w) float32 normalised tensor for `image` (RGB PIL)."""
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div_(255.0)
    size = network_size(image.height, image.width, input_size)
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=False)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)
