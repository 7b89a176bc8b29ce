"""When a pair is settled by its human answers: the one rule, used by the queue.

A pair collects `votes_per_pair` answers; a strict majority (more than half) naming one point
resolves it, anything else is a conflict that goes to review (status `discarded` with human
votes and no `Review` row yet, see `review.py`). Every outcome is audited.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from da2k.store.ops import log_event
from da2k.store.schema import HumanVote, Pair


def majority_needed(votes_per_pair: int) -> int:
    """Answers that must name one point to resolve a pair: more than half."""
    return votes_per_pair // 2 + 1


def settle(s: Session, pair: Pair, votes_per_pair: int) -> None:
    """Resolve `pair` once it has `votes_per_pair` answers: a strict majority naming one
    point resolves it, anything else sends it to review (audited either way)."""
    answers = list(s.scalars(select(HumanVote.answer).where(HumanVote.pair_id == pair.id)))
    if len(answers) < votes_per_pair:
        return
    c1, c2 = answers.count("point1"), answers.count("point2")
    needed = majority_needed(votes_per_pair)
    if max(c1, c2) >= needed and c1 != c2:
        pair.status, pair.answer = "resolved", "point1" if c1 > c2 else "point2"
    else:
        pair.status, pair.answer = "discarded", None
    log_event(s, "resolution", pair.status, pair.id, answer=pair.answer, point1=c1, point2=c2, votes=len(answers))
