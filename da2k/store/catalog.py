"""Images for the annotation app: finding them, hand-picked pairs, and images it cannot show.

An image whose file is missing, or whose bytes no longer have the recorded sha256, is marked
`unavailable` (with the reason): its pairs leave every annotator's queue at once (see
`queue.available`), and it is listed by the Stats tab and `da2k stats`. The app checks the
marked images again when it starts and clears the mark of those it finds intact.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from da2k.errors import Da2kError
from da2k.store.core import Store
from da2k.store.ops import log_event
from da2k.store.queue import normalize_name
from da2k.store.schema import Image, Pair, utcnow
from da2k.store.writes import retry_busy


def _image_dict(im: Image) -> dict[str, Any]:
    return {
        "id": im.id,
        "root": im.root,
        "path": im.path,
        "sha256": im.sha256,
        "scenario": im.scenario,
        "width": im.width,
        "height": im.height,
        "unavailable": im.unavailable,
    }


def find_images(store: Store, contains: str = "", limit: int = 200) -> list[dict[str, Any]]:
    """Images whose path contains `contains` (plain text, not a pattern), for hand-picking."""
    with store.read() as s:
        query = select(Image).where(Image.unavailable.is_(None)).order_by(Image.id).limit(limit)
        if contains:
            query = query.where(Image.path.contains(contains, autoescape=True))
        return [_image_dict(im) for im in s.scalars(query)]


def image_info(store: Store, image_id: int) -> Optional[dict[str, Any]]:
    with store.read() as s:
        im = s.get(Image, image_id)
        return None if im is None else _image_dict(im)


def image_roots(store: Store) -> list[str]:
    """The distinct folders images were recorded under."""
    with store.read() as s:
        return sorted(r for r in s.scalars(select(Image.root).distinct()) if r)


def unavailable_images(store: Store) -> list[dict[str, Any]]:
    """Images marked as impossible to show, with why and since when (oldest first)."""
    with store.read() as s:
        query = select(Image).where(Image.unavailable.is_not(None)).order_by(Image.unavailable_at, Image.id)
        return [{**_image_dict(im), "since": im.unavailable_at} for im in s.scalars(query)]


def mark_unavailable(store: Store, image_id: int, reason: str, actor: str = "annotate") -> None:
    """Take an image (and so its pairs) out of the queue for everyone, saying why."""

    def work() -> None:
        with store.write() as s:
            image = s.get(Image, image_id)
            if image is None or image.unavailable == reason:
                return
            image.unavailable, image.unavailable_at = reason, utcnow()
            log_event(s, actor, "image_unavailable", None, image=image.path, image_id=image_id, reason=reason)

    retry_busy(work)


def mark_available(store: Store, image_id: int, actor: str = "annotate") -> None:
    """The image's file was found intact again: its pairs return to the queue."""

    def work() -> None:
        with store.write() as s:
            image = s.get(Image, image_id)
            if image is None or image.unavailable is None:
                return
            image.unavailable, image.unavailable_at = None, None
            log_event(s, actor, "image_available", None, image=image.path, image_id=image_id)

    retry_busy(work)


def add_manual_pair(store: Store, image_id: int, point1: Sequence[int], point2: Sequence[int], author: str) -> int:
    """A hand-picked pair (source `manual`, queued as `needs_human`); points are (row, col)."""
    author = normalize_name(author)
    p1, p2 = (int(point1[0]), int(point1[1])), (int(point2[0]), int(point2[1]))
    if p1 == p2:
        raise Da2kError("pick two different points")

    def work() -> int:
        with store.write() as s:
            image = s.get(Image, image_id)
            if image is None:
                raise Da2kError(f"no image {image_id} in the store")
            for row, col in (p1, p2):
                if not (0 <= row < image.height and 0 <= col < image.width):
                    raise Da2kError(f"point ({row}, {col}) is outside the {image.height}x{image.width} image")
            pair = Pair(
                image_id=image_id,
                p1_row=p1[0],
                p1_col=p1[1],
                p2_row=p2[0],
                p2_col=p2[1],
                source="manual",
                status="needs_human",
            )
            s.add(pair)
            s.flush()
            log_event(s, author, "manual_pair", pair.id, image=image.path, point1=list(p1), point2=list(p2))
            return pair.id

    try:
        return retry_busy(work)
    except IntegrityError:
        raise Da2kError("this image already has a pair with these two points") from None
