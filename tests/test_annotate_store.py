"""The annotation app's store layer: claims, presentations, votes, undo, majority, gold, review."""

from __future__ import annotations

import random
import time

import pytest
from annotate_helpers import seed_store
from sqlalchemy import func, select

from da2k.errors import Da2kError
from da2k.store import AuditEvent, Claim, HumanVote, Pair, Review, Store
from da2k.store.annotate import (
    Presentation,
    add_manual_pair,
    annotation_stats,
    answer_pair,
    decide_pair,
    fleiss_kappa,
    majority_needed,
    next_pair,
    review_queue,
    undo_last,
)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "a.db") as s:
        yield s


def status(store: Store, pair_id: int) -> str:
    with store.read() as s:
        return s.get(Pair, pair_id).status


def test_two_annotators_never_hold_the_same_pair(store):
    seed_store(store, 4)
    held = [next_pair(store, name, gold_rate=0).pair_id for name in ("ann", "bob", "cy", "dee")]
    assert len(set(held)) == 4
    assert next_pair(store, "eve", gold_rate=0) is None  # all four are claimed


def test_a_held_pair_comes_back_unchanged_until_answered(store):
    seed_store(store, 3)
    first = next_pair(store, "ann", gold_rate=0, rng=random.Random(1))
    again = next_pair(store, "ann", gold_rate=0, rng=random.Random(2))
    assert (again.pair_id, again.a, again.b, again.swapped) == (first.pair_id, first.a, first.b, first.swapped)
    assert again.expires_at >= first.expires_at


def test_an_abandoned_claim_returns_to_the_pool_but_not_to_its_abandoner(store):
    ids = seed_store(store, 2)
    gone = next_pair(store, "ann", ttl_seconds=0.05, gold_rate=0)
    time.sleep(0.1)
    assert next_pair(store, "bob", gold_rate=0).pair_id == gone.pair_id  # expired: free again
    answer_pair(store, "bob", gone.pair_id, "A")
    again = next_pair(store, "ann", gold_rate=0)
    assert again.pair_id != gone.pair_id and again.pair_id in ids
    answer_pair(store, "ann", again.pair_id, "B")
    assert next_pair(store, "ann", gold_rate=0) is None  # the one seen before never comes back


def test_answers_are_stored_in_the_pairs_own_order_whatever_was_shown(store):
    seed_store(store, 40)
    rng = random.Random(0)
    seen = []
    for _ in range(40):
        shown = next_pair(store, "ann", gold_rate=0, rng=rng)
        with store.read() as s:
            pair = s.get(Pair, shown.pair_id)
        assert {shown.a, shown.b} == {pair.point1, pair.point2}
        assert shown.a == (pair.point2 if shown.swapped else pair.point1)
        done = answer_pair(store, "ann", shown.pair_id, "A")
        assert done.answer == ("point2" if shown.swapped else "point1")
        seen.append(shown.swapped)
    assert 5 < sum(seen) < 35  # A/B order is drawn per presentation
    with store.read() as s:
        rows = s.execute(select(HumanVote.answer, HumanVote.swapped, HumanVote.seconds)).all()
    assert all((answer == "point2") == swapped for answer, swapped, _ in rows)
    assert all(seconds is not None and seconds >= 0 for *_, seconds in rows)


def test_a_strict_majority_resolves_and_a_conflict_goes_to_review(store):
    agree, split = seed_store(store, 2)
    plan = {"ann": ("A", "A"), "bob": ("A", "B"), "cy": ("B", "unsure")}
    for name, (on_agree, on_split) in plan.items():
        for _ in range(2):
            shown = next_pair(store, name, gold_rate=0, rng=random.Random(0))
            a_is_point1 = not shown.swapped
            want = on_agree if shown.pair_id == agree else on_split
            # Give answers meant in stored order: "A" means point1, "B" means point2.
            if want != "unsure" and not a_is_point1:
                want = {"A": "B", "B": "A"}[want]
            answer_pair(store, name, shown.pair_id, want, votes_per_pair=3)
    with store.read() as s:
        assert (s.get(Pair, agree).status, s.get(Pair, agree).answer) == ("resolved", "point1")
    assert status(store, split) == "discarded"
    queue = review_queue(store)
    assert [q["pair_id"] for q in queue] == [split]
    assert sorted(v["answer"] for v in queue[0]["votes"]) == ["point1", "point2", "unsure"]
    assert majority_needed(3) == 2 and majority_needed(4) == 3 and majority_needed(1) == 1


def test_no_pair_collects_more_than_votes_per_pair_answers(store):
    (pid,) = seed_store(store, 1)
    late = next_pair(store, "late", ttl_seconds=0.01, gold_rate=0)
    time.sleep(0.05)
    for name in ("ann", "bob"):
        shown = next_pair(store, name, gold_rate=0)
        answer_pair(store, name, shown.pair_id, "A" if not shown.swapped else "B", votes_per_pair=2)
    assert status(store, pid) == "resolved"
    with pytest.raises(Da2kError, match="settled by others"):
        answer_pair(store, "late", late.pair_id, "A", votes_per_pair=2)
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(HumanVote)) == 2
        assert s.scalar(select(func.count()).select_from(Claim)) == 0


def test_answering_twice_or_unseen_pairs_is_refused(store):
    a, b = seed_store(store, 2)
    shown = next_pair(store, "ann", gold_rate=0)
    answer_pair(store, "ann", shown.pair_id, "A")
    with pytest.raises(Da2kError, match="already answered"):
        answer_pair(store, "ann", shown.pair_id, "B")
    other = b if shown.pair_id == a else a
    with pytest.raises(Da2kError, match="not shown"):
        answer_pair(store, "ann", other, "A")
    with pytest.raises(Da2kError, match="answer must be"):
        answer_pair(store, "ann", other, "point1")


def test_undo_reopens_the_pair_and_hands_it_back_with_the_same_order(store):
    seed_store(store, 3)
    for name in ("ann", "bob"):
        shown = next_pair(store, name, gold_rate=0)
        answer_pair(store, name, shown.pair_id, "A" if not shown.swapped else "B", votes_per_pair=2)
    last = shown
    assert status(store, last.pair_id) == "resolved"
    nxt = next_pair(store, "bob", gold_rate=0)  # bob is looking at another pair when pressing u
    back = undo_last(store, "bob")
    assert (back.pair_id, back.a, back.b) == (last.pair_id, last.a, last.b)
    assert status(store, last.pair_id) == "needs_human"
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(HumanVote).where(HumanVote.annotator == "bob")) == 0
        assert s.scalar(select(Claim.annotator).where(Claim.pair_id == last.pair_id)) == "bob"
        assert s.scalar(select(Claim).where(Claim.pair_id == nxt.pair_id)) is None
        assert s.scalar(select(AuditEvent.action).where(AuditEvent.action == "undo_vote")) == "undo_vote"
    assert next_pair(store, "bob", gold_rate=0).pair_id == last.pair_id
    answer_pair(store, "bob", last.pair_id, "B" if not back.swapped else "A", votes_per_pair=2)
    assert status(store, last.pair_id) == "discarded"  # now a 1:1 conflict
    assert undo_last(store, "nobody") is None


def test_an_answer_a_reviewer_has_settled_cannot_be_undone(store):
    (pid,) = seed_store(store, 1)
    for name in ("ann", "bob"):
        shown = next_pair(store, name, gold_rate=0)
        answer_pair(store, name, pid, "A" if (name == "ann") != shown.swapped else "B", votes_per_pair=2)
    assert [q["pair_id"] for q in review_queue(store)] == [pid]
    decide_pair(store, pid, "rev", "point2", note="<b>edge</b> of the table")
    with pytest.raises(Da2kError, match="reviewed"):
        undo_last(store, "bob")


def test_review_decides_or_discards_and_leaves_an_audit_trail(store):
    one, two = seed_store(store, 2)
    for name in ("ann", "bob"):
        for _ in range(2):
            shown = next_pair(store, name, gold_rate=0)
            answer_pair(store, name, shown.pair_id, "A" if (name == "ann") != shown.swapped else "B", votes_per_pair=2)
    assert [q["pair_id"] for q in review_queue(store)] == [one, two]
    assert decide_pair(store, one, "rev", "point2") == "resolved"
    assert decide_pair(store, two, "rev", "discard", note="glass") == "discarded"
    assert review_queue(store) == []
    with pytest.raises(Da2kError, match="not waiting for review"):  # a second reviewer, too late
        decide_pair(store, one, "rev2", "point1")
    with pytest.raises(Da2kError, match="decision must be"):
        decide_pair(store, one, "rev", "reopen")
    with store.read() as s:
        assert s.get(Pair, one).answer == "point2"
        assert [r.decision for r in s.scalars(select(Review).order_by(Review.id))] == ["point2", "discard"]
        trail = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "review").order_by(AuditEvent.id)))
    assert [(e.actor, e.detail["decision"]) for e in trail] == [("rev", "point2"), ("rev", "discard")]


def test_gold_questions_are_mixed_in_at_the_configured_rate(store):
    seed_store(store, 40, gold=20)
    gold = []
    for _ in range(20):
        shown = next_pair(store, "ann", gold_rate=0.25)
        gold.append(shown.gold)
        answer_pair(store, "ann", shown.pair_id, "A" if not shown.swapped else "B")
    assert sum(gold) == 5
    assert gold[3] and gold[7]  # every fourth, never bunched at the end
    for _ in range(10):
        shown = next_pair(store, "bob", gold_rate=0.0)
        assert not shown.gold
        answer_pair(store, "bob", shown.pair_id, "A")


def test_gold_accuracy_is_tracked_and_settled_gold_pairs_never_change(store):
    seed_store(store, 4, gold=4, gold_status="resolved")
    # Right on the first two gold questions (point1 is the reference), then wrong once.
    for _ in range(4):
        shown = next_pair(store, "ann", gold_rate=0.5)
        with store.read() as s:
            before = s.get(Pair, shown.pair_id).status
        answer_pair(store, "ann", shown.pair_id, "A" if not shown.swapped else "B", votes_per_pair=1)
        if shown.gold:
            assert status(store, shown.pair_id) == before == "resolved"
    shown = next_pair(store, "ann", gold_rate=1.0)
    assert shown.gold
    answer_pair(store, "ann", shown.pair_id, "B" if not shown.swapped else "A", votes_per_pair=1)
    stats = annotation_stats(store)["annotators"]["ann"]
    assert (stats["gold"], stats["gold_correct"]) == (3, 2)
    assert stats["gold_accuracy"] == pytest.approx(2 / 3)


def test_a_manual_pair_is_checked_and_queued_for_humans(store):
    seed_store(store, 1)
    with store.read() as s:
        image_id = s.scalar(select(Pair.image_id))
    pid = add_manual_pair(store, image_id, (5, 6), (40, 50), "picker")
    with store.read() as s:
        pair = s.get(Pair, pid)
        assert (pair.source, pair.status, pair.point1, pair.point2) == ("manual", "needs_human", (5, 6), (40, 50))
    with pytest.raises(Da2kError, match="already has a pair"):
        add_manual_pair(store, image_id, (5, 6), (40, 50), "picker")
    with pytest.raises(Da2kError, match="outside"):
        add_manual_pair(store, image_id, (48, 0), (1, 1), "picker")
    with pytest.raises(Da2kError, match="two different"):
        add_manual_pair(store, image_id, (3, 3), (3, 3), "picker")


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) style example with 10 subjects, 14 raters, 5 categories: kappa = 0.210.
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa([[3, 0], [3, 0]]) is None  # one category only
    assert fleiss_kappa([[2, 1], [1, 1]]) is None  # raters differ per item


def test_stats_report_progress_rate_and_agreement(store):
    ids = seed_store(store, 6)
    for name in ("ann", "bob"):
        for _ in range(3):
            shown = next_pair(store, name, gold_rate=0)
            answer_pair(store, name, shown.pair_id, "A" if not shown.swapped else "B", votes_per_pair=2)
    stats = annotation_stats(store)
    assert sum(row["resolved"] for row in stats["progress"].values()) == 3
    assert sum(row["needs_human"] for row in stats["progress"].values()) == 3
    assert stats["annotators"]["ann"]["answers"] == 3
    # Three quick answers are too little active time for a rate (not "thousands per hour").
    assert stats["annotators"]["ann"]["answers_per_hour"] is None
    with store.write() as s:
        for vote in s.scalars(select(HumanVote).where(HumanVote.annotator == "ann")):
            vote.seconds = 120.0
    assert annotation_stats(store)["annotators"]["ann"]["answers_per_hour"] == pytest.approx(3 / (360 / 3600))
    assert stats["fleiss_kappa"] is None  # everyone answered point1: agreement is undefined
    assert stats["cohen_kappa"][0]["pairs"] == 3
    assert sum(stats["answers_by_hour"].values()) == 6
    assert len(ids) == 6
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(Presentation)) == 6
