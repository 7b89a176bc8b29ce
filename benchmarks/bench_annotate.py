"""Latency from an answer to the next pair shown, on an annotation DB with 100,000 pairs.

Storage part (goal p95 < 100 ms), what the app does between a key press and drawing the next
pair: `answer_pair` (checks the display token, stores the vote, settles the pair, releases
the claim: one transaction) and `next_pair` (expired claims dropped, gold quota, a never-seen
pair claimed with its A/B order and a new token: another transaction); then the progress
line (answered today, left for you, waiting: one read). The DB is mid-project: 100,000 pairs
(5 % gold, imported and settled), 20,000 of them already settled by 10 annotators with 3
answers each. The baseline, measured in the same run, is the floor: one bare write
transaction on the same file.

Also, with options:
* `--import-pairs N`: the same storage loop, two annotators, while `da2k import-benchmark`
  of N pairs runs in another process (goal: no answer waits more than ~1 s);
* `--browser K`: the app itself in chromium (Playwright, `/usr/bin/chromium`): K answers by key,
  timed from the key press to the next pair painted on screen (`window.da2k.timings`), on
  real photos (`tests/fixtures/demo01.jpg` and darker/brighter copies of it).

    python benchmarks/bench_annotate.py --pairs 100000 --answers 300 --import-pairs 100000 --browser 40
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageEnhance
from sqlalchemy import insert, update

from da2k.store import AuditEvent, HumanVote, Image, Pair, Presentation, Store
from da2k.store.annotate import answer_pair, next_pair, progress

TESTS = Path(__file__).resolve().parents[1] / "tests"
PHOTO = TESTS / "fixtures" / "demo01.jpg"
sys.path.insert(0, str(TESTS))  # the tests' own workload and browser driver
from annotate_helpers import import_command, write_many_pairs_benchmark  # noqa: E402


def _pair_rows(n_pairs: int, settled: int, per_image: int, now: dt.datetime) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for k in range(n_pairs):
        gold = k % 20 == 19
        done = k < settled and not gold
        rows.append(
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
    return rows


def build_db(path: Path, n_pairs: int, settled: int, per_image: int = 10) -> None:
    """The mid-project database (bulk inserts: building it is not what is measured)."""
    store = Store(path)
    now = dt.datetime(2026, 1, 1)
    images = [
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
        for i in range(n_pairs // per_image)
    ]
    votes, shown, events = [], [], []
    for k in range(settled):
        if k % 20 == 19:
            continue
        for j in range(3):
            name = f"ann{(k + j) % 10}"
            votes.append(
                {"pair_id": k + 1, "annotator": name, "answer": "point1", "swapped": bool(j % 2), "seconds": 3.0}
            )
            shown.append(
                {"pair_id": k + 1, "annotator": name, "swapped": bool(j % 2), "shown_at": now, "answered_at": now}
            )
            events.append({"at": now, "actor": name, "action": "human_vote", "pair_id": k + 1, "detail": {}})
    with store.write() as s:
        s.execute(insert(Image), images)
        s.execute(insert(Pair), _pair_rows(n_pairs, settled, per_image, now))
        s.execute(insert(HumanVote), [{**v, "created_at": now} for v in votes])
        s.execute(insert(Presentation), [{**p, "gold": False, "counted": True} for p in shown])
        s.execute(insert(AuditEvent), events)
    store.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def report(label: str, values: list[float], base: float | None = None) -> None:
    p50, p95, worst = pct(values, 50), pct(values, 95), max(values) * 1000.0
    ratio = f"  ({p50 / base:5.1f}x the floor)" if base else ""
    print(f"{label:<56} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  max {worst:7.1f} ms{ratio}")


def time_floor(store: Store, n: int) -> list[float]:
    floor = []
    for i in range(n):
        t = time.perf_counter()
        with store.write() as s:
            s.add(AuditEvent(actor="floor", action="noop", detail={"i": i}))
        floor.append(time.perf_counter() - t)
    return floor


def time_storage(store: Store, name: str, n: int, rng: random.Random) -> tuple[list[float], list[float]]:
    """(answer -> next pair claimed, progress line) for `n` answers."""
    storage, counts = [], []
    shown = next_pair(store, name, gold_rate=0.1, rng=rng)
    for _ in range(n):
        t = time.perf_counter()
        answer_pair(store, name, shown.pair_id, rng.choice(["A", "B", "unsure"]), token=shown.token)
        shown = next_pair(store, name, gold_rate=0.1, rng=rng)
        storage.append(time.perf_counter() - t)
        t = time.perf_counter()
        progress(store, name)
        counts.append(time.perf_counter() - t)
    return storage, counts


def annotate_while(store: Store, names: list[str], n: int, keep_going=lambda: True) -> list[float]:
    """Each name answers in its own thread (as the app's threads do); the storage times."""
    times: list[float] = []
    lock = threading.Lock()

    def annotator(name: str) -> None:
        r = random.Random(name)
        cur = next_pair(store, name, gold_rate=0.1, rng=r)
        mine = []
        for _ in range(n):
            if not keep_going() or cur is None:
                break
            t = time.perf_counter()
            answer_pair(store, name, cur.pair_id, r.choice(["A", "B"]), token=cur.token)
            cur = next_pair(store, name, gold_rate=0.1, rng=r)
            mine.append(time.perf_counter() - t)
            time.sleep(0.02)
        with lock:
            times.extend(mine)

    workers = [threading.Thread(target=annotator, args=(name,)) for name in names]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return times


def time_under_import(store: Store, db: Path, tmp: Path, n_pairs: int) -> None:
    bench = write_many_pairs_benchmark(tmp / "import", max(1, n_pairs // 500), 500)
    t0 = time.perf_counter()
    importer = subprocess.Popen(import_command(bench, db), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    waits = annotate_while(store, ["imp-a", "imp-b"], 100_000, keep_going=lambda: importer.poll() is None)
    out, _ = importer.communicate()
    print(f"import of {n_pairs:,} pairs: {out.decode().strip()} in {time.perf_counter() - t0:.1f} s")
    report(f"storage, 2 annotators, during that import ({len(waits)} answers)", waits)
    print(f"  longest wait for an answer during the import: {max(waits):.2f} s (goal <= 1 s)")


def photo_files(store: Store, root: Path, first_pair: int, n_images: int, per_image: int) -> None:
    """Real photos (demo01 and darker / over-exposed copies) for the images the queue shows next."""
    base = PILImage.open(PHOTO).convert("RGB").resize((1024, 768))
    with store.write() as s:
        for i in range(n_images):
            image_id = (first_pair - 1) // per_image + 1 + i
            photo = ImageEnhance.Brightness(base).enhance((1.0, 0.25, 2.2)[i % 3])
            photo.putpixel((i % 1024, 0), (i % 256, 0, 0))  # every file differs
            rel = f"images/indoor/photo{i:04d}.jpg"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            photo.save(root / rel, quality=90)
            sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
            s.execute(update(Image).where(Image.id == image_id).values(root=str(root), path=rel, sha256=sha))


def time_browser(db: Path, photos: Path, answers: int) -> None:
    from annotate_helpers import browser_page, serving, start_as, wait_ready
    from playwright.sync_api import sync_playwright

    with serving(db, images_root=photos, gold_rate=0.0) as url, sync_playwright() as p:
        with browser_page(p, url) as page:
            _, token = start_as(page, url, "browser")
            for i in range(answers):
                page.keyboard.press("abs"[i % 3])
                _, token = wait_ready(page, after=token)
            timings = [t / 1000.0 for t in page.evaluate("() => window.da2k.timings")]
    report(f"browser: key -> next pair painted ({len(timings)} answers)", timings)
    print(f"  then {0.15 * 1000:.0f} ms of settle time before keys are taken again")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--settled", type=int, default=20_000, help="Pairs already answered 3 times.")
    parser.add_argument("--answers", type=int, default=300, help="Answers timed per measurement.")
    parser.add_argument("--threads", type=int, default=4, help="Annotators answering at once (contention run).")
    parser.add_argument("--import-pairs", type=int, default=0, help="Also time answers during an import this big.")
    parser.add_argument("--browser", type=int, default=0, help="Also time this many answers in chromium.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        t0 = time.perf_counter()
        build_db(db, args.pairs, args.settled)
        print(
            f"DB with {args.pairs:,} pairs built in {time.perf_counter() - t0:.1f} s ({db.stat().st_size / 1e6:.0f} MB)"
        )
        if args.browser:  # first: the loops below settle the first waiting pairs
            with Store(db) as store:
                photo_files(store, Path(tmp) / "photos", args.settled + 1, max(8, args.browser // 5), 10)
            time_browser(db, Path(tmp) / "photos", args.browser)
        store = Store(db)
        floor = time_floor(store, args.answers)
        report("floor: one bare write transaction", floor)
        base = pct(floor, 50)
        storage, counts = time_storage(store, "bench", args.answers, random.Random(1))
        report("answer -> next pair claimed (storage, goal p95<100)", storage, base)
        report("progress line (answered today, left, waiting)", counts, base)
        contended = annotate_while(store, [f"team{i}" for i in range(args.threads)], args.answers // args.threads)
        report(f"storage with {args.threads} annotators at once", contended, base)
        median = statistics.median(storage) * 1000
        print(f"storage p95 goal (<100 ms): {'met' if pct(storage, 95) < 100 else 'MISSED'}; median {median:.1f} ms")
        if args.import_pairs:
            time_under_import(store, db, Path(tmp), args.import_pairs)
        store.close()


if __name__ == "__main__":
    main()
