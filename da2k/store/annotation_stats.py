"""Numbers about the human work: the Stats tab, and each annotator's own progress line.

Rates are honest about small samples: each answer counts at most `ACTIVE_SECONDS_CAP` of
active time (breaks are not work), and answers per hour are given only once a person has
`MIN_ACTIVE_SECONDS` of it (one quick answer is not "1,800 answers/hour"). Agreement is
computed on counted answers only (a check answer on a settled gold pair is not a vote).
"""

from __future__ import annotations

import collections
import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from da2k.store.core import Store
from da2k.store.queue import normalize_name
from da2k.store.review import conflict
from da2k.store.schema import HumanVote, Image, Pair, Presentation
from da2k.store.stats import cohen_kappa

ACTIVE_SECONDS_CAP = 300.0
"""Active time counts at most this long per answer."""
MIN_ACTIVE_SECONDS = 300.0
"""Answers per hour are reported once a person has this much active time."""
ANSWER_CATEGORIES = ("point1", "point2", "unsure")


@dataclass(frozen=True)
class Progress:
    """One annotator's progress line."""

    answered_today: int
    """Their answers since local midnight."""
    left_for_you: int
    """Pairs waiting for answers that they have not been shown (the one on screen excluded)."""
    waiting: int
    """Pairs waiting for answers, for everyone (on images that can be shown)."""


def _unavailable_ids(s: Session) -> list[int]:
    return list(s.scalars(select(Image.id).where(Image.unavailable.is_not(None))))


def _waiting(s: Session, gone: list[int]) -> int:
    """Pairs waiting for humans on showable images. The usual case (no unavailable image)
    is answered from the status index alone."""
    query = select(func.count()).select_from(Pair).where(Pair.status == "needs_human")
    if gone:
        query = query.where(Pair.image_id.not_in(gone))
    return s.scalar(query) or 0


def _seen_waiting(s: Session, name: str, gone: list[int]) -> int:
    """Of those, the ones this annotator has been shown (walks their presentations only)."""
    query = (
        select(func.count())
        .select_from(Presentation)
        .join(Pair, Pair.id == Presentation.pair_id)
        .where(Presentation.annotator == name, Pair.status == "needs_human")
    )
    if gone:
        query = query.where(Pair.image_id.not_in(gone))
    return s.scalar(query) or 0


def waiting_count(store: Store) -> int:
    """Pairs waiting for human answers (on images that can be shown)."""
    with store.read() as s:
        return _waiting(s, _unavailable_ids(s))


def local_midnight_utc(now: Optional[dt.datetime] = None) -> dt.datetime:
    """Today's local midnight as naive UTC (the store's timestamps)."""
    local = (now or dt.datetime.now()).astimezone()
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(dt.timezone.utc).replace(tzinfo=None)


def progress(store: Store, annotator: str) -> Progress:
    """Answered today, left for this annotator, waiting overall (three counts, one read)."""
    name = normalize_name(annotator)
    with store.read() as s:
        gone = _unavailable_ids(s)
        waiting = _waiting(s, gone)
        seen_waiting = _seen_waiting(s, name, gone)
        today = s.scalar(
            select(func.count())
            .select_from(HumanVote)
            .where(HumanVote.annotator == name, HumanVote.created_at >= local_midnight_utc())
        )
    return Progress(today or 0, waiting - seen_waiting, waiting)


def is_known_annotator(store: Store, annotator: str) -> bool:
    """Has this (normalised) name been shown a pair or answered one before?"""
    name = normalize_name(annotator)
    with store.read() as s:
        return bool(
            s.scalar(
                select(
                    or_(
                        exists().where(Presentation.annotator == name),
                        exists().where(HumanVote.annotator == name),
                    )
                )
            )
        )


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


def _progress_by_scenario(s: Session) -> dict[str, dict[str, int]]:
    progress: dict[str, dict[str, int]] = collections.defaultdict(collections.Counter)
    by_status = select(Image.scenario, Pair.status, func.count()).join(Image, Pair.image_id == Image.id)
    for scenario, status, n in s.execute(by_status.group_by(Image.scenario, Pair.status)):
        progress[scenario][status] = n
    in_review = select(Image.scenario, func.count()).select_from(Pair).join(Image, Pair.image_id == Image.id)
    for scenario, n in s.execute(in_review.where(conflict()).group_by(Image.scenario)):
        progress[scenario]["in_review"] = n
    return {k: dict(progress[k]) for k in sorted(progress)}


def _vote_rows(s: Session) -> list[Any]:
    return s.execute(
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


def _per_annotator(rows: Iterable[Any], skips: dict[str, int]) -> dict[str, dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return people.setdefault(name, {"answers": 0, "unsure": 0, "active_s": 0.0, "gold": 0, "gold_correct": 0})

    for name in skips:
        entry(name)
    for _, name, answer, seconds, _, is_gold, reference, _ in rows:
        e = entry(name)
        e["answers"] += 1
        e["unsure"] += answer == "unsure"
        e["active_s"] += min(seconds or 0.0, ACTIVE_SECONDS_CAP)
        if is_gold and reference is not None:
            e["gold"] += 1
            e["gold_correct"] += answer == reference
    for name, e in people.items():
        e["skips"] = skips.get(name, 0)
        enough = e["active_s"] >= MIN_ACTIVE_SECONDS
        e["answers_per_hour"] = e["answers"] / (e["active_s"] / 3600.0) if enough else None
        e["gold_accuracy"] = e["gold_correct"] / e["gold"] if e["gold"] else None
    return {k: people[k] for k in sorted(people)}


def _agreement(by_pair: dict[int, dict[str, str]], names: list[str]) -> tuple[Optional[float], list[dict]]:
    """Fleiss' kappa over the pairs with the most common number of answers (at least 2),
    and Cohen's kappa for every two annotators who share pairs."""
    sizes = collections.Counter(len(v) for v in by_pair.values() if len(v) >= 2)
    fleiss = None
    if sizes:
        k = sizes.most_common(1)[0][0]
        table = [[list(v.values()).count(c) for c in ANSWER_CATEGORIES] for v in by_pair.values() if len(v) == k]
        fleiss = fleiss_kappa(table)
    cohen = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = [p for p, v in by_pair.items() if a in v and b in v]
            if shared:
                kappa = cohen_kappa([by_pair[p][a] for p in shared], [by_pair[p][b] for p in shared])
                cohen.append({"a": a, "b": b, "pairs": len(shared), "kappa": kappa})
    return fleiss, cohen


def annotation_stats(store: Store) -> dict[str, Any]:
    """Progress and quality numbers for the Stats tab (JSON-ready)."""
    with store.read() as s:
        progress_rows = _progress_by_scenario(s)
        rows = _vote_rows(s)
        skips = dict(
            s.execute(
                select(Presentation.annotator, func.count())
                .where(Presentation.skipped_at.is_not(None))
                .group_by(Presentation.annotator)
            ).all()
        )
        unavailable = s.scalar(select(func.count()).select_from(Image).where(Image.unavailable.is_not(None)))
    by_pair: dict[int, dict[str, str]] = collections.defaultdict(dict)
    for pair_id, name, answer, *_, counted in rows:
        if counted is not False:
            by_pair[pair_id][name] = answer
    people = _per_annotator(rows, skips)
    fleiss, cohen = _agreement(by_pair, list(people))
    hourly = collections.Counter(row[4].strftime("%Y-%m-%d %H:00") for row in rows)
    return {
        "progress": progress_rows,
        "annotators": people,
        "fleiss_kappa": fleiss,
        "cohen_kappa": cohen,
        "answers_by_hour": dict(sorted(hourly.items())),
        "unavailable_images": unavailable or 0,
    }
