"""`da2k mine`: propose point pairs on unlabeled images and let expert models vote on them.

Per image, in one database transaction: the image row (deduplicated by content sha256), its
candidate pairs (`da2k.mining.points`, seeded by the image content), every expert's vote on every
pair, and the status of each pair once all experts voted. A run killed mid-way therefore
loses at most the image in flight, and a re-run skips finished images, proposes nothing
twice and runs each expert once per image. Decoding, point proposal and each expert's
preprocessing (`Predictor.prepare`) for the next images happen in worker threads while the
experts' forward passes run on the current one.

Pair status follows the paper's consensus rule (`da2k.mining.consensus`); the writer
(`da2k.mining.writer`) stores an image and its votes in one transaction.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from tqdm.auto import tqdm

from da2k.benchmark import SCENARIOS
from da2k.errors import Da2kError
from da2k.images import IMAGE_SUFFIXES, decode_image
from da2k.images import scan_images as find_images
from da2k.mining.consensus import expert_values, vote
from da2k.mining.experts import Expert, load_experts
from da2k.mining.points import Proposal, Segmenter, image_rng, make_segmenter, propose_pairs
from da2k.mining.writer import ExpertResult, MinedImage, PairKey, Rule, WriteCounts, write_image
from da2k.models.prefetch import prefetch
from da2k.store import ExpertImage, Image, Pair, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFile:
    path: Path
    rel: str
    """POSIX path relative to the images folder; also the key precomputed experts look up."""
    scenario: str


@dataclass
class MineReport:
    files: int = 0
    images_new: int = 0
    images_done_before: int = 0
    duplicates: int = 0
    pairs_added: int = 0
    votes_added: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)
    expert_seconds: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def add(self, counts: WriteCounts) -> None:
        self.images_new += counts.images_new
        self.pairs_added += counts.pairs_added
        self.votes_added += counts.votes_added
        self.statuses.update(counts.statuses)

    @property
    def outside_experts_share(self) -> float:
        """Share of the mining wall time not spent in the experts' predictions."""
        inside = sum(self.expert_seconds.values())
        return 1.0 - inside / self.wall_seconds if self.wall_seconds > 0 else 0.0


def parse_shard(text: Optional[str]) -> tuple[int, int]:
    """`i/n` -> (i, n); None -> RANK/WORLD_SIZE from the environment (torchrun), else (0, 1)."""
    if text is None:
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            text = f"{os.environ['RANK']}/{os.environ['WORLD_SIZE']}"
        else:
            return (0, 1)
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise Da2kError(f"bad shard {text!r}: write it as INDEX/COUNT, e.g. --shard 0/4") from None
    if not 0 <= index < count:
        raise Da2kError(f"bad shard {text!r}: INDEX must be in 0..COUNT-1")
    return (index, count)


def in_shard(rel: str, shard: tuple[int, int]) -> bool:
    """Shards split by path, so every process decides without reading the files."""
    index, count = shard
    return count == 1 or int(hashlib.sha256(rel.encode()).hexdigest()[:12], 16) % count == index


def scan_images(root: Path, scenario: Optional[str] = None) -> list[ImageFile]:
    """Image files under `root` through the one scanner (`da2k.images.scan_images`: recursive,
    sorted, hidden files and symlinks leaving `root` skipped).

    Scenario: `scenario` if given, else the first sub-folder under `root`, else the name of
    `root` itself (for images directly inside it).
    """
    root = Path(root)
    if not root.is_dir():
        raise Da2kError(f"images folder {root} does not exist or is not a folder")
    found: list[ImageFile] = []
    for path in find_images(root):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        found.append(ImageFile(path, rel, scenario or (parts[0] if len(parts) > 1 else root.resolve().name)))
    return found


@dataclass
class _Prepared:
    file: ImageFile
    sha256: Optional[str] = None
    image: Optional[PILImage.Image] = None
    proposal: Optional[Proposal] = None
    error: Optional[str] = None
    inputs: dict[int, Any] = field(default_factory=dict)
    """Expert run id -> the expert's prepared input (decoded, resized) or the exception."""


@dataclass(frozen=True)
class _Known:
    proposed: bool
    pending: bool
    expert_runs: frozenset[int]


class Miner:
    """One mining run over a folder; `run()` returns a `MineReport`."""

    def __init__(
        self,
        store: Store,
        experts: Sequence[Expert],
        *,
        pairs_per_image: int = 2,
        min_margin: float = 0.05,
        audit_rate: float = 0.05,
        seed: int = 0,
        points: str = "auto",
        segmenter: Optional[Segmenter] = None,
        device: str = "cpu",
        workers: int = 2,
        progress: bool = True,
    ) -> None:
        if not 0.0 <= audit_rate <= 1.0:
            raise Da2kError(f"--audit-rate must be in [0, 1], got {audit_rate}")
        self.store, self.experts = store, list(experts)
        self.pairs_per_image, self.seed = pairs_per_image, seed
        self.rule = Rule(min_margin=min_margin, audit_rate=audit_rate, seed=seed)
        if segmenter is None:
            self.points_method, self.segmenter = make_segmenter(points, device=device)
        else:
            self.points_method, self.segmenter = points, segmenter
        self.workers, self.progress = max(1, workers), progress

    def _known(self) -> dict[str, _Known]:
        with self.store.read() as s:
            images = s.execute(select(Image.id, Image.sha256, Image.proposed_at)).all()
            pending = set(s.scalars(select(Pair.image_id).where(Pair.status == "pending").distinct()))
            runs: dict[int, set[int]] = collections.defaultdict(set)
            for image_id, run_id in s.execute(select(ExpertImage.image_id, ExpertImage.expert_run_id)):
                runs[image_id].add(run_id)
        return {sha: _Known(at is not None, i in pending, frozenset(runs[i])) for i, sha, at in images}

    def _prepare(self, file: ImageFile, known: dict[str, _Known]) -> _Prepared:
        prep = _Prepared(file)
        try:
            data = file.path.read_bytes()
            prep.sha256 = hashlib.sha256(data).hexdigest()
            state = known.get(prep.sha256)
            if state is not None and state.proposed and not state.pending:
                return prep  # finished in an earlier run: no decoding
            prep.image = decode_image(data, name=str(file.path))
            if state is None or not state.proposed:
                rng = image_rng(self.seed, prep.sha256)
                prep.proposal = propose_pairs(
                    prep.image, self.pairs_per_image, rng, self.segmenter, method=self.points_method
                )
        except Exception as exc:  # unreadable or not an image: report, keep going
            prep.error = f"{type(exc).__name__}: {exc}"
            return prep
        if prep.proposal is not None and not prep.proposal.pairs:
            return prep  # nothing to vote on
        for expert in self.experts:
            if state is not None and expert.run_id in state.expert_runs:
                continue
            try:
                prep.inputs[expert.run_id] = expert.predictor.prepare(file.rel, lambda: prep.image)
            except Exception as exc:
                prep.inputs[expert.run_id] = exc
        return prep

    def _prefetch(self, files: Sequence[ImageFile], known: dict[str, _Known]) -> Iterator[_Prepared]:
        for _, future in prefetch(files, lambda file: self._prepare(file, known), self.workers):
            yield future.result()

    def _pending_points(self, sha256: str) -> list[PairKey]:
        with self.store.read() as s:
            rows = s.execute(
                select(Pair.p1_row, Pair.p1_col, Pair.p2_row, Pair.p2_col)
                .join(Image, Pair.image_id == Image.id)
                .where(Image.sha256 == sha256, Pair.status == "pending")
            ).all()
        return [((a, b), (c, d)) for a, b, c, d in rows]

    def run(self, root: Path, files: Iterable[ImageFile]) -> MineReport:
        files = list(files)
        report = MineReport(files=len(files), expert_seconds={e.spec: 0.0 for e in self.experts})
        known = self._known()
        seen: set[str] = set()
        start = time.perf_counter()
        prepared = tqdm(
            self._prefetch(files, known), total=len(files), desc="mine", unit="img", disable=not self.progress
        )
        for prep in prepared:
            if prep.error is not None:
                log.warning("skipping %s: %s", prep.file.path, prep.error)
                report.failed.append((str(prep.file.path), prep.error))
                continue
            if prep.sha256 in seen:
                report.duplicates += 1
                continue
            seen.add(prep.sha256)
            if prep.image is None:
                report.images_done_before += 1
                continue
            self._mine_one(Path(root), prep, report)
        report.wall_seconds = time.perf_counter() - start
        return report

    def _mine_one(self, root: Path, prep: _Prepared, report: MineReport) -> None:
        if prep.proposal is not None:
            keys: list[PairKey] = [(p.point1, p.point2) for p in prep.proposal.pairs]
        else:
            keys = self._pending_points(prep.sha256)
        results: dict[int, ExpertResult] = {}
        if keys:
            points = np.array([point for key in keys for point in key], dtype=np.float64)
            size = (prep.image.height, prep.image.width)
            for expert in self.experts:
                if expert.run_id not in prep.inputs:
                    continue
                started = time.perf_counter()
                try:
                    prepared = prep.inputs.pop(expert.run_id)
                    if isinstance(prepared, Exception):
                        raise prepared
                    prediction = expert.predictor.forward(prepared)
                    seconds = time.perf_counter() - started
                    values, scale = expert_values(prediction, points, size)
                except Exception as exc:  # a failing or malformed expert: report it, keep mining
                    log.warning("expert %s failed on %s: %s", expert.spec, prep.file.rel, exc)
                    report.failed.append((str(prep.file.path), f"{expert.spec}: {type(exc).__name__}: {exc}"))
                    continue
                report.expert_seconds[expert.spec] += seconds
                votes = {key: vote(float(values[2 * i]), float(values[2 * i + 1]), scale) for i, key in enumerate(keys)}
                results[expert.run_id] = ExpertResult(seconds, votes)
        mined = MinedImage(
            sha256=prep.sha256,
            root=str(Path(root).resolve()),
            rel=prep.file.rel,
            scenario=prep.file.scenario,
            size=(prep.image.height, prep.image.width),
            proposal=prep.proposal,
            results=results,
        )
        counts = write_image(self.store, mined, [e.run_id for e in self.experts], self.rule)
        report.add(counts)


def _warn_flat_folder(root: Path, files: Sequence[ImageFile]) -> None:
    """Images directly in the folder take its name as their scenario: say so, and how to set it."""
    flat = [f for f in files if "/" not in f.rel]
    if flat:
        name = flat[0].scenario
        log.warning(
            "%d image(s) lie directly in %s, so their scenario is the folder's name, %r; to name it, "
            "pass --scenario NAME (DA-2K's: %s) or sort them into sub-folders named after their scenarios",
            len(flat),
            root,
            name,
            ", ".join(SCENARIOS),
        )


def mine(
    store: Store,
    images: Path,
    experts: Sequence[str] | Sequence[Expert],
    *,
    scenario: Optional[str] = None,
    shard: tuple[int, int] = (0, 1),
    device: str = "auto",
    precision: str = "auto",
    compile: bool = False,
    **options: Any,
) -> MineReport:
    """Mine `images` (a folder, scanned recursively) into `store`; see `Miner` for options."""
    scanned = scan_images(Path(images), scenario)
    if not scanned:
        raise Da2kError(f"no images under {images} (looked for {', '.join(IMAGE_SUFFIXES)}, recursively)")
    if scenario is None:
        _warn_flat_folder(Path(images), scanned)
    files = [f for f in scanned if in_shard(f.rel, shard)]
    if experts and isinstance(experts[0], str):
        experts = load_experts(store, experts, device=device, precision=precision, compile=compile)
    if device == "auto":
        from da2k.models import select_device

        device = str(select_device(device))
    return Miner(store, experts, device=device, **options).run(Path(images), files)
