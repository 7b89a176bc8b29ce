"""The built site in a real browser (Debian chromium driven by Playwright), opened from file://.

Set DA2K_LEADERBOARD_SCREENSHOT=docs/leaderboard.png to also save the README screenshot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser import launch, require_chromium
from playwright.sync_api import sync_playwright
from test_leaderboard import FIXTURES, make_bench

from da2k.leaderboard import build_site

require_chromium()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    build_site([FIXTURES], root / "site", images=make_bench(root))
    return root / "site"


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site):
    """index.html loaded, with every console error, page error and request recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems, page.requests = [], []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto((site / "index.html").as_uri(), wait_until="load")
    yield page
    context.close()


def group_names(page) -> list[str]:
    """Model names of the first row of each group, in page order."""
    return page.eval_on_selector_all(
        "table.leaderboard tbody", "bodies => bodies.map(b => b.rows[0].cells[1].dataset.value)"
    )


def test_page_loads_offline_without_errors_and_figures_render(page):
    assert page.problems == []
    assert page.requests and all(url.startswith("file://") for url in page.requests), page.requests
    widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(widths) == 3 and all(done and w > 0 for done, w in widths)


def test_clicking_a_header_sorts_the_groups(page):
    before = group_names(page)
    assert before[0] == "Depth Anything V2 ViT-G"  # best overall first
    page.click("th[data-label='Overall %'] button")  # was descending: now ascending
    after = group_names(page)
    assert after == list(reversed(before))
    assert page.get_attribute("th[data-label='Overall %']", "aria-sort") == "ascending"
    page.click("th[data-label='Indoor'] button")
    indoor = page.eval_on_selector_all(
        "table.leaderboard tbody tr:first-child", "rows => rows.map(r => r.cells[5].dataset.value)"
    )
    known = [float(v) for v in indoor if v]
    assert known == sorted(known, reverse=True) and indoor[-1] == ""  # missing values go last
    # the measured and reported rows of one model still share a group after sorting
    sizes = page.eval_on_selector_all("table.leaderboard tbody", "bodies => bodies.map(b => b.rows.length)")
    assert sorted(sizes)[-2:] == [2, 2]
    assert page.problems == []


def test_keyboard_sorts_with_enter_and_space(page):
    page.focus("th[data-label='Model'] button")
    page.keyboard.press("Enter")
    names = group_names(page)
    assert names == sorted(names, key=str.lower)
    assert page.get_attribute("th[data-label='Model']", "aria-sort") == "ascending"
    assert page.get_attribute("th[data-label='Overall %']", "aria-sort") is None
    page.keyboard.press("Space")
    assert group_names(page) == sorted(names, key=str.lower, reverse=True)
    assert page.get_attribute("th[data-label='Model']", "aria-sort") == "descending"
    assert "Sorted by Model, descending" in page.inner_text("#status-da-2k")


def test_phone_width_scrolls_the_table_not_the_page(browser, site):
    context = browser.new_context(viewport={"width": 375, "height": 740}, device_scale_factor=2)
    page = context.new_page()
    page.goto((site / "index.html").as_uri())
    wrap = page.eval_on_selector(".table-wrap", "w => [w.scrollWidth, w.clientWidth]")
    assert wrap[0] > wrap[1]  # the wide table scrolls inside its wrapper
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    context.close()


def test_gallery_page_loads_its_thumbnails(browser, site):
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((site / "gallery.html").as_uri() + "#aerial")
    thumbs = page.locator("img")
    assert thumbs.count() > 0
    for k in range(thumbs.count()):  # lazy images load once scrolled into view
        thumbs.nth(k).scroll_into_view_if_needed()
        thumbs.nth(k).evaluate(
            "i => i.complete || new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r); })"
        )
        assert thumbs.nth(k).evaluate("i => i.naturalWidth") > 0
    assert all(url.startswith("file://") for url in requests)
    page.close()


def test_screenshot_is_made_with_the_same_browser(page, tmp_path):
    shot = tmp_path / "leaderboard.png"
    page.set_viewport_size({"width": 1200, "height": 860})
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("DA2K_LEADERBOARD_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
