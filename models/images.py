"""The one image loader and folder scanner (Pillow only): bytes or a path in, 8-bit RGB out.

Every photo the toolkit reads comes through `decode_image` (or `to_rgb` for an already open
`PIL.Image`), so every consumer sees the same pixels in the same frame:

- the EXIF orientation is applied: points (row, col) refer to the image as displayed;
- 16-bit and 32-bit grayscale (`I;16*`, `I`) are scaled from their 16-bit range to 8 bits
  (value / 257, rounded), never clipped (clipping turns a 16-bit photo almost white);
  float grayscale (`F`) in [0, 1] is scaled by 255, other float ranges are min-max normalised;
- palette, CMYK, LA/PA/RGBA, bilevel and YCbCr images become RGB; alpha is dropped (as
  OpenCV's `imread`, which the official code uses, drops it);
- animated images give their first frame;
- images over a pixel-count limit (`MAX_PIXELS`, default 100 MP, below the point where Pillow
  refuses a "decompression bomb"; `$DA2K_MAX_PIXELS` or `max_pixels=` to change it) are refused
  from their header, before any pixel is decoded.

Errors are `ModelError`s with one line naming the source.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ModelError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
"""File name endings (lower case) taken for images by every folder scan."""
MAX_PIXELS_ENV = "DA2K_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000

ImageBytesOrPath = Union[bytes, bytearray, memoryview, str, os.PathLike]

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def max_pixels() -> int:
    """The pixel-count limit in force: `$DA2K_MAX_PIXELS` if set (a positive integer), else 100 MP."""
    text = os.environ.get(MAX_PIXELS_ENV)
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ModelError(f"${MAX_PIXELS_ENV} must be a positive integer (pixels), got {text!r}")
    return value


def _grey_to_8bit(im: Image.Image) -> Image.Image:
    """Wide grayscale -> 8-bit `L`, scaled (not clipped) to 0..255."""
    a = np.asarray(im)
    if im.mode == "F":
        a = a.astype(np.float64)
        finite = a[np.isfinite(a)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if lo < 0.0 or hi > 1.0:
            a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
        unit = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
        return Image.fromarray((np.clip(unit, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "L")
    wide = np.clip(a.astype(np.int64), 0, 65535)  # `I` from a 16-bit file stays in this range
    return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8), "L")


def to_rgb(im: Image.Image) -> Image.Image:
    """An open `PIL.Image` -> a new 8-bit RGB image with its EXIF orientation applied (the
    frame every annotated point refers to); see the module docstring for the mode rules."""
    if getattr(im, "is_animated", False):
        im.seek(0)
    oriented = ImageOps.exif_transpose(im)  # a copy: the caller's image is left as it was
    if oriented.mode in _SIXTEEN_BIT or oriented.mode == "F":
        oriented = _grey_to_8bit(oriented)
    elif oriented.mode in ("P", "PA"):
        oriented = oriented.convert("RGBA")  # the palette's colours, transparency included
    if oriented.mode == "RGB" and oriented is not im:
        return oriented  # exif_transpose already made a copy: spare a second one
    return oriented.convert("RGB")  # drops alpha; a copy even when already RGB


def _open(src: ImageBytesOrPath) -> tuple[Image.Image, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return Image.open(io.BytesIO(bytes(src))), "image data"
    path = Path(src)
    try:
        return Image.open(path), str(path)
    except FileNotFoundError:
        raise ModelError(f"image {path} does not exist") from None
    except IsADirectoryError:
        raise ModelError(f"image {path} is a folder, not an image file") from None


def _check_pixels(im: Image.Image, name: str, limit: int | None) -> None:
    limit = max_pixels() if limit is None else limit
    width, height = im.size
    if width * height > limit:
        raise ModelError(
            f"{name}: {width}x{height} = {width * height:,} pixels is over the limit of {limit:,}; "
            f"raise it with ${MAX_PIXELS_ENV}=<pixels> if this image is genuine"
        )
    if width < 1 or height < 1:
        raise ModelError(f"{name}: the image is empty ({width}x{height})")


def decode_image(
    src: ImageBytesOrPath, *, max_pixels: int | None = None, reduce_for: int | None = None, name: str | None = None
) -> Image.Image:
    """Decode an image file (its bytes or its path) fully -> 8-bit RGB, EXIF orientation applied.

    `max_pixels`: the limit for this call (default: `max_pixels()`). `reduce_for`: a JPEG may be
    decoded at 1/2, 1/4 or 1/8 scale as long as its long side stays >= `reduce_for` pixels (for
    thumbnails; the result is then smaller than the stored image). `name` names the source in
    errors. Truncated or corrupt files fail here, never later."""
    is_data = isinstance(src, (bytes, bytearray, memoryview))
    label = name or ("image data" if is_data else str(src))
    try:
        im, _ = _open(src)
    except ModelError:
        raise
    except UnidentifiedImageError:
        raise ModelError(f"{label}: not an image file Pillow can read") from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise ModelError(f"cannot decode {label}: {type(exc).__name__}: {exc}") from None
    with im:
        try:
            _check_pixels(im, label, max_pixels)
            if reduce_for is not None and im.format == "JPEG":
                scale = reduce_for / max(im.size)
                im.draft("RGB", (int(np.ceil(im.width * scale)), int(np.ceil(im.height * scale))))
            im.load()  # decode now: truncated files fail here
            return to_rgb(im)
        except ModelError:
            raise
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
            raise ModelError(f"cannot decode {label}: {type(exc).__name__}: {exc}") from None


def image_size(src: ImageBytesOrPath) -> tuple[int, int]:
    """(height, width) of the image as displayed (EXIF orientation applied), from its header only."""
    try:
        im, _ = _open(src)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ModelError(f"cannot read image header: {exc}") from None
    with im:
        width, height = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def scan_images(root: str | os.PathLike, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Image files under `root`: recursive, sorted by their path relative to `root`.

    Hidden files and folders (`.name`, which includes macOS `._name` resource forks) are
    skipped. Symlinks are followed only while they stay under `root`: a link leaving it is
    skipped with a warning (a scan never reads outside the folder it was given); symlinked
    folders inside `root` are not entered twice."""
    root = Path(root)
    if not root.is_dir():
        raise ModelError(f"image folder {root} does not exist or is not a folder")
    real_root = root.resolve()
    found: list[Path] = []
    seen_dirs: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = here.resolve()
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            if (here / d).is_symlink() and not _inside(here / d, real_root):
                log.warning("skipping %s: a symlink to a folder outside %s", here / d, root)
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            path = here / name
            if name.startswith(".") or not name.lower().endswith(suffixes):
                continue
            if path.is_symlink() and not _inside(path, real_root):
                log.warning("skipping %s: a symlink to a file outside %s", path, root)
                continue
            if path.is_file():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
