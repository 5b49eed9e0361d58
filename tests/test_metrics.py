"""Tests for ``GET /metrics`` (L{vibetwist.server.metrics}) and the counts behind it
(L{vibetwist.sessions.tally}): scraped with C{prometheus_client.parser}, in memory and
from a real daemon, including ``--metrics-listen``. See the README's "Metrics"."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet import defer, reactor
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from tests.support.api import BASE, APITestCase
from tests.support.credentials import FAST
from tests.support.daemon import Client, Daemon, WSClient, open_ws, poll
from tests.support.e2e import DaemonTestCase
from tests.support.login import CREDENTIALS, log_in
from vibetwist.login.authority import Authority
from vibetwist.login.passwords import PasswordCheck
from vibetwist.login.tokens import Tokens
from vibetwist.server.api import API
from vibetwist.server.hostcheck import HostOriginCheck
from vibetwist.server.metrics import NO_ROUTE, RequestCounter, route_template
from vibetwist.sessions.recording import Recording
from vibetwist.sessions.tally import Tally, utf8_length
from vibetwist.testing import pump

#: Every name the README documents, as the text format writes them.
DOCUMENTED = {
    "vibetwist_sessions",
    "vibetwist_session_creates_total",
    "vibetwist_session_start_seconds_bucket",
    "vibetwist_session_start_seconds_count",
    "vibetwist_output_bytes_total",
    "vibetwist_input_bytes_total",
    "vibetwist_viewers",
    "vibetwist_viewer_skipped_bytes_total",
    "vibetwist_reactor_lag_seconds_bucket",
    "vibetwist_screen_backlog_bytes",
    "vibetwist_recording_errors_total",
    "vibetwist_login_failures_total",
    "vibetwist_http_requests_total",
    "vibetwist_build",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
    "python_info",
}

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def parse(text: str) -> Samples:
    """Every sample of a scrape: name -> {sorted labels: value}."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when it is not there)."""
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


class RouteTemplateTests(SynchronousTestCase):
    """Requests are counted by the template of the route they match, never by raw path."""

    def route(self, method: str, path: bytes) -> str:
        return route_template(API.app.url_map, method, path)

    def test_templates(self) -> None:
        """A path with a session id counts as its route's template."""
        self.assertEqual(self.route("GET", b"/api/sessions/abc-123/text"), "/api/sessions/<session_id>/text")
        self.assertEqual(self.route("DELETE", b"/api/sessions/abc"), "/api/sessions/<session_id>")
        self.assertEqual(self.route("GET", b"/ws/sessions/x%2Dy"), "/ws/sessions/<session_id>")
        self.assertEqual(self.route("GET", b"/static/app.js"), "/static/<name>")
        self.assertEqual(self.route("GET", b"/"), "/")
        self.assertEqual(self.route("GET", b"/metrics"), "/metrics")
        self.assertEqual(self.route("POST", b"/api/logs/client"), "/api/logs/client")

    def test_other_method(self) -> None:
        """A known path asked with a method it does not take still counts as its template."""
        self.assertEqual(self.route("PUT", b"/api/sessions/abc/resize"), "/api/sessions/<session_id>/resize")
        self.assertEqual(self.route("BREW", b"/api/health"), "/api/health")

    def test_no_route(self) -> None:
        """Paths no route has (a trailing slash, a URL that is not UTF-8) count as "other"."""
        for path in [b"/nope", b"/api/sessions/abc/", b"/api/sessions/%ff", b"/api/sessions/a/b/c"]:
            self.assertEqual(self.route("GET", path), NO_ROUTE, path)


class TallyTests(SynchronousTestCase):
    """What the sessions count, per read or line, never per byte."""

    def test_utf8_length(self) -> None:
        """utf8_length is the length of the UTF-8 encoding, lone surrogates included."""
        for text in ["", "plain", "é中🙂", "\ud800x"]:
            self.assertEqual(utf8_length(text), len(text.encode("utf-8", "surrogatepass")), text)

    def test_recording_errors(self) -> None:
        """A recording that reaches its limit counts one "limit" error, however many lines
        it turns away after."""
        tally = Tally()
        recording = Recording(Path(tempfile.mkdtemp()) / "stdout", max_size=100, tally=tally)
        self.addCleanup(recording.close)
        self.assertTrue(recording.append(b"x" * 50 + b"\n"))
        for _ in range(3):
            self.assertFalse(recording.append(b"y" * 80 + b"\n"))
        self.assertEqual(tally.recording_errors, {"limit": 1, "write": 0, "read": 0})


class MetricsTests(APITestCase):
    """/metrics of the in-memory daemon, every request counted by RequestCounter."""

    def setUp(self) -> None:
        super().setUp()
        self.assertIsNotNone(self.api.metrics)
        self.treq = StubTreq(RequestCounter(HostOriginCheck(self.api.resource()), self.api.metrics))

    def scrape(self) -> Samples:
        code, body = self.call("GET", "/metrics")
        self.assertEqual(code, 200)
        return parse(body.decode())

    def test_documented_names(self) -> None:
        """A scrape holds every documented name, in the Prometheus text format."""
        self.call("GET", "/api/health")
        self.create()
        d = self.treq.get(BASE + "/metrics")
        pump(self.clock)
        self.treq.flush()
        response = self.successResultOf(d)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/plain; version=0.0.4; charset=utf-8"]
        )
        names = set(parse(self.successResultOf(response.text())))
        self.assertLessEqual(DOCUMENTED, names, DOCUMENTED - names)

    def test_openmetrics_when_asked(self) -> None:
        """A scraper that asks for OpenMetrics gets it."""
        d = self.treq.get(
            BASE + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
        self.treq.flush()
        response = self.successResultOf(d)
        kind = response.headers.getRawHeaders("content-type")[0]
        self.assertTrue(kind.startswith("application/openmetrics-text"), kind)
        self.assertTrue(self.successResultOf(response.text()).endswith("# EOF\n"))

    def test_sessions_and_bytes(self) -> None:
        """Creating a session that runs counts an ok create and a start time; its output and
        what is typed count their bytes; the sessions gauge follows its status."""
        before = self.scrape()
        session_id = self.create()
        process = self.launcher.last
        process.say(b"hello \xc3\xa9")
        self.call("POST", f"/api/sessions/{session_id}/input", {"text": "ls\r"})
        pump(self.clock)
        running = self.scrape()
        self.assertEqual(value(running, "vibetwist_session_creates_total", outcome="ok"), 1)
        self.assertEqual(value(running, "vibetwist_session_start_seconds_count"), 1)
        self.assertEqual(
            value(running, "vibetwist_output_bytes_total") - value(before, "vibetwist_output_bytes_total"), 8
        )
        self.assertEqual(value(running, "vibetwist_input_bytes_total"), 3)
        self.assertEqual(value(running, "vibetwist_sessions", status="running"), 1)
        process.exit(0)
        pump(self.clock)
        ended = self.scrape()
        self.assertEqual(value(ended, "vibetwist_sessions", status="running"), 0)
        self.assertEqual(value(ended, "vibetwist_sessions", status="exited"), 1)
        self.assertEqual(value(ended, "vibetwist_session_creates_total", outcome="ok"), 1)

    def test_events_by_type(self) -> None:
        """Each event of /api/events counts under its type; every type shows from the start."""
        before = self.scrape()
        self.assertEqual(value(before, "vibetwist_session_events_total", type="bell"), 0)
        self.create()
        self.launcher.last.say(b"\x07\x1b]2;t\x07")
        pump(self.clock)
        samples = self.scrape()
        for kind in ("session-start", "bell", "title"):
            self.assertEqual(value(samples, "vibetwist_session_events_total", type=kind), 1, kind)
        self.assertEqual(value(samples, "vibetwist_session_events_total", type="needs-input"), 0)

    def test_refused_and_failed_creates(self) -> None:
        """A create answered with an error counts as refused; one whose program cannot start,
        as failed."""
        self.assertEqual(self.call("POST", "/api/sessions", {"command": []})[0], 400)
        self.launcher.fail = OSError(2, "No such file or directory")
        self.create()
        samples = self.scrape()
        self.assertEqual(value(samples, "vibetwist_session_creates_total", outcome="refused"), 1)
        self.assertEqual(value(samples, "vibetwist_session_creates_total", outcome="failed"), 1)
        self.assertEqual(value(samples, "vibetwist_session_creates_total", outcome="ok"), 0)
        self.assertEqual(value(samples, "vibetwist_session_start_seconds_count"), 0)

    def test_screen_backlog(self) -> None:
        """The screen backlog is what live sessions recorded that their screens have not read."""
        self.create()
        self.launcher.last.say(b"x" * 1000)
        samples = self.scrape()  # the screen reads it on a later turn
        self.assertGreater(value(samples, "vibetwist_screen_backlog_bytes"), 1000)
        pump(self.clock)
        self.assertEqual(value(self.scrape(), "vibetwist_screen_backlog_bytes"), 0)

    def test_requests_by_route(self) -> None:
        """Requests count by route template, method and status, and no session id appears."""
        session_id = self.create()
        for _ in range(2):
            self.call("GET", f"/api/sessions/{session_id}")
        self.call("GET", "/api/sessions/nope")
        self.call("GET", "/not/a/route")
        self.call("BREW", "/api/health")
        self.call("GET", "/api/health", headers={"Host": "evil.example"})
        code, body = self.call("GET", "/metrics")
        samples = parse(body.decode())
        requests = "vibetwist_http_requests_total"
        self.assertEqual(
            value(samples, requests, route="/api/sessions/<session_id>", method="GET", status="200"), 2
        )
        self.assertEqual(
            value(samples, requests, route="/api/sessions/<session_id>", method="GET", status="404"), 1
        )
        self.assertEqual(value(samples, requests, route="/api/sessions", method="POST", status="200"), 1)
        self.assertEqual(value(samples, requests, route="other", method="GET", status="404"), 1)
        self.assertEqual(value(samples, requests, route="/api/health", method="other", status="405"), 1)
        self.assertEqual(value(samples, requests, route="/api/health", method="GET", status="403"), 1)
        self.assertNotIn(session_id, body.decode())

    def test_login_failures(self) -> None:
        """Failed password logins are counted."""
        authority = Authority(
            Tokens(b"s" * 32),
            self.clock,
            required=True,
            passwords=PasswordCheck({}, "me", "right", hasher=FAST),
            run_blocking=lambda f, *args: succeed(f(*args)),
            failure_delay=0.0,
        )
        self.api = API(self.service, self.clock, authority=authority)
        self.treq = StubTreq(HostOriginCheck(self.api.resource()))
        for _ in range(2):
            self.assertEqual(
                self.call("POST", "/api/auth/password", {"userId": "me", "password": "wrong"})[0], 401
            )
        self.assertEqual(value(self.scrape(), "vibetwist_login_failures_total"), 2)

    def test_off(self) -> None:
        """With metrics off (--no-metrics), /metrics is a 404."""
        self.api = API(self.service, self.clock, metrics=False)
        self.treq = StubTreq(HostOriginCheck(self.api.resource()))
        code, body = self.call("GET", "/metrics")
        self.assertEqual(code, 404)
        self.assertIn("--no-metrics", body["error"])


class DaemonMetricsTests(DaemonTestCase):
    """/metrics of a real daemon, scraped over HTTP while sessions are created, print and end."""

    async def scrape(self, client: Client | None = None) -> Samples:
        code, body, response = await (client or self.client).request("GET", "/metrics")
        self.assertEqual(code, 200, body)
        return parse(body.decode())

    async def test_counters_move(self) -> None:
        """A session that is created, prints, is typed into and ends moves the counters and
        gauges; the standard process metrics are there; requests count by route template."""
        before = await self.scrape()
        sid = await self.client.create(["sh", "-c", "printf 'hello metrics'; exec cat"])
        self.sessions.append(sid)
        await self.client.wait_text(sid, "hello metrics")
        await self.client.request("POST", f"/api/sessions/{sid}/input", {"text": "typed\r"})
        await self.client.wait_text(sid, "typed")
        during = await self.scrape()

        def delta(name: str, **labels: str) -> float:
            return value(during, name, **labels) - value(before, name, **labels)

        self.assertEqual(delta("vibetwist_session_creates_total", outcome="ok"), 1)
        self.assertEqual(delta("vibetwist_session_start_seconds_count"), 1)
        self.assertGreater(delta("vibetwist_session_start_seconds_sum"), 0)
        self.assertGreaterEqual(delta("vibetwist_output_bytes_total"), len("hello metrics") + len("typed"))
        self.assertEqual(delta("vibetwist_input_bytes_total"), len("typed\r"))
        self.assertGreaterEqual(value(during, "vibetwist_sessions", status="running"), 1)
        self.assertGreater(value(during, "process_resident_memory_bytes"), 10_000_000)

        async def lag_sampled() -> bool:
            return value(await self.scrape(), "vibetwist_reactor_lag_seconds_count") > 0

        # The lag monitor ticks every 250 ms: a daemon younger than that has no sample yet.
        await poll(reactor, lag_sampled, what="a reactor lag sample")
        text_route = value(
            during,
            "vibetwist_http_requests_total",
            route="/api/sessions/<session_id>/text",
            method="GET",
            status="200",
        )
        self.assertGreaterEqual(text_route, 2)

        await self.client.request("DELETE", f"/api/sessions/{sid}")
        await self.client.wait_status(sid, "exited")
        after = await self.scrape()
        exited = value(after, "vibetwist_sessions", status="exited") - value(
            during, "vibetwist_sessions", status="exited"
        )
        self.assertGreaterEqual(exited, 1)
        self.assertEqual(
            sum(after["vibetwist_sessions"].values()), sum(during["vibetwist_sessions"].values())
        )
        code, body, _ = await self.client.request("GET", "/metrics")
        self.assertNotIn(sid, body.decode())

    async def test_viewers_and_handshakes(self) -> None:
        """Open viewers show by channel; a WebSocket handshake counts as a 101 of its route."""
        sid = await self.client.create(["cat"])
        self.sessions.append(sid)
        await self.client.wait_status(sid, "running")
        stream = await self.client.stream(sid)
        ws: WSClient = await open_ws(reactor, self.daemon, f"/ws/sessions/{sid}")
        self.addCleanup(lambda: ws.dropConnection(abort=True) if ws.state != ws.STATE_CLOSED else None)
        buffers: WSClient = await open_ws(reactor, self.daemon, "/buffers")
        self.addCleanup(
            lambda: buffers.dropConnection(abort=True) if buffers.state != buffers.STATE_CLOSED else None
        )
        await poll(reactor, lambda: stream.messages and ws.messages and buffers.messages, what="viewers open")
        samples = await self.scrape()
        for channel in ["sse", "stream", "buffers"]:
            self.assertGreaterEqual(value(samples, "vibetwist_viewers", channel=channel), 1, channel)
        requests = "vibetwist_http_requests_total"
        self.assertGreaterEqual(value(samples, requests, route="/buffers", method="GET", status="101"), 1)
        self.assertGreaterEqual(
            value(samples, requests, route="/ws/sessions/<session_id>", method="GET", status="101"), 1
        )


METRICS_LISTENING = re.compile(rb"vibetwist metrics listening on http://127\.0\.0\.1:(\d+)/")


class At:
    """Where a client sends its requests: a port of 127.0.0.1 (a listener, not a daemon)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class MetricsListenTests(DaemonTestCase):
    """--metrics-listen, with login on: /metrics alone on an endpoint of its own."""

    shared = False

    async def test_metrics_endpoint(self) -> None:
        """With login on, the API's /metrics needs a token like every route; the
        --metrics-listen endpoint serves /metrics without one, and nothing else."""
        base = Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))
        daemon = Daemon(
            reactor, base, args=("--metrics-listen", "tcp:0:interface=127.0.0.1"), env=CREDENTIALS
        )
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        client = self.client_for(daemon)
        self.assertEqual((await client.request("GET", "/metrics"))[0], 401)
        client.token = await log_in(client)
        self.assertIn("vibetwist_sessions", await self.scrape_names(client))

        async def port() -> int | None:
            match = METRICS_LISTENING.search(Path(daemon.log_path or "").read_bytes())
            return int(match.group(1)) if match else None

        anonymous = self.client_for(At(await poll(reactor, port, what="the metrics listener")))
        code, body, response = await anonymous.request("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertIn("vibetwist_login_failures_total", {n for n in parse(body.decode())})
        self.assertEqual((await anonymous.request("GET", "/api/sessions"))[0], 404)

    async def scrape_names(self, client: Client) -> set[str]:
        code, body, _ = await client.request("GET", "/metrics")
        self.assertEqual(code, 200)
        return set(parse(body.decode()))
