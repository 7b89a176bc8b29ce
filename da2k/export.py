"""`da2k export`: the annotation store's settled pairs as a DA-2K-format benchmark.

Export writes only settled pairs (`auto_agreed`, `resolved`) in the official form: point1 is
the closer point and `closer_point` is always "point1"; images are hard-linked (copied across
file systems) to `images/<scenario>/<file>`. The way back is `da2k.importing`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from sqlalchemy import select
from tqdm.auto import tqdm

from da2k.errors import Da2kError
from da2k.store import Image, Pair, Store
from da2k.store.ops import log_event

log = logging.getLogger(__name__)

EXPORTED_STATUSES = ("auto_agreed", "resolved")


@dataclass(frozen=True)
class ExportReport:
    out: Path
    images: int
    pairs: int


def export_key(scenario: str, path: str, taken: set[str], sha256: str) -> str:
    """`images/<scenario>/<file>` for an image stored at `path`: sub-folders below the
    scenario folder are folded into the file name; a clash gets the content hash appended."""
    parts = PurePosixPath(path).parts
    if len(parts) > 1 and parts[0] == "images":
        parts = parts[1:]
    if len(parts) > 1 and parts[0] == scenario:
        parts = parts[1:]
    name = "__".join(parts)
    key = f"images/{scenario}/{name}"
    if key in taken:
        stem, suffix = os.path.splitext(name)
        key = f"images/{scenario}/{stem}-{sha256[:12]}{suffix}"
    return key


def _place(src: Path, dst: Path, link: bool) -> None:
    if dst.exists():
        if dst.stat().st_size == src.stat().st_size:
            return
        dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy instead
    shutil.copy2(src, dst)


def export_benchmark(
    store: Store, out: Path, *, link: bool = True, images_root: Optional[Path] = None, progress: bool = True
) -> ExportReport:
    """Write `out/annotations.json` and `out/images/...` from the store's settled pairs.
    `images_root`: where to look for images no longer at their stored place (moved, or mined
    on another machine), by their path relative to the folder they were mined from."""
    out = Path(out)
    with store.read() as s:
        rows = s.execute(
            select(Image, Pair)
            .join(Pair, Pair.image_id == Image.id)
            .where(Pair.status.in_(EXPORTED_STATUSES), Pair.answer.in_(("point1", "point2")))
            .order_by(Image.scenario, Image.path, Image.id, Pair.id)
        ).all()
    by_image: dict[int, tuple[Image, list[Pair]]] = {}
    for image, pair in rows:
        by_image.setdefault(image.id, (image, []))[1].append(pair)
    annotations: dict[str, list[dict]] = {}
    for image, pairs in tqdm(by_image.values(), desc="export", unit="img", disable=not progress):
        src = Path(image.root) / image.path
        if not src.is_file() and images_root is not None:
            src = Path(images_root) / image.path
        if not src.is_file():
            raise Da2kError(
                f"image {Path(image.root) / image.path} of the store is gone: put it back, or pass "
                "--images-root with the folder it was mined from"
            )
        key = export_key(image.scenario, image.path, set(annotations), image.sha256)
        _place(src, out / key, link)
        annotations[key] = [
            {
                "point1": list(pair.point1 if pair.answer == "point1" else pair.point2),
                "point2": list(pair.point2 if pair.answer == "point1" else pair.point1),
                "closer_point": "point1",
            }
            for pair in pairs
        ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotations.json").write_text(json.dumps(annotations, indent=1))
    n_pairs = sum(len(v) for v in annotations.values())
    with store.write() as s:
        log_event(s, "export", "export", out=str(out.resolve()), images=len(annotations), pairs=n_pairs)
    return ExportReport(out, len(annotations), n_pairs)
