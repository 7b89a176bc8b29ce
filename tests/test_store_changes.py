"""The store under change and load: upgrading an old database in place, merging app
databases with their presentations, waiting out a busy database, importing in batches."""

from __future__ import annotations

import sqlite3
import threading
import time

from annotate_helpers import answer_stored, seed_store
from click.testing import CliRunner
from sqlalchemy import func, select

from da2k.cli import main
from da2k.store import SCHEMA_VERSION, HumanVote, Image, Pair, Presentation, Store
from da2k.store.annotate import answer_pair, next_pair, skip_pair


def count(store: Store, table) -> int:
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_a_version_1_database_is_upgraded_in_place_and_keeps_its_rows(tmp_path):
    db = tmp_path / "old.db"
    with Store(db) as store:
        seed_store(store, 3)
        answer_stored(store, "ann", "point1")
        shown = next_pair(store, "ann", gold_rate=0)
    # What version 1 left: presentations without tokens, skips or undo, images without marks.
    with sqlite3.connect(db) as conn:
        for table, column in (
            ("presentations", "token"),
            ("presentations", "skipped_at"),
            ("presentations", "reopened_at"),
            ("images", "unavailable"),
            ("images", "unavailable_at"),
        ):
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("DROP INDEX ix_pairs_gold_status")
        conn.execute("UPDATE schema_version SET version = 1")
    with Store(db) as store, store.engine.connect() as conn:
        assert store.schema_version == SCHEMA_VERSION
        columns = {row[1] for row in conn.exec_driver_sql("PRAGMA table_info(presentations)")}
        indexes = {row[1] for row in conn.exec_driver_sql("PRAGMA index_list(pairs)")}
        assert {"token", "skipped_at", "reopened_at"} <= columns and "ix_pairs_gold_status" in indexes
        assert count(store, HumanVote) == 1
        again = next_pair(store, "ann", gold_rate=0)  # the held pair, as a new display
        assert again.pair_id == shown.pair_id and again.swapped == shown.swapped
        answer_pair(store, "ann", again.pair_id, "A", token=again.token)
        assert count(store, HumanVote) == 2


def test_a_version_2_database_learns_to_store_votes_without_values(tmp_path):
    from da2k.store import ExpertVote
    from da2k.store.ops import expert_run_id

    db = tmp_path / "v2.db"
    with Store(db) as store:
        seed_store(store, 2)
        run = expert_run_id(store, "vits", "abc", {}, "disparity")
        with store.write() as s:
            pair_ids = list(s.scalars(select(Pair.id).order_by(Pair.id)))
            s.add(
                ExpertVote(pair_id=pair_ids[0], expert_run_id=run, value1=1.0, value2=0.5, closer="point1", margin=0.1)
            )
    # What version 2 left: expert_votes.value1/value2 NOT NULL (SQLite keeps the table's SQL).
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA writable_schema = ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = replace(replace(sql, 'value1 FLOAT', 'value1 FLOAT NOT NULL'), "
            "'value2 FLOAT', 'value2 FLOAT NOT NULL') WHERE name = 'expert_votes'"
        )
        conn.execute("UPDATE schema_version SET version = 2")
    with sqlite3.connect(db) as conn:
        notnull = {row[1]: row[3] for row in conn.execute("PRAGMA table_info(expert_votes)")}
        assert notnull["value1"] == notnull["value2"] == 1
    with Store(db) as store:
        assert store.schema_version == SCHEMA_VERSION
        with store.write() as s:
            s.add(
                ExpertVote(pair_id=pair_ids[1], expert_run_id=run, value1=None, value2=None, closer="none", margin=0.0)
            )
        with store.read() as s:
            votes = {v.pair_id: (v.value1, v.closer) for v in s.scalars(select(ExpertVote))}
    assert votes == {pair_ids[0]: (1.0, "point1"), pair_ids[1]: (None, "none")}
    with sqlite3.connect(db) as conn:
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(expert_votes)")}
        assert "ix_expert_votes_pair_id" in indexes


def test_store_merge_keeps_every_presentation_and_the_kappa(tmp_path):
    from da2k.store.annotate import annotation_stats

    shards = []
    for i, (gold_status, n) in enumerate((("resolved", 6), ("needs_human", 4))):
        db = tmp_path / f"app{i}.db"
        with Store(db) as store:
            seed_store(store, n, gold=3, gold_status=gold_status, pairs_per_image=3)
            with store.write() as s:  # the two apps saw different images
                for image in s.scalars(select(Image)):
                    image.sha256 = f"{i}{image.sha256[1:]}"
            for name, answers in (("ann", "1122121"), ("bob", "1212112"), ("cy", "1122211")):
                for a in answers[: n + 1]:
                    answer_stored(store, name, f"point{a}", gold_rate=0.3)
            skipped = next_pair(store, "dee", gold_rate=0)
            skip_pair(store, "dee", skipped.pair_id, token=skipped.token)
            shards.append((db, annotation_stats(store), count(store, Presentation)))
            with store.read() as s:  # checks on settled gold pairs: answers that must not count as votes
                checks = s.scalar(select(func.count()).select_from(Presentation).where(Presentation.counted.is_(False)))
            assert (checks > 0) == (gold_status == "resolved")
    merged = tmp_path / "all.db"
    result = CliRunner().invoke(main, ["store", "merge", *(str(db) for db, _, _ in shards), "--into", str(merged)])
    assert result.exit_code == 0, result.output
    with Store(merged) as store:
        assert count(store, Presentation) == sum(n for _, _, n in shards)
        both = annotation_stats(store)
    # Each shard's kappa is unchanged when merged alone (gold check answers still do not count).
    for db, stats, _ in shards:
        alone = tmp_path / f"alone-{db.name}"
        assert CliRunner().invoke(main, ["store", "merge", str(db), "--into", str(alone)]).exit_code == 0
        with Store(alone) as store:
            again = annotation_stats(store)
        assert again["fleiss_kappa"] == stats["fleiss_kappa"] and again["cohen_kappa"] == stats["cohen_kappa"]
        assert again["annotators"] == stats["annotators"]
    assert both["annotators"]["dee"]["skips"] == 2
    with Store(merged) as store, store.read() as s:
        assert s.scalar(select(func.count()).select_from(Presentation).where(Presentation.token.is_not(None))) == 0
    repeat = CliRunner().invoke(main, ["store", "merge", str(shards[0][0]), "--into", str(merged)])
    assert repeat.output.strip() == "nothing new"  # merging again adds nothing (but its own audit event)


def test_an_answer_waits_out_a_busy_database_instead_of_failing(tmp_path, monkeypatch):
    import da2k.store.core as core

    monkeypatch.setattr(core, "BUSY_TIMEOUT_MS", 100)  # SQLite gives up quickly: the store must retry
    db = tmp_path / "busy.db"
    with Store(db) as store:
        seed_store(store, 1)
        shown = next_pair(store, "ann", gold_rate=0)
        holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # another process writing for a while (an import, say)
        timer = threading.Timer(0.8, holder.commit)
        timer.start()
        started = time.perf_counter()
        answer_pair(store, "ann", shown.pair_id, "A", token=shown.token)
        waited = time.perf_counter() - started
        timer.join()
        holder.close()
        assert count(store, HumanVote) == 1 and waited >= 0.5


def test_import_commits_in_batches_and_resumes_where_it_stopped(tmp_path):
    from sqlalchemy import event

    from da2k.benchmark import load_benchmark, validate
    from da2k.importing import images_root, insert_pairs, source_images
    from da2k.synthetic import make_benchmark

    bench_dir = make_benchmark(tmp_path / "bench", n_images=4, pairs_per_image=5).root
    bench = load_benchmark(bench_dir)
    checked = validate(bench)
    root = images_root(bench, None)
    with Store(tmp_path / "i.db") as store:
        commits = []
        event.listen(store.engine, "commit", lambda conn: commits.append(1))
        images = source_images(bench, checked, root, progress=False)
        assert insert_pairs(store, bench, checked, images, root, "resolved", batch_pairs=3) == (4, 20, 0)
        assert 7 <= len(commits) <= 8  # 20 pairs (5 per image) in transactions of at most 3
        with store.write() as s:  # stopped half-way: the last pairs are missing
            for pair in s.scalars(select(Pair).order_by(Pair.id.desc()).limit(8)):
                s.delete(pair)
        images = source_images(bench, checked, root, progress=False)
        assert insert_pairs(store, bench, checked, images, root, "resolved", batch_pairs=3) == (4, 8, 12)
        assert count(store, Pair) == 20
