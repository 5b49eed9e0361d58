"""Debian's Chromium driven by Playwright for Python, without any browser download, and
L{BrowserTestCase}, the base of the tests that drive it against the real daemon; with
what the browser tests read of a page and do to it (a terminal's text, typing a line,
the host groups of a gateway's list), run in the browser's thread.

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


# -- what the tests read of a page and do to it ---------------------------------------------


def phone_screen(width: int, height: int) -> dict[str, Any]:
    """Playwright page options for a phone: a touch screen of this size."""
    return {"viewport": {"width": width, "height": height}, "is_mobile": True, "has_touch": True}


#: The terminal's text as xterm.js shows it.
TERMINAL_TEXT = "() => document.querySelector('.xterm-rows')?.innerText ?? ''"
#: True once the terminal's text matches the regular expression given as argument.
TERMINAL_MATCHES = (
    "(pattern) => new RegExp(pattern, 'm').test(document.querySelector('.xterm-rows')?.innerText ?? '')"
)


def text_of(page: Any) -> str:
    return str(page.evaluate(TERMINAL_TEXT))


def wait_terminal(page: Any, pattern: str) -> str:
    """The terminal's text once a line matches pattern."""
    page.wait_for_function(TERMINAL_MATCHES, arg=pattern)
    return text_of(page)


def wait_live(page: Any) -> None:
    page.wait_for_selector(".state[data-state=live]")


def type_line(page: Any, line: str) -> None:
    page.locator(".xterm-helper-textarea").focus()
    page.keyboard.type(line)
    page.keyboard.press("Enter")


def run_line(page: Any, line: str, pattern: str) -> str:
    """Type line and Enter; the terminal's text once a line matches pattern."""
    type_line(page, line)
    return wait_terminal(page, pattern)


def goes_on(page: Any, restored: str, line: str, pattern: str) -> str:
    """Once the page is connected again with no banner up and its screen matches restored,
    run line (whose output matches pattern); the restored screen's text."""
    wait_live(page)
    page.wait_for_selector(".banner", state="hidden")
    text = wait_terminal(page, restored)
    run_line(page, line, pattern)
    return text


def no_errors(page: Any) -> list[str]:
    return list(page.errors)


# -- the page a gateway serves -------------------------------------------------------------

#: Each group of the list as [host, status, summary, note].
GROUPS = """() => [...document.querySelectorAll("section.host-group")].map((group) => [
    group.dataset.host, group.dataset.status,
    group.querySelector(".host-summary").textContent,
    group.querySelector(".host-note").hidden ? null : group.querySelector(".host-note").textContent,
])"""
#: The host of each card shown, by session id.
CARD_HOSTS = """() => Object.fromEntries([...document.querySelectorAll("li.session")].map((card) => [
    card.dataset.id, [card.closest("section.host-group")?.dataset.host ?? null,
                      card.querySelector(".host-tag")?.textContent ?? null]]))"""
#: True once the preview of the session given (by id, with text) shows the text.
PREVIEW_SHOWS = """([id, text]) => (document.querySelector(`li.session[data-id='${id}'] .preview`)
    ?.innerText ?? "").includes(text)"""
#: The host picker's choices as [value, label].
PICKER_CHOICES = (
    "() => [...document.querySelectorAll('select[name=host] option')].map((o) => [o.value, o.text])"
)


def shows(page: Any, session_id: str, text: str) -> None:
    """Wait until the list's preview of the session shows text."""
    page.wait_for_function(PREVIEW_SHOWS, arg=[session_id, text])


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
