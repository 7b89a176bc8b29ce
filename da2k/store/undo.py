"""Skip and undo: a pair goes back without a vote; an annotator takes back their latest answer
or skip and is shown that pair again.

The taken-back pair is the one exception to "a person is shown a pair once": it is marked
`reopened_at` and stays theirs to answer, even when their claim on it lapses (`next_pair`
hands it back first while nobody else holds it). The pair that was on their screen when they
pressed undo was only glimpsed: it is released for others and not shown to them again.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from da2k.errors import Da2kError
from da2k.store.core import Store
from da2k.store.ops import log_event
from da2k.store.queue import Shown, StaleAnswer, check_current, normalize_name, open_for, presentation_of, start_display
from da2k.store.schema import Claim, HumanVote, Pair, Presentation, Review, utcnow
from da2k.store.writes import retry_busy


def _let_go_of_glimpsed(s: Session, annotator: str) -> None:
    """Release what the annotator holds now; it stays seen, and no longer owed."""
    for held in s.scalars(select(Claim).where(Claim.annotator == annotator)):
        pres = presentation_of(s, held.pair_id, annotator)
        if pres is not None and pres.answered_at is None:
            pres.reopened_at = None
        s.delete(held)
    s.flush()


def _take_back_vote(s: Session, vote: HumanVote) -> tuple[Pair, Presentation]:
    """Delete `vote`; a pair it had settled waits for humans again."""
    pair = s.get(Pair, vote.pair_id, with_for_update=True)
    if s.scalar(select(exists().where(Review.pair_id == pair.id, Review.created_at >= vote.created_at))):
        raise Da2kError(f"pair {pair.id} was reviewed after your answer; it cannot be undone")
    pres = presentation_of(s, pair.id, vote.annotator)
    if pres is None:  # a vote recorded outside the app
        pres = Presentation(pair_id=pair.id, annotator=vote.annotator, swapped=vote.swapped, counted=True)
        s.add(pres)
    _let_go_of_glimpsed(s, vote.annotator)
    s.delete(vote)
    before = pair.status
    if pres.counted and pair.status in ("resolved", "discarded"):
        pair.status, pair.answer = "needs_human", None
    pres.answered_at = None
    log_event(s, vote.annotator, "undo_vote", pair.id, answer=vote.answer, before=before, after=pair.status)
    return pair, pres


def _take_back_skip(s: Session, pres: Presentation) -> Pair:
    pair = s.get(Pair, pres.pair_id)
    if not open_for(pair, pres) or pair.image.unavailable is not None:
        raise Da2kError(f"pair {pair.id}, which you skipped, was settled meanwhile: nothing to take back")
    _let_go_of_glimpsed(s, pres.annotator)
    pres.skipped_at = None
    log_event(s, pres.annotator, "undo_skip", pair.id)
    return pair


def undo_last(store: Store, annotator: str, *, ttl_seconds: float = 600.0) -> Optional[Shown]:
    """Take back this annotator's latest answer or skip and show that pair again (same A/B
    order, a new display). A pair the answer had resolved or sent to review goes back to
    `needs_human`; an answer on a pair a reviewer has decided since cannot be undone.
    None when there is nothing to take back."""
    annotator = normalize_name(annotator)

    def work() -> Optional[Shown]:
        with store.write() as s:
            s.connection()
            now = utcnow()
            expires = now + dt.timedelta(seconds=ttl_seconds)
            s.execute(delete(Claim).where(Claim.expires_at < now))
            vote = s.scalar(
                select(HumanVote).where(HumanVote.annotator == annotator).order_by(HumanVote.id.desc()).limit(1)
            )
            skipped = s.scalar(
                select(Presentation)
                .where(Presentation.annotator == annotator, Presentation.skipped_at.is_not(None))
                .order_by(Presentation.skipped_at.desc())
                .limit(1)
            )
            if vote is None and skipped is None:
                return None
            if skipped is not None and (vote is None or skipped.skipped_at >= vote.created_at):
                pres, pair = skipped, _take_back_skip(s, skipped)
            else:
                pair, pres = _take_back_vote(s, vote)
            pres.reopened_at = now
            s.flush()
            if s.scalar(select(Claim.id).where(Claim.pair_id == pair.id)) is None:
                s.add(Claim(pair_id=pair.id, annotator=annotator, claimed_at=now, expires_at=expires))
            return start_display(pair, pres, now, expires)

    return retry_busy(work)


def skip_pair(store: Store, annotator: str, pair_id: int, *, token: Optional[str] = None) -> None:
    """A neutral skip: the pair on this annotator's screen goes back to the pool without a
    vote (others get it; they are not shown it again). Undo takes a skip back too."""
    annotator = normalize_name(annotator)

    def work() -> None:
        with store.write() as s:
            pres = presentation_of(s, pair_id, annotator)
            if pres is None or pres.answered_at is not None:
                raise StaleAnswer(f"pair {pair_id} is not waiting for your answer; nothing was skipped")
            now = utcnow()
            check_current(s, pres, token, 0.0, now)
            pres.skipped_at = now
            s.execute(delete(Claim).where(Claim.annotator == annotator))
            log_event(s, annotator, "skip", pair_id, seconds=round((now - pres.shown_at).total_seconds(), 3))

    retry_busy(work)
