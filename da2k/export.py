"""`da2k export`: the annotation store's settled pairs as a DA-2K-format benchmark.

Export writes only settled pairs (`auto_agreed`, `resolved`) in the official form: point1 is
the closer point and `closer_point` is always "point1"; images are hard-linked (copied across
file systems) to `images/<scenario>/<file>`. Beside annotations.json (kept exactly in the
official format), `da2k-export.json` records what the export holds, among it its scenario
names, which `da2k validate` and `da2k evaluate` then accept without --allow-scenario. The way
back is `da2k.importing`.
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

from da2k.benchmark import EXPORT_MANIFEST as MANIFEST
from da2k.errors import Da2kError
from da2k.images import ANNOTATIONS
from da2k.models.files import atomic_write, atomic_write_text, remove_temporaries, temporary_name
from da2k.models.weights import file_sha256
from da2k.store import Image, Pair, Store
from da2k.store.ops import log_event

log = logging.getLogger(__name__)

EXPORTED_STATUSES = ("auto_agreed", "resolved")
MANIFEST_SCHEMA = "da2k.export/1"


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


def _same_file(src: Path, dst: Path, sha256: str) -> bool:
    if not dst.is_file():
        return False
    if os.path.samefile(src, dst):
        return True
    return dst.stat().st_size == src.stat().st_size and file_sha256(dst) == sha256


def _place(src: Path, dst: Path, link: bool, sha256: str) -> None:
    """`dst` becomes `src` (a hard link, else a copy with the umask's mode) in one rename: a
    kill leaves the old file or the new one, never a part."""
    if _same_file(src, dst, sha256):
        return
    if link:
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(dst, str(os.getpid()))
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
            os.replace(tmp, dst)
            return
        except OSError:
            tmp.unlink(missing_ok=True)  # another file system, or links not allowed: copy instead
    atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def _is_previous_export(out: Path) -> bool:
    """A folder `da2k export` wrote: its manifest, or (older exports) annotations.json and
    images/ alone."""
    if (out / MANIFEST).is_file():
        return True
    names = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    return ANNOTATIONS in names and names <= {ANNOTATIONS, "images"}


def check_target(out: Path, force: bool) -> Optional[dict]:
    """Refuse an `--out` that is a file, or a non-empty folder that is no earlier export (unless
    `force`); return the earlier export's manifest (None if there is none)."""
    if out.exists() and not out.is_dir():
        raise Da2kError(f"--out {out} is a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return None
    if not _is_previous_export(out) and not force:
        example = sorted(p.name for p in out.iterdir())[0]
        raise Da2kError(
            f"--out {out} is not empty and holds no earlier export (it has {example!r}, ...): pass a new or empty "
            "folder, or --force to write annotations.json and images/ into it"
        )
    try:
        previous = json.loads((out / MANIFEST).read_text())
        return previous if isinstance(previous, dict) else {}
    except (OSError, ValueError):
        return {}


def _plan(store: Store, images_root: Optional[Path]) -> list[tuple[str, Path, str, list[dict]]]:
    """(key, source file, sha256, pairs) per exported image; every source is checked first, so a
    missing image stops the export before anything is written."""
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
    plan, taken = [], set()
    for image, pairs in by_image.values():
        src = Path(image.root) / image.path
        if not src.is_file() and images_root is not None:
            src = Path(images_root) / image.path
        if not src.is_file():
            raise Da2kError(
                f"image {Path(image.root) / image.path} of the store is gone: put it back, or pass "
                "--images-root with the folder it was mined from"
            )
        key = export_key(image.scenario, image.path, taken, image.sha256)
        taken.add(key)
        closer_first = [
            {
                "point1": list(pair.point1 if pair.answer == "point1" else pair.point2),
                "point2": list(pair.point2 if pair.answer == "point1" else pair.point1),
                "closer_point": "point1",
            }
            for pair in pairs
        ]
        plan.append((key, src, image.sha256, closer_first))
    return plan


def _remove_stale(out: Path, previous: Optional[dict], keys: set[str]) -> None:
    """Images an earlier export (by its manifest) wrote that this one no longer holds."""
    for key in (previous or {}).get("files", []):
        if isinstance(key, str) and key not in keys and key.startswith("images/") and ".." not in key.split("/"):
            (out / key).unlink(missing_ok=True)
            folder = (out / key).parent
            while folder != out and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent


def export_benchmark(
    store: Store,
    out: Path,
    *,
    link: bool = True,
    images_root: Optional[Path] = None,
    force: bool = False,
    progress: bool = True,
) -> ExportReport:
    """Write `out/annotations.json`, `out/images/...` and `out/da2k-export.json` from the
    store's settled pairs. `images_root`: where to look for images no longer at their stored
    place (moved, or mined on another machine), by their path relative to the folder they were
    mined from. An earlier export in `out` is replaced; any other non-empty folder is refused
    unless `force`.

    Every file is written under a temporary name and renamed, images first and
    annotations.json last, so a kill at any point leaves the earlier annotations.json (or
    none) whole, and rerunning completes the export."""
    out = Path(out)
    previous = check_target(out, force)
    plan = _plan(store, images_root)
    out.mkdir(parents=True, exist_ok=True)
    if previous is not None:
        remove_temporaries(out)  # what a killed export left half-written
    if not (out / MANIFEST).is_file():  # an export killed before its end is still known as one
        atomic_write_text(out / MANIFEST, json.dumps({"schema": MANIFEST_SCHEMA, "complete": False, "files": []}))
    for key, src, sha256, _ in tqdm(plan, desc="export", unit="img", disable=not progress):
        _place(src, out / key, link, sha256)
    annotations = {key: pairs for key, _, _, pairs in plan}
    atomic_write_text(out / ANNOTATIONS, json.dumps(annotations, indent=1))
    _remove_stale(out, previous, set(annotations))
    n_pairs = sum(len(v) for v in annotations.values())
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "complete": True,
        "database": store.engine.url.render_as_string(hide_password=True),
        "scenarios": sorted({key.split("/")[1] for key in annotations}),
        "images": len(annotations),
        "pairs": n_pairs,
        "files": list(annotations),
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1))
    with store.write() as s:
        log_event(s, "export", "export", out=str(out.resolve()), images=len(annotations), pairs=n_pairs)
    return ExportReport(out, len(annotations), n_pairs)
