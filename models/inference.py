"""Running our network: `infer_network` on a preprocessed batch, single-image `infer`, and the
prefetching `predict` for many images (decode/resize of the next images overlaps the forward)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from .errors import ModelError
from .prefetch import prefetch
from .prepared import prepared
from .runtime import Precision, resolve_precision, select_device
from .transforms import ImageSource, load_image, to_network_input


@dataclass
class LowRes:
    """Network-resolution output and how it maps onto the original image.

    `values` (h, w) float32 CPU; `size` is the original (H, W) with EXIF applied. Bilinear
    upsampling to `size` with `align_corners` gives the full-resolution map (`upsample()`).
    """

    values: torch.Tensor
    size: tuple[int, int]
    align_corners: bool

    def upsample(self) -> torch.Tensor:
        out = F.interpolate(self.values[None, None], size=self.size, mode="bilinear", align_corners=self.align_corners)
        return out[0, 0]


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def infer_network(
    model: torch.nn.Module, x: torch.Tensor, precision: str | Precision = "fp32", *, compile: bool = False
) -> torch.Tensor:
    """The network on a preprocessed batch `x` (B, 3, H, W) -> float32 (B, h, w), under
    inference mode at `precision` (`fp32|bf16|fp16|auto`, resolved for the model's device).

    Runs the model's inference copy for that precision (`models/prepared.py`: weights cast and
    LayerScale folded once, cached while the parameters are unchanged); `compile=True` runs it
    through `torch.compile`, one graph per input size. The one way our network runs: `infer`,
    `predict`, evaluation, mining and pseudo-labelling all come through here."""
    if not isinstance(precision, Precision):
        precision = resolve_precision(precision, _device_of(model))
    return prepared(model, precision, compile)(x)


def _prepare(
    model: torch.nn.Module, image: ImageSource, input_size: int | None
) -> tuple[torch.Tensor, tuple[int, int]]:
    variant = model.variant
    img = load_image(image)
    return to_network_input(img, input_size or variant.input_size, variant.mean, variant.std), (img.height, img.width)


def infer_lowres(
    model: torch.nn.Module,
    image: ImageSource,
    input_size: int | None = None,
    *,
    precision: str = "fp32",
    compile: bool = False,
) -> LowRes:
    """Network-resolution prediction for one image (see `LowRes`); `input_size` defaults to the
    variant's (518 for the official models)."""
    x, size = _prepare(model, image, input_size)
    values = infer_network(model, x, precision, compile=compile)[0].cpu()
    return LowRes(values, size, model.variant.align_corners)


def infer(
    model: torch.nn.Module,
    image: ImageSource,
    input_size: int | None = None,
    *,
    precision: str = "fp32",
    compile: bool = False,
) -> torch.Tensor:
    """(H, W) float32 prediction at the original image size (EXIF applied), as the official
    `infer_image`: disparity-like for relative variants, metres for metric ones."""
    return infer_lowres(model, image, input_size, precision=precision, compile=compile).upsample()


def predict(
    model: torch.nn.Module,
    images: Iterable[ImageSource],
    input_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    workers: int = 2,
    compile: bool = False,
) -> Iterator[tuple[ImageSource, LowRes | ModelError]]:
    """Yield `(image, LowRes)` in input order; unreadable images yield `(image, ModelError)`.

    Decoding and resizing run in `workers` threads, `2 * workers` images ahead of the network.
    """
    dev = select_device(device)
    model.to(dev)
    resolved = resolve_precision(precision, dev)
    align = model.variant.align_corners
    for src, future in prefetch(images, lambda src: _prepare(model, src, input_size), workers):
        try:
            x, size = future.result()
        except ModelError as exc:
            yield src, exc
            continue
        yield src, LowRes(infer_network(model, x, resolved, compile=compile)[0].cpu(), size, align)
