"""`da2k store merge A.db B.db --into C.db`: combine stores written by separate shards.

Rows are matched on their natural keys (image sha256; pair = image + points; expert run =
spec + checkpoint + settings; vote = pair + expert run or annotator), never on row ids, so
merging is idempotent and the same image mined in two shards ends up once. Where both sides
hold a pair, the more settled status wins (pending < auto_agreed/needs_human < resolved/
discarded). Claims are transient and are not carried over.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from sqlalchemy import select

from da2k.errors import Da2kError
from da2k.store.core import Store, database_url
from da2k.store.ops import log_event
from da2k.store.schema import AuditEvent, ExpertImage, ExpertRun, ExpertVote, HumanVote, Image, Pair, Review

_SETTLED = {"pending": 0, "auto_agreed": 1, "needs_human": 1, "resolved": 2, "discarded": 2}
_IMAGE_FIELDS = (
    "sha256",
    "root",
    "path",
    "scenario",
    "width",
    "height",
    "source",
    "points_method",
    "proposed_at",
    "created_at",
)
_PAIR_FIELDS = (
    "p1_row",
    "p1_col",
    "p2_row",
    "p2_col",
    "source",
    "status",
    "relation",
    "is_gold",
    "reference_answer",
    "answer",
    "created_at",
    "updated_at",
)
_DECISION_FIELDS = ("status", "is_gold", "reference_answer", "answer", "updated_at")


@dataclass
class MergeReport:
    added: collections.Counter = field(default_factory=collections.Counter)


def _copy(obj: object, names: Sequence[str]) -> dict:
    return {name: getattr(obj, name) for name in names}


def merge_stores(sources: Sequence[str | Path], into: str | Path, *, actor: str = "merge") -> MergeReport:
    """Add every row of `sources` missing from `into` (created if needed)."""
    target_url = database_url(into)
    if any(database_url(src) == target_url for src in sources):
        raise Da2kError("--into must be a new or different database than the ones merged")
    report = MergeReport()
    target = Store(into)
    try:
        for source in sources:
            src = Store(source, create=False)
            try:
                _merge_one(src, target, report.added)
            finally:
                src.close()
            with target.write() as s:
                log_event(s, actor, "merge", source=src.url, added=dict(report.added))
    finally:
        target.close()
    return report


def _merge_one(src: Store, dst: Store, added: collections.Counter) -> None:
    with src.read() as r, dst.write() as w:
        images: dict[int, int] = {}
        have_images = {img.sha256: img for img in w.scalars(select(Image))}
        for img in r.scalars(select(Image)):
            mine = have_images.get(img.sha256)
            if mine is None:
                mine = Image(**_copy(img, _IMAGE_FIELDS))
                w.add(mine)
                w.flush()
                have_images[img.sha256] = mine
                added["images"] += 1
            elif mine.proposed_at is None and img.proposed_at is not None:
                mine.proposed_at, mine.points_method = img.proposed_at, img.points_method
            images[img.id] = mine.id

        runs: dict[int, int] = {}
        have_runs = {(x.spec, x.checkpoint_sha256, x.settings_sha256): x.id for x in w.scalars(select(ExpertRun))}
        for run in r.scalars(select(ExpertRun)):
            key = (run.spec, run.checkpoint_sha256, run.settings_sha256)
            if key not in have_runs:
                new = ExpertRun(
                    spec=run.spec,
                    checkpoint_sha256=run.checkpoint_sha256,
                    settings=run.settings,
                    settings_sha256=run.settings_sha256,
                    kind=run.kind,
                    created_at=run.created_at,
                )
                w.add(new)
                w.flush()
                have_runs[key] = new.id
                added["expert_runs"] += 1
            runs[run.id] = have_runs[key]

        pairs: dict[int, int] = {}
        have_pairs = {(p.image_id, p.p1_row, p.p1_col, p.p2_row, p.p2_col): p for p in w.scalars(select(Pair))}
        for pair in r.scalars(select(Pair)):
            key = (images[pair.image_id], pair.p1_row, pair.p1_col, pair.p2_row, pair.p2_col)
            mine = have_pairs.get(key)
            if mine is None:
                mine = Pair(image_id=key[0], **_copy(pair, _PAIR_FIELDS))
                w.add(mine)
                w.flush()
                have_pairs[key] = mine
                added["pairs"] += 1
            elif _SETTLED[pair.status] > _SETTLED[mine.status]:
                for name in _DECISION_FIELDS:
                    setattr(mine, name, getattr(pair, name))
                added["pairs_settled"] += 1
            pairs[pair.id] = mine.id

        have = set(w.execute(select(ExpertImage.image_id, ExpertImage.expert_run_id)).all())
        for row in r.scalars(select(ExpertImage)):
            key = (images[row.image_id], runs[row.expert_run_id])
            if key not in have:
                w.add(
                    ExpertImage(image_id=key[0], expert_run_id=key[1], seconds=row.seconds, created_at=row.created_at)
                )
                have.add(key)
                added["expert_images"] += 1

        have = set(w.execute(select(ExpertVote.pair_id, ExpertVote.expert_run_id)).all())
        for vote in r.scalars(select(ExpertVote)):
            key = (pairs[vote.pair_id], runs[vote.expert_run_id])
            if key not in have:
                w.add(
                    ExpertVote(
                        pair_id=key[0],
                        expert_run_id=key[1],
                        value1=vote.value1,
                        value2=vote.value2,
                        closer=vote.closer,
                        margin=vote.margin,
                    )
                )
                have.add(key)
                added["expert_votes"] += 1

        have = set(w.execute(select(HumanVote.pair_id, HumanVote.annotator)).all())
        for vote in r.scalars(select(HumanVote)):
            key = (pairs[vote.pair_id], vote.annotator)
            if key not in have:
                w.add(
                    HumanVote(
                        pair_id=key[0],
                        annotator=vote.annotator,
                        answer=vote.answer,
                        swapped=vote.swapped,
                        seconds=vote.seconds,
                        created_at=vote.created_at,
                    )
                )
                have.add(key)
                added["human_votes"] += 1

        have = set(w.execute(select(Review.pair_id, Review.reviewer, Review.created_at)).all())
        for review in r.scalars(select(Review)):
            key = (pairs[review.pair_id], review.reviewer, review.created_at)
            if key not in have:
                w.add(
                    Review(
                        pair_id=key[0],
                        reviewer=review.reviewer,
                        decision=review.decision,
                        note=review.note,
                        created_at=review.created_at,
                    )
                )
                have.add(key)
                added["reviews"] += 1

        have = set(w.execute(select(AuditEvent.at, AuditEvent.actor, AuditEvent.action, AuditEvent.pair_id)).all())
        for event in r.scalars(select(AuditEvent)):
            pair_id = pairs.get(event.pair_id) if event.pair_id is not None else None
            key = (event.at, event.actor, event.action, pair_id)
            if key not in have:
                w.add(
                    AuditEvent(
                        at=event.at, actor=event.actor, action=event.action, pair_id=pair_id, detail=event.detail
                    )
                )
                have.add(key)
                added["audit_events"] += 1
