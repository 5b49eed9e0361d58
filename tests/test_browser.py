"""The browser client in real Chromium, against the real daemon.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright for Python
without any browser download. Playwright's API blocks, so every call to it runs
in one thread of its own (L{tests.support.browser.Browser.run}) while the reactor goes on serving the
test's own clients. The tests take screenshots of the session list and of a
session: into a temporary folder of the test's, or into ``docs/screenshots/`` for
the README when C{VIBETWIST_SCREENSHOTS} is set (``./dev screenshots`` sets it).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Protocol
from twisted.protocols import portforward
from twisted.trial.unittest import SkipTest

from tests.support.browser import (
    BrowserTestCase,
    goes_on,
    no_errors,
    phone_screen,
    run_line,
    wait_live,
    wait_terminal,
)
from tests.support.daemon import Client, Daemon, poll, sleep
from tests.support.programs import HEX_ECHO

#: A program that prints its terminal's size at the start and on every SIGWINCH.
SIZE_ECHO = (
    "import os, signal, time\n"
    "def show(*_):\n"
    "    size = os.get_terminal_size(0)\n"
    "    os.write(1, f'size {size.columns}x{size.lines}\\r\\n'.encode())\n"
    "signal.signal(signal.SIGWINCH, show)\n"
    "show()\n"
    "while True:\n"
    "    time.sleep(60)\n"
)


class _Relay(portforward.ProxyServer):
    """A relayed connection that its factory can cut."""

    factory: Network

    def connectionMade(self) -> None:
        self.factory.open.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.open.discard(self)
        super().connectionLost(reason)


class Network(portforward.ProxyFactory):
    """A TCP relay in front of the daemon whose "network" can be cut and restored."""

    protocol = _Relay

    def __init__(self, port: int) -> None:
        super().__init__("127.0.0.1", port)
        self.open: set[Protocol] = set()
        self.listening: Any = None
        #: Where the relay listens (self.port is the daemon's).
        self.relay_port = 0

    def up(self) -> None:
        self.listening = reactor.listenTCP(self.relay_port, self, interface="127.0.0.1")
        self.relay_port = self.listening.getHost().port

    async def down(self) -> None:
        """Refuse new connections and drop every open one, as a lost network would."""
        await self.listening.stopListening()
        for relay in list(self.open):
            relay.transport.abortConnection()
            if relay.peer is not None and relay.peer.transport is not None:
                relay.peer.transport.abortConnection()
        await sleep(reactor, 0.05)


def paste(page: Any, text: str) -> None:
    """Paste text into the terminal, as the browser does on Ctrl+V."""
    page.evaluate(
        """(text) => {
            const data = new DataTransfer();
            data.setData("text/plain", text);
            const event = new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true});
            document.querySelector(".xterm-helper-textarea").dispatchEvent(event);
        }""",
        text,
    )


class BrowserTests(BrowserTestCase):
    """The client served at / drives sessions the way a user would."""

    async def session_page(self, command: list[str], fragment: str = "", **context: Any) -> tuple[str, Any]:
        """A new session running command, open in a new page; its id and the page."""
        sid = await self.create(command)
        await self.client.wait_status(sid, "running")
        page = await self.browser.page(self.url(f"#session={sid}{fragment}"), **context)
        return sid, page

    async def test_create_type_and_see(self) -> None:
        """A session started from the page's form opens in the terminal; typing `echo hi`
        runs it and `hi` appears, on the page and on the session's screen; pasted text
        reaches the program too; the list then shows the session with a live preview."""
        page = await self.browser.page(self.url(), viewport={"width": 1100, "height": 700})

        def start() -> str:
            page.fill("input[name=command]", "bash")
            page.fill("input[name=name]", "browser demo")
            page.click("form.create button[type=submit]")
            page.wait_for_url(re.compile(r"#session="))
            wait_live(page)
            run_line(page, "echo hi", r"^hi\s*$")
            return str(page.evaluate("location.hash")).split("session=")[1]

        sid = await self.browser.run(start)
        self.sessions.append(sid)
        await self.client.wait_text(sid, "\nhi")
        info = await self.client.session(sid)
        self.assertEqual((info["name"], info["command"]), ("browser demo", ["bash"]))

        await self.browser.run(paste, page, "echo pasted-$((4*4))")
        await self.browser.run(run_line, page, "", r"^pasted-16\s*$")
        await self.browser.run(run_line, page, "ls --color=always -F /usr", r"share/")
        await self.screenshot(page, "session.png")

        def back_to_list() -> str:
            page.click("a.back")
            page.wait_for_selector(f"li.session[data-id='{sid}'] .preview div")
            preview = "document.querySelector(`li.session[data-id='${id}'] .preview`)"
            page.wait_for_function(f"(id) => {preview}.innerText.includes('hi')", arg=sid)
            return str(page.inner_text(f"li.session[data-id='{sid}']"))

        card = await self.browser.run(back_to_list)
        self.assertIn("browser demo", card)
        self.assertIn("running", card)
        await self.screenshot(page, "list.png")
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def test_window_size_reaches_the_terminal(self) -> None:
        """The terminal follows the browser window: after the window shrinks, `stty size`
        in the session reports the terminal's new size."""
        sid, page = await self.session_page(["bash"], viewport={"width": 1000, "height": 700})

        def stty_size(label: str) -> tuple[int, int]:
            pattern = rf"^{label}: (\d+) (\d+)\s*$"
            text = run_line(page, f"clear; echo {label}: $(stty size)", pattern)
            rows, cols = re.search(pattern, text, re.M).groups()  # type: ignore[union-attr]
            return int(rows), int(cols)

        def shown_rows() -> int:
            return int(page.evaluate("document.querySelectorAll('.xterm-rows > div').length"))

        await self.browser.run(wait_live, page)
        big = await self.browser.run(stty_size, "big")
        self.assertEqual(big[0], await self.browser.run(shown_rows))
        await self.browser.run(page.set_viewport_size, {"width": 600, "height": 400})

        async def resized() -> bool:
            buffer = await self.client.get(f"/api/sessions/{sid}/buffer")
            return int.from_bytes(buffer[4:8], "little") < big[1]

        await poll(reactor, resized, 10.0, what="the session's terminal narrower")
        small = await self.browser.run(stty_size, "small")
        self.assertLess(small[0], big[0])
        self.assertLess(small[1], big[1])
        self.assertEqual(small[0], await self.browser.run(shown_rows))

    async def test_reload_restores_the_screen(self) -> None:
        """Reloading the page draws the session's screen again from the daemon, and the
        session goes on."""
        sid, page = await self.session_page(["bash"])
        await self.browser.run(wait_live, page)
        await self.browser.run(run_line, page, "echo before-$((6*7))", r"^before-42\s*$")

        def reload() -> str:
            page.reload()
            return goes_on(page, r"^before-42\s*$", "echo after-$((6*8))", r"^after-48\s*$")

        restored = await self.browser.run(reload)
        self.assertIn("echo before-$((6*7))", restored)
        await self.client.wait_text(sid, "after-48")

    async def test_lost_network_reconnects(self) -> None:
        """When the network goes, the page says it is reconnecting (and that the daemon is
        unreachable); when it comes back, the page reconnects by itself, the screen is
        restored and typing works again."""
        network = Network(self.daemon.port)
        network.up()
        self.addCleanup(lambda: network.listening.stopListening())
        sid = await self.create(["bash"])
        await self.client.wait_status(sid, "running")
        page = await self.browser.page(f"http://127.0.0.1:{network.relay_port}/#session={sid}")
        await self.browser.run(wait_live, page)
        await self.browser.run(run_line, page, "echo kept-$((2*21))", r"^kept-42\s*$")

        await network.down()

        def banner() -> str:
            page.wait_for_selector(".banner[data-kind=reconnecting]")
            page.wait_for_function("() => /unreachable/.test(document.querySelector('.banner').textContent)")
            return str(page.inner_text(".banner"))

        shown = await self.browser.run(banner)
        self.assertIn("daemon is unreachable", shown)
        # Output written while the page was away is there once it is back.
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "echo away-$((3*5))\r"})
        network.up()

        text = await self.browser.run(goes_on, page, r"^away-15\s*$", "echo back-$((7*7))", r"^back-49\s*$")
        self.assertIn("kept-42", text)
        await self.client.wait_text(sid, "back-49")

    async def test_restart_in_place_reconnects(self) -> None:
        """When the daemon restarts in place, the page says so (its socket closed with 1012),
        reconnects by itself without backing off, redraws the screen, and typing works again."""
        daemon = await self.start_daemon()
        client = self.client_for(daemon)
        sid = await client.create(["bash"])
        await client.wait_status(sid, "running")
        page = await self.browser.page(daemon.url(f"/#session={sid}"))

        def before() -> None:
            wait_live(page)
            run_line(page, "echo before-$((6*7))", r"^before-42\s*$")
            page.evaluate(
                """() => {
                    window.closes = [];
                    const banner = document.querySelector(".banner");
                    new MutationObserver(() => window.closes.push(banner.textContent))
                        .observe(banner, {childList: true, characterData: true, subtree: true});
                }"""
            )

        await self.browser.run(before)
        await daemon.restart()
        text = await self.browser.run(
            goes_on, page, r"^before-42\s*$", "echo after-$((6*8))", r"^after-48\s*$"
        )
        self.assertIn("echo before-$((6*7))", text)
        banners = await self.browser.run(page.evaluate, "window.closes")
        self.assertTrue(any("restarting" in b for b in banners), banners)
        self.assertFalse(any("Reconnecting in" in b for b in banners), banners)
        await client.wait_text(sid, "after-48")
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def assert_typing_refused(self, sid: str, page: Any, token: str = "") -> None:
        """The page shows the session read-only, what is typed on it never reaches the
        program, and a read-only socket opened from the page is refused input by the daemon."""

        def try_typing() -> tuple[str, bool, Any]:
            page.wait_for_selector(".badge.readonly")
            wait_live(page)
            wait_terminal(page, r"READY")
            page.locator(".term-box").click()
            page.keyboard.type("leak")
            page.keyboard.press("Enter")
            refused = page.evaluate(
                """([id, token]) => new Promise((resolve) => {
                    const url = new URL(`/ws/sessions/${id}?readonly=1`, location.href);
                    if (token) url.searchParams.set("token", token);
                    url.protocol = "ws:";
                    const ws = new WebSocket(url);
                    ws.onmessage = (event) => {
                      if (typeof event.data !== "string") return;
                      const message = JSON.parse(event.data);
                      const input = {type: "input", data: "leak\\r"};
                      if (message.type === "replay") ws.send(JSON.stringify(input));
                      if (message.type === "error") { ws.close(); resolve(message.message); }
                    };
                    setTimeout(() => resolve(null), 5000);
                })""",
                [sid, token],
            )
            return str(page.inner_text(".badge.readonly")), page.locator(".keybar").count() > 0, refused

        badge, keybar, refused = await self.browser.run(try_typing)
        self.assertEqual(badge, "read-only")
        self.assertFalse(keybar)
        self.assertIsNotNone(refused)
        self.assertIn("read-only", refused)
        # The program reads every byte it gets and prints it as hex: nothing came.
        await sleep(reactor, 0.5)
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "ok"})
        screen = await self.client.wait_text(sid, "<6f6b>")
        self.assertEqual(re.findall(r"<[0-9a-f]*>", screen), ["<6f6b>"])
        # The read-only page follows the session live.
        await self.browser.run(wait_terminal, page, "<6f6b>")

    async def test_read_only_view_refuses_typing(self) -> None:
        """/#session=ID&readonly=1 shows the session read-only: typing is refused by the
        page and by the daemon, and the program receives nothing."""
        sid, page = await self.session_page(["python3", "-c", HEX_ECHO], "&readonly=1")
        await self.assert_typing_refused(sid, page)

    async def test_share_link_refuses_typing(self) -> None:
        """The read-only link of POST /api/sessions/ID/share opens the session read-only:
        typing is refused by the page and by the daemon."""
        sid = await self.create(["python3", "-c", HEX_ECHO])
        await self.client.wait_status(sid, "running")
        code, body, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        if code == 404:
            raise SkipTest("this daemon has no share route yet (POST /api/sessions/ID/share answered 404)")
        self.assertEqual(code, 200, body)
        self.assertEqual(body["url"], f"/#session={sid}&share={body['token']}")
        page = await self.browser.page(self.daemon.url(body["url"]))
        await self.assert_typing_refused(sid, page, body["token"])

    async def test_phone(self) -> None:
        """On a 375x667 phone screen the page fits, shows the key bar, and its keys (Esc,
        a sticky Ctrl, arrows) and a phone keyboard's text input reach the program."""
        phone = phone_screen(375, 667)
        sid, page = await self.session_page(["python3", "-c", HEX_ECHO], **phone)

        def keys() -> tuple[bool, int, int]:
            wait_live(page)
            wait_terminal(page, "READY")
            bar = page.locator(".keybar")
            visible = bar.is_visible()
            box = bar.bounding_box()
            page.tap(".keybar [data-key=Esc]")
            wait_terminal(page, "<1b>")
            page.tap(".keybar [data-key=Ctrl]")
            page.keyboard.insert_text("c")
            wait_terminal(page, "<03>")
            page.tap(".keybar [data-key='↑']")
            wait_terminal(page, "<1b5b41>")
            # What a phone keyboard sends: text inserted by the input method, and a
            # composition (an accented letter built in two steps).
            page.keyboard.insert_text("hé")
            wait_terminal(page, "<68c3a9>")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Input.imeSetComposition", {"text": "ü", "selectionStart": 1, "selectionEnd": 1})
            cdp.send("Input.insertText", {"text": "ü"})
            wait_terminal(page, "<c3bc>")
            width = int(page.evaluate("document.scrollingElement.scrollWidth"))
            return visible, int(box["y"] + box["height"]), width

        visible, bottom, width = await self.browser.run(keys)
        self.assertTrue(visible)
        self.assertLessEqual(bottom, 667)
        self.assertLessEqual(width, 375)
        screen = await self.client.wait_text(sid, "<c3bc>")
        received = re.findall(r"<[0-9a-f]*>", screen)
        self.assertEqual(received, ["<1b>", "<03>", "<1b5b41>", "<68c3a9>", "<c3bc>"])
        await self.screenshot(page, "phone.png")

    async def test_list_actions(self) -> None:
        """From the list: rename a session, download its recording (an asciicast v2 file),
        kill it, and clean up exited sessions. Share either gives a read-only link or,
        when the daemon has no share route, says so and hides the button."""
        sid = await self.create(["sh", "-c", "echo recorded-$((5*5)); exec sleep 60"])
        await self.client.wait_text(sid, "recorded-25")
        page = await self.browser.page(self.url())
        card = f"li.session[data-id='{sid}']"

        def rename_and_download() -> bytes:
            page.once("dialog", lambda dialog: dialog.accept("renamed here"))
            page.click(f"{card} button:text('Rename')")
            page.wait_for_selector(f"{card} .title:text('renamed here')")
            with page.expect_download() as download:
                page.click(f"{card} button:text('Recording')")
            return Path(download.value.path()).read_bytes()

        cast = await self.browser.run(rename_and_download)
        self.assertEqual((await self.client.session(sid))["name"], "renamed here")
        lines = [json.loads(line) for line in cast.splitlines()]
        self.assertEqual(lines[0]["version"], 2)
        self.assertIn("recorded-25", "".join(e[2] for e in lines[1:] if e[1] == "o"))

        def share() -> tuple[str, str]:
            page.click(f"{card} button:text('Share')")
            page.wait_for_function(
                f'() => document.querySelector("{card} .share-link input") || '
                "/read-only links/.test(document.querySelector('.status-line').textContent)"
            )
            link = page.locator(f"{card} .share-link input")
            return (link.input_value() if link.count() else ""), str(page.inner_text(".status-line"))

        code, _, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        link, status = await self.browser.run(share)
        if code == 404:
            self.assertIn("cannot make read-only links", status)
            self.assertEqual(await self.browser.run(lambda: page.locator("button:text('Share')").count()), 0)
        else:
            self.assertRegex(link, rf"^http://127\.0\.0\.1:\d+/#session={sid}&share=.+")

        def kill_and_clean() -> None:
            page.click(f"{card} button:text('Kill')")
            page.wait_for_selector(f"{card}[data-status=exited]")
            page.click("button:text('Clean up exited')")
            page.wait_for_selector(card, state="detached")

        await self.browser.run(kill_and_clean)
        code, _, _ = await self.client.request("GET", f"/api/sessions/{sid}")
        self.assertEqual(code, 404)

    async def test_login_form(self) -> None:
        """Against a daemon with login on (user and password in its environment), the
        page shows a login form; a wrong password is refused with a message, and after
        the right one the page keeps the token it got and sends it as a Bearer token."""
        base = Path(tempfile.mkdtemp(prefix="e2e-login-", dir=os.getcwd()))
        daemon = Daemon(
            reactor, base, env={"VIBETUNNEL_USERNAME": "me", "VIBETUNNEL_PASSWORD": "right horse"}
        )
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        page = await self.browser.page("about:blank")
        seen: list[str | None] = []

        def log_in() -> str:
            def request(r: Any) -> None:
                if r.url.endswith("/api/sessions"):
                    seen.append(r.all_headers().get("authorization"))

            page.on("request", request)
            page.goto(daemon.url("/"))
            page.fill("input[name=userId]", "me")
            page.fill("input[name=password]", "wrong")
            page.click("form.login button[type=submit]")
            page.wait_for_selector("form.login .status-line:text('Wrong user or password.')")
            page.fill("input[name=password]", "right horse")
            page.click("form.login button[type=submit]")
            page.wait_for_selector("ul.sessions", state="attached")
            return str(page.evaluate("localStorage.getItem('vibetwist.token')"))

        token = await self.browser.run(log_in)
        self.assertIn(f"Bearer {token}", seen)
        client = Client(reactor, daemon, token=token)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        self.assertEqual((await client.get("/api/auth/verify"))["userId"], "me")

    async def test_ended_session(self) -> None:
        """A session whose program ended says so, with its exit code."""
        sid = await self.create(["sh", "-c", "echo done; exit 3"])
        await self.client.wait_status(sid, "exited")
        page = await self.browser.page(self.url(f"#session={sid}"))

        def ended() -> tuple[str, str]:
            page.wait_for_selector(".banner[data-kind=ended]")
            return str(page.inner_text(".banner")), wait_terminal(page, "^done")

        banner, _ = await self.browser.run(ended)
        self.assertIn("exit code 3", banner)

    async def test_daemon_unreachable(self) -> None:
        """A page whose daemon is gone says the daemon is unreachable."""
        network = Network(self.daemon.port)
        network.up()
        page = await self.browser.page(f"http://127.0.0.1:{network.relay_port}/")
        await self.browser.run(lambda: page.wait_for_selector("ul.sessions", state="attached"))
        await network.down()

        def status() -> str:
            page.wait_for_selector(".status-line[data-kind=offline]")
            return str(page.inner_text(".status-line"))

        self.assertIn("daemon is unreachable", await self.browser.run(status))

    async def test_key_bar_fits_phones(self) -> None:
        """On phones 320, 375 and 414 px wide every key of the key bar is on the screen,
        at least 36 px tall, with nothing to scroll sideways, and the last key works."""
        phone = phone_screen(320, 640)
        _, page = await self.session_page(["python3", "-c", HEX_ECHO], **phone)

        def measure(width: int) -> dict[str, Any]:
            page.set_viewport_size({"width": width, "height": 640})
            wait_live(page)
            wait_terminal(page, "READY")
            return dict(
                page.evaluate(
                    """() => ({
                        keys: [...document.querySelectorAll('.keybar button')].map((b) => {
                            const r = b.getBoundingClientRect();
                            return {key: b.dataset.key, left: r.left, right: r.right, height: r.height};
                        }),
                        page: document.scrollingElement.scrollWidth,
                        bar: document.querySelector('.keybar').scrollWidth,
                        barBox: document.querySelector('.keybar').clientWidth,
                    })"""
                )
            )

        for width in (414, 375, 320):
            shown = await self.browser.run(measure, width)
            self.assertEqual(len(shown["keys"]), 11)
            for key in shown["keys"]:
                self.assertGreaterEqual(key["left"], 0, (width, key))
                self.assertLessEqual(key["right"], width, (width, key))
                self.assertGreaterEqual(key["height"], 36, (width, key))
            self.assertLessEqual(shown["page"], width)
            self.assertLessEqual(shown["bar"], shown["barBox"])

        def last_key() -> str:
            page.tap(".keybar [data-key='-']")
            return wait_terminal(page, "<2d>")

        await self.browser.run(last_key)
        await self.screenshot(page, "phone-narrow.png")
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def pty_size(self, sid: str) -> tuple[int, int]:
        """The size, (cols, rows), that a SIZE_ECHO session's program last saw."""
        sizes = re.findall(r"size (\d+)x(\d+)", await self.client.text(sid))
        cols, rows = sizes[-1]
        return int(cols), int(rows)

    async def test_key_bar_stays_above_the_keyboard(self) -> None:
        """When the phone's keyboard covers the lower part of the screen (the visual
        viewport shrinks, the window does not), the key bar moves above it, and the
        terminal refits: the PTY gets fewer rows; when the keyboard goes, they come back.
        Headless Chromium has no on-screen keyboard, so the page's visualViewport is
        made to report the smaller height and fire its resize event, as a phone does."""
        phone = phone_screen(375, 667)
        sid, page = await self.session_page(["python3", "-c", SIZE_ECHO], **phone)
        await self.browser.run(wait_live, page)
        await self.browser.run(wait_terminal, page, "size")

        async def fitted() -> bool:
            return (await self.pty_size(sid))[0] < 80

        await poll(reactor, fitted, 10.0, what="the PTY fitted to the phone")
        before = await self.pty_size(sid)

        def keyboard(height: int | None) -> None:
            page.evaluate(
                """(height) => {
                    if (height === null) delete visualViewport.height;
                    else Object.defineProperty(
                        visualViewport, 'height', {get: () => height, configurable: true});
                    visualViewport.dispatchEvent(new Event('resize'));
                }""",
                height,
            )

        def bar_bottom() -> float:
            box = page.locator(".keybar").bounding_box()
            return float(box["y"] + box["height"])

        await self.browser.run(keyboard, 350)
        self.assertLessEqual(await self.browser.run(bar_bottom), 350)

        async def fewer_rows() -> bool:
            return (await self.pty_size(sid))[1] < before[1]

        await poll(reactor, fewer_rows, 10.0, what="fewer rows with the keyboard open")
        with_keyboard = await self.pty_size(sid)
        self.assertEqual(with_keyboard[0], before[0])

        await self.browser.run(keyboard, None)
        self.assertGreater(await self.browser.run(bar_bottom), 600)

        async def rows_back() -> bool:
            return await self.pty_size(sid) == before

        await poll(reactor, rows_back, 10.0, what="the rows back once the keyboard is gone")

    async def test_read_only_view_scales_to_a_narrow_screen(self) -> None:
        """A read-only viewer on a phone sees the whole width of a 120-column session (its
        font shrinks), and the PTY keeps its size: read-only viewers never resize it."""
        sid = await self.create(
            ["python3", "-c", "print('x' * 117 + 'END')\n" + SIZE_ECHO], cols=120, rows=30
        )
        await self.client.wait_text(sid, "END")
        phone = phone_screen(375, 667)
        page = await self.browser.page(self.url(f"#session={sid}&readonly=1"), **phone)

        def shown(width: int) -> dict[str, float]:
            page.set_viewport_size({"width": width, "height": 667})
            wait_live(page)
            wait_terminal(page, "END")
            page.wait_for_function(
                "(width) => document.querySelector('.xterm-screen').getBoundingClientRect().right <= width",
                arg=width,
            )
            return dict(
                page.evaluate(
                    """() => ({
                        right: document.querySelector('.xterm-screen').getBoundingClientRect().right,
                        page: document.scrollingElement.scrollWidth,
                    })"""
                )
            )

        for width in (375, 320):
            seen = await self.browser.run(shown, width)
            self.assertLessEqual(seen["right"], width)
            # No smaller than it needs to be: the session fills most of the width.
            self.assertGreater(seen["right"], 0.8 * width)
            self.assertLessEqual(seen["page"], width)
            self.assertEqual(await self.pty_size(sid), (120, 30))
            if width == 375:
                await self.screenshot(page, "phone-read-only.png")
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def test_read_only_view_pans_past_the_smallest_font(self) -> None:
        """A session too wide even at the smallest font pans sideways in its own box: the
        page itself does not scroll, the far end can be scrolled into view, and the PTY
        keeps its size."""
        program = "print('y' * 247 + 'FAR')\n" + SIZE_ECHO
        sid = await self.create(["python3", "-c", program], cols=250, rows=20)
        await self.client.wait_text(sid, "FAR")
        phone = phone_screen(320, 640)
        page = await self.browser.page(self.url(f"#session={sid}&readonly=1"), **phone)

        def pan() -> dict[str, float]:
            wait_live(page)
            wait_terminal(page, "FAR")
            return dict(
                page.evaluate(
                    """() => {
                        const box = document.querySelector('.term-box');
                        const before = {wide: box.scrollWidth, room: box.clientWidth};
                        box.scrollLeft = box.scrollWidth;
                        const screen = document.querySelector('.xterm-screen').getBoundingClientRect();
                        return {...before, right: screen.right, page: document.scrollingElement.scrollWidth};
                    }"""
                )
            )

        seen = await self.browser.run(pan)
        self.assertGreater(seen["wide"], seen["room"])
        self.assertLessEqual(seen["right"], 320)
        self.assertLessEqual(seen["page"], 320)
        self.assertEqual(await self.pty_size(sid), (250, 20))
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def test_phone_keyboard_input(self) -> None:
        """What a phone keyboard (GBoard) sends reaches the program once: the hidden
        textarea asks for no capitalising, correcting or suggesting; text composed in
        steps arrives once when it is committed, a Backspace during the composition
        takes back only the composed letter, and Backspace and Enter from the phone
        keyboard send DEL and CR."""
        phone = phone_screen(375, 667)
        sid, page = await self.session_page(["python3", "-c", HEX_ECHO], **phone)

        def type_on_phone() -> dict[str, str | None]:
            wait_live(page)
            wait_terminal(page, "READY")
            area = page.locator(".xterm-helper-textarea")
            area.focus()
            attributes = {
                name: area.get_attribute(name)
                for name in ("autocapitalize", "autocorrect", "autocomplete", "spellcheck")
            }
            cdp = page.context.new_cdp_session(page)
            # A word composed letter by letter, then committed.
            for text in ("h", "he", "hel"):
                cdp.send(
                    "Input.imeSetComposition",
                    {"text": text, "selectionStart": len(text), "selectionEnd": len(text)},
                )
            cdp.send("Input.insertText", {"text": "hel"})
            wait_terminal(page, "<68656c>")
            # Backspace while composing: the composition shrinks, nothing is sent yet.
            for text in ("ab", "a"):
                cdp.send(
                    "Input.imeSetComposition",
                    {"text": text, "selectionStart": len(text), "selectionEnd": len(text)},
                )
            cdp.send("Input.insertText", {"text": "a"})
            wait_terminal(page, "<61>")
            page.keyboard.press("Backspace")
            wait_terminal(page, "<7f>")
            page.keyboard.press("Enter")
            wait_terminal(page, "<0d>")
            # GBoard's Enter: a keydown with key code 229, then a line break as text.
            cdp.send(
                "Input.dispatchKeyEvent",
                {"type": "rawKeyDown", "key": "Unidentified", "windowsVirtualKeyCode": 229},
            )
            cdp.send("Input.insertText", {"text": "\n"})
            cdp.send(
                "Input.dispatchKeyEvent",
                {"type": "keyUp", "key": "Unidentified", "windowsVirtualKeyCode": 229},
            )
            wait_terminal(page, "<0d>\\s*\\n<0d>")
            page.keyboard.insert_text("ok")
            wait_terminal(page, "<6f6b>")
            return attributes

        attributes = await self.browser.run(type_on_phone)
        self.assertEqual(
            attributes,
            {"autocapitalize": "off", "autocorrect": "off", "autocomplete": "off", "spellcheck": "false"},
        )
        screen = await self.client.wait_text(sid, "<6f6b>")
        self.assertEqual(
            re.findall(r"<[0-9a-f]*>", screen), ["<68656c>", "<61>", "<7f>", "<0d>", "<0d>", "<6f6b>"]
        )
        self.assertEqual(await self.browser.run(no_errors, page), [])

    def count_config_requests(self, page: Any) -> list[str]:
        """The URLs of the page's GET /api/auth/config requests, from now on."""
        seen: list[str] = []
        page.on("request", lambda r: seen.append(r.url) if r.url.endswith("/api/auth/config") else None)
        return seen

    async def test_stale_token_without_login(self) -> None:
        """A token left in localStorage by an earlier daemon, on a daemon with login off
        (which ignores it): the page drops it and goes on without login, both on the list
        and on a session, with no login form and no loop."""
        sid = await self.create(["python3", "-c", HEX_ECHO])
        await self.client.wait_status(sid, "running")
        code, _, _ = await self.client.request("GET", "/api/auth/config")
        self.assertEqual(code, 200)
        page = await self.browser.page(self.url())

        def with_stale_token(fragment: str) -> tuple[int, bool, Any]:
            page.evaluate("localStorage.setItem('vibetwist.token', 'stale-token')")
            seen = self.count_config_requests(page)
            page.goto(self.url(fragment))
            page.reload()
            if fragment:
                wait_live(page)
                wait_terminal(page, "READY")
            else:
                page.wait_for_selector("ul.sessions", state="attached")
            page.wait_for_timeout(1500)
            return (
                len(seen),
                page.locator("form.login").count() > 0,
                page.evaluate("localStorage.getItem('vibetwist.token')"),
            )

        for fragment in ("", f"#session={sid}"):
            configs, form, token = await self.browser.run(with_stale_token, fragment)
            self.assertFalse(form, fragment)
            self.assertIsNone(token, fragment)
            self.assertLessEqual(configs, 4, fragment)
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def test_expired_token_with_login(self) -> None:
        """With login on, a token the daemon no longer accepts leads to the login form
        (once, not in a loop), and logging in again works."""
        base = Path(tempfile.mkdtemp(prefix="e2e-login-", dir=os.getcwd()))
        daemon = Daemon(reactor, base, env={"VIBETUNNEL_USERNAME": "me", "VIBETUNNEL_PASSWORD": "pw"})
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        page = await self.browser.page(daemon.url("/"))

        def expired() -> tuple[int, str]:
            page.wait_for_selector("form.login")
            page.evaluate("localStorage.setItem('vibetwist.token', 'expired-token')")
            seen = self.count_config_requests(page)
            page.reload()
            page.wait_for_selector("form.login")
            page.wait_for_timeout(1500)
            configs = len(seen)
            page.fill("input[name=userId]", "me")
            page.fill("input[name=password]", "pw")
            page.click("form.login button[type=submit]")
            page.wait_for_selector("ul.sessions", state="attached")
            return configs, str(page.evaluate("localStorage.getItem('vibetwist.token')"))

        configs, token = await self.browser.run(expired)
        self.assertLessEqual(configs, 2)
        self.assertNotEqual(token, "expired-token")
        client = Client(reactor, daemon, token=token)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        self.assertEqual((await client.get("/api/auth/verify"))["userId"], "me")
        self.assertEqual(await self.browser.run(no_errors, page), [])
