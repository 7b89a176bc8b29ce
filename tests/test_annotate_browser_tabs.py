"""The rest of the app in a real browser: the right image always, Review (rights, hotkeys,
trail), Pick, Stats, logins, two annotators at once, and a phone."""

from __future__ import annotations

import hashlib

import pytest
from annotate_helpers import (
    BROWSER_MARKS,
    answer_stored,
    browser_api,
    browser_page,
    seed_store,
    serving,
    start_as,
    stored_answer,
    votes_of,
    wait_ready,
)
from click.testing import CliRunner
from PIL import Image as PILImage
from sqlalchemy import select

from da2k.cli import main
from da2k.store import Image, Pair, Presentation, Review, Store

sync_api = browser_api()
pytestmark = BROWSER_MARKS


def image_of(db, pair_id: int) -> Image:
    with Store(db) as store, store.read() as s:
        return s.get(Pair, pair_id).image


def test_a_replaced_or_missing_image_is_never_shown_and_leaves_the_queue_for_everyone(tmp_path):
    db, photos = tmp_path / "r.db", tmp_path / "photos"
    with Store(db) as store:
        seed_store(store, 15, root=photos, pairs_per_image=3, size=(60, 80))
        with store.write() as s:
            images = s.scalars(select(Image).order_by(Image.id)).all()
            # Recorded under another folder (mined there, not reachable now), while photos/
            # holds a different photo under the same relative path.
            images[2].root = str(tmp_path / "elsewhere")
        replaced, moved, deleted = (images[i].id for i in (1, 2, 3))
        paths = {im.id: im.path for im in images}
    PILImage.new("RGB", (80, 60), (10, 200, 30)).save(photos / paths[replaced])  # same name, other photo
    PILImage.new("RGB", (80, 60), (200, 20, 30)).save(photos / paths[moved])
    (photos / paths[deleted]).unlink()
    with serving(db, votes_per_pair=1, gold_rate=0.0) as url:  # roots: those recorded in the database
        with sync_api.sync_playwright() as p, browser_page(p, url) as page:
            pair, token = start_as(page, url, "ann")
            answered = []
            while pair is not None:
                assert image_of(db, pair).id not in (replaced, moved, deleted)
                page.keyboard.press("a")
                answered.append(pair)
                pair, token = wait_ready(page, after=token)
            page.get_by_role("tab", name="Stats").click()
            page.click("#da2k-stats-refresh")
            page.wait_for_function("() => document.body.innerText.includes('changed (sha256 differs)')")
    assert len(answered) == 6  # the pairs of the two intact images, each answered once
    with Store(db) as store, store.read() as s:
        shown_images = {s.get(Pair, p.pair_id).image_id for p in s.scalars(select(Presentation))}
        marks = {im.id: im.unavailable for im in s.scalars(select(Image))}
    assert not shown_images & {replaced, moved, deleted}
    assert marks[replaced] == marks[moved] == "changed (sha256 differs)" and marks[deleted] == "missing"
    result = CliRunner().invoke(main, ["stats", "--db", str(db)])
    assert result.exit_code == 0 and "cannot show: 3" in result.output and paths[replaced] in result.output


def test_review_is_for_reviewers_who_did_not_vote_with_hotkeys_crops_and_a_readable_trail(tmp_path):
    db = tmp_path / "rv.db"
    with Store(db) as store:
        (pid,) = seed_store(store, 1, root=tmp_path / "photos", size=(90, 120))
        for name, answer in (("ann", "point1"), ("rita", "point2"), ("cy", "unsure")):
            answer_stored(store, name, answer)
    auth = {"ann": "a", "+rita": "r", "+max": "m"}
    with serving(db, images_root=tmp_path / "photos", auth=auth, gold_rate=0.0) as url:
        with sync_api.sync_playwright() as p:
            for login, password in (("ann", "a"), ("rita", "r"), ("Max", "m")):
                with browser_page(p, url) as page:
                    page.goto(url)
                    page.locator("input[type=password]").wait_for()
                    page.locator("input").first.fill(login)
                    page.locator("input[type=password]").fill(password)
                    page.keyboard.press("Enter")
                    page.get_by_role("tab", name="Review").click()
                    page.wait_for_selector("[data-da2k-view=review].da2k-ready")
                    page.keyboard.press("n")
                    if login == "ann":  # not a reviewer
                        page.wait_for_function("() => /not a reviewer/.test(document.body.innerText)")
                        continue
                    if login == "rita":  # a reviewer, but she answered this pair
                        page.wait_for_function("() => /No conflicts for you/.test(document.body.innerText)")
                        continue
                    page.wait_for_selector("[data-da2k-view=review].da2k-ready[data-pair]")
                    assert page.locator("#da2k-review-crop-a img").count() == 1
                    trail = page.inner_text(".da2k-trail")
                    assert "ann answered" in trail and "sent to review" in trail
                    assert page.locator(".da2k-votes li").count() == 3
                    page.fill("#da2k-review-note textarea", "<b>glass</b> door")
                    page.locator("#da2k-review-note textarea").press("Escape")
                    page.keyboard.press("d")
                    page.wait_for_function("() => /No conflicts for you/.test(document.body.innerText)")
    with Store(db) as store, store.read() as s:
        review = s.scalars(select(Review)).one()
        assert (review.pair_id, review.reviewer, review.decision) == (pid, "max", "discard")
        assert review.note == "<b>glass</b> door"  # stored as typed: text is data


def test_pick_and_stats_tabs(tmp_path):
    db = tmp_path / "p.db"
    with Store(db) as store:
        seed_store(store, 4, root=tmp_path / "photos", size=(120, 160))
    with serving(db, images_root=tmp_path / "photos", gold_rate=0.0) as url:
        with sync_api.sync_playwright() as p, browser_page(p, url, viewport=(1280, 900)) as page:
            start_as(page, url, "picker")
            page.get_by_role("tab", name="Pick").click()
            page.get_by_label("Path contains").fill("img00000")
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
            page.get_by_role("tab", name="Stats").click()
            page.click("#da2k-stats-refresh")
            page.wait_for_function('() => document.body.innerText.includes("Fleiss\' kappa")')
            assert page.locator("text=indoor").count() >= 1
    with Store(db) as store, store.read() as s:
        manual = s.scalars(select(Pair).where(Pair.source == "manual")).one()
    assert manual.status == "needs_human" and manual.p1_col < manual.p2_col
    assert abs(manual.p1_row - 60) <= 3 and abs(manual.p1_col - 40) <= 3  # (row, col) of a 120x160 image


def test_two_annotators_at_once_each_answer_only_what_they_saw(tmp_path):
    db = tmp_path / "two.db"
    with Store(db) as store:
        seed_store(store, 6, root=tmp_path / "photos", size=(60, 80))
    with serving(db, images_root=tmp_path / "photos", votes_per_pair=2, gold_rate=0.0) as url:
        with sync_api.sync_playwright() as p, browser_page(p, url) as one, browser_page(p, url) as two:
            pages = {"ann": one, "bob": two}
            state = {name: start_as(page, url, name) for name, page in pages.items()}
            given = {"ann": {}, "bob": {}}
            for i in range(10):
                for name, page in pages.items():
                    pair, token = state[name]
                    if pair is None:
                        continue
                    key = "ab"[(i + len(name)) % 2]
                    page.keyboard.press(key)
                    page.keyboard.press("b" if key == "a" else "a")  # an instant second press
                    given[name][pair] = key.upper()
                    state[name] = wait_ready(page, after=token)
    for name, answers in given.items():
        stored = votes_of(db, name)
        assert set(stored) == set(answers)
        for pair, said in answers.items():
            assert stored[pair][0] == stored_answer(said, stored[pair][1])
    with Store(db) as store, store.read() as s:
        assert {p.status for p in s.scalars(select(Pair))} <= {"resolved", "discarded"}


def test_a_phone_can_see_the_markers_and_reach_the_buttons(tmp_path):
    db = tmp_path / "ph.db"
    with Store(db) as store:
        seed_store(store, 3, root=tmp_path / "photos", size=(300, 400))
    with serving(db, images_root=tmp_path / "photos", gold_rate=0.0) as url:
        with sync_api.sync_playwright() as p:
            with browser_page(p, url, viewport=(390, 844), is_mobile=True, has_touch=True) as page:
                first, token = start_as(page, url, "phone")
                for selector in ("#da2k-full img", "#da2k-crop-a", "#da2k-crop-b", "#da2k-a", "#da2k-b", "#da2k-u"):
                    box = page.locator(selector).bounding_box()
                    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
                    assert box["y"] + box["height"] <= 844, selector
                assert page.locator("#da2k-a").bounding_box()["height"] >= 40  # a finger-sized target
                page.tap("#da2k-b")
                wait_ready(page, after=token)
    assert list(votes_of(db, "phone")) == [first]


def test_the_image_check_is_cached_per_file_version(tmp_path):
    from da2k.annotator_app.render import ImageProblem, load_verified

    path = tmp_path / "a.jpg"
    PILImage.new("RGB", (8, 6), (1, 2, 3)).save(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    first = load_verified([tmp_path], str(tmp_path), "a.jpg", sha)
    assert load_verified([tmp_path], str(tmp_path), "a.jpg", sha) is first  # no second read
    PILImage.new("RGB", (8, 6), (200, 2, 3)).save(path)
    with pytest.raises(ImageProblem, match="replaced"):
        load_verified([tmp_path], str(tmp_path), "a.jpg", sha)
