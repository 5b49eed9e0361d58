"""Tests for vibetwist.server.static: the browser client's files, served behind the HostOriginCheck."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.server.api import API
from vibetwist.server.hostcheck import HostOriginCheck
from vibetwist.server.static import CSP, WebClient
from vibetwist.sessions.service import SessionService
from vibetwist.testing import FakeLauncher

BASE = "http://127.0.0.1:4020"
PAGE = b'<!doctype html><script type="module" src="/static/app.js"></script>'


class StaticTestCase(SynchronousTestCase):
    """An API in memory whose browser client lives in a temporary folder."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dist = self.tmp / "dist"
        self.dist.mkdir()
        clock = Clock()
        service = SessionService(
            self.tmp / "control", reactor=clock, launcher=FakeLauncher(), shell="/bin/sh",
            environ={"HOME": str(self.tmp), "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        self.treq = StubTreq(HostOriginCheck(API(service, clock, web=WebClient(self.dist)).resource()))

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
        d = self.treq.get(BASE + path, headers=headers)
        self.treq.flush()
        response = self.successResultOf(d)
        return response.code, response.headers, self.successResultOf(response.content())

    def build(self) -> None:
        (self.dist / "index.html").write_bytes(PAGE)
        (self.dist / "app.js").write_text("export {};\n")
        (self.dist / "app.css").write_text("body{}\n")
        (self.dist / "sub").mkdir()
        (self.dist / "sub" / "x.js").write_text("secret\n")
        (self.dist / "notes.md").write_text("not served\n")


class PageTests(StaticTestCase):
    """/ and /static/NAME."""

    def test_page(self) -> None:
        """/ answers the client's page as HTML with a strict Content-Security-Policy:
        no inline script, connections to the daemon's own origin only."""
        self.build()
        code, headers, body = self.get("/")
        self.assertEqual((code, body), (200, PAGE))
        self.assertEqual(headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"])
        csp = headers.getRawHeaders("content-security-policy")[0]
        self.assertEqual(csp, CSP)
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
        self.assertEqual(directives["script-src"], "'self'")
        self.assertEqual(directives["connect-src"], "'self'")
        self.assertEqual(directives["default-src"], "'none'")
        self.assertEqual(headers.getRawHeaders("x-content-type-options"), ["nosniff"])

    def test_assets_have_their_content_types(self) -> None:
        """Built scripts and stylesheets are served with their own content types."""
        self.build()
        code, headers, body = self.get("/static/app.js")
        self.assertEqual((code, body), (200, b"export {};\n"))
        self.assertEqual(headers.getRawHeaders("content-type"), ["text/javascript; charset=utf-8"])
        code, headers, _ = self.get("/static/app.css")
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("content-type"), ["text/css; charset=utf-8"])

    def test_web_app_files(self) -> None:
        """The manifest is served as a web app manifest, and the service worker with
        Service-Worker-Allowed: / so it may control the whole origin; the page's CSP lets
        both come from the daemon itself."""
        self.build()
        (self.dist / "manifest.webmanifest").write_text("{}\n")
        (self.dist / "sw.js").write_text("self;\n")
        code, headers, _ = self.get("/static/manifest.webmanifest")
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/manifest+json"])
        code, headers, _ = self.get("/static/sw.js")
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("service-worker-allowed"), ["/"])
        self.assertIsNone(self.get("/static/app.js")[1].getRawHeaders("service-worker-allowed"))
        directives = dict(part.strip().split(" ", 1) for part in CSP.split(";"))
        self.assertEqual((directives["manifest-src"], directives["worker-src"]), ("'self'", "'self'"))

    def test_unchanged_file_not_sent_again(self) -> None:
        """A browser asking again with If-Modified-Since gets 304 and no body while the file
        is unchanged."""
        self.build()
        _, headers, _ = self.get("/static/app.js")
        modified = headers.getRawHeaders("last-modified")[0]
        code, _, body = self.get("/static/app.js", headers={"If-Modified-Since": modified})
        self.assertEqual((code, body), (304, b""))

    def test_nothing_else(self) -> None:
        """No directory listing, no sub-folders, no path tricks, no unknown file types:
        each is a 404 JSON answer."""
        self.build()
        for path in ["/static/", "/static/sub", "/static/sub/x.js", "/static/..%2Fdist%2Fapp.js",
                     "/static/.hidden.js", "/static/notes.md", "/static/missing.js", "/static/..",
                     "/static/index.html/"]:  # fmt: skip
            code, headers, body = self.get(path)
            self.assertEqual(code, 404, path)
            self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"], path)
            self.assertNotIn(b"secret", body)

    def test_not_built(self) -> None:
        """Without a built client, / answers 503 with how to build it, not a traceback."""
        code, headers, body = self.get("/")
        self.assertEqual(code, 503)
        self.assertEqual(headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
        self.assertIn(b"npm ci && npm run build", body)
        self.assertIn(b"./dev serve", body)
        code, _, _ = self.get("/static/app.js")
        self.assertEqual(code, 404)

    def test_guarded(self) -> None:
        """The client's files are behind the HostOriginCheck: a foreign Host or Origin is refused."""
        self.build()
        code, _, _ = self.get("/", headers={"Host": "evil.example"})
        self.assertEqual(code, 403)
        code, _, _ = self.get("/static/app.js", headers={"Origin": "http://evil.example"})
        self.assertEqual(code, 403)
        code, _, _ = self.get("/static/app.js", headers={"Origin": BASE})
        self.assertEqual(code, 200)
