"""Tiny annotation stores for the annotation tests (images, real files when asked, and pairs),
and the app served to a real browser."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import sys
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from da2k.store import HumanVote, Image, Pair, Store
from da2k.store.annotate import answer_pair, next_pair

SCENARIOS = ("indoor", "outdoor")


def seed_store(
    store: Store,
    n_pairs: int,
    *,
    root: Optional[Path] = None,
    pairs_per_image: int = 10,
    gold: int = 0,
    gold_status: str = "needs_human",
    size: tuple[int, int] = (48, 64),
) -> list[int]:
    """`n_pairs` `needs_human` mined pairs plus `gold` gold pairs (reference answer point1, in
    `gold_status`) on images of `size` (H, W). With `root`, the images are written there as
    JPEGs (a gradient, so the crops differ) and recorded with their sha256. Returns the ids
    of the non-gold pairs."""
    height, width = size
    ids: list[int] = []
    base = Path(root).resolve() if root is not None else Path("/nonexistent")
    total = n_pairs + gold
    n_images = -(-total // pairs_per_image)
    with store.write() as s:
        for i in range(n_images):
            scenario = SCENARIOS[i % len(SCENARIOS)]
            rel = f"images/{scenario}/img{i:05d}.jpg"
            sha = hashlib.sha256(rel.encode()).hexdigest()
            if root is not None:
                path = base / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
                pixels = np.broadcast_to(ramp, (height, width, 3)).copy()
                pixels[..., 1] = (i * 37) % 256
                PILImage.fromarray(pixels).save(path, quality=90)
                sha = file_sha256(path)
            image = Image(
                sha256=sha,
                root=str(base),
                path=rel,
                scenario=scenario,
                width=width,
                height=height,
            )
            s.add(image)
            s.flush()
            for j in range(pairs_per_image):
                k = i * pairs_per_image + j
                if k >= total:
                    break
                is_gold = k >= n_pairs
                pair = Pair(
                    image_id=image.id,
                    p1_row=height // 4 + j,
                    p1_col=width // 4,
                    p2_row=3 * height // 4,
                    p2_col=3 * width // 4 - j,
                    status=gold_status if is_gold else "needs_human",
                    is_gold=is_gold,
                    reference_answer="point1" if is_gold else None,
                    answer="point1" if is_gold and gold_status == "resolved" else None,
                    source="imported" if is_gold and gold_status == "resolved" else "mined",
                )
                s.add(pair)
                s.flush()
                if not is_gold:
                    ids.append(pair.id)
    return ids


def answer_stored(store: Store, name: str, answer: str, *, votes_per_pair: int = 3, gold_rate: float = 0.0) -> int:
    """`name` answers the next pair they are shown with `answer` meant in the pair's stored
    order (`point1`, `point2` or `unsure`), through the app's API; returns the pair id."""
    shown = next_pair(store, name, gold_rate=gold_rate)
    assert shown is not None, f"nothing left for {name}"
    said = answer if answer == "unsure" else ("A" if (answer == "point1") != shown.swapped else "B")
    answer_pair(store, name, shown.pair_id, said, token=shown.token, votes_per_pair=votes_per_pair)
    return shown.pair_id


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# The app in a real browser -------------------------------------------------------------

READY = "[data-da2k-view=task].da2k-ready"
BROWSER_MARKS = [
    pytest.mark.slow,
    # Gradio's queue calls pandas options that pandas 3 deprecates; not ours to fix.
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"),
]
NAME_BOX = "#da2k-name textarea, #da2k-name input"


def browser_api():
    """Playwright's sync API; skips the calling module without gradio, playwright or chromium."""
    from browser import require_chromium

    pytest.importorskip("gradio")
    api = pytest.importorskip("playwright.sync_api")
    require_chromium()
    return api


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving(db: Path, **options) -> Iterator[str]:
    """The app over `db` on 127.0.0.1 (a free port) while the block runs; yields its URL."""
    from da2k.annotator_app import build_app

    app = build_app(db, **options)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()


@contextlib.contextmanager
def browser_page(playwright, url: str, *, viewport=(1366, 768), **context) -> Iterator:
    """A page of a fresh chromium context that may reach only `url` (anything else fails the test)."""
    from browser import launch

    outside: list[str] = []
    browser = launch(playwright)
    ctx = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, **context)

    def only_local(route):
        if route.request.url.startswith(url) or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    ctx.route("**/*", only_local)
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        browser.close()
    assert outside == [], f"the app tried to reach {outside[:3]}"


def shown(page) -> tuple[Optional[int], str]:
    """(pair id, token) of the task view on screen (None: no pair)."""
    view = page.locator("[data-da2k-view=task]")
    pair = view.get_attribute("data-pair")
    return (int(pair) if pair else None), view.get_attribute("data-token") or ""


def wait_ready(page, *, after: str = "") -> tuple[Optional[int], str]:
    """Wait until a view other than the one with token `after` is painted and settled."""
    page.wait_for_function(
        """after => { const v = document.querySelector('[data-da2k-view=task]');
                      return v && v.classList.contains('da2k-ready') && (v.dataset.token || '') !== after; }""",
        arg=after,
    )
    return shown(page)


def start_as(page, url: str, name: str, *, new: bool = True) -> tuple[Optional[int], str]:
    """Open the app, type `name`, press Enter (and confirm a new name); the first pair."""
    page.goto(url)
    page.wait_for_selector(READY)
    box = page.locator(NAME_BOX).first
    box.fill(name)
    box.press("Enter")
    if new:
        page.locator("#da2k-confirm-yes").click()
    page.wait_for_function("() => document.querySelector('[data-da2k-view=task][data-pair]') !== null")
    return wait_ready(page)


def votes_of(db: Path, annotator: str) -> dict[int, tuple[str, bool, Optional[float]]]:
    with Store(db) as store, store.read() as s:
        return {
            v.pair_id: (v.answer, v.swapped, v.seconds)
            for v in s.scalars(select(HumanVote).where(HumanVote.annotator == annotator))
        }


def stored_answer(shown_answer: str, swapped: bool) -> str:
    """What an answer given as shown (`A`, `B`, `unsure`) is in the pair's stored order."""
    if shown_answer == "unsure":
        return "unsure"
    return "point1" if (shown_answer == "A") != swapped else "point2"


def write_many_pairs_benchmark(
    root: Path, n_images: int, pairs_per_image: int, size: tuple[int, int] = (48, 64)
) -> Path:
    """A DA-2K-format folder with `n_images` tiny PNGs and `pairs_per_image` distinct pairs
    on each (point1 walks the first pixels, point2 pixels further on): an import workload."""
    import json

    height, width = size
    assert 2 * pairs_per_image <= height * width - pairs_per_image
    annotations = {}
    for i in range(n_images):
        key = f"images/indoor/many{i:05d}.png"  # lossless, so every image differs
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        PILImage.new("RGB", (width, height), (i % 256, 90, 160)).save(root / key)
        annotations[key] = [
            {
                "point1": list(divmod(k, width)),
                "point2": list(divmod(k + 2 * pairs_per_image, width)),
                "closer_point": "point1",
            }
            for k in range(pairs_per_image)
        ]
    (root / "annotations.json").write_text(json.dumps(annotations))
    return root


def import_command(bench: Path, db: Path) -> list[str]:
    """`da2k import-benchmark BENCH --db DB`, to run in a process of its own."""
    return [sys.executable, "-c", "from da2k.cli import main; main()", "import-benchmark", str(bench), "--db", str(db)]
