"""What the annotation app needs beyond `annotation.py`: presentations, gold mixing, undo,
manual pairs, the review queue and annotator statistics.

A *presentation* is one pair shown to one annotator, with the A/B order drawn at random when
it is shown (so the stored point1/point2 order never leaks into the screen) and the time it
appeared. It is unique per (pair, annotator): a person never sees the same pair twice, even
after abandoning it. Answers are given as the annotator saw them (`A`, `B`, `unsure`) and
stored in the pair's own order with `swapped` set, by one write transaction that also
resolves the pair, so every answer is committed before the next pair is handed out.

Resolution: a pair collects exactly `votes_per_pair` answers; a strict
majority (more than half) naming one point resolves it, anything else is a conflict that goes
to review (status `discarded` with human votes and no `Review` row yet; a reviewer's decision,
discard included, takes it out of the queue). Gold questions are pairs with a known
`reference_answer` (audited `auto_agreed` pairs waiting in `needs_human`, imported benchmark
pairs); they are mixed into each annotator's stream at `gold_rate`. Answers on gold pairs that
are already settled are quality checks only and never change the pair.

Schema: adds one table, `presentations`, and an index on pairs (is_gold, status), both
created on first use (portable SQL only).
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import math
import random
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    cast,
    delete,
    exists,
    func,
    select,
    true,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from da2k.errors import Da2kError  # re-exported: the app imports the storage layer only
from da2k.store.annotation import _resolve, review_pair
from da2k.store.core import Store
from da2k.store.ops import log_event
from da2k.store.schema import PAIR_STATUSES, AuditEvent, Base, Claim, HumanVote, Image, Pair, Review, utcnow
from da2k.store.stats import _kappa

SHOWN_ANSWERS = ("A", "B", "unsure")
GOLD_STATUSES = ("needs_human", "resolved")
"""Gold pairs are served while waiting for humans (audited) or once settled (imported)."""
ACTIVE_SECONDS_CAP = 300.0
"""Answers/hour counts at most this long per answer, so breaks do not count as work."""


class Presentation(Base):
    """One pair shown to one annotator: A/B order, when, and whether the answer counts."""

    __tablename__ = "presentations"
    __table_args__ = (
        UniqueConstraint("pair_id", "annotator"),
        Index("ix_presentations_annotator_pair", "annotator", "pair_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id"))
    annotator: Mapped[str] = mapped_column(String(128))
    swapped: Mapped[bool] = mapped_column(Boolean, default=False)
    """True when point2 is shown as A."""
    gold: Mapped[bool] = mapped_column(Boolean, default=False)
    """Served as a gold question (counts toward the annotator's gold rate)."""
    counted: Mapped[bool] = mapped_column(Boolean, default=True)
    """False for a settled gold pair: the answer is a quality check, not a vote."""
    shown_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    answered_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)


GOLD_INDEX = Index("ix_pairs_gold_status", Pair.is_gold, Pair.status)
"""Finds the few gold pairs among 100,000s without scanning (see `_pick`)."""

_ready: "weakref.WeakSet[Store]" = weakref.WeakSet()
_locks: "weakref.WeakKeyDictionary[Store, threading.Lock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


@contextlib.contextmanager
def _writing(store: Store) -> Iterator[Session]:
    """`store.write()`, with this process's SQLite writers queued on a lock first: SQLite's
    busy handler retries a locked database after sleeps of up to 100 ms, which a queue of
    app threads (one per annotator click) would otherwise pay on every collision."""
    if not store.is_sqlite:
        with store.write() as s:
            yield s
        return
    with _locks_guard:
        lock = _locks.setdefault(store, threading.Lock())
    with lock, store.write() as s:
        yield s


def ensure_schema(store: Store) -> None:
    """Create the `presentations` table and the gold index in a database made before this
    module was imported."""
    if store in _ready:
        return
    with store.engine.begin() as conn:
        Presentation.__table__.create(conn, checkfirst=True)
        GOLD_INDEX.create(conn, checkfirst=True)
    _ready.add(store)


@dataclass(frozen=True)
class Shown:
    """A pair as presented: points A and B are (row, col); `image_root`/`image_path` as stored
    (the app checks them against its images root before opening anything)."""

    pair_id: int
    image_id: int
    image_root: str
    image_path: str
    scenario: str
    a: tuple[int, int]
    b: tuple[int, int]
    swapped: bool
    gold: bool
    shown_at: dt.datetime
    expires_at: dt.datetime


def majority_needed(votes_per_pair: int) -> int:
    """Answers that must name one point to resolve a pair: more than half."""
    return votes_per_pair // 2 + 1


def _shown(pair: Pair, pres: Presentation, expires: dt.datetime) -> Shown:
    image = pair.image
    a, b = (pair.point2, pair.point1) if pres.swapped else (pair.point1, pair.point2)
    return Shown(
        pair.id, image.id, image.root, image.path, image.scenario, a, b, pres.swapped, pres.gold, pres.shown_at, expires
    )


def _check_name(annotator: str) -> str:
    name = annotator.strip()
    if not name:
        raise Da2kError("an annotator name is required")
    if len(name) > 128:
        raise Da2kError("annotator names are at most 128 characters")
    return name


def _gold_due(s: Session, annotator: str, gold_rate: float) -> bool:
    """Deterministic quota: after n presentations, floor(n * rate) of them were gold."""
    if gold_rate <= 0:
        return False
    n, n_gold = s.execute(
        select(func.count(), func.coalesce(func.sum(cast(Presentation.gold, Integer)), 0)).where(
            Presentation.annotator == annotator
        )
    ).one()
    return math.floor((n + 1) * gold_rate + 1e-9) > n_gold


def _pick(s: Session, annotator: str, gold: bool, statuses: Sequence[str], rng: random.Random) -> Optional[Pair]:
    seen = select(Presentation.pair_id).where(Presentation.annotator == annotator)
    claimed = select(Claim.pair_id)
    query = select(Pair).where(Pair.id.not_in(seen), Pair.id.not_in(claimed)).order_by(Pair.id).limit(1)
    if not gold:
        # Oldest first: with one claim per pair this finishes pairs rather than spreading votes.
        return s.scalar(query.where(Pair.status.in_(statuses), Pair.is_gold.is_(False)))
    # The first gold pair after a random id (wrapping around): annotators do not all meet
    # the same gold questions in the same order. One status per query, so GOLD_INDEX is
    # walked in id order and nothing sorts or scans the whole table.
    query = query.where(Pair.is_gold == true(), Pair.reference_answer.is_not(None))
    # Two queries: SQLite answers a lone min() or max() from the index, not both at once.
    low, high = s.scalar(select(func.min(Pair.id))), s.scalar(select(func.max(Pair.id)))
    if low is None:
        return None
    start = rng.randint(low, high)
    for status in statuses:
        for part in (Pair.id >= start, Pair.id < start):
            pair = s.scalar(query.where(Pair.status == status, part))
            if pair is not None:
                return pair
    return None


def next_pair(
    store: Store,
    annotator: str,
    *,
    ttl_seconds: float = 600.0,
    gold_rate: float = 0.1,
    rng: Optional[random.Random] = None,
) -> Optional[Shown]:
    """The pair this annotator should look at now, claimed until `ttl_seconds` from now.

    Returns the pair they already hold (same A/B order) if its claim is alive, else claims a
    pair they have never been shown: a gold question when their gold quota is due, otherwise
    the oldest non-gold `needs_human` pair (then remaining gold pairs waiting for humans).
    Expired claims are dropped first, so abandoned pairs return to the pool. None: nothing left.
    """
    annotator = _check_name(annotator)
    ensure_schema(store)
    rng = rng or random.SystemRandom()
    for _ in range(5):
        try:
            with _writing(store) as s:
                s.connection()  # take the write lock first, so `now` is in commit order
                now = utcnow()
                expires = now + dt.timedelta(seconds=ttl_seconds)
                s.execute(delete(Claim).where(Claim.expires_at < now))
                held = s.scalar(select(Claim).where(Claim.annotator == annotator))
                if held is not None:
                    pair = s.get(Pair, held.pair_id)
                    pres = s.scalar(
                        select(Presentation).where(
                            Presentation.pair_id == held.pair_id, Presentation.annotator == annotator
                        )
                    )
                    if pres is not None and pres.answered_at is None and _open_for(pair, pres):
                        held.expires_at = expires
                        return _shown(pair, pres, expires)
                    s.delete(held)
                    s.flush()
                order = [(True, GOLD_STATUSES), (False, ("needs_human",))]
                if not _gold_due(s, annotator, gold_rate):
                    order.reverse()
                order.append((True, ("needs_human",)))
                pair = None
                for gold, statuses in order:
                    pair = _pick(s, annotator, gold, statuses, rng)
                    if pair is not None:
                        break
                if pair is None:
                    return None
                pres = Presentation(
                    pair_id=pair.id,
                    annotator=annotator,
                    swapped=rng.random() < 0.5,
                    gold=pair.is_gold and pair.reference_answer is not None,
                    counted=pair.status == "needs_human",
                    shown_at=now,
                )
                s.add(pres)
                s.add(Claim(pair_id=pair.id, annotator=annotator, claimed_at=now, expires_at=expires))
                s.flush()
                return _shown(pair, pres, expires)
        except IntegrityError:
            continue  # another annotator claimed the same pair at the same moment (PostgreSQL)
    return None


def _open_for(pair: Pair, pres: Presentation) -> bool:
    """Can this presentation still be answered?"""
    return pair.status == "needs_human" if pres.counted else pair.status in GOLD_STATUSES


@dataclass(frozen=True)
class Answered:
    pair_id: int
    status: str
    """The pair's status after the answer."""
    answer: str
    """In the stored order: `point1`, `point2` or `unsure`."""
    seconds: float


def answer_pair(
    store: Store,
    annotator: str,
    pair_id: int,
    shown_answer: str,
    *,
    votes_per_pair: int = 3,
) -> Answered:
    """Record the answer to a presented pair: `A`, `B` (as shown) or `unsure`.

    One write transaction: the vote (in stored order, with `swapped` and the seconds since the
    pair was shown), the claim released, the pair resolved or sent to review once it has
    `votes_per_pair` answers. Raises Da2kError when the pair was never shown to this annotator,
    was already answered by them, or was settled by others in the meantime.
    """
    annotator = _check_name(annotator)
    if shown_answer not in SHOWN_ANSWERS:
        raise Da2kError(f"answer must be one of {', '.join(SHOWN_ANSWERS)}, not {shown_answer!r}")
    if votes_per_pair < 1:
        raise Da2kError("votes per pair must be at least 1")
    ensure_schema(store)
    try:
        with _writing(store) as s:
            pair = s.get(Pair, pair_id, with_for_update=True)
            pres = s.scalar(
                select(Presentation).where(Presentation.pair_id == pair_id, Presentation.annotator == annotator)
            )
            if pair is None or pres is None:
                raise Da2kError(f"pair {pair_id} was not shown to {annotator}")
            if pres.answered_at is not None:
                raise Da2kError(f"{annotator} already answered pair {pair_id}")
            s.execute(delete(Claim).where(Claim.annotator == annotator))
            settled = not _open_for(pair, pres)
            if not settled:
                if shown_answer == "unsure":
                    answer = "unsure"
                else:
                    answer = "point1" if (shown_answer == "A") != pres.swapped else "point2"
                now = utcnow()
                seconds = max(0.0, (now - pres.shown_at).total_seconds())
                pres.answered_at = now
                s.add(
                    HumanVote(
                        pair_id=pair_id,
                        annotator=annotator,
                        answer=answer,
                        swapped=pres.swapped,
                        seconds=seconds,
                        created_at=now,
                    )
                )
                s.flush()
                log_event(
                    s,
                    annotator,
                    "human_vote",
                    pair_id,
                    answer=answer,
                    swapped=pres.swapped,
                    seconds=round(seconds, 3),
                    counted=pres.counted,
                )
                if pres.counted:
                    _resolve(s, pair, votes_per_pair, majority_needed(votes_per_pair), votes_per_pair)
                status = pair.status
    except IntegrityError:
        raise Da2kError(f"{annotator} already answered pair {pair_id}") from None
    if settled:  # raised after the commit, which released the claim
        raise Da2kError(f"pair {pair_id} was settled by others meanwhile; your answer was not needed")
    return Answered(pair_id, status, answer, seconds)


def undo_last(store: Store, annotator: str, *, ttl_seconds: float = 600.0) -> Optional[Shown]:
    """Take back this annotator's latest answer and hand that pair back to them (same A/B).

    A pair the answer had resolved or sent to review goes back to `needs_human`; an answer on
    a pair a reviewer has decided since cannot be undone. The pair they were looking at instead
    is released and may be shown to them again later. None when they have no answer to undo.
    """
    annotator = _check_name(annotator)
    ensure_schema(store)
    with _writing(store) as s:
        vote = s.scalar(
            select(HumanVote).where(HumanVote.annotator == annotator).order_by(HumanVote.id.desc()).limit(1)
        )
        if vote is None:
            return None
        pair = s.get(Pair, vote.pair_id, with_for_update=True)
        if s.scalar(select(exists().where(Review.pair_id == pair.id, Review.created_at >= vote.created_at))):
            raise Da2kError(f"pair {pair.id} was reviewed after your answer; it cannot be undone")
        pres = s.scalar(
            select(Presentation).where(Presentation.pair_id == pair.id, Presentation.annotator == annotator)
        )
        if pres is None:  # a vote recorded outside the app
            pres = Presentation(pair_id=pair.id, annotator=annotator, swapped=vote.swapped, counted=True)
            s.add(pres)
        # The pair on screen now was only glimpsed: forget it so it can come back later.
        for held in s.scalars(select(Claim).where(Claim.annotator == annotator)):
            s.execute(
                delete(Presentation).where(
                    Presentation.pair_id == held.pair_id,
                    Presentation.annotator == annotator,
                    Presentation.answered_at.is_(None),
                )
            )
            s.delete(held)
        s.delete(vote)
        before = pair.status
        if pres.counted and pair.status in ("resolved", "discarded"):
            pair.status, pair.answer = "needs_human", None
        now = utcnow()
        expires = now + dt.timedelta(seconds=ttl_seconds)
        pres.answered_at, pres.shown_at = None, now
        s.flush()
        if s.scalar(select(Claim.id).where(Claim.pair_id == pair.id)) is None:
            s.add(Claim(pair_id=pair.id, annotator=annotator, claimed_at=now, expires_at=expires))
        log_event(s, annotator, "undo_vote", pair.id, answer=vote.answer, before=before, after=pair.status)
        return _shown(pair, pres, expires)


def release(store: Store, annotator: str) -> None:
    """Give back the pair this annotator holds (it stays seen: they will not get it again)."""
    with _writing(store) as s:
        s.execute(delete(Claim).where(Claim.annotator == _check_name(annotator)))


def add_manual_pair(store: Store, image_id: int, point1: Sequence[int], point2: Sequence[int], author: str) -> int:
    """A hand-picked pair (source `manual`, queued as `needs_human`); points are (row, col)."""
    author = _check_name(author)
    p1, p2 = (int(point1[0]), int(point1[1])), (int(point2[0]), int(point2[1]))
    if p1 == p2:
        raise Da2kError("pick two different points")
    try:
        with _writing(store) as s:
            image = s.get(Image, image_id)
            if image is None:
                raise Da2kError(f"no image {image_id} in the store")
            for row, col in (p1, p2):
                if not (0 <= row < image.height and 0 <= col < image.width):
                    raise Da2kError(f"point ({row}, {col}) is outside the {image.height}x{image.width} image")
            pair = Pair(
                image_id=image_id,
                p1_row=p1[0],
                p1_col=p1[1],
                p2_row=p2[0],
                p2_col=p2[1],
                source="manual",
                status="needs_human",
            )
            s.add(pair)
            s.flush()
            log_event(s, author, "manual_pair", pair.id, image=image.path, point1=list(p1), point2=list(p2))
            return pair.id
    except IntegrityError:
        raise Da2kError("this image already has a pair with these two points") from None


def _conflict_filter() -> Any:
    voted = exists().where(HumanVote.pair_id == Pair.id)
    reviewed = exists().where(Review.pair_id == Pair.id)
    return (Pair.status == "discarded") & voted & ~reviewed


def review_queue(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """Pairs whose human answers conflict, oldest first, with all their votes."""
    with store.read() as s:
        pairs = list(s.scalars(select(Pair).where(_conflict_filter()).order_by(Pair.id).limit(limit)))
        votes = collections.defaultdict(list)
        query = select(HumanVote).where(HumanVote.pair_id.in_([p.id for p in pairs])).order_by(HumanVote.id)
        for v in s.scalars(query):
            votes[v.pair_id].append(
                {"annotator": v.annotator, "answer": v.answer, "swapped": v.swapped, "seconds": v.seconds}
            )
        return [
            {
                "pair_id": p.id,
                "image_id": p.image_id,
                "image_root": p.image.root,
                "image_path": p.image.path,
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
    """A reviewer's decision (`point1`, `point2` or `discard`), kept in the audit trail."""
    if decision not in ("point1", "point2", "discard"):
        raise Da2kError(f"decision must be point1, point2 or discard, not {decision!r}")
    with store.read() as s:
        waiting = s.scalar(select(Pair.id).where(Pair.id == pair_id, _conflict_filter()))
    if waiting is None:  # another reviewer was faster, or the pair never conflicted
        raise Da2kError(f"pair {pair_id} is not waiting for review")
    return review_pair(store, pair_id, _check_name(reviewer), decision, note)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> Optional[float]:
    """Fleiss' kappa for items each rated by the same number of raters; `counts[i][j]` is how
    many raters put item i in category j. None where undefined (fewer than 2 items or raters,
    or all answers in one category)."""
    rows = [list(r) for r in counts]
    if len(rows) < 2:
        return None
    n = sum(rows[0])
    if n < 2 or any(sum(r) != n for r in rows):
        return None
    total = len(rows) * n
    p_j = [sum(r[j] for r in rows) / total for j in range(len(rows[0]))]
    p_e = sum(p * p for p in p_j)
    if p_e >= 1.0:
        return None
    p_bar = sum((sum(c * c for c in r) - n) / (n * (n - 1)) for r in rows) / len(rows)
    return (p_bar - p_e) / (1.0 - p_e)


def annotation_stats(store: Store) -> dict[str, Any]:
    """Progress and quality numbers for the Stats tab (JSON-ready)."""
    ensure_schema(store)
    with store.read() as s:
        progress: dict[str, dict[str, int]] = collections.defaultdict(lambda: {k: 0 for k in PAIR_STATUSES})
        for scenario, status, n in s.execute(
            select(Image.scenario, Pair.status, func.count())
            .join(Image, Pair.image_id == Image.id)
            .group_by(Image.scenario, Pair.status)
        ):
            progress[scenario][status] = n
        for scenario, n in s.execute(
            select(Image.scenario, func.count())
            .select_from(Pair)
            .join(Image, Pair.image_id == Image.id)
            .where(_conflict_filter())
            .group_by(Image.scenario)
        ):
            progress[scenario]["in_review"] = n
        votes = s.execute(
            select(
                HumanVote.pair_id,
                HumanVote.annotator,
                HumanVote.answer,
                HumanVote.seconds,
                HumanVote.created_at,
                Pair.is_gold,
                Pair.reference_answer,
                Presentation.counted,
            )
            .join(Pair, HumanVote.pair_id == Pair.id)
            .outerjoin(
                Presentation,
                (Presentation.pair_id == HumanVote.pair_id) & (Presentation.annotator == HumanVote.annotator),
            )
        ).all()
    people: dict[str, dict[str, Any]] = {}
    by_pair: dict[int, dict[str, str]] = collections.defaultdict(dict)
    hourly: collections.Counter[str] = collections.Counter()
    for pair_id, name, answer, seconds, at, is_gold, reference, counted in votes:
        e = people.setdefault(name, {"answers": 0, "unsure": 0, "active_s": 0.0, "gold": 0, "gold_correct": 0})
        e["answers"] += 1
        e["unsure"] += answer == "unsure"
        e["active_s"] += min(seconds or 0.0, ACTIVE_SECONDS_CAP)
        if is_gold and reference is not None:
            e["gold"] += 1
            e["gold_correct"] += answer == reference
        if counted is not False:
            by_pair[pair_id][name] = answer
        hourly[at.strftime("%Y-%m-%d %H:00")] += 1
    for e in people.values():
        e["answers_per_hour"] = e["answers"] / (e["active_s"] / 3600.0) if e["active_s"] > 0 else None
        e["gold_accuracy"] = e["gold_correct"] / e["gold"] if e["gold"] else None
    sizes = collections.Counter(len(v) for v in by_pair.values() if len(v) >= 2)
    fleiss = None
    if sizes:
        k = sizes.most_common(1)[0][0]
        cats = ("point1", "point2", "unsure")
        fleiss = fleiss_kappa([[list(v.values()).count(c) for c in cats] for v in by_pair.values() if len(v) == k])
    names = sorted(people)
    cohen = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = [p for p, v in by_pair.items() if a in v and b in v]
            if shared:
                cohen.append(
                    {
                        "a": a,
                        "b": b,
                        "pairs": len(shared),
                        "kappa": _kappa([by_pair[p][a] for p in shared], [by_pair[p][b] for p in shared]),
                    }
                )
    return {
        "progress": {k: progress[k] for k in sorted(progress)},
        "annotators": {k: people[k] for k in names},
        "fleiss_kappa": fleiss,
        "cohen_kappa": cohen,
        "answers_by_hour": dict(sorted(hourly.items())),
    }


def pair_trail(store: Store, pair_id: int) -> list[dict[str, Any]]:
    """The audit events of one pair, oldest first."""
    with store.read() as s:
        return [
            {"at": e.at, "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in s.scalars(select(AuditEvent).where(AuditEvent.pair_id == pair_id).order_by(AuditEvent.id))
        ]


def _image_dict(im: Image) -> dict[str, Any]:
    return {
        "id": im.id,
        "root": im.root,
        "path": im.path,
        "scenario": im.scenario,
        "width": im.width,
        "height": im.height,
    }


def find_images(store: Store, contains: str = "", limit: int = 200) -> list[dict[str, Any]]:
    """Images whose path contains `contains` (plain text, not a pattern), for hand-picking."""
    with store.read() as s:
        query = select(Image).order_by(Image.id).limit(limit)
        if contains:
            query = query.where(Image.path.contains(contains, autoescape=True))
        return [_image_dict(im) for im in s.scalars(query)]


def image_info(store: Store, image_id: int) -> Optional[dict[str, Any]]:
    with store.read() as s:
        im = s.get(Image, image_id)
        return None if im is None else _image_dict(im)


def waiting_count(store: Store) -> int:
    """Pairs waiting for human answers."""
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(Pair).where(Pair.status == "needs_human")) or 0


def image_roots(store: Store) -> list[str]:
    """The distinct folders images were recorded under."""
    with store.read() as s:
        return sorted(r for r in s.scalars(select(Image.root).distinct()) if r)
