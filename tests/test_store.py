"""The annotation store: SQLite settings, schema version, uniqueness, merge, the human workflow."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from annotate_helpers import answer_stored
from click.testing import CliRunner
from mining_helpers import make_scenes
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from da2k.cli import main
from da2k.errors import Da2kError
from da2k.mining import mine
from da2k.store import (
    SCHEMA_VERSION,
    AuditEvent,
    Claim,
    ExpertRun,
    ExpertVote,
    HumanVote,
    Image,
    Pair,
    SchemaVersion,
    Store,
    database_url,
)
from da2k.store.annotate import answer_pair, decide_pair, next_pair, release, review_queue
from da2k.store.ops import expert_run_id
from da2k.store.stats import store_stats

POSTGRES_URL = os.environ.get("DA2K_TEST_POSTGRES_URL")


def add_image(store: Store, sha: str = "a" * 64, n_pairs: int = 1, status: str = "needs_human", **pair) -> list[int]:
    with store.write() as s:
        image = Image(sha256=sha, root="/r", path=f"indoor/{sha[:4]}.jpg", scenario="indoor", width=64, height=48)
        s.add(image)
        s.flush()
        pairs = [
            Pair(image_id=image.id, p1_row=1, p1_col=i + 1, p2_row=30, p2_col=40, status=status, **pair)
            for i in range(n_pairs)
        ]
        s.add_all(pairs)
        s.flush()
        return [p.id for p in pairs]


def _status(store: Store, pair_id: int) -> str:
    with store.read() as s:
        return s.get(Pair, pair_id).status


def count(store: Store, table) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path):
    with Store(tmp_path / "x.db") as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_a_bare_path_and_a_sqlite_url_open_the_same_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store("rel.db") as store:
        add_image(store)
    with Store(f"sqlite:///{tmp_path / 'rel.db'}") as store:
        assert count(store, Image) == 1
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(Da2kError, match="no annotation database"):
        Store(tmp_path / "missing.db", create=False)


def test_schema_version_is_recorded_and_a_newer_one_is_refused(tmp_path):
    with Store(tmp_path / "v.db") as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        with store.write() as s:
            s.get(SchemaVersion, 1).version = 99
    with pytest.raises(Da2kError, match="schema version 99"):
        Store(tmp_path / "v.db")


def test_unique_keys_reject_duplicate_images_pairs_runs_and_votes(tmp_path):
    with Store(tmp_path / "u.db") as store:
        (pair_id,) = add_image(store)
        run = expert_run_id(store, "vits", None, {"input_size": 518}, "disparity")
        assert expert_run_id(store, "vits", None, {"input_size": 518}, "disparity") == run
        assert expert_run_id(store, "vits", None, {"input_size": 392}, "disparity") != run
        duplicates = [
            lambda s: s.add(Image(sha256="a" * 64, root="/other", path="b.jpg", scenario="x", width=1, height=1)),
            lambda s: s.add(Pair(image_id=1, p1_row=1, p1_col=1, p2_row=30, p2_col=40)),
            lambda s: s.add_all(
                [
                    ExpertVote(pair_id=pair_id, expert_run_id=run, value1=1, value2=0, closer="point1", margin=1)
                    for _ in range(2)
                ]
            ),
            lambda s: s.add_all(
                [
                    HumanVote(pair_id=pair_id, annotator="ann", answer="point1"),
                    HumanVote(pair_id=pair_id, annotator="ann", answer="point2"),
                ]
            ),
        ]
        for add in duplicates:
            with pytest.raises(IntegrityError):
                with store.write() as s:
                    add(s)
        assert (count(store, Image), count(store, Pair), count(store, ExpertRun)) == (1, 1, 2)


def test_a_writer_waits_for_another_writer_instead_of_failing(tmp_path):
    store = Store(tmp_path / "w.db")
    held = threading.Event()

    def hold_the_lock():
        with store.write() as s:
            s.add(Image(sha256="b" * 64, root="/r", path="b.jpg", scenario="indoor", width=1, height=1))
            s.flush()
            held.set()
            time.sleep(0.5)

    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    held.wait()
    started = time.perf_counter()
    other = Store(tmp_path / "w.db")
    add_image(other)  # blocks on the write lock, then succeeds
    thread.join()
    assert time.perf_counter() - started >= 0.3
    assert count(store, Image) == 2
    store.close()
    other.close()


def test_shards_merged_equal_a_single_run_and_merging_again_adds_nothing(tmp_path):
    scenes = make_scenes(tmp_path / "s", n_images=6)
    specs = scenes.specs("gt", "noisy", "flipped")
    opts = dict(pairs_per_image=3, points="felzenszwalb", progress=False)
    with Store(tmp_path / "single.db") as single:
        mine(single, scenes.images, specs, **opts)
        single_stats = store_stats(single)
    sizes = []
    for i in range(2):
        with Store(tmp_path / f"shard{i}.db") as shard:
            sizes.append(mine(shard, scenes.images, specs, shard=(i, 2), **opts).files)
    assert sum(sizes) == 6 and min(sizes) > 0
    runner = CliRunner()
    merge = [
        "store",
        "merge",
        str(tmp_path / "shard0.db"),
        str(tmp_path / "shard1.db"),
        "--into",
        str(tmp_path / "all.db"),
    ]
    assert runner.invoke(main, merge).exit_code == 0
    with Store(tmp_path / "all.db") as merged:
        merged_stats = store_stats(merged)
        events = count(merged, AuditEvent)
    for key in ("images", "pairs", "agreement"):
        assert merged_stats[key] == single_stats[key]
    assert [e["votes"] for e in merged_stats["experts"]] == [e["votes"] for e in single_stats["experts"]]
    result = runner.invoke(main, merge)
    assert result.exit_code == 0
    with Store(tmp_path / "all.db") as merged:
        assert store_stats(merged)["pairs"] == merged_stats["pairs"]
        assert count(merged, AuditEvent) == events + 2  # only the two merge events themselves


def test_claims_are_exclusive_until_they_expire(tmp_path):
    with Store(tmp_path / "c.db") as store:
        add_image(store, n_pairs=2)
        a = next_pair(store, "alice", ttl_seconds=60, gold_rate=0)
        b = next_pair(store, "bob", ttl_seconds=60, gold_rate=0)
        assert a.pair_id != b.pair_id
        assert next_pair(store, "carol", gold_rate=0) is None  # both pairs are held
        assert next_pair(store, "alice", gold_rate=0).pair_id == a.pair_id  # renewing, not a second claim
        with store.write() as s:
            s.scalar(select(Claim).where(Claim.annotator == "bob")).expires_at = dt.datetime(2000, 1, 1)
        assert next_pair(store, "carol", gold_rate=0).pair_id == b.pair_id  # bob's claim expired
        release(store, "alice")
        assert next_pair(store, "dave", gold_rate=0).pair_id == a.pair_id


def test_three_votes_resolve_to_the_majority_and_answered_pairs_are_not_offered_again(tmp_path):
    with Store(tmp_path / "h.db") as store:
        (pair_id,) = add_image(store)
        assert answer_stored(store, "alice", "point2") == pair_id
        assert next_pair(store, "alice", gold_rate=0) is None
        with pytest.raises(Da2kError, match="already answered"):
            answer_pair(store, "alice", pair_id, "A")
        answer_stored(store, "bob", "unsure")
        assert count(store, Pair) == 1 and _status(store, pair_id) == "needs_human"
        answer_stored(store, "carol", "point2")
        with store.read() as s:
            pair = s.get(Pair, pair_id)
            assert (pair.status, pair.answer) == ("resolved", "point2")
            vote = s.scalar(select(HumanVote).where(HumanVote.annotator == "alice"))
            assert vote.answer == "point2" and vote.seconds >= 0
            actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.pair_id == pair_id)))
        assert actions.count("human_vote") == 3 and "resolved" in actions


def test_a_split_vote_goes_to_review_after_votes_per_pair_answers(tmp_path):
    with Store(tmp_path / "d.db") as store:
        (pair_id,) = add_image(store)
        for name, answer in zip("abc", ["point1", "point2", "unsure"]):
            answer_stored(store, name, answer)
        assert _status(store, pair_id) == "discarded"
        assert [q["pair_id"] for q in review_queue(store)] == [pair_id]


def test_review_overrides_votes_and_stats_score_annotators_on_gold(tmp_path):
    with Store(tmp_path / "g.db") as store:
        gold = add_image(store, n_pairs=2, is_gold=True, reference_answer="point1")
        right = answer_stored(store, "alice", "point1", votes_per_pair=2)
        wrong = answer_stored(store, "alice", "point2", votes_per_pair=2)
        assert {right, wrong} == set(gold)
        for _ in gold:  # bob agrees with the reference on both: one agreement, one 1:1 conflict
            answer_stored(store, "bob", "point1", votes_per_pair=2)
        assert _status(store, right) == "resolved"
        assert [q["pair_id"] for q in review_queue(store)] == [wrong]
        assert decide_pair(store, wrong, "rev", "discard", note="occluded") == "discarded"
        assert review_queue(store) == []
        humans = store_stats(store)["humans"]
    assert humans["annotators"]["alice"]["gold"] == 2
    assert humans["annotators"]["alice"]["gold_accuracy"] == 0.5


def test_stats_report_agreement_and_kappa_between_experts(tmp_path):
    with Store(tmp_path / "k.db") as store:
        pair_ids = add_image(store, n_pairs=4)
        runs = [expert_run_id(store, name, None, {}, "disparity") for name in ("a", "b", "c")]
        answers = {runs[0]: "1122", runs[1]: "1122", runs[2]: "1212"}
        with store.write() as s:
            for run, row in answers.items():
                for pair_id, a in zip(pair_ids, row):
                    s.add(
                        ExpertVote(pair_id=pair_id, expert_run_id=run, value1=0, value2=0, closer=f"point{a}", margin=1)
                    )
        rows = {(r["a"], r["b"]): r for r in store_stats(store)["agreement"]}
        result = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "k.db")])
        as_json = CliRunner().invoke(main, ["stats", "--db", str(tmp_path / "k.db"), "--json"])
    assert rows[("a", "b")]["agreement"] == 1.0 and rows[("a", "b")]["kappa"] == pytest.approx(1.0)
    assert rows[("a", "c")]["agreement"] == 0.5 and rows[("a", "c")]["kappa"] == pytest.approx(0.0)
    assert result.exit_code == 0 and "Cohen's kappa" in result.output
    data = json.loads(as_json.output)
    assert data["pairs"]["by_status"]["needs_human"] == 4 and len(data["agreement"]) == 3


def test_portable_schema_uses_no_sqlite_only_types(tmp_path):
    """The tables compile for PostgreSQL (what teams use), without a server."""
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    from da2k.store.schema import Base

    for table in Base.metadata.sorted_tables:
        assert "CREATE TABLE" in str(CreateTable(table).compile(dialect=postgresql.dialect()))
    with Store(tmp_path / "p.db") as store, store.engine.connect() as conn:
        names = {row[0] for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert {"images", "pairs", "expert_runs", "expert_votes", "human_votes", "claims", "audit_events"} <= names


@pytest.mark.skipif(
    not POSTGRES_URL, reason="needs a PostgreSQL server: set DA2K_TEST_POSTGRES_URL=postgresql+psycopg://..."
)
def test_postgresql_takes_two_shards_mining_into_one_fresh_database(tmp_path):
    with Store(POSTGRES_URL) as store, store.engine.begin() as conn:
        # A fresh database: both shards race to create the tables.
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    scenes = make_scenes(tmp_path / "s", n_images=6)
    specs = scenes.specs("gt", "noisy", "flipped")
    command = [
        sys.executable,
        "-c",
        "from da2k.cli import main; main()",
        "mine",
        "--images",
        str(scenes.images),
        "--db",
        POSTGRES_URL,
        "--points",
        "felzenszwalb",
        "--pairs-per-image",
        "3",
    ]
    command += sum((["--expert", spec] for spec in specs), [])
    shards = [subprocess.Popen(command + ["--shard", f"{i}/2"], stderr=subprocess.PIPE) for i in range(2)]
    assert [p.wait(timeout=300) for p in shards] == [0, 0], [p.stderr.read().decode()[-500:] for p in shards]
    with Store(tmp_path / "single.db") as single, Store(POSTGRES_URL) as shared:
        mine(single, scenes.images, specs, pairs_per_image=3, points="felzenszwalb", progress=False)
        a, b = store_stats(single), store_stats(shared)
        for key in ("images", "pairs", "agreement"):
            assert a[key] == b[key]
        first = next_pair(shared, "alice", gold_rate=0)
        release(shared, "alice")
        for name in "bcd":
            assert answer_stored(shared, name, "point1") == first.pair_id
        with shared.read() as s:
            assert s.get(Pair, first.pair_id).status == "resolved"
