"""The annotation app in a real browser (Debian chromium driven by Playwright), offline.

The app runs on a temporary database on 127.0.0.1 with a free port; every request to any
other host is refused, so nothing here depends on the network.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from annotate_helpers import seed_store
from browser import launch, require_chromium
from sqlalchemy import select

from da2k.store import HumanVote, Pair, Review, Store
from da2k.store.annotation import record_human_vote

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")

# Gradio's queue calls pandas options that pandas 3 deprecates; not ours to fix.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting", "ignore:The copy keyword is deprecated"),
]

require_chromium()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from da2k.annotator_app import build_app

    tmp = tmp_path_factory.mktemp("annotate")
    db = tmp / "a.db"
    with Store(db) as store:
        seed_store(store, 30, root=tmp / "photos", size=(120, 160))
    app = build_app(db, images_root=tmp / "photos", votes_per_pair=3, gold_rate=0.0)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", db
    finally:
        app.close()


@pytest.fixture
def page(served):
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        context = browser.new_context(viewport={"width": 1280, "height": 900})

        def only_local(route):
            if route.request.url.startswith(served[0]) or route.request.url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        browser.close()
    assert outside == [], f"the app tried to reach {outside[:3]}"


SHOWS_A_PAIR = "() => { const n = document.querySelector('#da2k-info'); return n && /pair \\d+/.test(n.innerText); }"


def shown_pair(page) -> int:
    match = re.search(r"pair (\d+)", page.inner_text("#da2k-info"))
    return int(match.group(1)) if match else -1


def wait_for_pair_change(page, before: int) -> int:
    page.wait_for_function(
        """before => { const n = document.querySelector('#da2k-info');
                       const m = n && /pair (\\d+)/.exec(n.innerText);
                       return m && Number(m[1]) !== before; }""",
        arg=before,
    )
    return shown_pair(page)


def votes(db: Path, annotator: str) -> dict[int, tuple[str, bool, float]]:
    with Store(db) as store, store.read() as s:
        return {
            v.pair_id: (v.answer, v.swapped, v.seconds)
            for v in s.scalars(select(HumanVote).where(HumanVote.annotator == annotator))
        }


def statuses(db: Path) -> dict[int, str]:
    with Store(db) as store, store.read() as s:
        return dict(s.execute(select(Pair.id, Pair.status)).all())


def test_annotating_with_keys_and_clicks_undo_and_reload(served, page):
    url, db = served
    page.goto(url)
    page.locator("#da2k-name textarea, #da2k-name input").first.fill("ann")
    page.locator("#da2k-name textarea, #da2k-name input").first.press("Enter")
    page.wait_for_function(SHOWS_A_PAIR)
    current = shown_pair(page)
    # Point A in the image is drawn: the full image and both crops are there.
    assert page.locator("#da2k-full img").count() == 1 and page.locator("#da2k-crop-b img").count() == 1

    given: dict[int, str] = {}
    for i in range(12):  # keyboard and mouse, alternating
        if i % 3 == 0:
            page.keyboard.press("a")
            given[current] = "A"
        elif i % 3 == 1:
            page.click("#da2k-b")
            given[current] = "B"
        else:
            page.keyboard.press("s")
            given[current] = "unsure"
        current = wait_for_pair_change(page, current)
        assert len(votes(db, "ann")) == i + 1  # committed before the next pair showed

    last_unsure = [p for p, a in given.items() if a == "unsure"][-1]
    page.keyboard.press("u")
    assert wait_for_pair_change(page, current) == last_unsure
    assert "taken back" in page.inner_text("#da2k-info")
    assert last_unsure not in votes(db, "ann")
    page.keyboard.press("b")
    given[last_unsure] = "B"
    current = wait_for_pair_change(page, last_unsure)

    page.reload()  # the name is remembered and the pair held for ann comes back
    page.wait_for_function(SHOWS_A_PAIR)
    assert shown_pair(page) == current
    assert page.locator("#da2k-name textarea, #da2k-name input").first.input_value() == "ann"

    stored = votes(db, "ann")
    assert set(stored) == set(given)
    for pair_id, shown in given.items():
        answer, swapped, seconds = stored[pair_id]
        expected = {"A": "point2" if swapped else "point1", "B": "point1" if swapped else "point2", "unsure": "unsure"}[
            shown
        ]
        assert answer == expected and seconds is not None and seconds >= 0
    swaps = [swapped for _, swapped, _ in stored.values()]
    assert 0 < sum(swaps) < len(swaps), "A/B order must be drawn per presentation"
    with Store(db) as store, store.read() as s:
        assert {s.get(Pair, p).status for p in given} == {"needs_human"}  # one answer of three each


def test_review_pick_and_stats_tabs(served, page):
    url, db = served
    page.goto(url)
    page.locator("#da2k-name textarea, #da2k-name input").first.fill("picker")
    page.get_by_role("tab", name="Pick").click()
    page.get_by_label("Path contains").fill("img00001")
    page.get_by_role("button", name="Find").click()
    image = page.locator("#da2k-pick-image img")
    image.wait_for()
    page.wait_for_timeout(300)
    box = image.bounding_box()
    image.click(position={"x": box["width"] * 0.25, "y": box["height"] * 0.5})
    page.wait_for_function("() => document.body.innerText.includes('1: (row')")
    image.click(position={"x": box["width"] * 0.75, "y": box["height"] * 0.5})
    page.wait_for_function("() => document.body.innerText.includes('2: (row')")
    page.click("#da2k-pick-add")
    page.wait_for_function("() => document.body.innerText.includes('(manual, waiting')")
    with Store(db) as store, store.read() as s:
        manual = s.scalars(select(Pair).where(Pair.source == "manual")).one()
    assert manual.status == "needs_human" and manual.p1_col < manual.p2_col
    assert abs(manual.p1_row - 60) <= 3 and abs(manual.p1_col - 40) <= 3  # (row, col) of a 120x160 image

    page.get_by_role("tab", name="Stats").click()
    page.click("#da2k-stats-refresh")
    page.wait_for_function('() => document.body.innerText.includes("Fleiss\' kappa")')
    assert page.locator("text=indoor").count() >= 1

    # Three people disagree on the last pair (nobody was shown it in the browser).
    with Store(db) as store:
        last = max(statuses(db))
        for name, answer in (("x", "point1"), ("y", "point2"), ("z", "unsure")):
            record_human_vote(store, last, name, answer, votes_needed=3, max_votes=3)
    page.get_by_role("tab", name="Review").click()
    page.click("#da2k-review-load")
    page.wait_for_function(f"() => document.body.innerText.includes('Pair {last} ')")
    assert page.locator("text=can't tell").count() >= 1  # the votes, as A/B/can't tell
    page.get_by_label("Note (kept in the audit trail)").fill("<b>glass</b> door")
    page.click("#da2k-review-discard")
    page.wait_for_function("() => document.body.innerText.includes('No conflicts to review')")
    with Store(db) as store, store.read() as s:
        review = s.scalars(select(Review)).one()
    assert (review.pair_id, review.reviewer, review.decision) == (last, "picker", "discard")
    assert review.note == "<b>glass</b> door"  # stored as typed: text is data


def test_with_auth_people_log_in_and_their_login_is_their_name(tmp_path):
    from da2k.annotator_app import build_app
    from da2k.store.annotate import Presentation

    db = tmp_path / "auth.db"
    with Store(db) as store:
        seed_store(store, 3, root=tmp_path / "photos", size=(60, 80))
    app = build_app(db, images_root=tmp_path / "photos", auth={"ann": "pw<1>"}, gold_rate=0.0)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page()
            page.set_default_timeout(30_000)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("input[type=password]").wait_for()
            assert page.locator("#da2k-info").count() == 0  # nothing of the app before logging in
            page.locator("input").first.fill("ann")
            page.locator("input[type=password]").fill("wrong")
            page.keyboard.press("Enter")
            page.wait_for_function("() => /incorrect|invalid/i.test(document.body.innerText)")
            page.locator("input").first.fill("ann")
            page.locator("input[type=password]").fill("pw<1>")
            page.keyboard.press("Enter")
            page.wait_for_function(SHOWS_A_PAIR)
            assert not page.locator("#da2k-name").is_visible()
            first = shown_pair(page)
            page.keyboard.press("a")
            wait_for_pair_change(page, first)
            browser.close()
    finally:
        app.close()
    assert list(votes(db, "ann")) == [first]
    with Store(db) as store, store.read() as s:
        assert set(s.scalars(select(Presentation.annotator))) == {"ann"}
