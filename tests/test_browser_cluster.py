"""The browser client served by real cluster gateways, in real Chromium.

Each test of L{ClusterBrowserTests} runs a real nats-server, two host daemons
(``--nats --host-id``) and one or two gateway daemons (``--gateway --nats``), each a
process of its own (L{tests.support.cluster.Cluster}), and opens the page a gateway
serves: the sessions of both hosts grouped by host, typing into a session of each, a
session started on the host picked; a host killed with ``kill -9`` shown down, and
its open session unreachable; and, with the page behind a load balancer
(L{tests.support.balancer.Balancer}), the gateway it uses killed with ``kill -9`` and
the page carrying on through the other one by itself. L{BalancerTests} checks the
balancer itself over real sockets.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.trial import unittest

from tests.support.balancer import Balancer
from tests.support.browser import (
    CARD_HOSTS,
    GROUPS,
    PICKER_CHOICES,
    BrowserTestCase,
    goes_on,
    no_errors,
    run_line,
    shows,
    wait_live,
    wait_terminal,
)
from tests.support.cluster import Cluster
from tests.support.daemon import poll

#: The host the terminal view's bar names.
BAR_HOST = "() => document.querySelector('.session-view .bar .host-tag')?.textContent ?? null"


class ClusterBrowserTests(BrowserTestCase):
    """The page as real gateways serve it, in front of two real hosts."""

    shared = False
    timeout = 240

    async def cluster(self, gateways: tuple[str, ...]) -> Cluster:
        """A started cluster: hosts alpha and beta, these gateways; ended after the test."""
        base = Path(tempfile.mkdtemp(prefix="cluster-browser-", dir=os.getcwd()))
        cluster = Cluster(reactor, base)
        self.addCleanup(lambda: defer.ensureDeferred(cluster.stop()))
        await cluster.start(("alpha", "beta"), gateways)
        return cluster

    async def test_sessions_of_two_hosts(self) -> None:
        """The gateway's page lists the sessions of both hosts, each in its host's group
        and naming its host; a session of alpha, then one of beta, opened from the list
        takes a typed command, whose output shows in the terminal and in the owner's own
        text of the session; a session started with the host picker set to beta is made
        on beta."""
        cluster = await self.cluster(("gw-a",))
        gateway = cluster.gateways["gw-a"]
        sids = {}
        for host in ("alpha", "beta"):
            sids[host], made_on = await cluster.create(
                "gw-a", ["bash"], host=host, name=f"shell-{host}", cols=80, rows=24
            )
            self.assertEqual(made_on, host)
            await cluster.client(host).wait_status(sids[host], "running", timeout=10)
        page = await self.browser.page(gateway.url("/"))

        def grouped() -> tuple[Any, Any]:
            for host, sid in sids.items():
                page.wait_for_selector(f"section.host-group[data-host={host}] li.session[data-id='{sid}']")
            return page.evaluate(GROUPS), page.evaluate(CARD_HOSTS)

        groups, cards = await self.browser.run(grouped)
        self.assertEqual([(g[0], g[1]) for g in groups], [("alpha", "up"), ("beta", "up")])
        for host, sid in sids.items():
            self.assertEqual(cards[sid], [host, host])
        await self.screenshot(page, "cluster-hosts.png")

        for host, product in (("alpha", 42), ("beta", 63)):
            sid = sids[host]

            def open_and_type(sid: str = sid, host: str = host, product: int = product) -> tuple[Any, str]:
                page.click(f"section.host-group[data-host={host}] li.session[data-id='{sid}'] a.title")
                page.wait_for_url(re.compile(f"#session={sid}"))
                wait_live(page)
                page.wait_for_function(f"() => ({BAR_HOST})() === {host!r}")
                text = run_line(page, f"echo on-{host}-$((7*{product // 7}))", rf"^on-{host}-{product}\s*$")
                return page.evaluate(BAR_HOST), text

            bar, text = await self.browser.run(open_and_type)
            self.assertEqual(bar, host)
            self.assertIn(f"on-{host}-{product}", text)
            owner = cluster.client(host)
            self.assertIn(
                f"on-{host}-{product}", await owner.wait_text(sid, f"on-{host}-{product}", timeout=10)
            )
            other = cluster.client("beta" if host == "alpha" else "alpha")
            self.assertNotIn(sid, {s["id"] for s in await other.get("/api/sessions")})
            await self.browser.run(page.click, "a.back")

        def start_on_beta() -> tuple[Any, str]:
            page.wait_for_selector("select[name=host] option[value=beta]", state="attached")
            choices = page.evaluate(PICKER_CHOICES)
            page.fill("input[name=command]", "sh -c 'echo picked-$((6*7)); exec cat'")
            page.select_option("select[name=host]", "beta")
            page.click("form.create button[type=submit]")
            page.wait_for_url(re.compile(r"#session="))
            wait_live(page)
            wait_terminal(page, r"^picked-42\s*$")
            page.wait_for_function(f"() => ({BAR_HOST})() === 'beta'")
            return choices, str(page.evaluate("location.hash")).split("session=")[1]

        choices, picked = await self.browser.run(start_on_beta)
        cluster.sessions.add(picked)
        self.assertEqual(choices, [["", "any (least busy)"], ["alpha", "alpha"], ["beta", "beta"]])
        on_beta = await cluster.client("beta").session(picked)
        self.assertEqual(on_beta["command"], ["sh", "-c", "echo picked-$((6*7)); exec cat"])
        code, _, _ = await cluster.client("alpha").request("GET", f"/api/sessions/{picked}")
        self.assertEqual(code, 404)

        def listed() -> Any:
            page.click("a.back")
            page.wait_for_selector(f"section.host-group[data-host=beta] li.session[data-id='{picked}']")
            shows(page, picked, "picked-42")
            return page.evaluate(CARD_HOSTS)

        cards = await self.browser.run(listed)
        self.assertEqual(cards[picked], ["beta", "beta"])
        self.assertEqual(await self.browser.run(no_errors, page), [])

    async def test_gateway_killed_behind_a_balancer(self) -> None:
        """Pages opened through a balancer in front of gw-a: a terminal of a session of
        each host and the list. gw-a is killed with kill -9 and the balancer sent to gw-b:
        each terminal reconnects by itself and is redrawn (output written while it was
        away included) and takes typing again; the list's previews come back."""
        cluster = await self.cluster(("gw-a", "gw-b"))
        balancer = Balancer(reactor, cluster.gateways["gw-a"].port)
        balancer.start()
        self.addCleanup(lambda: defer.ensureDeferred(balancer.stop()))
        sids = {}
        for host in ("alpha", "beta"):
            sids[host], _ = await cluster.create("gw-a", ["bash"], host=host, cols=80, rows=24)
            await cluster.client(host).wait_status(sids[host], "running", timeout=10)
        terminals = {
            host: await self.browser.page(balancer.url(f"/#session={sid}")) for host, sid in sids.items()
        }
        listing = await self.browser.page(balancer.url("/"))
        for host, page in terminals.items():
            await self.browser.run(wait_live, page)
            await self.browser.run(run_line, page, f"echo before-{host}-$((6*7))", rf"^before-{host}-42\s*$")
            await self.browser.run(shows, listing, sids[host], f"before-{host}-42")
        gw_b = cluster.gateways["gw-b"].port
        self.assertEqual(balancer.accepted.get(gw_b), None)

        await cluster.gateways["gw-a"].crash()

        def reconnecting(page: Any) -> None:
            page.wait_for_selector(".banner[data-kind=reconnecting]")

        for page in terminals.values():
            await self.browser.run(reconnecting, page)
        await self.browser.run(lambda: listing.wait_for_selector(".status-line[data-kind=offline]"))
        for host, sid in sids.items():
            await cluster.client(host).request(
                "POST", f"/api/sessions/{sid}/input", {"text": "echo away-$((3*5))\r"}
            )
            await cluster.client(host).wait_text(sid, "away-15", timeout=10)
        balancer.switch(gw_b)

        for host, page in terminals.items():
            text = await self.browser.run(
                goes_on, page, r"^away-15\s*$", f"echo back-{host}-$((7*7))", rf"^back-{host}-49\s*$"
            )
            self.assertIn(f"before-{host}-42", text)
            await cluster.client(host).wait_text(sids[host], f"back-{host}-49", timeout=10)
        for host, sid in sids.items():
            await self.browser.run(shows, listing, sid, f"back-{host}-49")
        await self.browser.run(lambda: listing.wait_for_selector(".status-line:not([data-kind=offline])"))
        self.assertGreater(balancer.accepted.get(gw_b, 0), 0)
        for page in [*terminals.values(), listing]:
            self.assertEqual(await self.browser.run(no_errors, page), [])

    async def test_host_killed(self) -> None:
        """Host beta killed with kill -9: the list says beta is down and no longer lists
        its session, alpha's session goes on in it; the open terminal of beta's session
        says the host is unreachable, as the gateway's error frame and 503 tell it."""
        cluster = await self.cluster(("gw-a",))
        gateway = cluster.gateways["gw-a"]
        sids = {}
        for host in ("alpha", "beta"):
            sids[host], _ = await cluster.create("gw-a", ["bash"], host=host, cols=80, rows=24)
            await cluster.client(host).wait_status(sids[host], "running", timeout=10)
        listing = await self.browser.page(gateway.url("/"))
        terminal = await self.browser.page(gateway.url(f"/#session={sids['beta']}"))
        await self.browser.run(wait_live, terminal)
        await self.browser.run(run_line, terminal, "echo here-$((6*7))", r"^here-42\s*$")
        await self.browser.run(shows, listing, sids["beta"], "here-42")

        await cluster.hosts["beta"].crash()
        await cluster.wait_hosts({"alpha": "up", "beta": "down"}, timeout=10)

        def beta_down() -> Any:
            listing.wait_for_selector("section.host-group[data-host=beta][data-status=down]", timeout=30000)
            listing.wait_for_selector(f"li.session[data-id='{sids['beta']}']", state="detached")
            return listing.evaluate(GROUPS)

        groups = await self.browser.run(beta_down)
        self.assertEqual(
            [(g[0], g[1], g[3]) for g in groups],
            [
                ("alpha", "up", None),
                ("beta", "down", "This host is not answering: its sessions are not listed."),
            ],
        )
        alpha = sids["alpha"]
        await cluster.client("alpha").request(
            "POST", f"/api/sessions/{alpha}/input", {"text": "echo still-$((5*5))\r"}
        )
        await self.browser.run(shows, listing, alpha, "still-25")

        def unreachable() -> tuple[str, str]:
            # The tunnel of the open view ends when its keepalives stop (15 s).
            terminal.wait_for_selector(".banner[data-kind=unreachable]", timeout=40000)
            return str(terminal.inner_text(".banner")), str(terminal.inner_text(".state"))

        banner, state = await self.browser.run(unreachable)
        self.assertIn("host beta is unreachable", banner)
        self.assertEqual(state, "unreachable")
        self.assertEqual(await self.browser.run(no_errors, listing), [])
        self.assertEqual(await self.browser.run(no_errors, terminal), [])


class _Named(protocol.Protocol):
    """A backend that says its name, then echoes what it gets."""

    def connectionMade(self) -> None:
        self.transport.write(self.factory.name)  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class _Reader(protocol.Protocol):
    def __init__(self) -> None:
        self.got = b""
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.got += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True


class BalancerTests(unittest.TestCase):
    """The balancer the browser tests put in front of gateways, over real sockets."""

    def backend(self, name: bytes) -> int:
        factory = protocol.Factory.forProtocol(_Named)
        factory.name = name  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return int(port.getHost().port)

    async def connect(self, balancer: Balancer) -> _Reader:
        reader: _Reader = await protocol.ClientCreator(reactor, _Reader).connectTCP(
            "127.0.0.1", balancer.port
        )
        self.addCleanup(lambda: reader.transport.abortConnection() if not reader.closed else None)
        return reader

    async def test_switch_and_refused_backend(self) -> None:
        """Connections go to the backend pointed at when they arrive, both ways; one open
        before a switch stays on its backend; a backend that refuses closes the connection."""
        first, second = self.backend(b"first:"), self.backend(b"second:")
        balancer = Balancer(reactor, first)
        balancer.start()
        self.addCleanup(lambda: defer.ensureDeferred(balancer.stop()))
        old = await self.connect(balancer)
        old.transport.write(b"ping")
        await poll(reactor, lambda: old.got == b"first:ping", 5, what="the first backend's echo")
        balancer.switch(second)
        new = await self.connect(balancer)
        new.transport.write(b"pong")
        old.transport.write(b"again")
        await poll(reactor, lambda: new.got == b"second:pong", 5, what="the second backend's echo")
        await poll(reactor, lambda: old.got == b"first:pingagain", 5, what="the open connection kept")
        self.assertEqual(balancer.accepted, {first: 1, second: 1})

        free = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
        gone = free.getHost().port
        await free.stopListening()
        balancer.switch(gone)
        refused = await self.connect(balancer)
        await poll(reactor, lambda: refused.closed, 5, what="the connection to a refusing backend closed")
        self.assertEqual(refused.got, b"")
