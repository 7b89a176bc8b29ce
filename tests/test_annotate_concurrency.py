"""Several annotators in separate processes on one SQLite file settle 200 pairs.

One of them keeps abandoning pairs, and claims last 0.3 s, so expired claims are
taken over while others are still answering: the store must still never hand one claim to
two people, never take more than `votes_per_pair` answers for a pair, and lose no answer.
"""

from __future__ import annotations

import collections
import multiprocessing
import random
import time

import pytest
from annotate_helpers import seed_store
from sqlalchemy import select

from da2k.errors import Da2kError
from da2k.store import HumanVote, Pair, Store
from da2k.store.annotate import Presentation, answer_pair, next_pair, waiting_count

pytestmark = pytest.mark.slow

N_PAIRS = 200
VOTES = 3
TTL = 0.3


def annotate_all(db: str, name: str, abandon: float, seed: int, out) -> None:
    rng = random.Random(seed)
    grants, answered, refused, idle = [], [], 0, 0
    with Store(db) as store:
        while True:
            shown = next_pair(store, name, ttl_seconds=TTL, gold_rate=0.0, rng=rng)
            if shown is None:
                # Pairs others hold (or abandoned) may come free when their claims expire.
                if waiting_count(store) == 0 or idle == 5:
                    break
                idle += 1
                time.sleep(TTL)
                continue
            idle = 0
            grants.append((shown.pair_id, name, shown.shown_at, shown.expires_at))
            if rng.random() < abandon:
                time.sleep(TTL * 1.2)  # walks away until the claim expires; others may take it
                continue
            choice = rng.choice(["A", "A", "B", "unsure"])
            try:
                answer_pair(store, name, shown.pair_id, choice, votes_per_pair=VOTES)
                answered.append(shown.pair_id)
            except Da2kError:
                refused += 1  # settled by others while this claim had expired
    out.put((name, grants, answered, refused))


def test_many_annotators_settle_200_pairs_without_double_claims_or_lost_answers(tmp_path):
    db = str(tmp_path / "c.db")
    with Store(db) as store:
        ids = seed_store(store, N_PAIRS, pairs_per_image=20)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    people = [("ann", 0.0), ("bob", 0.0), ("cy", 0.0), ("dee", 0.0), ("eve", 0.15)]
    procs = [
        ctx.Process(target=annotate_all, args=(db, name, abandon, i, out)) for i, (name, abandon) in enumerate(people)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0

    with Store(db) as store, store.read() as s:
        votes = s.execute(select(HumanVote.pair_id, HumanVote.annotator)).all()
        statuses = dict(s.execute(select(Pair.id, Pair.status)).all())
        answered_at = {(p.pair_id, p.annotator): p.answered_at for p in s.scalars(select(Presentation))}

    # No answer lost, none invented.
    reported = sorted((pair, name) for name, _, answered, _ in results for pair in answered)
    assert sorted(votes) == reported
    # Every pair got exactly votes_per_pair answers and was settled (resolved or sent to review).
    per_pair = collections.Counter(pair for pair, _ in votes)
    assert set(per_pair) == set(ids)
    assert max(per_pair.values()) == VOTES and min(per_pair.values()) == VOTES
    assert {statuses[p] for p in ids} <= {"resolved", "discarded"}
    # A claim is never handed to a second person while the first still holds it: a pair goes
    # to someone else only once the previous holder answered or the claim expired.
    grants = sorted((g for _, gs, _, _ in results for g in gs), key=lambda g: (g[0], g[2]))
    by_pair = collections.defaultdict(list)
    for pair, name, shown_at, expires_at in grants:
        by_pair[pair].append((name, shown_at, expires_at))
    for pair, held in by_pair.items():
        assert len({name for name, _, _ in held}) == len(held)  # nobody sees a pair twice
        for (name, _, expires_at), (_, next_shown, _) in zip(held, held[1:], strict=False):
            released = min(expires_at, answered_at.get((pair, name)) or expires_at)
            assert next_shown >= released, f"pair {pair} handed out while {name} held it: {held}"
    assert sum(len(answered) for _, _, answered, _ in results) == N_PAIRS * VOTES
