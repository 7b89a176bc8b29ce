"""Storing one mined image: its row, its candidate pairs, every expert's votes and the pairs'
statuses, in one transaction (a killed run loses at most the image in flight; a rerun adds
nothing twice: rows are matched on the image sha256, the points and the expert run)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from da2k.mining.consensus import Vote, audit_draw, decide
from da2k.mining.points import Proposal
from da2k.store import ExpertImage, ExpertVote, Image, Pair, Store
from da2k.store.ops import image_by_sha, log_event
from da2k.store.schema import utcnow

PairKey = tuple[tuple[int, int], tuple[int, int]]
"""(point1, point2), each (row, col)."""


@dataclass(frozen=True)
class Rule:
    """How votes become statuses: the consensus margin and the audit (gold) draw."""

    min_margin: float = 0.05
    audit_rate: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class ExpertResult:
    """One expert's work on one image: forward seconds and its vote on each pair."""

    seconds: float
    votes: dict[PairKey, Vote]


@dataclass(frozen=True)
class MinedImage:
    """What the miner learnt about one image, ready to store."""

    sha256: str
    root: str
    rel: str
    scenario: str
    size: tuple[int, int]  # (height, width), EXIF applied
    proposal: Optional[Proposal]  # None: the pairs were proposed in an earlier run
    results: dict[int, ExpertResult]  # expert run id -> result


@dataclass
class WriteCounts:
    images_new: int = 0
    pairs_added: int = 0
    votes_added: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)


def _image_row(s: Session, mined: MinedImage, counts: WriteCounts) -> Image:
    image = image_by_sha(s, mined.sha256)
    if image is None:
        height, width = mined.size
        image = Image(
            sha256=mined.sha256,
            root=mined.root,
            path=mined.rel,
            scenario=mined.scenario,
            width=width,
            height=height,
            source="mined",
        )
        s.add(image)
        s.flush()
        counts.images_new += 1
    return image


def _add_pairs(s: Session, image: Image, proposal: Proposal, counts: WriteCounts) -> None:
    existing = {(p.point1, p.point2) for p in image.pairs}
    for cand in proposal.pairs:
        if (cand.point1, cand.point2) in existing:
            continue
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
        counts.pairs_added += 1
    image.proposed_at, image.points_method = utcnow(), proposal.method
    s.flush()


def _add_votes(
    s: Session, image: Image, pending: Sequence[Pair], results: dict[int, ExpertResult], counts: WriteCounts
) -> dict[tuple[int, int], Vote]:
    """Store the new votes; return every vote on the pending pairs, keyed (pair id, run id)."""
    done = set(s.scalars(select(ExpertImage.expert_run_id).where(ExpertImage.image_id == image.id)))
    votes = {
        (v.pair_id, v.expert_run_id): Vote(v.closer, v.margin, v.value1, v.value2)
        for v in s.scalars(select(ExpertVote).where(ExpertVote.pair_id.in_([p.id for p in pending])))
    }
    for run_id, result in results.items():
        if run_id not in done:
            s.add(ExpertImage(image_id=image.id, expert_run_id=run_id, seconds=result.seconds))
        for pair in pending:
            cast = result.votes.get((pair.point1, pair.point2))
            if cast is None or (pair.id, run_id) in votes:
                continue
            s.add(
                ExpertVote(
                    pair_id=pair.id,
                    expert_run_id=run_id,
                    value1=cast.value1,
                    value2=cast.value2,
                    closer=cast.closer,
                    margin=cast.margin,
                )
            )
            votes[(pair.id, run_id)] = cast
            counts.votes_added += 1
    return votes


def _settle(image: Image, pending: Sequence[Pair], votes: dict, run_ids: Sequence[int], rule: Rule, counts) -> None:
    """Give every pending pair that all experts voted on its status (and gold flag)."""
    for pair in pending:
        cast = [votes[(pair.id, r)] for r in run_ids if (pair.id, r) in votes]
        if len(cast) < len(run_ids):
            continue  # an expert failed here: stays pending for the next run
        status, consensus = decide(cast, rule.min_margin)
        pair.reference_answer = consensus
        if status == "auto_agreed" and audit_draw(rule.seed, image.sha256, pair.point1, pair.point2) < rule.audit_rate:
            status, pair.is_gold = "needs_human", True
        pair.status = status
        pair.answer = consensus if status == "auto_agreed" else None
        counts.statuses[status] += 1


def write_image(store: Store, mined: MinedImage, run_ids: Sequence[int], rule: Rule) -> WriteCounts:
    """Store `mined` in one transaction; `run_ids` are all experts of the run (a pair is
    settled only once every one of them voted on it)."""
    counts = WriteCounts()
    with store.write() as s:
        image = _image_row(s, mined, counts)
        if image.proposed_at is None and mined.proposal is not None:
            _add_pairs(s, image, mined.proposal, counts)
        pending = s.scalars(select(Pair).where(Pair.image_id == image.id, Pair.status == "pending")).all()
        votes = _add_votes(s, image, pending, mined.results, counts)
        _settle(image, pending, votes, run_ids, rule, counts)
        log_event(
            s,
            "miner",
            "image_mined",
            image=image.path,
            sha256=image.sha256,
            pairs=len(pending),
            experts=sorted(mined.results),
        )
    return counts
