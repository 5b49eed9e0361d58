"""A Web Push service of the tests' own, on loopback, and browsers' subscriptions to it.

L{PushService} is an HTTP server on 127.0.0.1 that takes what a daemon posts to a
subscription's endpoint the way a real push service does: it checks the VAPID
``Authorization: vapid t=JWT,k=KEY`` header (the key must be the daemon's, the JWT an
ES256 signature by it, for this service's origin, not expired), and decrypts the
aes128gcm body with C{http_ece} and the private key of the subscription, which
L{BrowserKeys} made as a browser does. Each endpoint answers 201, or the status set
for it with L{PushService.answer} (410: the subscription is gone).
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

import attrs
import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet import defer, endpoints, task
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import Site


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BrowserKeys:
    """What a browser makes for one subscription: a P-256 key pair and a 16-byte auth secret."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def subscription(self, endpoint: str, **more: Any) -> dict[str, Any]:
        """The PushSubscription JSON a browser would post, with more fields."""
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(self.p256dh), "auth": b64url(self.auth)},
            **more,
        }

    def decrypt(self, body: bytes) -> bytes:
        return bytes(
            http_ece.decrypt(body, private_key=self.private_key, auth_secret=self.auth, version="aes128gcm")
        )


@attrs.frozen
class Message:
    """One message a push service took, checked and decrypted."""

    path: str
    #: When it arrived (time.time()).
    arrived: float
    headers: dict[str, str]
    claims: dict[str, Any]
    #: The decrypted body, and what it says.
    text: str
    payload: dict[str, Any]


class _Endpoint(Resource):
    isLeaf = True

    def __init__(self, service: PushService) -> None:
        super().__init__()
        self._service = service

    def render_POST(self, request: Any) -> bytes:
        arrived = time.time()
        path = request.path.decode()
        headers = {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        body = request.content.read()
        service = self._service
        if service.check_later:
            service.unchecked.append((path, arrived, headers, body))
            return b""
        try:
            message = service.check(path, headers, body, arrived)
        except Exception as e:
            service.refused.append(f"{path}: {type(e).__name__}: {e}")
            request.setResponseCode(400)
            return b"refused"
        code = service.answers.get(path, 201)
        if code < 300:
            service.take(message)
        else:
            service.turned_away.append(message)
        request.setResponseCode(code)
        return b""


class PushService:
    """An HTTP push service on 127.0.0.1 that checks and decrypts every message."""

    def __init__(self, reactor: Any, check_later: bool = False) -> None:
        self._reactor = reactor
        #: Whether messages are only kept as they come (answered 201), and checked when
        #: check_unchecked() is called: a benchmark's timings then leave the checks out.
        self.check_later = check_later
        self.unchecked: list[tuple[str, float, dict[str, str], bytes]] = []
        self.port: Any = None
        #: The daemon's public key (base64url), which every message must be signed by.
        self.vapid_key: str | None = None
        #: The subscriptions' keys, by endpoint path.
        self.keys: dict[str, BrowserKeys] = {}
        #: Status codes by path (201 when not set).
        self.answers: dict[str, int] = {}
        self.messages: list[Message] = []
        self.turned_away: list[Message] = []
        self.refused: list[str] = []
        self._waiters: list[tuple[int, defer.Deferred[Message]]] = []

    async def start(self) -> None:
        endpoint = endpoints.TCP4ServerEndpoint(self._reactor, 0, interface="127.0.0.1")
        site = Site(_Endpoint(self))
        site.noisy = False
        # Keeps the connections, to cut them when the service stops: the daemon keeps
        # its connections to push services open.
        self._connections = WrappingFactory(site)
        self.port = await endpoint.listen(self._connections)

    async def stop(self) -> None:
        if self.port is not None:
            await self.port.stopListening()
            for connection in list(self._connections.protocols):
                connection.transport.abortConnection()
            while self._connections.protocols:
                await task.deferLater(self._reactor, 0.01, lambda: None)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}"

    def subscribe(self, name: str, **more: Any) -> dict[str, Any]:
        """A new browser subscription at /push/NAME (its JSON, as a browser would post it)."""
        path = f"/push/{name}"
        keys = self.keys[path] = BrowserKeys()
        return keys.subscription(self.origin + path, **more)

    def answer(self, name: str, code: int) -> None:
        self.answers[f"/push/{name}"] = code

    def check_unchecked(self) -> None:
        """Check the messages kept unchecked: each is taken, or noted as refused."""
        kept, self.unchecked = self.unchecked, []
        for path, arrived, headers, body in kept:
            try:
                self.take(self.check(path, headers, body, arrived))
            except Exception as e:
                self.refused.append(f"{path}: {type(e).__name__}: {e}")

    def check(self, path: str, headers: dict[str, str], body: bytes, arrived: float) -> Message:
        """The message posted to path, or an exception saying why a push service would refuse it."""
        scheme, _, params = headers["authorization"].partition(" ")
        if scheme != "vapid":
            raise ValueError(f"not a vapid authorization: {scheme}")
        fields = dict(part.strip().split("=", 1) for part in params.split(","))
        if self.vapid_key is not None and fields["k"] != self.vapid_key:
            raise ValueError("signed by another key than the daemon's")
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.origin)
        if not 0 < claims["exp"] - time.time() <= 24 * 3600:
            raise ValueError(f"exp out of range: {claims['exp']}")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("no sub claim")
        if headers.get("content-encoding") != "aes128gcm":
            raise ValueError(f"content-encoding {headers.get('content-encoding')}")
        if not headers.get("ttl", "").isdigit():
            raise ValueError("no TTL")
        if len(body) > 4096:
            raise ValueError(f"body of {len(body)} bytes")
        keys = self.keys[path]
        text = keys.decrypt(body).decode("utf-8")
        return Message(path, arrived, headers, claims, text, json.loads(text))

    def take(self, message: Message) -> None:
        self.messages.append(message)
        for waiter in list(self._waiters):
            count, d = waiter
            if len(self.messages) >= count:
                self._waiters.remove(waiter)
                d.callback(message)

    def wait(self, count: int, timeout: float = 10.0) -> defer.Deferred[Message]:
        """A Deferred firing when count messages have arrived (with the last one)."""
        if len(self.messages) >= count:
            return defer.succeed(self.messages[count - 1])
        d: defer.Deferred[Message] = defer.Deferred()
        self._waiters.append((count, d))
        return d.addTimeout(timeout, self._reactor)
