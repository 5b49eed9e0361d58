# -*- test-case-name: tests.test_push -*-
"""The answers of ``/api/push/*``, in VibeTunnel's shapes.

``GET /api/push/vapid-public-key`` gives browsers the key to subscribe with,
``POST /api/push/subscribe`` and ``unsubscribe`` keep or forget a browser's
subscription, ``POST /api/push/test`` sends every subscription a notification, and
``GET /api/push/status`` counts them. Without Web Push (``--no-push``) the key route
answers 503 ``{"error": "Push notifications not configured", "message": ...}``, as
VibeTunnel's does, and the others but the status answer 503 with that error too.
"""

from __future__ import annotations

from typing import Any

from vibetwist.errors import BadRequest, Conflict, RequestError
from vibetwist.model.webpush import MAX_SUBSCRIPTIONS, MAX_TEXT, check_endpoint, parse_subscription
from vibetwist.sessions.push import PushNotifier

PUSH_NOT_CONFIGURED = "Push notifications not configured"
OFF_MESSAGE = "This daemon runs with --no-push."
#: The status of a daemon without Web Push.
OFF = {
    "enabled": False,
    "configured": False,
    "hasVapidKeys": False,
    "totalSubscriptions": 0,
    "activeSubscriptions": 0,
}


class PushOff(RequestError):
    """This daemon sends no push notifications (HTTP 503)."""

    status = 503

    def __init__(self) -> None:
        super().__init__(PUSH_NOT_CONFIGURED, OFF_MESSAGE)


class PushAPI:
    """What the push routes answer, for a notifier (None: Web Push is off)."""

    def __init__(self, notifier: PushNotifier | None, clock: Any) -> None:
        self.notifier = notifier
        self._clock = clock

    def _on(self) -> PushNotifier:
        if self.notifier is None:
            raise PushOff()
        return self.notifier

    def public_key(self) -> tuple[dict[str, Any], int]:
        """The key's answer and status: 503 ``{error, message}`` without push, as VibeTunnel's."""
        if self.notifier is None:
            return {"error": PUSH_NOT_CONFIGURED, "message": OFF_MESSAGE}, 503
        return {"publicKey": self.notifier.key.public_key, "enabled": True}, 200

    def subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        notifier = self._on()
        subscription = parse_subscription(body, created=round(self._clock(), 3))
        if not notifier.subscribe(subscription):
            raise Conflict(f"This daemon keeps {MAX_SUBSCRIPTIONS} push subscriptions at most")
        return {"success": True, "kinds": list(subscription.kinds)}

    def unsubscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        notifier = self._on()
        endpoint = check_endpoint(body.get("endpoint"))
        return {"success": True, "removed": notifier.unsubscribe(endpoint)}

    async def test(self, body: dict[str, Any]) -> dict[str, Any]:
        notifier = self._on()
        message = body.get("message")
        if message is not None and (not isinstance(message, str) or len(message) > MAX_TEXT):
            raise BadRequest(f"message must be a string of at most {MAX_TEXT} characters")
        delivery = await notifier.test(message)
        return {
            "success": delivery.failed == 0 and delivery.dropped == 0,
            "message": f"Test notification sent to {delivery.sent} of "
            f"{delivery.sent + delivery.failed + delivery.dropped} subscriptions",
            "sent": delivery.sent,
            "failed": delivery.failed + delivery.dropped,
        }

    def status(self) -> dict[str, Any]:
        return dict(OFF) if self.notifier is None else self.notifier.status()
