"""Opening images safely and drawing what annotators see (Pillow only).

Paths come from the database, so they are data: a stored path must be relative, without
`..`, and resolve (symlinks followed) to a file under one of the allowed roots. The file
shown is the one recorded: its bytes must have the stored sha256, checked on the very bytes
that are then decoded and remembered per file version (path, size, times, inode), so a file
replaced under the same name, or another file at the same relative path under another root,
is never shown in its place (`ImageProblem` instead). Images are decoded with EXIF
orientation applied, the frame every point (row, col) refers to.
"""

from __future__ import annotations

import base64
import collections
import functools
import hashlib
import io
import os
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
"""Orange and blue: told apart with every common colour-vision deficiency."""


class ImageProblem(Da2kError):
    """A stored image that cannot be shown; `reason` is the short form kept in the store."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _checked_relative(image_path: str) -> PurePosixPath:
    rel = PurePosixPath(image_path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ImageProblem("refused path", f"refusing image path {image_path!r}: it must be relative, without '..'")
    return rel


def candidate_files(roots: Sequence[Path], image_root: str, image_path: str) -> list[Path]:
    """Existing files that may hold a stored (root, path), the recorded root first: each
    resolved (symlinks followed) and inside one of `roots`. Which of them is the image is
    for its sha256 to say (`load_verified`)."""
    rel = _checked_relative(image_path)
    found: list[Path] = []
    for base in ([Path(image_root)] if image_root else []) + list(roots):
        resolved = (base / rel).resolve()
        if resolved not in found and any(resolved.is_relative_to(r) for r in roots) and resolved.is_file():
            found.append(resolved)
    return found


def _decode(data: bytes, path: Path) -> Image.Image:
    """RGB with EXIF orientation applied, from a file's bytes, by the one image loader."""
    try:
        return decode_image(data, name=str(path))
    except ModelError as exc:  # the loader's message names the file
        raise ImageProblem("unreadable", str(exc)) from None


_verified: collections.OrderedDict[Path, tuple[tuple, str, Image.Image]] = collections.OrderedDict()
_verified_lock = threading.Lock()


def _signature(path: Path) -> tuple:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _open_checked(path: Path, sha256: str) -> Image.Image | None:
    """The image in `path` if its bytes have `sha256`, else None (cached per file version)."""
    signature = _signature(path)
    with _verified_lock:
        hit = _verified.get(path)
        if hit is not None and hit[0] == signature and hit[1] == sha256:
            _verified.move_to_end(path)
            return hit[2]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    image = _decode(data, path)
    with _verified_lock:
        _verified[path] = (signature, sha256, image)
        while len(_verified) > 8:
            _verified.popitem(last=False)
    return image


def load_verified(roots: Sequence[Path], image_root: str, image_path: str, sha256: str) -> Image.Image:
    """The stored image (RGB, EXIF applied), only from a file whose bytes have `sha256`."""
    files = candidate_files(roots, image_root, image_path)
    if not files:
        raise ImageProblem("missing", f"image {image_path!r} is not a file under {', '.join(map(str, roots))}")
    for path in files:
        try:
            image = _open_checked(path, sha256)
        except OSError as exc:
            raise ImageProblem("unreadable", f"cannot read image {path}: {exc}") from None
        if image is not None:
            return image
    raise ImageProblem(
        "changed (sha256 differs)",
        f"image {image_path!r} was replaced: its file no longer has the recorded sha256",
    )


def jpeg_data_uri(image: Image.Image, quality: int = 88) -> str:
    """The image inline, as the page's <img> source (no file to fetch, nothing cached on disk)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _scale(image: Image.Image, longest: int) -> float:
    return min(1.0, longest / max(image.size))


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
    radius = max(6, round(max(shown.size) * 0.016))
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


def _crop_box(image: Image.Image, point: tuple[int, int]) -> tuple[int, int, int, int]:
    row, col = point
    half = max(12, min(image.size) // 8)
    left = min(max(0, col - half), max(0, image.width - 2 * half))
    top = min(max(0, row - half), max(0, image.height - 2 * half))
    return (left, top, min(image.width, left + 2 * half), min(image.height, top + 2 * half))


def crop_origin(image: Image.Image, point: tuple[int, int]) -> tuple[float, float]:
    """Where the (row, col) point lies in its crop, as fractions (x, y) of its width and
    height: the page zooms the crop about this point."""
    row, col = point
    box = _crop_box(image, point)
    return ((col - box[0] + 0.5) / (box[2] - box[0]), (row - box[1] + 0.5) / (box[3] - box[1]))


def crop_around(image: Image.Image, point: tuple[int, int], label: str, size: int = CROP_SIZE) -> Image.Image:
    """A zoomed square around the (row, col) point, kept inside the image, with a crosshair."""
    row, col = point
    box = _crop_box(image, point)
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
