# -*- test-case-name: tests.test_hostcheck -*-
"""Checks every request must pass before it reaches the API.

A web page the user visits must not be able to drive the daemon: requests
whose Host is not a loopback name (or a name the user allowed with
--allow-host, or an address the daemon listens on) are refused (DNS
rebinding), and so are requests whose Origin is not the daemon itself,
scheme included (cross-site requests).
Bodies must be JSON, which a cross-site form cannot send, and not too big.
Requests that reach the daemon through no browser (a cluster's tunnel, whose
gateway checked Host and Origin) skip the Host and Origin checks, never the
body checks.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from twisted.web.resource import Resource

#: Largest request body accepted, in bytes.
MAX_BODY = 1 << 20


#: A host name as browsers send it: letters, digits, "-" and "_" in dot-separated labels.
_NAME = re.compile(r"^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?$")


def split_host(host: str) -> tuple[str, str]:
    """("name", "port") from a Host header value; IPv6 literals keep no brackets.

    ("", "") for a value no browser sends: a name with other characters than a
    host name holds (``evil.com#.localhost``), an IPv6 literal that is not one or
    is followed by anything but a port (``[::1]evil``).
    """
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "", ""
        name, rest = host[1:end], host[end + 1 :]
        if rest and not rest.startswith(":"):
            return "", ""
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return "", ""
        return name, rest[1:]
    name, _, port = host.partition(":")
    if not _NAME.match(name):
        return "", ""
    return name, port


def is_loopback_name(name: str) -> bool:
    """True for localhost, *.localhost and loopback addresses."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host: str | None, allowed: frozenset[str] = frozenset()) -> bool:
    """True when a Host header names this machine's loopback interface, or one of allowed."""
    if not host:
        return False
    name, port = split_host(host)
    if not name or not (port == "" or port.isdigit()):
        return False
    return is_loopback_name(name) or name in allowed


def origin_allowed(origin: str | None, host: str, secure: bool | None = None) -> bool:
    """True when there is no Origin (not a browser page) or it is the daemon's own:
    same name and port, and (when secure is known) https exactly when the request came over TLS.

    A Host without a port means the scheme's own: 80 for http, 443 for https.
    """
    if origin is None:
        return True
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if secure is not None and (parts.scheme == "https") != secure:
        return False
    https = parts.scheme == "https"
    if port is None:
        port = 443 if https else 80
    name, host_port = split_host(host)
    if host_port:
        expected = int(host_port) if host_port.isdigit() else -1
    else:
        expected = 443 if (secure if secure is not None else https) else 80
    return bool(name) and parts.hostname.lower() == name and port == expected


def _refuse(request: Any, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps({"error": message}).encode()


class HostOriginCheck(Resource):
    """Wraps the daemon's resource with the Host, Origin and body checks.

    exempt, if given, tells the requests that skip the Host and Origin checks.
    """

    isLeaf = True

    def __init__(
        self,
        inner: Resource,
        max_body: int = MAX_BODY,
        allowed_hosts: frozenset[str] = frozenset(),
        exempt: Callable[[Any], bool] | None = None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._max_body = max_body
        self._allowed_hosts = frozenset(name.lower() for name in allowed_hosts)
        self._exempt = exempt

    def render(self, request: Any) -> Any:
        host_header = request.getHeader(b"host")
        host = host_header.decode("latin-1") if host_header else None
        checked = self._exempt is None or not self._exempt(request)
        if checked and not host_allowed(host, self._allowed_hosts):
            return _refuse(request, 403, "Forbidden: Host must be a loopback name or an allowed host")
        try:
            unquote_to_bytes(request.path).decode("utf-8")
        except UnicodeDecodeError:
            return _refuse(request, 400, "The URL is not valid UTF-8")
        origin = request.getHeader(b"origin")
        secure = bool(request.isSecure())
        if checked and not origin_allowed(
            origin.decode("latin-1") if origin is not None else None, host or "", secure
        ):
            return _refuse(request, 403, "Forbidden: cross-origin request")
        if request.method in (b"POST", b"PATCH", b"PUT"):
            length = request.getHeader(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self._max_body):
                return _refuse(request, 413, f"Request body larger than {self._max_body} bytes")
            content = request.content
            if content is not None:
                content.seek(0, 2)
                size = content.tell()
                content.seek(0)
                if size > self._max_body:
                    return _refuse(request, 413, f"Request body larger than {self._max_body} bytes")
                ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
                if size and ctype != b"application/json":
                    return _refuse(request, 415, "Content-Type must be application/json")
        return self._inner.render(request)
