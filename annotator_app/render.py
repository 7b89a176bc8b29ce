"""Opening images safely and drawing what annotators see (Pillow only).

Paths come from the database, so they are data: a stored path must be relative, without
`..`, and resolve (symlinks followed) to a file under one of the allowed roots. Images are
decoded with EXIF orientation applied, the frame every point (row, col) refers to.
"""

from __future__ import annotations

import collections
import functools
import threading
from pathlib import Path, PurePosixPath
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

from da2k.images import ModelError, decode_image
from da2k.store.annotate import Da2kError

DISPLAY_MAX = 960
"""Longest side of the full image as shown (pixels)."""
CROP_SIZE = 240
COLOURS = {"A": (255, 140, 0), "B": (30, 144, 255), "1": (255, 140, 0), "2": (30, 144, 255)}


def resolve_image(roots: Sequence[Path], image_root: str, image_path: str) -> Path:
    """The file for a stored (root, path), only if it lies under one of `roots`."""
    rel = PurePosixPath(image_path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise Da2kError(f"refusing image path {image_path!r}: it must be relative, without '..'")
    candidates = [Path(image_root) / rel] if image_root else []
    candidates += [root / rel for root in roots]
    for candidate in candidates:
        resolved = candidate.resolve()
        if any(resolved.is_relative_to(root) for root in roots) and resolved.is_file():
            return resolved
    raise Da2kError(f"image {image_path!r} is not a file under the images root ({', '.join(map(str, roots))})")


@functools.lru_cache(maxsize=8)
def _load(path: Path, mtime_ns: int) -> Image.Image:
    return decode_image(path)


def load_image(path: Path) -> Image.Image:
    """RGB with EXIF orientation applied, by the one loader (cached: consecutive pairs often
    share an image)."""
    try:
        return _load(path, path.stat().st_mtime_ns)
    except OSError as exc:
        raise Da2kError(f"cannot read image {path}: {exc}") from None
    except ModelError as exc:  # the loader's message names the file
        raise Da2kError(str(exc)) from None


def _scale(image: Image.Image, longest: int) -> float:
    return min(1.0, longest / max(image.size))


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


_displayed: collections.OrderedDict[tuple[int, int], tuple[Image.Image, Image.Image, float]] = collections.OrderedDict()
_displayed_lock = threading.Lock()


def _display(image: Image.Image, longest: int) -> tuple[Image.Image, float]:
    """The image at display size, cached for the last few images (an image's pairs are
    usually shown one after another). PIL images are unhashable, so the key is the id of
    the image, which the entry keeps alive."""
    key = (id(image), longest)
    with _displayed_lock:
        hit = _displayed.get(key)
        if hit is not None and hit[0] is image:
            _displayed.move_to_end(key)
            return hit[1], hit[2]
    scale = _scale(image, longest)
    small = image
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        small = image.resize(size, Image.LANCZOS, reducing_gap=2.0)
    with _displayed_lock:
        _displayed[key] = (image, small, scale)
        while len(_displayed) > 8:
            _displayed.popitem(last=False)
    return small, scale


def draw_points(
    image: Image.Image, points: dict[str, tuple[int, int]], longest: int = DISPLAY_MAX
) -> tuple[Image.Image, float]:
    """The image scaled to `longest` pixels with each labelled (row, col) point marked;
    returns it and the scale factor (display pixels per image pixel)."""
    base, scale = _display(image, longest)
    shown = base.copy()
    draw = ImageDraw.Draw(shown)
    radius = max(6, round(max(shown.size) * 0.012))
    font = _font(max(14, radius * 3))
    for label, (row, col) in points.items():
        x, y = (col + 0.5) * scale, (row + 0.5) * scale
        colour = COLOURS.get(label, (255, 0, 0))
        draw.ellipse((x - radius - 2, y - radius - 2, x + radius + 2, y + radius + 2), outline=(0, 0, 0), width=2)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), outline=colour, width=max(2, radius // 3))
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)
        tx = x + radius + 4 if x + radius + 4 + font.size < shown.width else x - radius - 4 - font.size
        ty = min(max(0, y - font.size), shown.height - font.size - 2)
        draw.text((tx, ty), label, fill=colour, font=font, stroke_width=3, stroke_fill=(0, 0, 0))
    return shown, scale


def crop_around(image: Image.Image, point: tuple[int, int], label: str, size: int = CROP_SIZE) -> Image.Image:
    """A zoomed square around the (row, col) point, kept inside the image, with a crosshair."""
    row, col = point
    half = max(12, min(image.size) // 8)
    left = min(max(0, col - half), max(0, image.width - 2 * half))
    top = min(max(0, row - half), max(0, image.height - 2 * half))
    box = (left, top, min(image.width, left + 2 * half), min(image.height, top + 2 * half))
    crop = image.crop(box).resize((size, size), Image.LANCZOS)
    sx, sy = size / (box[2] - box[0]), size / (box[3] - box[1])
    x, y = (col - box[0] + 0.5) * sx, (row - box[1] + 0.5) * sy
    draw = ImageDraw.Draw(crop)
    colour = COLOURS.get(label, (255, 0, 0))
    gap, arm = 6, 18
    for a, b in (
        ((x - gap - arm, y), (x - gap, y)),
        ((x + gap, y), (x + gap + arm, y)),
        ((x, y - gap - arm), (x, y - gap)),
        ((x, y + gap), (x, y + gap + arm)),
    ):
        draw.line((a, b), fill=(0, 0, 0), width=5)
        draw.line((a, b), fill=colour, width=3)
    draw.text((8, size - 30), label, fill=colour, font=_font(22), stroke_width=3, stroke_fill=(0, 0, 0))
    return crop
