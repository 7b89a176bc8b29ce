"""The Annotate tab in a real browser (Debian chromium driven by Playwright), offline.

Every stored answer must be one a person gave to the pair on their screen: the tests press
keys and click as people do (fast, twice, after a click, after undo, after a reload) and
compare the database with what was really shown. The app runs on a temporary database on
127.0.0.1; any request to another host fails the test.
"""

from __future__ import annotations

import pytest
from annotate_helpers import (
    BROWSER_MARKS,
    NAME_BOX,
    READY,
    browser_api,
    browser_page,
    seed_store,
    serving,
    shown,
    start_as,
    stored_answer,
    votes_of,
    wait_ready,
)
from sqlalchemy import func, select

from da2k.store import HumanVote, Pair, Presentation, Store
from da2k.store.annotate import progress

sync_api = browser_api()
pytestmark = BROWSER_MARKS


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("annotate")
    db = tmp / "a.db"
    with Store(db) as store:
        seed_store(store, 80, root=tmp / "photos", size=(120, 160))
    with serving(db, images_root=tmp / "photos", votes_per_pair=3, gold_rate=0.0) as url:
        yield url, db


@pytest.fixture
def page(served):
    with sync_api.sync_playwright() as p, browser_page(p, served[0]) as page:
        yield page


def presentations(db, annotator: str) -> dict[int, Presentation]:
    with Store(db) as store, store.read() as s:
        return {p.pair_id: p for p in s.scalars(select(Presentation).where(Presentation.annotator == annotator))}


def swapped_of(db, annotator: str, pair_id: int) -> bool:
    return presentations(db, annotator)[pair_id].swapped


def test_keys_and_clicks_store_what_was_answered_on_the_pair_shown(served, page):
    url, db = served
    current, token = start_as(page, url, "Ann")  # stored as "ann"
    assert page.locator("#da2k-full img").count() == 1 and page.locator("#da2k-crop-b img").count() == 1
    given: dict[int, str] = {}
    for i in range(9):  # keyboard and mouse, alternating
        said = ("A", "B", "unsure")[i % 3]
        given[current] = said
        if i % 2:
            page.click({"A": "#da2k-a", "B": "#da2k-b", "unsure": "#da2k-s"}[said])
        else:
            page.keyboard.press({"A": "a", "B": "b", "unsure": "s"}[said])
        current, token = wait_ready(page, after=token)
        assert len(votes_of(db, "ann")) == i + 1  # committed before the next pair showed
    stored = votes_of(db, "ann")
    assert set(stored) == set(given)
    for pair_id, said in given.items():
        answer, swapped, seconds = stored[pair_id]
        assert answer == stored_answer(said, swapped) and seconds >= 0.15
    swaps = [swapped for _, swapped, _ in stored.values()]
    assert 0 < sum(swaps) < len(swaps), "A/B order must be drawn per presentation"

    page.reload()  # the name is remembered and the pair held for ann comes back
    again, _ = wait_ready(page)
    assert again == current
    assert page.locator(NAME_BOX).first.input_value() == "ann"


def test_a_double_key_press_stores_exactly_one_answer(served, page):
    url, db = served
    current, token = start_as(page, url, "dora")
    for gap_ms in (20, 20, 60, 120):
        page.keyboard.press("a")
        page.wait_for_timeout(gap_ms)
        page.keyboard.press("b")  # meant as a correction, or a bounce: must not answer the next pair
        nxt, token = wait_ready(page, after=token)
        page.wait_for_timeout(300)  # anything still in flight lands now
        stored = votes_of(db, "dora")
        assert stored[current][0] == stored_answer("A", swapped_of(db, "dora", current))
        assert nxt not in stored, f"the second key press ({gap_ms} ms later) answered the next pair"
        current = nxt
    assert len(votes_of(db, "dora")) == 4


def test_the_server_refuses_an_answer_for_another_display(served, page):
    url, db = served
    current, token = start_as(page, url, "eli")
    page.evaluate("() => window.da2k.views.task.trigger('act', {action: 'A', token: 'not-the-one-shown'})")
    again, token = wait_ready(page, after=token)
    assert again == current and votes_of(db, "eli") == {}
    assert "Not stored" in page.inner_text("[data-da2k-view=task] .da2k-note")
    page.keyboard.press("b")
    wait_ready(page, after=token)
    assert list(votes_of(db, "eli")) == [current]


def test_after_a_mouse_click_space_and_enter_answer_nothing(served, page):
    url, db = served
    first, token = start_as(page, url, "finn")
    page.click("#da2k-a")
    second, token = wait_ready(page, after=token)
    assert page.evaluate("() => document.activeElement === document.body")  # the button let go of the focus
    page.keyboard.press("Enter")
    page.wait_for_timeout(500)
    assert shown(page)[0] == second and list(votes_of(db, "finn")) == [first]
    page.keyboard.press(" ")  # Space is the neutral skip: the pair goes back, no vote
    third, _ = wait_ready(page, after=token)
    assert third != second and list(votes_of(db, "finn")) == [first]
    assert presentations(db, "finn")[second].skipped_at is not None


def test_the_task_fits_1366x768_with_the_keys_named(served, page):
    url, _ = served
    start_as(page, url, "gus")
    for selector in (
        "#da2k-full img",
        "#da2k-crop-a",
        "#da2k-crop-b",
        "#da2k-a",
        "#da2k-b",
        "#da2k-s",
        "#da2k-n",
        "#da2k-u",
        ".da2k-legend",
    ):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 768, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= 1366, selector
    legend = page.inner_text(".da2k-legend")
    assert all(word in legend for word in ("A is closer", "can't tell", "skip", "undo", "brightness", "zoom"))
    assert page.evaluate("() => window.scrollY") == 0


def test_skip_leaves_no_vote_and_undo_takes_it_back(served, page):
    url, db = served
    first, token = start_as(page, url, "hal")
    page.keyboard.press("n")
    second, token = wait_ready(page, after=token)
    assert second != first and votes_of(db, "hal") == {}
    page.keyboard.press("u")
    back, token = wait_ready(page, after=token)
    assert back == first  # the skipped pair, shown again
    page.keyboard.press("a")
    wait_ready(page, after=token)
    assert list(votes_of(db, "hal")) == [first]
    seen = presentations(db, "hal")
    assert seen[second].answered_at is None and seen[second].skipped_at is None  # glimpsed only: not shown again


def test_undo_shows_the_pair_again_and_never_a_glimpsed_one(served, page):
    url, db = served
    first, token = start_as(page, url, "ida")
    page.keyboard.press("s")
    second, token = wait_ready(page, after=token)
    page.keyboard.press("u")
    back, token = wait_ready(page, after=token)
    assert back == first and "taken back" in page.inner_text(".da2k-note")
    assert votes_of(db, "ida") == {}
    page.keyboard.press("b")
    after, token = wait_ready(page, after=token)
    assert after not in (first, second)  # the pair glimpsed before undo does not come back
    assert votes_of(db, "ida")[first][0] == stored_answer("B", swapped_of(db, "ida", first))


def test_progress_counts_are_right_after_each_answer(served, page):
    url, db = served
    _, token = start_as(page, url, "jo")
    for key in "abs":
        page.keyboard.press(key)
        _, token = wait_ready(page, after=token)
        with Store(db) as store:
            truth = progress(store, "jo")
        bar = page.locator("#da2k-info")
        assert int(bar.locator(".da2k-today").inner_text()) == truth.answered_today
        assert int(bar.locator(".da2k-left").inner_text()) == truth.left_for_you
        assert int(bar.locator(".da2k-waiting").inner_text()) == truth.waiting
    assert truth.answered_today == 3


def test_brightness_contrast_and_zoom_keys_act_on_the_image_and_crops(served, page):
    url, _ = served
    start_as(page, url, "kim")
    for key in ("+", "+", "c", "z"):
        page.keyboard.press(key)
    full = page.locator("#da2k-full img").evaluate("img => img.style.filter")
    crop = page.locator("#da2k-crop-a img").evaluate("img => [img.style.filter, img.style.transform]")
    assert full == "brightness(1.4) contrast(1.5)" and crop == ["brightness(1.4) contrast(1.5)", "scale(2)"]
    page.keyboard.press("0")
    assert page.locator("#da2k-full img").evaluate("img => img.style.filter") == "brightness(1) contrast(1)"


def test_names_are_normalised_escape_leaves_the_box_and_new_names_are_confirmed(served, page):
    url, db = served
    page.goto(url)
    page.wait_for_selector(READY)
    box = page.locator(NAME_BOX).first
    box.fill("  Newbie  ")
    box.press("Enter")
    page.locator("#da2k-confirm-no").wait_for()
    assert "No annotator is called newbie" in page.inner_text("[data-da2k-view=task]")
    page.click("#da2k-confirm-no")
    page.wait_for_timeout(300)
    box.fill("ANN")  # an annotator from an earlier test: no confirmation
    box.press("Enter")
    pair, token = wait_ready(page, after="")
    assert pair is not None and page.locator(NAME_BOX).first.input_value() == "ann"
    with Store(db) as store, store.read() as s:
        assert s.scalar(select(func.count()).select_from(Presentation).where(Presentation.annotator == "newbie")) == 0
    box.click()
    box.press("Escape")
    assert not page.evaluate("() => ['INPUT', 'TEXTAREA'].includes(document.activeElement.tagName)")
    before = len(votes_of(db, "ann"))
    page.keyboard.press("a")  # answers: the key went to the page, not into the name box
    wait_ready(page, after=token)
    assert len(votes_of(db, "ann")) == before + 1


def test_key_to_next_pair_latency_is_measured(served, page, record_property):
    url, _ = served
    _, token = start_as(page, url, "lat")
    for i in range(10):
        page.keyboard.press("as"[i % 2])
        _, token = wait_ready(page, after=token)
    timings = sorted(page.evaluate("() => window.da2k.timings"))
    assert len(timings) == 10
    median, p95 = timings[len(timings) // 2], timings[min(len(timings) - 1, int(0.95 * len(timings)))]
    record_property("key_to_next_pair_ms", {"median": median, "p95": p95})
    print(f"key -> next pair painted: median {median:.0f} ms, p95 {p95:.0f} ms (10 answers)")


def test_nothing_left_says_so_for_keys(tmp_path):
    db = tmp_path / "one.db"
    with Store(db) as store:
        (only,) = seed_store(store, 1, root=tmp_path / "photos", size=(60, 80))
    with serving(db, images_root=tmp_path / "photos", votes_per_pair=1, gold_rate=0.0) as url:
        with sync_api.sync_playwright() as p, browser_page(p, url) as page:
            pair, token = start_as(page, url, "mo")
            assert pair == only
            page.keyboard.press("a")
            none, token = wait_ready(page, after=token)
            assert none is None and "Nothing left for" in page.inner_text("[data-da2k-view=task]")
            page.keyboard.press("b")
            page.wait_for_function("() => /keys do nothing/.test(document.querySelector('.da2k-note').innerText)")
            page.keyboard.press("u")  # undo still works from the empty screen
            back, token = wait_ready(page, after=token)
            assert back == only
            page.keyboard.press("b")
            _, token = wait_ready(page, after=token)
            for _ in range(2):  # twice the same answer from the server: the page still unlocks
                page.keyboard.press("u")
                page.keyboard.press("u")
                _, token = wait_ready(page, after=token)
    with Store(db) as store, store.read() as s:
        assert s.scalar(select(func.count()).select_from(HumanVote)) == 0  # both answers taken back
        assert s.get(Pair, only).status == "needs_human"
