"""Debian's chromium driven by Playwright for the real-browser tests (never `playwright install`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip the calling test module where chromium is missing, except in CI, which installs it."""
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium (CI installs it)", allow_module_level=True)


def launch(playwright):
    """A headless chromium browser from a `sync_playwright()` context."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
