# -*- test-case-name: tests.test_push -*-
"""Web Push values: subscriptions, the file that keeps them, and the messages sent to them.

A subscription is what a browser's ``PushManager.subscribe`` gives (``{endpoint,
keys: {p256dh, auth}}``) and the kinds of event it asked for. A message is the JSON a
service worker shows as a notification (``{title, body, tag, url, event}``),
encrypted for one subscription with aes128gcm (RFC 8188, RFC 8291) by
:func:`encrypt`. All of it is pure: bytes and values in, bytes and values out.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from vibetwist.errors import BadRequest
from vibetwist.model.peercred import is_loopback_address

#: The kinds of event a subscription may pick: VibeTunnel's, and ``needs-input``.
PICKABLE = (
    "session-start",
    "session-exit",
    "command-finished",
    "command-error",
    "bell",
    "needs-input",
    "claude-turn",
)
#: What a subscription hears when it picks nothing: what needs the user.
DEFAULT_KINDS = ("session-exit", "command-finished", "command-error", "bell", "needs-input", "claude-turn")
#: POST /api/push/test sends this kind, to every subscription whatever it picked.
TEST = "test-notification"

MAX_ENDPOINT = 2048
MAX_SUBSCRIPTIONS = 100
#: Push services take 4096 bytes of encrypted body; aes128gcm adds 86 and a padding byte.
MAX_PAYLOAD = 3993
MAX_TEXT = 300
#: The file's version, for a later change of its shape.
STORE_VERSION = 1


def _unb64(text: Any, what: str) -> bytes:
    if not isinstance(text, str) or len(text) > 200:
        raise BadRequest(f"keys.{what} must be a base64url string")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise BadRequest(f"keys.{what} is not base64url") from None


def check_endpoint(endpoint: Any) -> str:
    """The endpoint URL, or BadRequest: https, or http to a loopback address (a push
    service on this machine)."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT:
        raise BadRequest(f"endpoint must be a URL of at most {MAX_ENDPOINT} characters")
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise BadRequest("endpoint is not a URL") from None
    if not parts.hostname or parts.username or parts.password or any(c in endpoint for c in " \r\n\t"):
        raise BadRequest("endpoint is not a URL of a push service")
    if parts.scheme == "https" or (
        parts.scheme == "http" and (parts.hostname == "localhost" or is_loopback_address(parts.hostname))
    ):
        return endpoint
    raise BadRequest("endpoint must be an https URL (or http to this machine)")


def audience(endpoint: str) -> str:
    """The VAPID audience of an endpoint: its origin, ``scheme://host[:port]``."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def check_kinds(kinds: Any) -> tuple[str, ...]:
    """The kinds a subscription picked, or BadRequest."""
    if kinds is None:
        return DEFAULT_KINDS
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise BadRequest("kinds must be an array of event kinds")
    unknown = sorted(set(kinds) - set(PICKABLE))
    if unknown:
        raise BadRequest(f"unknown event kinds: {', '.join(unknown)[:200]}; pick from {', '.join(PICKABLE)}")
    return tuple(k for k in PICKABLE if k in kinds)


@attrs.frozen
class Subscription:
    """One browser's subscription, and the kinds of event it hears."""

    endpoint: str
    #: The browser's P-256 public key (65 bytes, uncompressed) and its auth secret (16 bytes).
    p256dh: bytes = attrs.field(repr=False)
    auth: bytes = attrs.field(repr=False)
    kinds: tuple[str, ...] = DEFAULT_KINDS
    #: When it was made, seconds since the epoch.
    created: float = 0.0

    def wants(self, kind: str) -> bool:
        return kind == TEST or kind in self.kinds

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": _b64(self.p256dh), "auth": _b64(self.auth)},
            "kinds": list(self.kinds),
            "created": self.created,
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_subscription(body: Mapping[str, Any], created: float = 0.0) -> Subscription:
    """A subscription from a browser's ``PushSubscription`` JSON (with ``kinds``, optional),
    or BadRequest."""
    endpoint = check_endpoint(body.get("endpoint"))
    keys = body.get("keys")
    if not isinstance(keys, dict):
        raise BadRequest("keys must be an object with p256dh and auth")
    p256dh = _unb64(keys.get("p256dh"), "p256dh")
    auth = _unb64(keys.get("auth"), "auth")
    if len(p256dh) != 65 or p256dh[0] != 4:
        raise BadRequest("keys.p256dh must be an uncompressed P-256 public key (65 bytes)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError:
        raise BadRequest("keys.p256dh is not a point of P-256") from None
    if len(auth) != 16:
        raise BadRequest("keys.auth must be 16 bytes")
    return Subscription(endpoint, p256dh, auth, check_kinds(body.get("kinds")), created)


# -- the file that keeps them -------------------------------------------------------------


def encode_store(subscriptions: Iterable[Subscription]) -> bytes:
    body = {"version": STORE_VERSION, "subscriptions": [s.to_json() for s in subscriptions]}
    return (json.dumps(body, indent=1) + "\n").encode()


def decode_store(data: bytes) -> list[Subscription]:
    """The subscriptions of a store file; ValueError if it is not one. A subscription that
    no longer parses (a kind since retired, say) is left out."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(body, dict) or not isinstance(body.get("subscriptions"), list):
        raise ValueError("no subscriptions list in it")
    found = []
    for entry in body["subscriptions"][:MAX_SUBSCRIPTIONS]:
        if not isinstance(entry, dict):
            continue
        kinds = entry.get("kinds")
        if isinstance(kinds, list):
            entry = dict(entry, kinds=[k for k in kinds if k in PICKABLE])
        created = entry.get("created")
        when = float(created) if isinstance(created, int | float) else 0.0
        try:
            found.append(parse_subscription(entry, when))
        except BadRequest:
            continue
    return found


# -- messages -----------------------------------------------------------------------------


def _clip(text: Any, limit: int = MAX_TEXT) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _seconds(ms: Any) -> str:
    """A duration in milliseconds as people read it, in whole tenths (rounded down, as
    the browser client's notice.js does, so both say the same)."""
    if not isinstance(ms, int | float) or isinstance(ms, bool) or not math.isfinite(ms) or ms < 0:
        return ""
    tenths = int(ms // 100)
    if tenths < 600:
        return f"{tenths // 10}.{tenths % 10} s"
    seconds = tenths // 10
    return f"{seconds // 60} min {seconds % 60} s"


def notification(event: Mapping[str, Any]) -> dict[str, Any]:
    """What a service worker shows for an event of /api/events (its JSON): a title, a body,
    a tag (one notification per session and kind replaces the one before), the page to
    open, and the event itself."""
    kind = str(event.get("type", ""))
    name = _clip(event.get("sessionName") or event.get("sessionId") or "", 80)
    command = _clip(event.get("command") or "", 120)
    code = event.get("exitCode")
    took = _seconds(event.get("duration"))
    if kind == "session-start":
        title, body = "Session started", f"{name}: {command}" if command else name
    elif kind == "session-exit":
        title = "Session ended" if code in (0, None) else f"Session failed (exit {code})"
        body = f"{name}: {command}" if command else name
    elif kind == "command-finished":
        title, body = "Command finished", f"{command} ({took}) in {name}" if took else f"{command} in {name}"
    elif kind == "command-error":
        title = f"Command failed (exit {code})" if code is not None else "Command failed"
        body = f"{command} ({took}) in {name}" if took else f"{command} in {name}"
    elif kind == "bell":
        title, body = "Bell", name
    elif kind == "needs-input":
        title, body = "Waiting for input", name
    elif kind == TEST:
        title = _clip(event.get("title") or "vibetwist", 80)
        body = _clip(event.get("body") or event.get("message") or "Test notification")
    else:
        title = _clip(event.get("title") or kind, 80)
        body = _clip(event.get("body") or event.get("message") or name)
    session = event.get("sessionId")
    url = f"/#session={session}" if isinstance(session, str) else "/"
    return {
        "title": title,
        "body": _clip(body),
        "tag": f"vibetwist:{session}:{kind}" if session else f"vibetwist:{kind}",
        "url": url,
        "event": event,
    }


def payload(event: Mapping[str, Any]) -> bytes:
    """The notification for an event as the bytes a message carries, within what push
    services take: the title and body are clipped, and when the event's own fields
    make it too long, only its type, time, session and exit code go with it."""
    note = notification(event)
    data = json.dumps(note, ensure_ascii=False, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD:
        keep = {k: event[k] for k in ("type", "timestamp", "sessionId", "exitCode") if k in event}
        data = json.dumps(dict(note, event=keep), ensure_ascii=False, separators=(",", ":")).encode()
    return data


def encrypt(subscription: Subscription, plaintext: bytes) -> bytes:
    """plaintext encrypted for the subscription (aes128gcm, RFC 8291): a fresh ephemeral
    P-256 key and salt each time, in a single record."""
    return bytes(
        http_ece.encrypt(
            plaintext,
            salt=os.urandom(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            dh=subscription.p256dh,
            auth_secret=subscription.auth,
            version="aes128gcm",
        )
    )
