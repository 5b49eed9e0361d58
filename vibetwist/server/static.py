# -*- test-case-name: tests.test_static -*-
"""The browser client: the built files of ``vibetwist/web/dist``, at ``/`` and ``/static/NAME``.

Only regular files directly in the folder are served, by exact name, so there
is no directory listing and no way out of the folder. The page gets a strict
Content-Security-Policy: scripts and connections from the daemon's own origin
only, no inline script. The service worker (``sw.js``) is served with
``Service-Worker-Allowed: /``, so that it may take the whole origin as its scope.
When the client has not been built, ``/`` says how to build it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twisted.web import http

from vibetwist.errors import NotFound

#: Where ``npm run build`` in vibetwist/web writes the client.
WEB_DIST = Path(__file__).resolve().parent.parent / "web" / "dist"

#: Scripts, styles and connections from this origin only. Styles may be inline:
#: xterm.js sizes its rows with generated style elements; no script ever is. The web
#: app manifest and the service worker come from this origin too.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data: blob:; font-src 'self'; "
    "manifest-src 'self'; worker-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
#: The service worker, served from /static/ but for the whole origin (scope "/"), which
#: its Service-Worker-Allowed header permits.
SERVICE_WORKER = "sw.js"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")

NOT_BUILT = (
    "The vibetwist browser client is not built.\n\n"
    "Installing vibetwist (`pip install .` from a checkout, or a wheel) builds it;\n"
    "from a checkout, `./dev serve` builds it and starts the daemon; or build it by hand\n"
    "(needs Node.js and npm):\n\n"
    "    cd vibetwist/web && npm ci && npm run build\n\n"
    "The API is under /api/ meanwhile.\n"
)


def _secure(request: Any) -> None:
    request.setHeader(b"content-security-policy", CSP.encode())
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"cache-control", b"no-cache")


class WebClient:
    """The files of the built browser client, in one folder.

    They are small (the largest, the bundled script, is about 400 kB) and read
    whole from the page cache, which takes well under a millisecond.
    """

    def __init__(self, root: Path = WEB_DIST) -> None:
        self.root = Path(root)

    def _serve(self, request: Any, name: str) -> bytes | None:
        """The file's bytes (empty when the browser's copy is current), or None if it is not served."""
        suffix = Path(name).suffix
        if not _NAME.match(name) or suffix not in CONTENT_TYPES:
            return None
        path = self.root / name
        try:
            if not path.is_file():
                return None
            modified = path.stat().st_mtime
            content = path.read_bytes()
        except OSError:
            return None
        _secure(request)
        request.setHeader(b"content-type", CONTENT_TYPES[suffix].encode())
        if name == SERVICE_WORKER:
            request.setHeader(b"service-worker-allowed", b"/")
        if request.setLastModified(modified) == http.CACHED:
            return b""
        return content

    def page(self, request: Any) -> bytes:
        """``/``: the client's page, or a 503 saying how to build it."""
        content = self._serve(request, "index.html")
        if content is None:
            request.setResponseCode(503)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return NOT_BUILT.encode()
        return content

    def asset(self, request: Any, name: str) -> bytes:
        """``/static/NAME``: one built file; NotFound for anything else."""
        content = self._serve(request, name)
        if content is None:
            raise NotFound(f"No such file of the browser client: {name[:100]}")
        return content
