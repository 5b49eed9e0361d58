"""Debian's Chromium driven by Playwright for Python, without any browser download, and
L{BrowserTestCase}, the base of the tests that drive it against the real daemon.

Playwright's API blocks, so every call to it runs in one thread of its own
(L{Browser.run}) while the reactor goes on serving the test's own clients.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import defer, reactor, threads
from twisted.python.threadpool import ThreadPool

from tests.support.e2e import DaemonTestCase

T = TypeVar("T")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: The README's pictures, written only when VIBETWIST_SCREENSHOTS is set (./dev screenshots).
README_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: Playwright's own waits, in milliseconds.
WAIT_MS = 15000


class Browser:
    """Chromium through Playwright; every Playwright call runs in one thread of its own."""

    def __init__(self) -> None:
        self._pool = ThreadPool(1, 1, name="playwright")
        self._pool.start()
        self._playwright: Any = None
        self.chromium: Any = None

    def run(self, f: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """f(*args) in the browser's thread."""
        return threads.deferToThreadPool(reactor, self._pool, f, *args)

    async def start(self) -> None:
        if not Path(CHROMIUM).exists():
            raise AssertionError("chromium is missing: ./dev test and .ci/run install Debian's chromium")

        def launch() -> None:
            from playwright.sync_api import sync_playwright

            self._playwright = sync_playwright().start()
            self.chromium = self._playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
            )

        await self.run(launch)

    async def page(self, url: str, **context: Any) -> Any:
        """A new page (in a context of its own, with these options) at url."""

        def open_page() -> Any:
            page = self.chromium.new_context(**context).new_page()
            page.set_default_timeout(WAIT_MS)
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            page.goto(url)
            return page

        return await self.run(open_page)

    async def close(self) -> None:
        def stop() -> None:
            if self.chromium is not None:
                self.chromium.close()
            if self._playwright is not None:
                self._playwright.stop()

        try:
            await self.run(stop)
        finally:
            self._pool.stop()


class BrowserTestCase(DaemonTestCase):
    """Tests against the class's daemon with a Chromium of each test's own (C{self.browser})."""

    timeout = 180

    async def _set_up(self) -> None:
        await super()._set_up()
        self.browser = Browser()
        self.addCleanup(lambda: defer.ensureDeferred(self.browser.close()))
        await self.browser.start()

    def url(self, fragment: str = "") -> str:
        """The daemon's page, with this fragment."""
        return self.daemon.url("/") + fragment

    async def screenshot(self, page: Any, name: str) -> None:
        """Save what page shows as name: into the README's pictures if asked, else into a
        folder of this test's under trial's temporary directory, so a run leaves the
        checkout as it was."""
        if os.environ.get("VIBETWIST_SCREENSHOTS"):
            folder = README_SCREENSHOTS
        else:
            if not hasattr(self, "_screenshots"):
                self._screenshots = Path(self.mktemp())
            folder = self._screenshots
        folder.mkdir(parents=True, exist_ok=True)
        await self.browser.run(lambda: page.screenshot(path=str(folder / name)))
