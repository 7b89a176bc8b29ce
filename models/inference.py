"""Running a model on images: device and precision choice, single-image `infer`, and the
prefetching `predict` for many images (decode/resize of the next images overlaps the forward)."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F

from .errors import ModelError
from .prefetch import prefetch
from .transforms import ImageSource, load_image, to_network_input

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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


def select_device(spec: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    if spec == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("--device mps asked for, but MPS is not available; use --device cpu")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise ModelError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps") from None


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags that matter for speed (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere autocast
    to bf16 is emulated and several times slower than fp32."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


_warned_bf16 = False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for `precision` on `device`; None means plain fp32."""
    global _warned_bf16
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and native_bf16() else None
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cpu" and not native_bf16() and not _warned_bf16:
            logger.warning("this CPU has no native bf16 (avx512_bf16/amx): bf16 autocast will be slower than fp32")
            _warned_bf16 = True
        return torch.bfloat16
    if device.type == "cpu":
        raise ModelError("fp16 is for GPUs; on the CPU use --precision fp32 or bf16")
    return torch.float16


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def forward(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Network output (B, h, w) as float32, under inference mode and optional autocast."""
    device = _device_of(model)
    ctx = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
    with torch.inference_mode(), ctx:
        return model(x.to(device, non_blocking=True)).float()


def _prepare(model: torch.nn.Module, image: ImageSource, input_size: int) -> tuple[torch.Tensor, tuple[int, int]]:
    variant = model.variant
    img = load_image(image)
    return to_network_input(img, input_size, variant.mean, variant.std), (img.height, img.width)


def infer_lowres(
    model: torch.nn.Module, image: ImageSource, input_size: int = 518, *, precision: str = "fp32"
) -> LowRes:
    """Network-resolution prediction for one image (see `LowRes`)."""
    x, size = _prepare(model, image, input_size)
    values = forward(model, x, autocast_dtype(precision, _device_of(model)))[0].cpu()
    return LowRes(values, size, model.variant.align_corners)


def infer(
    model: torch.nn.Module, image: ImageSource, input_size: int = 518, *, precision: str = "fp32"
) -> torch.Tensor:
    """(H, W) float32 prediction at the original image size (EXIF applied), as the official
    `infer_image`: disparity-like for relative variants, metres for metric ones."""
    return infer_lowres(model, image, input_size, precision=precision).upsample()


def predict(
    model: torch.nn.Module,
    images: Iterable[ImageSource],
    input_size: int = 518,
    device: str = "auto",
    precision: str = "auto",
    workers: int = 2,
) -> Iterator[tuple[ImageSource, LowRes | ModelError]]:
    """Yield `(image, LowRes)` in input order; unreadable images yield `(image, ModelError)`.

    Decoding and resizing run in `workers` threads, `2 * workers` images ahead of the network.
    """
    dev = select_device(device)
    model.to(dev)
    dtype = autocast_dtype(precision, dev)
    align = model.variant.align_corners
    for src, future in prefetch(images, lambda src: _prepare(model, src, input_size), workers):
        try:
            x, size = future.result()
        except ModelError as exc:
            yield src, exc
            continue
        yield src, LowRes(forward(model, x, dtype)[0].cpu(), size, align)
