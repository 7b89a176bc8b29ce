"""Latency from an answer to the next pair shown, on an annotation DB with 100,000 pairs.

Storage part (goal p95 < 100 ms), what the app does between a key press and drawing the next
pair: `answer_pair` (vote, resolution, claim released, one transaction) and `next_pair`
(expired claims dropped, gold quota, a never-seen pair claimed with its A/B order, another
transaction). The count of pairs still waiting, which the app refreshes every 5 s, is timed
on its own. The DB is mid-project: 100,000 pairs (5 % gold,
imported and settled), 20,000 of them already settled by 10 annotators with 3 answers each.
Also timed: drawing what the browser gets (full image with A/B, two crops) for a 1024x768
photo, and, as baselines in the same run, one bare write transaction (the floor) and the
store's generic `claim_next` + `record_human_vote`.

    python benchmarks/bench_annotate.py --pairs 100000 --answers 300
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import insert

from da2k.store import AuditEvent, HumanVote, Image, Pair, Store
from da2k.store.annotate import Presentation, answer_pair, ensure_schema, next_pair, waiting_count
from da2k.store.annotation import claim_next, record_human_vote


def build_db(path: Path, n_pairs: int, settled: int, per_image: int = 10) -> None:
    store = Store(path)
    ensure_schema(store)
    rng = random.Random(0)
    n_images = n_pairs // per_image
    now = dt.datetime(2026, 1, 1)
    with store.write() as s:
        s.execute(
            insert(Image),
            [
                {
                    "id": i + 1,
                    "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
                    "root": "/photos",
                    "path": f"images/indoor/{i:06d}.jpg",
                    "scenario": ("indoor", "outdoor", "aerial")[i % 3],
                    "width": 1024,
                    "height": 768,
                    "source": "mined",
                    "created_at": now,
                }
                for i in range(n_images)
            ],
        )
        pairs = []
        for k in range(n_pairs):
            gold = k % 20 == 19
            done = k < settled and not gold
            pairs.append(
                {
                    "id": k + 1,
                    "image_id": k // per_image + 1,
                    "p1_row": rng.randrange(768),
                    "p1_col": rng.randrange(1024),
                    "p2_row": rng.randrange(768),
                    "p2_col": rng.randrange(1024),
                    "source": "imported" if gold else "mined",
                    "status": "resolved" if gold or done else "needs_human",
                    "is_gold": gold,
                    "reference_answer": "point1" if gold else None,
                    "answer": "point1" if gold or done else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        s.execute(insert(Pair), pairs)
        votes, shown, events = [], [], []
        for k in range(settled):
            if k % 20 == 19:
                continue
            for j in range(3):
                name = f"ann{(k + j) % 10}"
                votes.append(
                    {
                        "pair_id": k + 1,
                        "annotator": name,
                        "answer": "point1",
                        "swapped": bool(j % 2),
                        "seconds": 3.0,
                        "created_at": now,
                    }
                )
                shown.append(
                    {
                        "pair_id": k + 1,
                        "annotator": name,
                        "swapped": bool(j % 2),
                        "gold": False,
                        "counted": True,
                        "shown_at": now,
                        "answered_at": now,
                    }
                )
                events.append({"at": now, "actor": name, "action": "human_vote", "pair_id": k + 1, "detail": {}})
        s.execute(insert(HumanVote), votes)
        s.execute(insert(Presentation), shown)
        s.execute(insert(AuditEvent), events)
    store.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def report(label: str, values: list[float], base: float | None = None) -> None:
    p50, p95, worst = pct(values, 50), pct(values, 95), max(values) * 1000.0
    ratio = f"  ({p50 / base:5.1f}x the floor)" if base else ""
    print(f"{label:<52} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  max {worst:7.1f} ms{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--settled", type=int, default=20_000, help="Pairs already answered 3 times.")
    parser.add_argument("--answers", type=int, default=300, help="Answers timed per measurement.")
    parser.add_argument("--threads", type=int, default=4, help="Annotators answering at once (contention run).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        build_db(db, args.pairs, args.settled)
        size_mb = db.stat().st_size / 1e6
        print(f"DB with {args.pairs:,} pairs built in {time.perf_counter() - t0:.1f} s ({size_mb:.0f} MB)")
        store = Store(db)
        ensure_schema(store)

        floor = []
        for i in range(args.answers):
            t = time.perf_counter()
            with store.write() as s:
                s.add(AuditEvent(actor="floor", action="noop", detail={"i": i}))
            floor.append(time.perf_counter() - t)
        report("floor: one bare write transaction", floor)
        base = pct(floor, 50)

        rng = random.Random(1)
        shown = next_pair(store, "bench", gold_rate=0.1, rng=rng)
        storage, answers_only = [], []
        for _ in range(args.answers):
            t = time.perf_counter()
            answer_pair(store, "bench", shown.pair_id, rng.choice(["A", "B", "unsure"]))
            t_answer = time.perf_counter()
            shown = next_pair(store, "bench", gold_rate=0.1, rng=rng)
            storage.append(time.perf_counter() - t)
            answers_only.append(t_answer - t)
        report("answer_pair alone", answers_only, base)
        report("answer -> next pair claimed (storage, goal p95<100)", storage, base)
        counting = []
        for _ in range(20):
            t = time.perf_counter()
            waiting_count(store)
            counting.append(time.perf_counter() - t)
        report("count of waiting pairs (the app: every 5 s)", counting, base)

        generic = []
        task = claim_next(store, "generic")
        for _ in range(min(args.answers, 100)):
            t = time.perf_counter()
            record_human_vote(store, task.pair_id, "generic", "point1")
            task = claim_next(store, "generic")
            generic.append(time.perf_counter() - t)
        report("baseline: record_human_vote -> claim_next", generic, base)

        photo = PILImage.fromarray(np.random.default_rng(0).integers(0, 255, (768, 1024, 3), dtype=np.uint8))
        from da2k.annotator_app.render import crop_around, draw_points

        render = []
        for _ in range(30):
            fresh = photo.copy()  # a new image: nothing cached from the previous pair
            t = time.perf_counter()
            draw_points(fresh, {"A": (100, 200), "B": (600, 900)})
            crop_around(fresh, (100, 200), "A")
            crop_around(fresh, (600, 900), "B")
            render.append(time.perf_counter() - t)
        report("drawing full image + 2 crops (1024x768)", render, base)

        contended: list[float] = []
        lock = threading.Lock()

        def annotator(name: str) -> None:
            r = random.Random(name)
            cur = next_pair(store, name, gold_rate=0.1, rng=r)
            mine = []
            for _ in range(args.answers // args.threads):
                t = time.perf_counter()
                answer_pair(store, name, cur.pair_id, r.choice(["A", "B"]))
                cur = next_pair(store, name, gold_rate=0.1, rng=r)
                mine.append(time.perf_counter() - t)
            with lock:
                contended.extend(mine)

        workers = [threading.Thread(target=annotator, args=(f"team{i}",)) for i in range(args.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        report(f"storage with {args.threads} annotators at once", contended, base)
        median = statistics.median(storage) * 1000
        print(f"storage p95 goal (<100 ms): {'met' if pct(storage, 95) < 100 else 'MISSED'}; median {median:.1f} ms")
        store.close()


if __name__ == "__main__":
    main()
