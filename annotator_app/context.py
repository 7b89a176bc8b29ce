"""What every tab of the app shares: the store, who is who, the settings, and the images.

Images are read only from under the allowed roots: `--images-root` when given, else the
folders recorded in the database, looked up again when a pair names a folder not seen yet
(mining another folder while the app runs). Whatever the root, the file's sha256 decides.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gradio as gr

from da2k.annotator_app.access import Access
from da2k.annotator_app.render import crop_around, crop_origin, draw_points, jpeg_data_uri, load_verified
from da2k.annotator_app.view import Pictures
from da2k.store import Store
from da2k.store import annotate as ann
from da2k.store.annotate import Da2kError, normalize_name

log = logging.getLogger(__name__)

SETTLE_S = 0.15
"""An answer sooner than this after its display began cannot be about it (as keys.js waits)."""


@dataclass(frozen=True)
class Settings:
    votes_per_pair: int = 3
    gold_rate: float = 0.1
    claim_ttl: float = 600.0


class Images:
    """Finds, checks and draws stored images for the browser."""

    def __init__(self, store: Store, images_root: Optional[Path]) -> None:
        self.store = store
        self.fixed = [images_root] if images_root is not None else None
        self._known: list[Path] = []
        self._looked = 0.0

    def roots(self, stored_root: str = "") -> list[Path]:
        if self.fixed is not None:
            return self.fixed
        wanted = Path(stored_root).resolve() if stored_root else None
        stale = time.monotonic() - self._looked > 2.0
        if not self._known or (wanted is not None and wanted not in self._known and stale):
            self._known = [Path(r).resolve() for r in ann.image_roots(self.store)]
            self._looked = time.monotonic()
        return self._known

    def load(self, root: str, path: str, sha256: str):
        return load_verified(self.roots(root), root, path, sha256)

    def pictures(self, root: str, path: str, sha256: str, a: tuple[int, int], b: tuple[int, int]) -> Pictures:
        """The full image with A and B and both crops; raises ImageProblem."""
        image = self.load(root, path, sha256)
        full, _ = draw_points(image, {"A": a, "B": b})
        return Pictures(
            jpeg_data_uri(full),
            jpeg_data_uri(crop_around(image, a, "A")),
            jpeg_data_uri(crop_around(image, b, "B")),
            crop_origin(image, a),
            crop_origin(image, b),
        )

    def recheck_unavailable(self) -> int:
        """Clear the mark of images found intact again (e.g. after fixing --images-root)."""
        back = 0
        for im in ann.unavailable_images(self.store):
            try:
                self.load(im["root"], im["path"], im["sha256"])
            except Da2kError:
                continue
            ann.mark_available(self.store, im["id"])
            back += 1
        if back:
            log.info("%d images marked unavailable were found intact again", back)
        return back


@dataclass
class Context:
    store: Store
    access: Access
    settings: Settings
    images: Images

    def who(self, typed: str, request: Optional[gr.Request]) -> str:
        """The annotator's normalised name: their login, else what they typed."""
        if self.access.logins:
            name = getattr(request, "username", None)
            if not name:
                raise Da2kError("log in first")
            return normalize_name(name)
        if not (typed or "").strip():
            raise Da2kError("type your name first")
        return normalize_name(typed)
