"""Answer only what was seen, in the store: display tokens, skips, undo and claim expiry,
names, reviewer rights, images that cannot be shown, and each person's progress counts."""

from __future__ import annotations

import time

import pytest
from annotate_helpers import answer_stored, seed_store
from click.testing import CliRunner
from sqlalchemy import func, select

from da2k.cli import main
from da2k.errors import Da2kError
from da2k.store import Claim, HumanVote, Pair, Presentation, Store
from da2k.store.annotate import (
    StaleAnswer,
    answer_pair,
    decide_pair,
    is_known_annotator,
    mark_available,
    mark_unavailable,
    next_pair,
    normalize_name,
    progress,
    review_queue,
    skip_pair,
    undo_last,
)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "a.db") as s:
        yield s


def n_votes(store: Store) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(HumanVote))


def as_shown(shown, stored: str) -> str:
    return "A" if (stored == "point1") != shown.swapped else "B"


def test_an_answer_for_an_earlier_display_of_the_pair_is_refused(store):
    seed_store(store, 2)
    first = next_pair(store, "ann", gold_rate=0)
    again = next_pair(store, "ann", gold_rate=0)  # a reload, or a second window: a new display
    assert again.pair_id == first.pair_id and again.token != first.token
    with pytest.raises(StaleAnswer, match="no longer the one on your screen"):
        answer_pair(store, "ann", first.pair_id, "A", token=first.token)
    assert n_votes(store) == 0
    answer_pair(store, "ann", again.pair_id, "A", token=again.token)
    assert n_votes(store) == 1


def test_an_answer_sooner_than_the_pair_could_be_seen_is_refused(store):
    seed_store(store, 1)
    shown = next_pair(store, "ann", gold_rate=0)
    with pytest.raises(StaleAnswer, match="too quick"):
        answer_pair(store, "ann", shown.pair_id, "A", token=shown.token, min_seconds=0.3)
    time.sleep(0.35)
    answer_pair(store, "ann", shown.pair_id, "A", token=shown.token, min_seconds=0.3)
    assert n_votes(store) == 1


def test_an_answer_for_a_pair_that_went_to_someone_else_or_was_replaced_is_refused(store):
    seed_store(store, 3)
    lapsed = next_pair(store, "ann", ttl_seconds=0.05, gold_rate=0)
    time.sleep(0.1)
    assert next_pair(store, "bob", gold_rate=0).pair_id == lapsed.pair_id  # expired: bob has it now
    with pytest.raises(StaleAnswer, match="went to someone else"):
        answer_pair(store, "ann", lapsed.pair_id, "A", token=lapsed.token)
    now = next_pair(store, "ann", gold_rate=0)
    assert now.pair_id != lapsed.pair_id
    with pytest.raises(StaleAnswer, match=f"shown pair {now.pair_id} now"):
        answer_pair(store, "ann", lapsed.pair_id, "A")
    assert n_votes(store) == 0


def test_a_skip_returns_the_pair_to_the_pool_without_a_vote(store):
    seed_store(store, 2)
    skipped = next_pair(store, "ann", gold_rate=0)
    skip_pair(store, "ann", skipped.pair_id, token=skipped.token)
    assert n_votes(store) == 0
    other = next_pair(store, "ann", gold_rate=0)
    assert other.pair_id != skipped.pair_id
    assert next_pair(store, "bob", gold_rate=0).pair_id == skipped.pair_id  # back in the pool for others
    with pytest.raises(StaleAnswer):
        answer_pair(store, "ann", skipped.pair_id, "A")  # a skip is not an answer to come back to
    answer_pair(store, "ann", other.pair_id, "A", token=other.token)
    assert next_pair(store, "ann", gold_rate=0) is None  # the skipped pair is not shown to ann again


def test_undo_takes_back_a_skip_and_lets_go_of_the_glimpsed_pair(store):
    seed_store(store, 3)
    skipped = next_pair(store, "ann", gold_rate=0)
    skip_pair(store, "ann", skipped.pair_id, token=skipped.token)
    glimpsed = next_pair(store, "ann", gold_rate=0)
    back = undo_last(store, "ann")
    assert (back.pair_id, back.a, back.b) == (skipped.pair_id, skipped.a, skipped.b)
    answer_pair(store, "ann", back.pair_id, "B", token=back.token)
    following = next_pair(store, "ann", gold_rate=0)
    assert following.pair_id not in (skipped.pair_id, glimpsed.pair_id)
    with store.read() as s:  # released for others
        assert s.scalar(select(Claim).where(Claim.pair_id == glimpsed.pair_id)) is None


def test_undo_after_the_claim_expired_does_not_lose_the_pair(store):
    (only,) = seed_store(store, 1)
    shown = next_pair(store, "ann", gold_rate=0)
    answer_pair(store, "ann", only, "A", token=shown.token, votes_per_pair=1)
    back = undo_last(store, "ann", ttl_seconds=0.05)
    assert back.pair_id == only and n_votes(store) == 0
    time.sleep(0.1)  # the claim lapses while ann looks away
    assert answer_stored(store, "bob", "point2", votes_per_pair=2) == only  # the pool had it back...
    again = next_pair(store, "ann", gold_rate=0)  # ...and ann, who owes an answer, still gets it
    assert again is not None and again.pair_id == only and again.swapped == shown.swapped
    answer_pair(store, "ann", only, as_shown(again, "point1"), token=again.token, votes_per_pair=2)
    with store.read() as s:
        assert s.get(Pair, only).status == "discarded" and n_votes(store) == 2  # point1 against point2: review


def test_undo_after_the_claim_expired_can_still_be_answered_from_the_same_screen(store):
    (only,) = seed_store(store, 1)
    shown = next_pair(store, "ann", gold_rate=0)
    answer_pair(store, "ann", only, as_shown(shown, "point1"), token=shown.token)
    back = undo_last(store, "ann", ttl_seconds=0.05)
    time.sleep(0.1)
    answer_pair(store, "ann", only, as_shown(back, "point2"), token=back.token)
    with store.read() as s:
        assert s.scalars(select(HumanVote.answer)).all() == ["point2"]


def test_names_are_trimmed_and_case_folded(store):
    seed_store(store, 2)
    assert normalize_name("  Vis   Lee ") == "vis lee"
    with pytest.raises(Da2kError, match="required"):
        normalize_name("   ")
    assert not is_known_annotator(store, "Vis")
    held = next_pair(store, "Vis", gold_rate=0)
    assert is_known_annotator(store, " vis ")
    assert next_pair(store, "vis", gold_rate=0).pair_id == held.pair_id  # one person, one held pair
    with store.read() as s:
        assert set(s.scalars(select(Presentation.annotator))) == {"vis"}


def test_a_reviewer_cannot_settle_a_pair_they_answered(store):
    (pid,) = seed_store(store, 1)
    answer_stored(store, "ann", "point1", votes_per_pair=2)
    answer_stored(store, "bob", "point2", votes_per_pair=2)
    assert [q["pair_id"] for q in review_queue(store)] == [pid]
    assert review_queue(store, reviewer="Ann") == []
    with pytest.raises(Da2kError, match="someone who did not"):
        decide_pair(store, pid, "ANN", "point1")
    assert decide_pair(store, pid, "rev", "point2") == "resolved"


def test_an_image_that_cannot_be_shown_leaves_every_queue_and_the_counts(store, tmp_path):
    ids = seed_store(store, 20, pairs_per_image=10)
    with store.read() as s:
        gone = s.get(Pair, ids[0]).image_id
    assert progress(store, "ann").waiting == 20
    mark_unavailable(store, gone, "missing")
    assert progress(store, "ann").waiting == 10
    seen = set()
    while (shown := next_pair(store, "ann", gold_rate=0)) is not None:
        seen.add(shown.image_id)
        answer_pair(store, "ann", shown.pair_id, "A", token=shown.token)
    assert seen and gone not in seen
    result = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "a.db")])
    assert "cannot show: 1" in result.output and "missing" in result.output
    mark_available(store, gone)
    assert next_pair(store, "ann", gold_rate=0).image_id == gone


def test_progress_counts_answers_today_pairs_left_and_pairs_waiting(store):
    seed_store(store, 5)
    assert progress(store, "ann") == progress(store, "ann").__class__(0, 5, 5)
    shown = next_pair(store, "ann", gold_rate=0)
    assert (progress(store, "ann").left_for_you, progress(store, "ann").waiting) == (
        4,
        5,
    )  # the one on screen is not "left"
    answer_pair(store, "ann", shown.pair_id, "A", token=shown.token, votes_per_pair=1)
    mine = progress(store, "ann")
    assert (mine.answered_today, mine.left_for_you, mine.waiting) == (1, 4, 4)
    assert progress(store, "bob").left_for_you == 4
