"""The browser client served by a gateway, in real Chromium.

The gateway is L{tests.support.gateway.FakeGateway}: the answers a cluster gateway
gives (sessions with their host, ``/api/hosts``, ``"gateway": true`` in
``/api/config``) in front of one real daemon, whose page, sockets and streams it
relays. The page groups the sessions by host, filters them, starts them on the host
picked, says when a session's host is unreachable, and comes back by itself, every
view redrawn, when the gateway dies and another answers on the same address.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import defer, reactor

from tests.support.browser import (
    CARD_HOSTS,
    GROUPS,
    PICKER_CHOICES,
    PREVIEW_SHOWS,
    BrowserTestCase,
    goes_on,
    no_errors,
    phone_screen,
    run_line,
    shows,
    wait_live,
    wait_terminal,
)
from tests.support.daemon import poll
from tests.support.gateway import FakeGateway, host_view

#: Collects every text a terminal view's banner shows from now on, into window.banners.
WATCH_BANNER = """() => {
    window.banners = [];
    new MutationObserver(() => {
        const text = document.querySelector(".banner")?.textContent ?? "";
        if (text && window.banners[window.banners.length - 1] !== text) window.banners.push(text);
    }).observe(document.body, {childList: true, characterData: true, subtree: true});
}"""


class GatewayBrowserTests(BrowserTestCase):
    """The page as a gateway serves it; the class's daemon is the one host behind it."""

    async def gateway(self, hosts: list[dict[str, Any]], default_host: str = "alpha") -> FakeGateway:
        gateway = FakeGateway(reactor, self.daemon, hosts, default_host)
        gateway.start()
        self.addCleanup(lambda: defer.ensureDeferred(gateway.close()))
        return gateway

    async def test_groups_filter_and_picker(self) -> None:
        """At 360 px wide: a heading per host with its status and counts (a down host's
        saying so), each card in its host's group and naming it; the filter shows one
        host, and is kept over a reload; the form's host picker offers "any" then the up
        hosts, and sends the host picked (none for "any")."""
        gateway = await self.gateway(
            [host_view("bravo", "up", 2, 1), host_view("alpha", "up", 1), host_view("charlie", "down", 3)]
        )
        on_alpha = await self.create(["sh", "-c", "echo on-alpha; exec sleep 60"])
        on_bravo = await self.create(["sh", "-c", "echo on-bravo; exec sleep 60"])
        gateway.owners[on_bravo] = "bravo"
        page = await self.browser.page(gateway.url("/"), **phone_screen(360, 740))

        def grouped() -> tuple[Any, Any, int]:
            page.wait_for_selector(f"section.host-group[data-host=bravo] li.session[data-id='{on_bravo}']")
            page.wait_for_selector(f"section.host-group[data-host=alpha] li.session[data-id='{on_alpha}']")
            page.wait_for_function(PREVIEW_SHOWS, arg=[on_alpha, "on-alpha"])
            page.wait_for_function(PREVIEW_SHOWS, arg=[on_bravo, "on-bravo"])
            return (
                page.evaluate(GROUPS),
                page.evaluate(CARD_HOSTS),
                page.evaluate("document.scrollingElement.scrollWidth"),
            )

        groups, cards, width = await self.browser.run(grouped)
        self.assertEqual(
            groups,
            [
                ["alpha", "up", "up · 1 running, 0 exited", None],
                ["bravo", "up", "up · 2 running, 1 exited", None],
                ["charlie", "down", "down · 3 running, 0 exited",
                 "This host is not answering: its sessions are not listed."],
            ],
        )  # fmt: skip
        self.assertEqual(cards[on_alpha], ["alpha", "alpha"])
        self.assertEqual(cards[on_bravo], ["bravo", "bravo"])
        self.assertLessEqual(width, 360)
        # The picture shows every group: the phone's width, as tall as the list.
        await self.browser.run(page.set_viewport_size, {"width": 360, "height": 1560})
        await self.screenshot(page, "phone-hosts.png")
        await self.browser.run(page.set_viewport_size, {"width": 360, "height": 740})

        def filtered() -> tuple[Any, Any, Any, Any]:
            page.select_option("select[name=hostFilter]", "bravo")
            page.wait_for_selector(f"li.session[data-id='{on_alpha}']", state="detached")
            shown = page.evaluate(GROUPS)
            page.reload()
            page.wait_for_selector(f"li.session[data-id='{on_bravo}']")
            kept = page.evaluate(GROUPS), page.input_value("select[name=hostFilter]")
            page.select_option("select[name=hostFilter]", "")
            page.wait_for_selector(f"li.session[data-id='{on_alpha}']")
            return shown, kept[0], kept[1], page.evaluate(GROUPS)

        shown, kept, value, again = await self.browser.run(filtered)
        self.assertEqual([g[0] for g in shown], ["bravo"])
        self.assertEqual(([g[0] for g in kept], value), (["bravo"], "bravo"))
        self.assertEqual([g[0] for g in again], ["alpha", "bravo", "charlie"])

        def start(host: str, word: str) -> tuple[Any, str]:
            page.goto(gateway.url("/"))
            page.wait_for_selector("select[name=host] option[value=bravo]", state="attached")
            choices = page.evaluate(PICKER_CHOICES)
            page.fill("input[name=command]", f"sh -c 'echo {word}-$((6*7)); exec sleep 60'")
            page.select_option("select[name=host]", host)
            page.click("form.create button[type=submit]")
            page.wait_for_url(re.compile(r"#session="))
            wait_live(page)
            wait_terminal(page, rf"^{word}-42\s*$")
            return choices, str(page.evaluate("location.hash")).split("session=")[1]

        choices, anywhere = await self.browser.run(start, "", "anywhere")
        self.sessions.append(anywhere)
        self.assertEqual(choices, [["", "any (least busy)"], ["alpha", "alpha"], ["bravo", "bravo"]])
        choices, picked = await self.browser.run(start, "bravo", "picked")
        self.sessions.append(picked)
        self.assertEqual([body.get("host") for body in gateway.created], [None, "bravo"])
        self.assertEqual(gateway.created[1]["command"], ["sh", "-c", "echo picked-$((6*7)); exec sleep 60"])

        def listed() -> Any:
            page.click("a.back")
            page.wait_for_selector(f"section.host-group[data-host=bravo] li.session[data-id='{picked}']")
            return page.evaluate(CARD_HOSTS)

        cards = await self.browser.run(listed)
        self.assertEqual((cards[picked], cards[anywhere]), (["bravo", "bravo"], ["alpha", "alpha"]))
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def test_plain_host_shows_no_hosts(self) -> None:
        """Served by a plain daemon the list has no host groups, filter, picker or host
        names: one list of cards, as always."""
        sid = await self.create(["sh", "-c", "echo plain; exec sleep 60"])
        page = await self.browser.page(self.url(), **phone_screen(360, 740))

        def look() -> tuple[int, bool, bool, int, str]:
            page.wait_for_selector(f"ul.sessions[aria-label=Sessions] > li.session[data-id='{sid}']")
            page.wait_for_function(PREVIEW_SHOWS, arg=[sid, "plain"])
            return (
                page.locator("section.host-group").count(),
                page.locator("select[name=hostFilter]").is_visible(),
                page.locator("select[name=host]").is_visible(),
                page.locator(".host-tag").count(),
                page.inner_text(f"li.session[data-id='{sid}'] .meta"),
            )

        groups, filter_shown, picker_shown, tags, meta = await self.browser.run(look)
        self.assertEqual((groups, filter_shown, picker_shown, tags), (0, False, False, 0))
        # Only what the card has: no "null" for a badge it has not.
        self.assertEqual(meta.split(), ["running", "sh", "-c", '"echo', "plain;", "exec", "sleep", '60"',
                                        str(self.daemon.home)])  # fmt: skip

    async def test_gateway_comes_back(self) -> None:
        """When the gateway dies and one answers again on the same address, the open
        terminal view reconnects by itself, is redrawn from the fresh replay (output
        written meanwhile included) and takes typing again; the list's live preview
        shows the session's screen again; and the event stream, though the new gateway
        first refuses it, comes back and brings the next event's toast."""
        gateway = await self.gateway([host_view("alpha", "up", 1)])
        sid = await self.create(["bash"])
        await self.client.wait_status(sid, "running")
        terminal = await self.browser.page(gateway.url(f"/#session={sid}"))
        listing = await self.browser.page(gateway.url("/"))
        await self.browser.run(wait_live, terminal)
        # The bar names the session's host.
        host = await self.browser.run(lambda: terminal.locator(".session-view .bar .host-tag").inner_text())
        self.assertEqual(host, "alpha")
        await self.browser.run(run_line, terminal, "echo before-$((6*7))", r"^before-42\s*$")
        await self.browser.run(shows, listing, sid, "before-42")

        await gateway.stop()

        def reconnecting() -> str:
            terminal.wait_for_selector(".banner[data-kind=reconnecting]")
            terminal.wait_for_function(
                "() => /unreachable/.test(document.querySelector('.banner').textContent)"
            )
            listing.wait_for_selector(".status-line[data-kind=offline]")
            return str(terminal.inner_text(".banner"))

        self.assertIn("daemon is unreachable", await self.browser.run(reconnecting))
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "echo away-$((3*5))\r"})
        gateway.refuse_events = True
        gateway.start()

        text = await self.browser.run(
            goes_on, terminal, r"^away-15\s*$", "echo back-$((7*7))", r"^back-49\s*$"
        )
        self.assertIn("before-42", text)
        await self.client.wait_text(sid, "back-49")
        await self.browser.run(shows, listing, sid, "back-49")
        await self.browser.run(lambda: listing.wait_for_selector(".status-line:not([data-kind=offline])"))

        # Each page's event stream was refused at least once, and is tried again.
        await poll(
            reactor, lambda: gateway.refused_events >= 4, timeout=10, what="the event streams tried again"
        )
        gateway.refuse_events = False
        await poll(
            reactor, lambda: gateway.relaying("/api/events") == 2, timeout=10, what="the event streams back"
        )
        ended = await self.create(["sh", "-c", "exit 3"])
        toast = await self.browser.run(
            lambda: listing.wait_for_selector(".toast[data-kind=session-exit]").inner_text()
        )
        self.assertIn("exit 3", toast)
        self.assertTrue(ended)
        self.assertEqual(await self.browser.run(no_errors, terminal), [])
        self.assertEqual(await self.browser.run(no_errors, listing), [])

    async def test_unreachable_host(self) -> None:
        """A gateway's error frame saying the session's host is unreachable shows in the
        terminal view, which keeps asking, more slowly each time, and shows the session
        again once the host is back."""
        gateway = await self.gateway([host_view("alpha", "up", 1)])
        sid = await self.create(["bash"])
        await self.client.wait_status(sid, "running")
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "echo here-$((6*7))\r"})
        await self.client.wait_text(sid, "here-42")
        gateway.unreachable.add("alpha")
        page = await self.browser.page(gateway.url("/"))

        def notice() -> tuple[str, str]:
            page.wait_for_selector("form.create")
            page.evaluate(WATCH_BANNER)
            page.evaluate("(id) => { location.hash = `#session=${id}`; }", sid)
            page.wait_for_selector(".banner[data-kind=unreachable]")
            page.wait_for_function("() => window.banners.some((text) => /attempt 2/.test(text))")
            return str(page.inner_text(".banner")), str(page.inner_text(".state"))

        banner, state = await self.browser.run(notice)
        self.assertIn("host alpha is unreachable", banner)
        self.assertEqual(state, "unreachable")
        banners = await self.browser.run(page.evaluate, "window.banners")
        self.assertIn("The session's host alpha is unreachable. Trying again in 2 s (attempt 1)…", banners)
        self.assertIn("The session's host alpha is unreachable. Trying again in 4 s (attempt 2)…", banners)

        gateway.unreachable.clear()
        text = await self.browser.run(goes_on, page, r"^here-42\s*$", "echo again-$((7*7))", r"^again-49\s*$")
        self.assertIn("echo here-$((6*7))", text)
        self.assertEqual(await self.browser.run(no_errors, page), [])
