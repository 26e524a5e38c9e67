"""Real headless Chromium (Debian's), driven by Playwright, for the browser tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Without the background-networking flags Chromium floods the closed network."""


def chromium_path() -> str:
    """Debian's Chromium (``scripts/setup --test`` installs it); skip the test without it."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed (scripts/setup --test installs it)")
    raise AssertionError  # pragma: no cover - skip raises


@contextmanager
def browser_context(
    profile: Path, *, width: int = 1400, height: int = 900
) -> Iterator[BrowserContext]:
    """A fresh Chromium profile in ``profile``; yields a Playwright BrowserContext."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path(),
            args=list(CHROMIUM_FLAGS),
            headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()
