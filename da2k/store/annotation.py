"""The human side of the store, for the annotation app: claims, votes, resolution, review.

As DA-2K was annotated (paper, Appendix C), each answer is checked by other annotators: a
`needs_human` pair collects `votes_needed` votes (default 3) from different annotators and is
`resolved` to the majority answer once `min_agree` (default 2) of them name the same point and
outnumber the other; after `max_votes` without such a majority it is `discarded`. A reviewer's
decision overrides votes. Gold pairs (`is_gold`) are resolved the same way; annotators' answers
on them are scored against `reference_answer` by `da2k stats`. Every change is audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from da2k.errors import Da2kError
from da2k.store.core import Store
from da2k.store.ops import log_event
from da2k.store.schema import HUMAN_ANSWERS, Claim, HumanVote, Image, Pair, Review, utcnow

VOTES_NEEDED = 3
MIN_AGREE = 2
MAX_VOTES = 5


@dataclass(frozen=True)
class Task:
    """A claimed pair to show: image file, points (row, col), and until when it is reserved."""

    pair_id: int
    image_path: str
    image_sha256: str
    scenario: str
    point1: tuple[int, int]
    point2: tuple[int, int]
    is_gold: bool
    expires_at: dt.datetime


def _task(pair: Pair, image: Image, expires_at: dt.datetime) -> Task:
    path = f"{image.root.rstrip('/')}/{image.path}"
    return Task(pair.id, path, image.sha256, image.scenario, pair.point1, pair.point2, pair.is_gold, expires_at)


def claim_next(store: Store, annotator: str, *, ttl_seconds: float = 600.0) -> Optional[Task]:
    """Reserve the next `needs_human` pair this annotator has not answered (pairs closest to
    resolution first), or renew the one they hold. None when nothing is left."""
    if not annotator.strip():
        raise Da2kError("an annotator name is required")
    for _ in range(5):
        try:
            with store.write() as s:
                now = utcnow()
                expires = now + dt.timedelta(seconds=ttl_seconds)
                s.execute(delete(Claim).where(Claim.expires_at < now))
                held = s.scalar(select(Claim).where(Claim.annotator == annotator))
                if held is not None:
                    held.expires_at = expires
                    pair = s.get(Pair, held.pair_id)
                    if pair.status == "needs_human":
                        return _task(pair, pair.image, expires)
                    s.delete(held)
                voted = select(HumanVote.pair_id).where(HumanVote.annotator == annotator)
                claimed = select(Claim.pair_id)
                n_votes = (
                    select(func.count()).select_from(HumanVote).where(HumanVote.pair_id == Pair.id).scalar_subquery()
                )
                pair = s.scalar(
                    select(Pair)
                    .where(Pair.status == "needs_human", Pair.id.not_in(voted), Pair.id.not_in(claimed))
                    .order_by(n_votes.desc(), Pair.id)
                    .limit(1)
                )
                if pair is None:
                    return None
                s.add(Claim(pair_id=pair.id, annotator=annotator, claimed_at=now, expires_at=expires))
                s.flush()
                return _task(pair, pair.image, expires)
        except IntegrityError:
            continue  # another annotator claimed the same pair at the same moment (PostgreSQL)
    return None


def release_claim(store: Store, pair_id: int, annotator: str) -> None:
    with store.write() as s:
        s.execute(delete(Claim).where(Claim.pair_id == pair_id, Claim.annotator == annotator))


def _resolve(s: Session, pair: Pair, votes_needed: int, min_agree: int, max_votes: int) -> None:
    answers = list(s.scalars(select(HumanVote.answer).where(HumanVote.pair_id == pair.id)))
    if len(answers) < votes_needed:
        return
    c1, c2 = answers.count("point1"), answers.count("point2")
    if max(c1, c2) >= min_agree and c1 != c2:
        pair.status, pair.answer = "resolved", "point1" if c1 > c2 else "point2"
    elif len(answers) >= max_votes:
        pair.status, pair.answer = "discarded", None
    else:
        return
    log_event(s, "resolution", pair.status, pair.id, answer=pair.answer, point1=c1, point2=c2, votes=len(answers))


def record_human_vote(
    store: Store,
    pair_id: int,
    annotator: str,
    answer: str,
    *,
    seconds: Optional[float] = None,
    swapped: bool = False,
    votes_needed: int = VOTES_NEEDED,
    min_agree: int = MIN_AGREE,
    max_votes: int = MAX_VOTES,
) -> str:
    """Store one answer (`point1`/`point2` in the stored order, or `unsure`; `swapped` records
    that point2 was shown first), release the claim, resolve if possible; returns the status."""
    if answer not in HUMAN_ANSWERS:
        raise Da2kError(f"answer must be one of {', '.join(HUMAN_ANSWERS)}, not {answer!r}")
    try:
        with store.write() as s:
            pair = s.get(Pair, pair_id)
            if pair is None:
                raise Da2kError(f"no pair {pair_id} in the store")
            if pair.status != "needs_human":
                raise Da2kError(f"pair {pair_id} is {pair.status}, not waiting for humans")
            s.add(HumanVote(pair_id=pair_id, annotator=annotator, answer=answer, swapped=swapped, seconds=seconds))
            s.execute(delete(Claim).where(Claim.pair_id == pair_id))
            s.flush()
            log_event(s, annotator, "human_vote", pair_id, answer=answer, swapped=swapped, seconds=seconds)
            _resolve(s, pair, votes_needed, min_agree, max_votes)
            return pair.status
    except IntegrityError:
        raise Da2kError(f"{annotator} already answered pair {pair_id}") from None


def review_pair(store: Store, pair_id: int, reviewer: str, decision: str, note: str = "") -> str:
    """A reviewer settles a pair: `point1`/`point2` (resolved), `discard`, or `reopen`
    (back to `needs_human`). Returns the new status."""
    outcomes = {"point1": "resolved", "point2": "resolved", "discard": "discarded", "reopen": "needs_human"}
    if decision not in outcomes:
        raise Da2kError(f"review decision must be one of {', '.join(outcomes)}, not {decision!r}")
    with store.write() as s:
        pair = s.get(Pair, pair_id)
        if pair is None:
            raise Da2kError(f"no pair {pair_id} in the store")
        before = pair.status
        s.add(Review(pair_id=pair_id, reviewer=reviewer, decision=decision, note=note))
        pair.status = outcomes[decision]
        pair.answer = decision if decision in ("point1", "point2") else None
        log_event(s, reviewer, "review", pair_id, decision=decision, before=before, note=note)
        return pair.status
