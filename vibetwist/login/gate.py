# -*- test-case-name: tests.test_auth -*-
"""The gate in front of every route, and how a request's token is found.

:class:`LoginGate` wraps the whole site, so no route can be added without it: a
request reaches a route only if its path is on the short open list (health, the
login routes, the browser client's page) or :class:`Authority` grants it
something, from its token and from who made it (the peer its connection found,
:mod:`vibetwist.model.peercred`). With login on, that takes a valid token (401
otherwise). With login off, a request of the daemon's own user acts for it
whatever token it carries, and a request of another user of the machine is a
403. A share token (read-only, one session) may only read that session; anything
else it tries is a 403.

Tokens come as ``Authorization: Bearer T`` or, for SSE and WebSockets, ``?token=T``.

A request that came through a channel the daemon trusts by construction (a
tunnel from a cluster's gateway, which checked the login itself) carries its
grant on its connection: the gate's ``vouched`` callable finds it, and the gate
takes it instead of a token and a peer. A read-only grant found that way may do
only what a share token may.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, unquote_plus

from twisted.web.http import combinedLogFormatter
from twisted.web.resource import Resource

from vibetwist.login.authority import Authority
from vibetwist.login.tokens import Grant, IGrant
from vibetwist.model.peercred import Peer

#: Paths anyone may request: health, login, and the browser client's page.
OPEN_PATHS = frozenset(
    {
        "/",
        "/api/health",
        "/api/auth/config",
        "/api/auth/verify",
        "/api/auth/password",
        "/api/auth/challenge",
        "/api/auth/ssh-key",
    }
)
#: Folders of the browser client's static files.
OPEN_PREFIXES = ("/static/",)

#: What a share token may GET, the session's id in the "id" group.
_SHARE_READABLE = re.compile(
    r"^/api/sessions/(?P<id>[^/]+)(?:/(?:text|buffer|stream|recording))?$|^/ws/sessions/(?P<ws>[^/]+)$"
)
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&;\s\"']*", re.IGNORECASE)
_BEARER = re.compile(r"(bearer\s+)\S+", re.IGNORECASE)
#: A query string in a log line: from "?" to a space, a quote or a fragment.
_QUERY = re.compile(r"\?([^\s\"'#]*)")

AUTH_REQUIRED = "Authentication required"
READ_ONLY = "This link is read-only"
OTHER_USER = "This daemon serves only the user it runs as"


def _redact_query(match: re.Match[str]) -> str:
    """A query string with the value of every parameter that twisted.web reads as ``token``
    (``%74oken``, ``toke%6E``, ...) replaced, split as twisted.web splits it."""
    parts = re.split(r"([&;])", match.group(1))
    for index in range(0, len(parts), 2):
        name, sep, _ = parts[index].partition("=")
        if sep and unquote_plus(name).strip().lower() == "token":
            parts[index] = f"{name}=[redacted]"
    return "?" + "".join(parts)


def redact(text: str) -> str:
    """text with every token value (in a query string, ``token=...``, ``Bearer ...``) replaced."""
    text = _QUERY.sub(_redact_query, text)
    return _BEARER.sub(r"\1[redacted]", _TOKEN_IN_TEXT.sub(r"\1[redacted]", text))


def redacted_log_formatter(timestamp: str, request: Any) -> str:
    """The combined access-log line of a request, without tokens."""
    return redact(combinedLogFormatter(timestamp, request))


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token of a request: its ``Authorization: Bearer`` value, else its ``token`` parameter."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return query_token or None


def request_token(request: Any) -> str | None:
    """The token a twisted.web request carries, if any."""
    header = request.getHeader(b"authorization")
    query = (request.args or {}).get(b"token")
    return bearer_token(
        header.decode("latin-1") if header else None,
        query[0].decode("utf-8", "replace") if query else None,
    )


def request_path(request: Any) -> str | None:
    """The request's path, percent-decoded; None if it holds ``.``/``..`` segments or NUL."""
    path = unquote(request.path.decode("latin-1"), errors="surrogateescape")
    segments = path.split("/")
    if "\0" in path or "." in segments or ".." in segments:
        return None
    return path


def is_open(path: str) -> bool:
    """True for the paths anyone may request."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def share_allows(method: bytes, path: str, grant: Grant) -> bool:
    """True if a read-only grant may make this request."""
    if method != b"GET":
        return False
    if path == "/buffers":
        return True  # each subscription is checked by the socket
    match = _SHARE_READABLE.match(path)
    if match is None:
        return False
    session_id = match.group("id") or match.group("ws")
    return grant.session_id == session_id


def request_grant(request: Any) -> Grant | None:
    """The grant the gate gave a request, if it went through the gate."""
    getter = getattr(request, "getComponent", None)
    grant = getter(IGrant) if getter is not None else None
    return grant if isinstance(grant, Grant) else None


def _answer(request: Any, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    if code == 401:
        request.setHeader(b"www-authenticate", b'Bearer realm="VibeTunnel"')
    return json.dumps({"error": message}).encode()


class LoginGate(Resource):
    """Lets a request through to the site only if it may make it (see the module's text).

    peer_of tells who made a request (:func:`vibetwist.server.limits.connection_peer`
    in the daemon); vouched, if given, the grant of a request that came through a
    trusted channel (None for any other request). The grant given goes with the
    request (:func:`request_grant`).
    """

    isLeaf = True

    def __init__(
        self,
        inner: Resource,
        authority: Authority,
        peer_of: Callable[[Any], Peer],
        vouched: Callable[[Any], Grant | None] | None = None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._authority = authority
        self._peer_of = peer_of
        self._vouched = vouched

    def render(self, request: Any) -> Any:
        path = request_path(request)
        if path is None:
            return _answer(request, 404, "Not found")  # no route has such a path
        if not is_open(path):
            grant = self._vouched(request) if self._vouched is not None else None
            if grant is None:
                grant = self._authority.grant_for(request_token(request), self._peer_of(request))
            if grant is None:
                if self._authority.required:
                    return _answer(request, 401, AUTH_REQUIRED)
                return _answer(request, 403, OTHER_USER)
            if grant.read_only and not share_allows(request.method, path, grant):
                return _answer(request, 403, READ_ONLY)
            request.setComponent(IGrant, grant)
        return self._inner.render(request)
