"""Between the annotation store and the DA-2K file format: `da2k export` and `import-benchmark`.

Export writes only settled pairs (`auto_agreed`, `resolved`) in the official form: point1 is
the closer point and `closer_point` is always "point1"; images are hard-linked (copied across
file systems) to `images/<scenario>/<file>`. Import loads any DA-2K-format benchmark as
`imported` pairs whose answers are known, so they can serve as gold questions.
"""

from __future__ import annotations

import hashlib
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
from da2k.store.ops import image_by_sha, log_event

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


@dataclass(frozen=True)
class ImportReport:
    images: int
    pairs_added: int
    pairs_existing: int
    skipped: int


def _integral(point: tuple[float, float]) -> tuple[int, int]:
    return (int(round(point[0])), int(round(point[1])))


def import_benchmark(
    store: Store,
    path: Path,
    *,
    status: str = "resolved",
    extract_to: Optional[Path] = None,
    allow_scenarios: tuple[str, ...] = (),
    progress: bool = True,
) -> ImportReport:
    """Load a DA-2K-format benchmark (folder or zip) as `imported` pairs with known answers
    (`is_gold`). `status="needs_human"` queues them for re-annotation instead of `resolved`.
    Images of a zip are extracted to `extract_to` (default: a folder named after the zip)."""
    from da2k.benchmark import load_benchmark, scenario_of, validate

    if status not in ("resolved", "needs_human"):
        raise Da2kError(f"imported pairs are 'resolved' or 'needs_human', not {status!r}")
    bench = load_benchmark(path)
    checked = validate(bench, allowed_scenarios=allow_scenarios)
    skipped = checked.skipped_pairs(bench.annotations)
    for problem in checked.problems[:20]:
        log.warning("skipping: %s", problem)
    source = Path(bench.source)
    if source.is_dir():
        root = source.resolve()
    else:
        root = Path(extract_to) if extract_to is not None else source.with_suffix("")
        root = root.resolve()
    n_images = added = existing = 0
    for key in tqdm(bench.keys(), desc="import", unit="img", disable=not progress):
        if not checked.is_valid(key):
            continue
        data = bench.read_bytes(key)
        if not source.is_dir():
            target = root / key
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        height, width = checked.sizes[key]
        with store.write() as s:
            image = image_by_sha(s, sha)
            if image is None:
                image = Image(
                    sha256=sha,
                    root=str(root),
                    path=key,
                    scenario=scenario_of(key) or "",
                    width=width,
                    height=height,
                    source="imported",
                )
                s.add(image)
                s.flush()
            n_images += 1
            have = {frozenset((p.point1, p.point2)) for p in image.pairs}
            for index, raw in enumerate(bench.annotations[key]):
                if not checked.is_valid(key, index):
                    continue
                p1, p2 = _integral(tuple(raw["point1"])), _integral(tuple(raw["point2"]))
                if frozenset((p1, p2)) in have or p1 == p2:
                    existing += 1
                    continue
                have.add(frozenset((p1, p2)))
                answer = raw["closer_point"]
                s.add(
                    Pair(
                        image_id=image.id,
                        p1_row=p1[0],
                        p1_col=p1[1],
                        p2_row=p2[0],
                        p2_col=p2[1],
                        source="imported",
                        status=status,
                        is_gold=True,
                        reference_answer=answer,
                        answer=answer if status == "resolved" else None,
                    )
                )
                added += 1
    with store.write() as s:
        log_event(
            s,
            "import",
            "import_benchmark",
            source=str(source),
            images=n_images,
            pairs=added,
            existing=existing,
            skipped=skipped,
        )
    return ImportReport(n_images, added, existing, skipped)
