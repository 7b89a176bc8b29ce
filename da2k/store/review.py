"""Review: pairs whose human answers conflict, settled by someone who did not answer them.

A conflict is a pair the queue sent to review (status `discarded`, with human votes, and no
`Review` row yet). A reviewer's decision (`point1`, `point2` or `discard`) settles it once;
it is checked and written in one transaction, so two reviewers cannot both settle a pair,
and a reviewer who answered the pair themselves is refused. Every decision is audited.
"""

from __future__ import annotations

import collections
from typing import Any, Sequence

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from da2k.errors import Da2kError
from da2k.store.core import Store
from da2k.store.ops import log_event
from da2k.store.queue import normalize_name
from da2k.store.schema import AuditEvent, HumanVote, Pair, Review
from da2k.store.writes import retry_busy

DECISIONS = ("point1", "point2", "discard")


def conflict() -> Any:
    """SQL condition: the pair waits for a reviewer."""
    voted = exists().where(HumanVote.pair_id == Pair.id)
    reviewed = exists().where(Review.pair_id == Pair.id)
    return (Pair.status == "discarded") & voted & ~reviewed


def _votes_of(s: Session, pair_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    votes: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
    query = select(HumanVote).where(HumanVote.pair_id.in_(pair_ids)).order_by(HumanVote.id)
    for v in s.scalars(query):
        votes[v.pair_id].append(
            {"annotator": v.annotator, "answer": v.answer, "swapped": v.swapped, "seconds": v.seconds}
        )
    return votes


def review_queue(
    store: Store, *, reviewer: str | None = None, exclude: Sequence[int] = (), limit: int = 50
) -> list[dict[str, Any]]:
    """Conflicts, oldest first, with all their votes; for `reviewer`, only those they did not
    answer themselves; `exclude`: pair ids to pass over (ones they put aside)."""
    query = select(Pair).where(conflict()).order_by(Pair.id).limit(limit)
    if reviewer is not None:
        mine = select(HumanVote.pair_id).where(HumanVote.annotator == normalize_name(reviewer))
        query = query.where(Pair.id.not_in(mine))
    if exclude:
        query = query.where(Pair.id.not_in(list(exclude)))
    with store.read() as s:
        pairs = list(s.scalars(query))
        votes = _votes_of(s, [p.id for p in pairs])
        return [
            {
                "pair_id": p.id,
                "image_id": p.image_id,
                "image_root": p.image.root,
                "image_path": p.image.path,
                "image_sha256": p.image.sha256,
                "scenario": p.image.scenario,
                "point1": p.point1,
                "point2": p.point2,
                "source": p.source,
                "reference_answer": p.reference_answer,
                "votes": votes[p.id],
            }
            for p in pairs
        ]


def decide_pair(store: Store, pair_id: int, reviewer: str, decision: str, note: str = "") -> str:
    """A reviewer settles a conflict: `point1`/`point2` (resolved) or `discard`. Returns the
    new status. Refused when the pair is not waiting for review (another reviewer was faster,
    or it never conflicted) or the reviewer answered it themselves."""
    if decision not in DECISIONS:
        raise Da2kError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    reviewer = normalize_name(reviewer)

    def work() -> str:
        with store.write() as s:
            pair = s.scalar(select(Pair).where(Pair.id == pair_id, conflict()).with_for_update())
            if pair is None:
                raise Da2kError(f"pair {pair_id} is not waiting for review")
            if s.scalar(select(exists().where(HumanVote.pair_id == pair_id, HumanVote.annotator == reviewer))):
                raise Da2kError(f"{reviewer} answered pair {pair_id}: someone who did not must review it")
            before = pair.status
            s.add(Review(pair_id=pair_id, reviewer=reviewer, decision=decision, note=note))
            pair.status = "discarded" if decision == "discard" else "resolved"
            pair.answer = None if decision == "discard" else decision
            log_event(s, reviewer, "review", pair_id, decision=decision, before=before, note=note)
            return pair.status

    return retry_busy(work)


def pair_trail(store: Store, pair_id: int) -> list[dict[str, Any]]:
    """The audit events of one pair, oldest first."""
    with store.read() as s:
        return [
            {"at": e.at, "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in s.scalars(select(AuditEvent).where(AuditEvent.pair_id == pair_id).order_by(AuditEvent.id))
        ]
