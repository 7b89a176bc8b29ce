"""The annotation queue: which pair a person sees next, their answers, skips and undo.

A *presentation* is one pair shown to one annotator, with the A/B order drawn at random when
it is first shown (so the stored point1/point2 order never leaks onto the screen). It is
unique per (pair, annotator): a person is shown a pair once, and only undo shows it again.
Each display carries a fresh `token`; an answer is stored only with the token of the display
the annotator has now (`StaleAnswer` otherwise: nothing is written), in the pair's own order
with `swapped` set, by one write transaction that also settles the pair, so every answer is
committed before the next pair is handed out.

Settling (`settle.py`): a pair collects `votes_per_pair` answers; a strict majority resolves
it, anything else goes to review. Gold questions are pairs with a known
`reference_answer` (audited `auto_agreed` pairs waiting in `needs_human`, imported benchmark
pairs); they are mixed into each annotator's stream at `gold_rate`. Answers on gold pairs that
are already settled are quality checks only and never change the pair. Pairs whose image the
app could not show (`Image.unavailable`) are never handed out.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import secrets
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from sqlalchemy import Integer, cast, delete, exists, func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from da2k.errors import Da2kError
from da2k.store.core import Store
from da2k.store.ops import log_event
from da2k.store.schema import Claim, HumanVote, Image, Pair, Presentation, utcnow
from da2k.store.settle import settle
from da2k.store.writes import retry_busy

SHOWN_ANSWERS = ("A", "B", "unsure")
GOLD_STATUSES = ("needs_human", "resolved")
"""Gold pairs are served while waiting for humans (audited) or once settled (imported)."""


class StaleAnswer(Da2kError):
    """An answer (or skip) for a display the annotator no longer has, or one given too soon
    after the pair appeared to have been seen: nothing was stored."""


def normalize_name(name: Any) -> str:
    """An annotator's name as stored: trimmed, inner spaces collapsed, case-folded
    ("  Vis " and "vis" are one person)."""
    text = " ".join(str(name or "").split()).casefold()
    if not text:
        raise Da2kError("an annotator name is required")
    if len(text) > 128:
        raise Da2kError("annotator names are at most 128 characters")
    return text


@dataclass(frozen=True)
class Shown:
    """A pair as presented: points A and B are (row, col); the image as stored (root, path
    relative to it, sha256 of the file), which the app checks before showing anything."""

    pair_id: int
    image_id: int
    image_root: str
    image_path: str
    image_sha256: str
    scenario: str
    a: tuple[int, int]
    b: tuple[int, int]
    swapped: bool
    gold: bool
    shown_at: dt.datetime
    expires_at: dt.datetime
    token: str


@dataclass(frozen=True)
class Answered:
    pair_id: int
    status: str
    """The pair's status after the answer."""
    answer: str
    """In the stored order: `point1`, `point2` or `unsure`."""
    seconds: float


def available() -> Any:
    """SQL condition: the pair's image has not been found missing or changed."""
    return ~exists().where(Image.id == Pair.image_id, Image.unavailable.is_not(None))


def start_display(pair: Pair, pres: Presentation, now: dt.datetime, expires: dt.datetime) -> Shown:
    """Start a new display of `pres` (a fresh token) and describe it."""
    pres.token, pres.shown_at = secrets.token_hex(16), now
    image = pair.image
    a, b = (pair.point2, pair.point1) if pres.swapped else (pair.point1, pair.point2)
    return Shown(
        pair.id,
        image.id,
        image.root,
        image.path,
        image.sha256,
        image.scenario,
        a,
        b,
        pres.swapped,
        pres.gold,
        now,
        expires,
        pres.token,
    )


def open_for(pair: Pair, pres: Presentation) -> bool:
    """Can this presentation still be answered (by the pair's status)?"""
    return pair.status == "needs_human" if pres.counted else pair.status in GOLD_STATUSES


def presentation_of(s: Session, pair_id: int, annotator: str) -> Optional[Presentation]:
    return s.scalar(select(Presentation).where(Presentation.pair_id == pair_id, Presentation.annotator == annotator))


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
    query = select(Pair).where(Pair.id.not_in(seen), Pair.id.not_in(claimed), available()).order_by(Pair.id).limit(1)
    if not gold:
        # Oldest first: with one claim per pair this finishes pairs rather than spreading votes.
        return s.scalar(query.where(Pair.status.in_(statuses), Pair.is_gold.is_(False)))
    # The first gold pair after a random id (wrapping around): annotators do not all meet
    # the same gold questions in the same order. One status per query, so the (is_gold,
    # status) index is walked in id order and nothing sorts or scans the whole table.
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


def _still_held(s: Session, annotator: str, now: dt.datetime, expires: dt.datetime) -> Optional[Shown]:
    """The pair this annotator holds, shown again (same A/B order), if it can still be answered."""
    held = s.scalar(select(Claim).where(Claim.annotator == annotator))
    if held is None:
        return None
    pair = s.get(Pair, held.pair_id)
    pres = presentation_of(s, held.pair_id, annotator)
    usable = pres is not None and pres.answered_at is None and pres.skipped_at is None
    if usable and open_for(pair, pres) and pair.image.unavailable is None:
        held.expires_at = expires
        return start_display(pair, pres, now, expires)
    s.delete(held)
    s.flush()
    return None


def _taken_back(s: Session, annotator: str, now: dt.datetime, expires: dt.datetime) -> Optional[Shown]:
    """A pair this annotator took back with undo and still owes an answer to, whose claim
    lapsed meanwhile: it is theirs again while nobody else holds it (undo never loses a pair)."""
    query = (
        select(Presentation, Pair)
        .join(Pair, Pair.id == Presentation.pair_id)
        .where(
            Presentation.annotator == annotator,
            Presentation.reopened_at.is_not(None),
            Presentation.answered_at.is_(None),
            Presentation.skipped_at.is_(None),
            Pair.id.not_in(select(Claim.pair_id)),
            available(),
        )
        .order_by(Presentation.reopened_at.desc())
    )
    for pres, pair in s.execute(query):
        if open_for(pair, pres):
            s.add(Claim(pair_id=pair.id, annotator=annotator, claimed_at=now, expires_at=expires))
            return start_display(pair, pres, now, expires)
    return None


def _claim_new(
    s: Session, annotator: str, gold_rate: float, rng: random.Random, now: dt.datetime, expires: dt.datetime
) -> Optional[Shown]:
    order = [(True, GOLD_STATUSES), (False, ("needs_human",))]
    if not _gold_due(s, annotator, gold_rate):
        order.reverse()
    order.append((True, ("needs_human",)))
    for gold, statuses in order:
        pair = _pick(s, annotator, gold, statuses, rng)
        if pair is not None:
            break
    else:
        return None
    pres = Presentation(
        pair_id=pair.id,
        annotator=annotator,
        swapped=rng.random() < 0.5,
        gold=pair.is_gold and pair.reference_answer is not None,
        counted=pair.status == "needs_human",
    )
    s.add(pres)
    s.add(Claim(pair_id=pair.id, annotator=annotator, claimed_at=now, expires_at=expires))
    shown = start_display(pair, pres, now, expires)
    s.flush()
    return shown


def next_pair(
    store: Store,
    annotator: str,
    *,
    ttl_seconds: float = 600.0,
    gold_rate: float = 0.1,
    rng: Optional[random.Random] = None,
) -> Optional[Shown]:
    """The pair this annotator should look at now, claimed until `ttl_seconds` from now, as a
    new display (a fresh token: an answer given to an earlier display is refused).

    In this order: the pair they hold (same A/B order); a pair they took back with undo and
    still owe an answer; a pair they were never shown: a gold question when their gold quota
    is due, otherwise the oldest non-gold `needs_human` pair (then remaining gold pairs
    waiting for humans). Expired claims are dropped first, so abandoned pairs return to the
    pool. None: nothing left for them.
    """
    annotator = normalize_name(annotator)
    rng = rng or random.SystemRandom()

    def work() -> Optional[Shown]:
        with store.write() as s:
            s.connection()  # take the write lock first, so `now` is in commit order
            now = utcnow()
            expires = now + dt.timedelta(seconds=ttl_seconds)
            s.execute(delete(Claim).where(Claim.expires_at < now))
            return (
                _still_held(s, annotator, now, expires)
                or _taken_back(s, annotator, now, expires)
                or _claim_new(s, annotator, gold_rate, rng, now, expires)
            )

    for _ in range(5):
        try:
            return retry_busy(work)
        except IntegrityError:
            continue  # another annotator claimed the same pair at the same moment (PostgreSQL)
    return None


def check_current(s: Session, pres: Presentation, token: Optional[str], min_seconds: float, now: dt.datetime) -> None:
    """Refuse (StaleAnswer) an answer to anything but the display the annotator has now."""
    pair_id, annotator = pres.pair_id, pres.annotator
    if pres.skipped_at is not None:
        raise StaleAnswer(f"pair {pair_id} was skipped; nothing was stored")
    if token is not None and pres.token != token:
        raise StaleAnswer(f"pair {pair_id} is no longer the one on your screen; nothing was stored")
    holder = s.scalar(select(Claim.annotator).where(Claim.pair_id == pair_id, Claim.expires_at >= now))
    own = s.scalar(select(Claim.pair_id).where(Claim.annotator == annotator, Claim.expires_at >= now))
    if own is not None and own != pair_id:
        raise StaleAnswer(f"you are being shown pair {own} now, not {pair_id}; nothing was stored")
    if holder is not None and holder != annotator and pres.reopened_at is None:
        raise StaleAnswer(f"your time on pair {pair_id} ran out and it went to someone else; nothing was stored")
    seconds = (now - pres.shown_at).total_seconds()
    if seconds < min_seconds:
        raise StaleAnswer(
            f"an answer {seconds:.2f} s after pair {pair_id} appeared is too quick to be about it; nothing was stored"
        )


def _store_vote(s: Session, pair: Pair, pres: Presentation, shown_answer: str, now: dt.datetime) -> tuple[str, float]:
    """The vote for an answer as shown (`A`/`B`/`unsure`), in stored order; (answer, seconds)."""
    if shown_answer == "unsure":
        answer = "unsure"
    else:
        answer = "point1" if (shown_answer == "A") != pres.swapped else "point2"
    seconds = max(0.0, (now - pres.shown_at).total_seconds())
    pres.answered_at = now
    s.add(
        HumanVote(
            pair_id=pair.id,
            annotator=pres.annotator,
            answer=answer,
            swapped=pres.swapped,
            seconds=seconds,
            created_at=now,
        )
    )
    s.flush()
    log_event(
        s,
        pres.annotator,
        "human_vote",
        pair.id,
        answer=answer,
        swapped=pres.swapped,
        seconds=round(seconds, 3),
        counted=pres.counted,
    )
    return answer, seconds


def answer_pair(
    store: Store,
    annotator: str,
    pair_id: int,
    shown_answer: str,
    *,
    token: Optional[str] = None,
    votes_per_pair: int = 3,
    min_seconds: float = 0.0,
) -> Answered:
    """Record the answer to the pair on this annotator's screen: `A`, `B` (as shown) or `unsure`.

    One write transaction: the vote (in stored order, with `swapped` and the seconds since the
    display began), the claim released, the pair settled once it has `votes_per_pair`
    answers. `token` (from `Shown`) pins the display; `min_seconds` refuses answers given
    sooner after it began. Raises StaleAnswer (nothing stored) for another display, and
    Da2kError when the pair was never shown to them, was answered by them already, or was
    settled by others in the meantime.
    """
    annotator = normalize_name(annotator)
    if shown_answer not in SHOWN_ANSWERS:
        raise Da2kError(f"answer must be one of {', '.join(SHOWN_ANSWERS)}, not {shown_answer!r}")
    if votes_per_pair < 1:
        raise Da2kError("votes per pair must be at least 1")

    def work() -> Optional[Answered]:
        with store.write() as s:
            pair = s.get(Pair, pair_id, with_for_update=True)
            pres = presentation_of(s, pair_id, annotator)
            if pair is None or pres is None:
                raise Da2kError(f"pair {pair_id} was not shown to {annotator}")
            if pres.answered_at is not None:
                raise Da2kError(f"{annotator} already answered pair {pair_id}")
            now = utcnow()
            check_current(s, pres, token, min_seconds, now)
            s.execute(delete(Claim).where(Claim.annotator == annotator))
            if not open_for(pair, pres):
                return None  # committed: the claim is released
            answer, seconds = _store_vote(s, pair, pres, shown_answer, now)
            if pres.counted:
                settle(s, pair, votes_per_pair)
            return Answered(pair.id, pair.status, answer, seconds)

    try:
        done = retry_busy(work)
    except IntegrityError:
        raise Da2kError(f"{annotator} already answered pair {pair_id}") from None
    if done is None:
        raise Da2kError(f"pair {pair_id} was settled by others meanwhile; your answer was not needed")
    return done


def release(store: Store, annotator: str, *, forget: bool = False) -> None:
    """Give back the pair this annotator holds. It stays seen (they will not get it again),
    unless `forget`: for a pair they never saw because its image could not be shown."""
    annotator = normalize_name(annotator)

    def work() -> None:
        with store.write() as s:
            held = s.scalar(select(Claim).where(Claim.annotator == annotator))
            if held is None:
                return
            if forget:
                s.execute(
                    delete(Presentation).where(
                        Presentation.pair_id == held.pair_id,
                        Presentation.annotator == annotator,
                        Presentation.answered_at.is_(None),
                    )
                )
            s.delete(held)

    retry_busy(work)
