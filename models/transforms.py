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
from PIL import Image

from .errors import ModelError
from .images import decode_image, to_rgb

ImageSource = Union[str, os.PathLike, Image.Image, np.ndarray]


def load_image(src: ImageSource) -> Image.Image:
    """RGB `PIL.Image` with EXIF orientation applied, through the one loader
    (`da2k.models.images`). Arrays are HxWx3 uint8 RGB."""
    if isinstance(src, np.ndarray):
        if src.ndim != 3 or src.shape[2] != 3 or src.dtype != np.uint8:
            raise ModelError(f"expected an HxWx3 uint8 RGB array, got shape {src.shape} {src.dtype}")
        return Image.fromarray(src, "RGB")
    if isinstance(src, Image.Image):
        return to_rgb(src)
    return decode_image(Path(src))


def _multiple_at_least(x: float, minimum: int, multiple: int) -> int:
    y = round(x / multiple) * multiple  # round half to even, as numpy's np.round
    if y < minimum:
        y = math.ceil(x / multiple) * multiple
    return int(y)


MAX_ASPECT = 32
"""The network input's long side is capped at MAX_ASPECT x input_size (rounded to 14)."""


def network_size(height: int, width: int, input_size: int, multiple: int = 14) -> tuple[int, int]:
    """(h, w) the network sees: aspect kept, short side >= input_size, both multiples of 14.

    The official resize; only for images more than `MAX_ASPECT` (32) times longer than wide (a
    3000x10 strip would otherwise become a 155400x518 input, 410,000 tokens, and stall for
    hours), the long side is capped at `MAX_ASPECT * input_size` and the short side shrinks
    with it (at least 14): 3000x10 becomes 16576x56 at 518."""
    scale = max(input_size / height, input_size / width)
    cap = _multiple_at_least(MAX_ASPECT * input_size, multiple, multiple)
    if scale * max(height, width) > cap:
        scale = cap / max(height, width)
        return (
            min(cap, _multiple_at_least(scale * height, multiple, multiple)),
            min(cap, _multiple_at_least(scale * width, multiple, multiple)),
        )
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
