"""`da2k mine`: propose point pairs on unlabeled images and let expert models vote on them.

Per image, in one database transaction: the image row (deduplicated by content sha256), its
candidate pairs (`da2k.points`, seeded by the image content), every expert's vote on every
pair, and the status of each pair once all experts voted. A run killed mid-way therefore
loses at most the image in flight, and a re-run skips finished images, proposes nothing
twice and runs each expert once per image. Decoding, point proposal and each expert's
preprocessing (`Predictor.prepare`) for the next images happen in worker threads while the
experts' forward passes run on the current one.

Pair status (the rule of the DA-2K paper, Section 6.2): `auto_agreed` iff all experts name
the same closer point and every expert's margin is >= `min_margin`; else `needs_human`.
A reproducible share (`audit_rate`) of agreed pairs goes to humans as gold questions.
"""

from __future__ import annotations

import collections
import hashlib
import io
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

from da2k.errors import Da2kError
from da2k.models.prefetch import prefetch
from da2k.points import Proposal, Segmenter, image_rng, make_segmenter, propose_pairs
from da2k.store import ExpertImage, ExpertVote, Image, Pair, Store
from da2k.store.ops import audit_draw, decide, expert_run_id, image_by_sha, log_event
from da2k.store.schema import utcnow

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
PairKey = tuple[tuple[int, int], tuple[int, int]]


@dataclass(frozen=True)
class ImageFile:
    path: Path
    rel: str
    """POSIX path relative to the images folder; also the key precomputed experts look up."""
    scenario: str


@dataclass(frozen=True)
class Expert:
    """A predictor and its expert-run id in the store."""

    run_id: int
    predictor: Any
    """`da2k.predictors.Predictor`: `prepare(key, load)` (any thread), `forward(prepared)`."""
    spec: str
    """The spec as given (precomputed folders made absolute): the expert's name in reports."""


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


def scan_images(root: Path, scenario: Optional[str] = None, *, progress: bool = False) -> list[ImageFile]:
    """Image files under `root`, recursively, sorted; hidden files and folders are skipped.

    Scenario: `scenario` if given, else the first sub-folder under `root`, else the name of
    `root` itself (for images directly inside it).
    """
    root = Path(root)
    if not root.is_dir():
        raise Da2kError(f"images folder {root} does not exist or is not a folder")
    found: list[ImageFile] = []
    for dirpath, dirnames, filenames in tqdm(os.walk(root), desc="scan", unit="dir", disable=not progress):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            parts = rel.split("/")
            found.append(ImageFile(path, rel, scenario or (parts[0] if len(parts) > 1 else root.resolve().name)))
    return sorted(found, key=lambda f: f.rel)


_EXPERT_OPTIONS = {"weights": str, "kind": str, "input_size": int, "seed": int, "ensemble_size": int, "steps": int}


def parse_expert(text: str) -> tuple[str, dict[str, Any]]:
    """`SPEC[;key=value...]` -> (spec, options), e.g. `precomputed:/maps;kind=depth` or
    `vit-tiny;weights=/w/tiny.pt`. Keys: weights, kind, input_size, seed, ensemble_size, steps."""
    spec, *extras = text.split(";")
    options: dict[str, Any] = {}
    for extra in extras:
        key, sep, value = (part.strip() for part in extra.partition("="))
        if not sep or key not in _EXPERT_OPTIONS:
            raise Da2kError(
                f"bad expert option {extra!r} in {text!r}: write SPEC;key=value with key one of "
                f"{', '.join(_EXPERT_OPTIONS)}"
            )
        try:
            options[key] = _EXPERT_OPTIONS[key](value)
        except ValueError:
            raise Da2kError(f"expert option {key} must be a number, got {value!r}") from None
    return spec.strip(), options


def load_experts(store: Store, specs: Sequence[str], *, device: str = "auto", precision: str = "auto") -> list[Expert]:
    """Build each expert predictor and register its expert run (spec, checkpoint, settings)."""
    from da2k.predictors import make_predictor

    if len(specs) < 2:
        raise Da2kError("mining needs at least two experts (DA-2K used four): repeat --expert SPEC")
    if len(specs) < 4:
        log.warning("%d experts: DA-2K used four; fewer experts agree more often by chance", len(specs))
    experts = []
    for text in specs:
        spec, options = parse_expert(text)
        if spec.startswith("precomputed:"):  # the folder, not just its name, tells maps apart
            spec = "precomputed:" + str(Path(spec.partition(":")[2]).expanduser().resolve())
        predictor = make_predictor(spec, device=device, precision=precision, **options)
        settings = {"predictor": predictor.id, "input_size": predictor.input_size, **(predictor.settings or {})}
        settings.update({k: v for k, v in options.items() if k != "weights"})
        run_id = expert_run_id(store, spec, predictor.checkpoint_sha256, settings, predictor.kind)
        experts.append(Expert(run_id, predictor, spec))
    if len({e.run_id for e in experts}) != len(experts):
        raise Da2kError("the same expert was given twice: each --expert must differ")
    return experts


def expert_values(prediction: Any, points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Disparity-like values at `points` (N, 2) (row, col) of the (H, W) image, and the
    expert's disparity range on the image (2nd to 98th percentile) that margins are relative to.

    A range keeps margins comparable across experts whose outputs are affine-invariant
    (DA V1/V2, Marigold), where a ratio of raw values would depend on an unknown shift.
    """
    from da2k.scoring import sample_bilinear, to_disparity

    values = prediction.values
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    disparity = to_disparity(np.asarray(values), prediction.kind)
    sampled = sample_bilinear(disparity, points, size, bool(prediction.align_corners))
    finite = disparity[np.isfinite(disparity)]
    low, high = np.percentile(finite, [2, 98]) if finite.size else (0.0, 0.0)
    return sampled, float(high - low)


def vote(v1: float, v2: float, scale: float) -> tuple[str, float]:
    """(closer point, margin) of one expert on one pair; equal or non-finite values tie."""
    if not (np.isfinite(v1) and np.isfinite(v2)) or v1 == v2:
        return "tie", 0.0
    margin = abs(v1 - v2) / scale if scale > 0 else 0.0
    return ("point1" if v1 > v2 else "point2"), float(margin)


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
        self.pairs_per_image, self.min_margin = pairs_per_image, min_margin
        self.audit_rate, self.seed = audit_rate, seed
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
            from da2k.models import load_image

            prep.image = load_image(PILImage.open(io.BytesIO(data)))
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
        results: dict[int, tuple[float, dict[PairKey, tuple[str, float, float, float]]]] = {}
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
                except Exception as exc:
                    log.warning("expert %s failed on %s: %s", expert.spec, prep.file.rel, exc)
                    report.failed.append((str(prep.file.path), f"{expert.spec}: {type(exc).__name__}: {exc}"))
                    continue
                seconds = time.perf_counter() - started
                report.expert_seconds[expert.spec] += seconds
                values, scale = expert_values(prediction, points, size)
                per_pair = {}
                for index, key in enumerate(keys):
                    v1, v2 = float(values[2 * index]), float(values[2 * index + 1])
                    per_pair[key] = (*vote(v1, v2, scale), v1, v2)
                results[expert.run_id] = (seconds, per_pair)
        self._write(root, prep, results, report)

    def _write(self, root: Path, prep: _Prepared, results: dict, report: MineReport) -> None:
        run_ids = [e.run_id for e in self.experts]
        with self.store.write() as s:
            image = image_by_sha(s, prep.sha256)
            if image is None:
                image = Image(
                    sha256=prep.sha256,
                    root=str(root.resolve()),
                    path=prep.file.rel,
                    scenario=prep.file.scenario,
                    width=prep.image.width,
                    height=prep.image.height,
                    source="mined",
                )
                s.add(image)
                s.flush()
                report.images_new += 1
            if image.proposed_at is None and prep.proposal is not None:
                existing = {(p.point1, p.point2) for p in image.pairs}
                for cand in prep.proposal.pairs:
                    if (cand.point1, cand.point2) not in existing:
                        (r1, c1), (r2, c2) = cand.point1, cand.point2
                        s.add(
                            Pair(
                                image_id=image.id,
                                p1_row=r1,
                                p1_col=c1,
                                p2_row=r2,
                                p2_col=c2,
                                source="mined",
                                status="pending",
                                relation=cand.relation,
                            )
                        )
                        report.pairs_added += 1
                image.proposed_at, image.points_method = utcnow(), prep.proposal.method
                s.flush()
            pending = s.scalars(select(Pair).where(Pair.image_id == image.id, Pair.status == "pending")).all()
            done = set(s.scalars(select(ExpertImage.expert_run_id).where(ExpertImage.image_id == image.id)))
            votes: dict[tuple[int, int], tuple[str, float]] = {
                (v.pair_id, v.expert_run_id): (v.closer, v.margin)
                for v in s.scalars(select(ExpertVote).where(ExpertVote.pair_id.in_([p.id for p in pending])))
            }
            for run_id, (seconds, per_pair) in results.items():
                if run_id not in done:
                    s.add(ExpertImage(image_id=image.id, expert_run_id=run_id, seconds=seconds))
                for pair in pending:
                    cast = per_pair.get((pair.point1, pair.point2))
                    if cast is None or (pair.id, run_id) in votes:
                        continue
                    closer, margin, v1, v2 = cast
                    s.add(
                        ExpertVote(
                            pair_id=pair.id, expert_run_id=run_id, value1=v1, value2=v2, closer=closer, margin=margin
                        )
                    )
                    votes[(pair.id, run_id)] = (closer, margin)
                    report.votes_added += 1
            for pair in pending:
                cast = [votes[(pair.id, r)] for r in run_ids if (pair.id, r) in votes]
                if len(cast) < len(run_ids):
                    continue  # an expert failed here: stays pending for the next run
                status, consensus = decide(cast, self.min_margin)
                pair.reference_answer = consensus
                draw = audit_draw(self.seed, image.sha256, pair.point1, pair.point2)
                if status == "auto_agreed" and draw < self.audit_rate:
                    status, pair.is_gold = "needs_human", True
                pair.status = status
                pair.answer = consensus if status == "auto_agreed" else None
                report.statuses[status] += 1
            log_event(
                s,
                "miner",
                "image_mined",
                image=image.path,
                sha256=image.sha256,
                pairs=len(pending),
                experts=sorted(results),
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
    **options: Any,
) -> MineReport:
    """Mine `images` (a folder, scanned recursively) into `store`; see `Miner` for options."""
    scanned = scan_images(Path(images), scenario, progress=options.get("progress", True))
    files = [f for f in scanned if in_shard(f.rel, shard)]
    if experts and isinstance(experts[0], str):
        experts = load_experts(store, experts, device=device, precision=precision)
    if device == "auto":
        from da2k.models import select_device

        device = str(select_device(device))
    return Miner(store, experts, device=device, **options).run(Path(images), files)
