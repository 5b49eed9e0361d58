"""Tests for vibetwist.server.hostcheck: Host, Origin, content type and body size checks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from tests.support.resources import Echo
from vibetwist.server.hostcheck import HostOriginCheck, host_allowed, origin_allowed, split_host


class HostTests(SynchronousTestCase):
    """Only loopback names pass the Host check."""

    def test_split(self) -> None:
        """Host headers split into name and port, IPv6 literals without brackets."""
        self.assertEqual(split_host("LocalHost:4020"), ("localhost", "4020"))
        self.assertEqual(split_host("[::1]:80"), ("::1", "80"))
        self.assertEqual(split_host("127.0.0.1"), ("127.0.0.1", ""))

    def test_allowed(self) -> None:
        """localhost, *.localhost and loopback addresses pass, with or without a port."""
        for host in ["localhost", "localhost:4020", "127.0.0.1:1", "127.1.2.3", "[::1]:4020", "a.localhost"]:
            self.assertTrue(host_allowed(host), host)

    def test_refused(self) -> None:
        """Other names (DNS rebinding), addresses and malformed values are refused."""
        for host in [
            None,
            "",
            "evil.com",
            "evil.com:4020",
            "10.0.0.1",
            "localhost.evil.com",
            "[::1",
            "localhost:abc",
            "0.0.0.0:4020",
            "127.0.0.1.nip.io",
            "evil.com#.localhost",
            "evil.com/.localhost",
            "evil.com?.localhost",
            "evil.com@localhost",
            "[::1]evil",
            "[::1]evil:80",
            "[evil]:80",
            "local host",
        ]:
            self.assertFalse(host_allowed(host), host)

    @given(st.text(min_size=1, max_size=30))
    def test_only_host_name_characters(self, junk: str) -> None:
        """A name with any character a host name cannot hold is refused, *.localhost or not."""
        name = f"x{junk}.localhost"
        expected = all(c.isascii() and (c.isalnum() or c in "-_.") for c in junk.lower()) and ".." not in name
        self.assertEqual(host_allowed(name), expected and ":" not in junk, name)


class OriginTests(SynchronousTestCase):
    """Only the daemon's own origin may send requests from a page."""

    def test_no_origin(self) -> None:
        """A request without Origin (not from a web page) passes."""
        self.assertTrue(origin_allowed(None, "127.0.0.1:4020"))

    def test_same_origin(self) -> None:
        """The origin of the daemon's own pages passes."""
        self.assertTrue(origin_allowed("http://127.0.0.1:4020", "127.0.0.1:4020"))
        self.assertTrue(origin_allowed("http://localhost", "localhost"))

    def test_host_without_port(self) -> None:
        """A Host without a port means the scheme's: 80 for http, 443 for https; an Origin of
        another port is refused."""
        self.assertTrue(origin_allowed("http://127.0.0.1", "127.0.0.1", False))
        self.assertTrue(origin_allowed("http://127.0.0.1:80", "127.0.0.1", False))
        self.assertTrue(origin_allowed("https://box.example", "box.example", True))
        for origin, secure in [
            ("http://127.0.0.1:3000", False),
            ("http://127.0.0.1:443", False),
            ("https://box.example:8443", True),
            ("http://127.0.0.1:3000", None),
        ]:
            self.assertFalse(origin_allowed(origin, origin.split("//")[1].split(":")[0], secure), origin)

    def test_foreign(self) -> None:
        """Other sites, other ports, null and garbage are refused."""
        for origin in [
            "http://evil.com",
            "http://127.0.0.1:4021",
            "null",
            "file://",
            "http://127.0.0.1:99999",
            "http://localhost:4020.evil.com",
        ]:
            self.assertFalse(origin_allowed(origin, "127.0.0.1:4020"), origin)


class GuardTests(SynchronousTestCase):
    """The HostOriginCheck answers refused requests with JSON errors and lets others through."""

    def setUp(self) -> None:
        self.treq = StubTreq(HostOriginCheck(Echo(), max_body=100))

    def status(self, method: str, headers: dict, data: bytes | None = None) -> int:
        d = self.treq.request(method, "http://127.0.0.1:4020/api/x", headers=headers, data=data)
        response = self.successResultOf(d)
        return int(response.code)

    def test_passes(self) -> None:
        """A loopback GET and a JSON POST reach the wrapped resource."""
        self.assertEqual(self.status("GET", {}), 200)
        self.assertEqual(self.status("POST", {"Content-Type": "application/json"}, b"{}"), 200)

    def test_foreign_host(self) -> None:
        """A foreign Host is answered 403 with a JSON error."""
        d = self.treq.get("http://127.0.0.1:4020/", headers={"Host": "evil.example:4020"})
        response = self.successResultOf(d)
        self.assertEqual(response.code, 403)
        body = self.successResultOf(response.json())
        self.assertIn("Host", body["error"])

    def test_foreign_origin(self) -> None:
        """A cross-site request is answered 403."""
        self.assertEqual(self.status("GET", {"Origin": "http://evil.example"}), 403)

    def test_form_post_refused(self) -> None:
        """A POST body that is not JSON (what a cross-site form sends) is answered 415."""
        self.assertEqual(
            self.status("POST", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=b"), 415
        )
        self.assertEqual(self.status("PATCH", {"Content-Type": "text/plain"}, b"{}"), 415)

    def test_too_large(self) -> None:
        """A body over the limit is answered 413."""
        self.assertEqual(
            self.status("POST", {"Content-Type": "application/json"}, b"[" + b"1," * 100 + b"1]"), 413
        )


class ExemptTests(SynchronousTestCase):
    """Requests the exempt callable names skip the Host and Origin checks, not the body checks."""

    def setUp(self) -> None:
        self.treq = StubTreq(
            HostOriginCheck(
                Echo(), max_body=100, exempt=lambda request: request.getHeader(b"x-probe") == b"1"
            )
        )

    def status(self, headers: dict, method: str = "GET", data: bytes | None = None) -> int:
        d = self.treq.request(method, "http://127.0.0.1:4020/api/x", headers=headers, data=data)
        return int(self.successResultOf(d).code)

    def test_exempt_skips_host_and_origin(self) -> None:
        """An exempt request with a foreign Host and Origin is let through; another is not."""
        foreign = {"Host": "evil.example", "Origin": "http://evil.example"}
        self.assertEqual(self.status(dict(foreign, **{"X-Probe": "1"})), 200)
        self.assertEqual(self.status(foreign), 403)

    def test_exempt_keeps_body_checks(self) -> None:
        """An exempt request's body must still be JSON and small enough."""
        exempt = {"X-Probe": "1", "Host": "evil.example"}
        self.assertEqual(self.status(dict(exempt, **{"Content-Type": "text/plain"}), "POST", b"a"), 415)
        self.assertEqual(
            self.status(
                dict(exempt, **{"Content-Type": "application/json"}), "POST", b"[" + b"1," * 100 + b"1]"
            ),
            413,
        )
