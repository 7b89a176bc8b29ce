"""`da2k import-benchmark`: a DA-2K-format benchmark (folder or zip) into the annotation store.

The benchmark's pairs become `imported` pairs whose answers are known (`is_gold`), so they can
serve as gold questions, or be queued for humans again (`needs_human`). Two steps: the images
are read (and, from a zip, extracted), then their pairs are inserted, about 1,000 per
transaction, so annotators working on the same database meanwhile are not held up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from tqdm.auto import tqdm

from da2k.benchmark import Benchmark, Report, load_benchmark, scenario_of, validate
from da2k.errors import Da2kError
from da2k.images import MemberError, extract
from da2k.models.files import remove_temporaries
from da2k.store import Image, Pair, Store
from da2k.store.ops import image_by_sha, log_event
from da2k.store.writes import BATCH_ROWS, write_in_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportReport:
    images: int
    pairs_added: int
    pairs_existing: int
    skipped: int


@dataclass(frozen=True)
class SourceImage:
    """One valid image of the benchmark, ready to insert: where it now lives and what it is."""

    key: str
    sha256: str
    size: tuple[int, int]  # (height, width), EXIF applied


def _integral(point: tuple[float, float]) -> tuple[int, int]:
    return (int(round(point[0])), int(round(point[1])))


def images_root(bench: Benchmark, extract_to: Optional[Path]) -> Path:
    """The folder the imported images are read from later: the benchmark folder itself, or
    where a zip's images are extracted (default: a folder named after the zip)."""
    source = Path(bench.source)
    if source.is_dir():
        return source.resolve()
    return (Path(extract_to) if extract_to is not None else source.with_suffix("")).resolve()


def source_images(bench: Benchmark, checked: Report, root: Path, *, progress: bool = True) -> Iterator[SourceImage]:
    """The benchmark's valid images in file order. A zip's are extracted under `root` through
    the archive reader (`da2k.images.extract`: atomic, sha256-checked, never outside `root`);
    an image that cannot be extracted is skipped with a warning."""
    from_zip = not bench.archive.is_folder
    if from_zip and root.is_dir():
        remove_temporaries(root)  # what a killed extraction left half-written
    for key in tqdm(bench.keys(), desc="import", unit="img", disable=not progress):
        if not checked.is_valid(key):
            continue
        if from_zip:
            try:
                _, digest = extract(bench.archive, key, root)
            except MemberError as exc:
                log.warning("skipping %s: %s", key, exc)
                continue
        else:
            digest = checked.sha256[key]
        yield SourceImage(key, digest, checked.sizes[key])


@dataclass
class _Counts:
    images: int = 0
    added: int = 0
    existing: int = 0


def _valid_pairs(
    bench: Benchmark, checked: Report, item: SourceImage
) -> list[tuple[tuple[int, int], tuple[int, int], str]]:
    """The image's valid pairs as ((row, col), (row, col), closer point), in file order."""
    pairs = []
    for index, raw in enumerate(bench.annotations[item.key]):
        if checked.is_valid(item.key, index):
            pairs.append((_integral(tuple(raw["point1"])), _integral(tuple(raw["point2"])), raw["closer_point"]))
    return pairs


def _pair_batches(
    bench: Benchmark, checked: Report, images: Iterable[SourceImage], size: int
) -> Iterator[list[tuple[SourceImage, list]]]:
    """Lists of (image, some of its valid pairs) with about `size` pairs (and at most `size`
    images) each; an image with more pairs is split over several lists."""
    batch: list[tuple[SourceImage, list]] = []
    n = 0
    for item in images:
        pairs = _valid_pairs(bench, checked, item)
        for part in [pairs[i : i + size] for i in range(0, len(pairs), size)] or [[]]:
            if batch and (n + len(part) > size or len(batch) >= size):
                yield batch
                batch, n = [], 0
            batch.append((item, part))
            n += len(part)
    if batch:
        yield batch


def _write_batch(s: Session, batch: list[tuple[SourceImage, list]], root: Path, status: str, counts: _Counts) -> None:
    for item, pairs in batch:
        height, width = item.size
        image = image_by_sha(s, item.sha256)
        if image is None:
            image = Image(
                sha256=item.sha256,
                root=str(root),
                path=item.key,
                scenario=scenario_of(item.key) or "",
                width=width,
                height=height,
                source="imported",
            )
            s.add(image)
            s.flush()
        stored = select(Pair.p1_row, Pair.p1_col, Pair.p2_row, Pair.p2_col).where(Pair.image_id == image.id)
        have = {frozenset(((r1, c1), (r2, c2))) for r1, c1, r2, c2 in s.execute(stored)}
        rows = []
        for p1, p2, answer in pairs:
            if frozenset((p1, p2)) in have or p1 == p2:
                counts.existing += 1
                continue
            have.add(frozenset((p1, p2)))
            rows.append(
                {
                    "image_id": image.id,
                    "p1_row": p1[0],
                    "p1_col": p1[1],
                    "p2_row": p2[0],
                    "p2_col": p2[1],
                    "source": "imported",
                    "status": status,
                    "is_gold": True,
                    "reference_answer": answer,
                    "answer": answer if status == "resolved" else None,
                }
            )
        if rows:  # one statement per image: the write lock is held for milliseconds, not seconds
            s.execute(insert(Pair), rows)
        counts.added += len(rows)


def _counted(images: Iterator[SourceImage], counts: _Counts) -> Iterator[SourceImage]:
    for item in images:
        counts.images += 1
        yield item


def insert_pairs(
    store: Store,
    bench: Benchmark,
    checked: Report,
    images: Iterator[SourceImage],
    root: Path,
    status: str,
    *,
    batch_pairs: int = BATCH_ROWS,
) -> tuple[int, int, int]:
    """Insert each image (deduplicated by sha256) and its valid pairs; (images, added, existing).

    Commits every ~`batch_pairs` pairs (the images are read between transactions), so an
    annotator answering meanwhile waits at most about one batch for the write lock. Safe to
    repeat: pairs already in the store are counted as existing, so a stopped import resumes.
    """
    counts = _Counts()
    write_in_batches(
        store,
        _pair_batches(bench, checked, _counted(images, counts), batch_pairs),
        lambda s, batch: _write_batch(s, batch, root, status, counts),
    )
    return counts.images, counts.added, counts.existing


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
    if status not in ("resolved", "needs_human"):
        raise Da2kError(f"imported pairs are 'resolved' or 'needs_human', not {status!r}")
    bench = load_benchmark(path)
    checked = validate(bench, allowed_scenarios=allow_scenarios)
    skipped = checked.skipped_pairs(bench.annotations)
    for problem in checked.errors[:20]:
        log.warning("skipping: %s", problem)
    for problem in checked.warnings[:20]:
        log.warning("%s", problem)
    root = images_root(bench, extract_to)
    images = source_images(bench, checked, root, progress=progress)
    n_images, added, existing = insert_pairs(store, bench, checked, images, root, status)
    with store.write() as s:
        log_event(
            s,
            "import",
            "import_benchmark",
            source=str(bench.source),
            images=n_images,
            pairs=added,
            existing=existing,
            skipped=skipped,
        )
    return ImportReport(n_images, added, existing, skipped)
