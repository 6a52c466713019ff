"""The browser fleet and headless Chromium, one of each per module (Playwright's sync API
holds an event loop in this thread while it runs, which tests of other modules that
start their own loop must not find)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_fleet import BrowserFleet, browser_fleet, launch_chromium


@pytest.fixture(scope="module")
def fleet(shared_zoo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserFleet]:
    with browser_fleet(shared_zoo_dir, tmp_path_factory.mktemp("browser-fleet")) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium: Any) -> Iterator[Any]:
    """A fresh browser profile per test: no cached model, no queued request."""
    ctx = chromium.new_context()
    yield ctx
    ctx.close()
