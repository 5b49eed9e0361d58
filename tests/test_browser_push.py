"""Session events and Web Push in real Chromium, against the real daemon.

The page follows /api/events: a toast for each kind of event picked, and a badge on
the session's card. Chromium is driven as in L{tests.test_browser}. Headless Chromium
has no push service of its own (its subscribe waits on Google's), so the page's
C{PushManager} hands out a subscription to the tests' push service
(L{tests.support.pushservice}), whose keys the test holds: the daemon sends to it, it
checks and decrypts the message, and hands what it read to the page's service worker
over the DevTools protocol (C{ServiceWorker.deliverPushMessage}), as Chromium's push
service would; the service worker then shows the notification.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import defer, reactor

from tests.support.browser import BrowserTestCase
from tests.support.daemon import poll
from tests.support.pushservice import PushService

#: The page's PushManager, handing out the subscription given as argument (a browser's
#: PushSubscription JSON) instead of asking a push service of Chromium's.
FAKE_PUSH_MANAGER = """
(subscription) => {
  let current = null;
  PushManager.prototype.subscribe = async function (options) {
    current = {
      endpoint: subscription.endpoint,
      options: { applicationServerKey: new Uint8Array(options.applicationServerKey).buffer },
      toJSON: () => subscription,
      unsubscribe: async () => { current = null; return true; },
    };
    return current;
  };
  PushManager.prototype.getSubscription = async function () { return current; };
}
"""
#: The service worker's notifications: [title, body, data] each.
NOTIFICATIONS = (
    "navigator.serviceWorker.ready.then((r) => r.getNotifications())"
    ".then((all) => all.map((n) => [n.title, n.body, n.data]))"
)


class PushBrowserTests(BrowserTestCase):
    """The browser client hears of session events, in the page and through Web Push."""

    async def test_toast_and_badge(self) -> None:
        """A session that fails while the list is open shows a toast saying so, and a
        badge on its card, which goes once the session has been opened."""
        page = await self.browser.page(self.url(), viewport={"width": 1000, "height": 700})
        await self.browser.run(lambda: page.wait_for_selector("ul.sessions", state="attached"))
        sid = await self.create(["sh", "-c", "sleep 0.5; exit 4"], name="tests", workingDir="/")
        card = f"li.session[data-id='{sid}']"

        def toast_and_badge() -> tuple[str, str]:
            toast = page.wait_for_selector(".toast[data-kind=session-exit]")
            badge = page.wait_for_selector(f"{card} .event-badge")
            return str(toast.inner_text()), str(badge.inner_text())

        toast, badge = await self.browser.run(toast_and_badge)
        self.assertIn("Session failed (exit 4)", toast)
        self.assertIn("tests: sh -c sleep 0.5; exit 4", toast)
        self.assertEqual(badge, "ended")
        await self.screenshot(page, "notifications-toast.png")

        def open_and_back() -> int:
            page.click(f"{card} a.title")
            page.wait_for_selector(".session-view")
            page.click("a.back")
            page.wait_for_selector(card)
            return int(page.locator(f"{card} .event-badge").count())

        self.assertEqual(await self.browser.run(open_and_back), 0)
        self.assertEqual(await self.browser.run(lambda: list(page.errors)), [])

    async def test_panel_and_push_notification(self) -> None:
        """In the notifications panel one picks the kinds (the page's toasts follow the
        choice) and turns push on for this device: the daemon then sends each event of a
        picked kind to the device's push service, signed and encrypted, and the service
        worker shows it as a notification that names the session."""
        push = PushService(reactor)
        await push.start()
        self.addCleanup(lambda: defer.ensureDeferred(push.stop()))
        push.vapid_key = (await self.client.get("/api/push/vapid-public-key"))["publicKey"]
        subscription = push.subscribe("chromium")
        before = (await self.client.get("/api/push/status"))["totalSubscriptions"]
        page = await self.browser.page("about:blank", permissions=["notifications"])

        def open_panel() -> tuple[list[str], str]:
            page.add_init_script(f"({FAKE_PUSH_MANAGER})({json.dumps(subscription)})")
            page.goto(self.url())
            page.evaluate("navigator.serviceWorker.ready")
            page.click("button.notifications")
            page.wait_for_selector(".settings .push-state:not(:empty)")
            checked = page.eval_on_selector_all(
                ".settings input[name=kind]", "(boxes) => boxes.filter((b) => b.checked).map((b) => b.value)"
            )
            # Session starts too, and no more session ends.
            page.check(".settings input[value=session-start]")
            page.uncheck(".settings input[value=session-exit]")
            page.click(".settings button:text('Notify this device')")
            page.wait_for_selector(".settings .push-state[data-subscribed=true]")
            return checked, str(page.inner_text(".settings .status-line"))

        checked, said = await self.browser.run(open_panel)
        await self.screenshot(page, "notifications-panel.png")
        self.assertEqual(
            checked,
            ["session-exit", "command-finished", "command-error", "bell", "needs-input", "claude-turn"],
        )
        self.assertIn("This device gets notifications", said)
        status = await self.client.get("/api/push/status")
        self.assertEqual(status["totalSubscriptions"], before + 1)

        sid = await self.create(["sh", "-c", "exit 5"], name="pushed")
        message = await push.wait(1, timeout=15)
        self.assertEqual(push.refused, [])
        self.assertEqual((message.payload["event"]["type"], message.payload["event"]["sessionId"]),
                         ("session-start", sid))  # fmt: skip

        def shown() -> Any:
            cdp = page.context.new_cdp_session(page)
            registrations: list[dict[str, Any]] = []
            cdp.on(
                "ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"])
            )
            cdp.send("ServiceWorker.enable")
            page.wait_for_function("navigator.serviceWorker.controller !== undefined")
            [registration] = [r for r in registrations if not r["isDeleted"]]
            cdp.send(
                "ServiceWorker.deliverPushMessage",
                {
                    "origin": self.daemon.origin,
                    "registrationId": registration["registrationId"],
                    "data": message.text,
                },
            )
            page.wait_for_function(f"{NOTIFICATIONS}.then((all) => all.length > 0)")
            # The test notification comes after every earlier event on /api/events.
            page.wait_for_selector(".toast[data-kind=test-notification]")
            kinds = page.eval_on_selector_all(".toast", "(all) => all.map((t) => t.dataset.kind)")
            return page.evaluate(NOTIFICATIONS), kinds

        await self.client.wait_status(sid, "exited")
        code, answer, _ = await self.client.request("POST", "/api/push/test", {"message": "all there"})
        self.assertEqual((code, answer["sent"]), (200, 1), answer)
        notifications, toasts = await self.browser.run(shown)
        [(title, body, data)] = notifications
        self.assertEqual((title, body), ("Session started", "pushed: sh -c exit 5"))
        self.assertEqual(data["url"], f"/#session={sid}")
        self.assertIn("session-start", toasts)
        self.assertNotIn("session-exit", toasts)
        await poll(reactor, lambda: len(push.messages) == 2, what="the test notification pushed")
        self.assertEqual(push.messages[1].payload["body"], "all there")
        self.assertEqual(await self.browser.run(lambda: list(page.errors)), [])
