# -*- test-case-name: tests.test_metrics -*-
"""``GET /metrics``: the daemon in the Prometheus text format, made with ``prometheus_client``.

Most figures are read when they are scraped, from what the daemon keeps anyway: the
sessions and their screens, the viewers, the failed logins, and the
:class:`vibetwist.sessions.tally.Tally` the sessions count into (plain integers added
to per read or recorded line). So nothing is added to the output path. Three are
``prometheus_client`` metrics updated as things happen, none of them per byte: the
reactor's lag (a timer's tick), how long creates take to run (a session's start) and
the HTTP requests (one each, by route template, never by a raw id).

The registry is the daemon's own: the client library's process and platform metrics,
and vibetwist's (see the README's "Metrics"). :class:`RequestCounter` counts requests
around the whole site; :func:`metrics_site` is the resource of ``--metrics-listen``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from twisted.web.resource import Resource
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Map, RequestRedirect

from vibetwist import __version__
from vibetwist.model.info import Status
from vibetwist.sessions.events import KINDS, SESSION_EXIT, SESSION_START, SessionEvent
from vibetwist.sessions.tally import RECORDING_ERRORS

if TYPE_CHECKING:
    from vibetwist.server.api import API

#: Upper bounds of the reactor-lag histogram, in seconds.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Upper bounds of the session-start histogram, in seconds.
START_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The methods counted by name; any other is counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The route of a request that matches none.
NO_ROUTE = "other"
#: The outcomes of a session create.
CREATE_OUTCOMES = ("ok", "refused", "failed")


def route_template(url_map: Map, method: str, path: bytes) -> str:
    """The route a request's path matches, as its template (``/api/sessions/<session_id>``),
    whatever its method; :data:`NO_ROUTE` when it matches none."""
    try:
        path_info = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return NO_ROUTE
    adapter = url_map.bind("localhost")
    try:
        rule, _ = adapter.match(path_info, method=method, return_rule=True)
    except MethodNotAllowed as e:
        # A known path with another method: its template, from a method it takes.
        if not e.valid_methods:
            return NO_ROUTE
        try:
            rule, _ = adapter.match(path_info, method=sorted(e.valid_methods)[0], return_rule=True)
        except (HTTPException, RequestRedirect):
            return NO_ROUTE
    except (HTTPException, RequestRedirect):
        return NO_ROUTE
    return str(rule.rule)


class Metrics:
    """The metrics of one daemon, read from its API (and through it, its sessions)."""

    def __init__(self, api: API, clock: Any) -> None:
        #: The API whose daemon is measured.
        self.api = api
        self._clock = clock
        self._url_map = api.app.url_map
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.reactor_lag = Histogram(
            "vibetwist_reactor_lag_seconds",
            "How late the reactor ran the lag monitor's timer, per tick",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.session_start = Histogram(
            "vibetwist_session_start_seconds",
            "Time from a POST /api/sessions to its program running",
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "vibetwist_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.session_events = Counter(
            "vibetwist_session_events",
            "Events of GET /api/events, by type",
            ["type"],
            registry=self.registry,
        )
        for kind in KINDS:
            self.session_events.labels(kind)  # each type shows, at 0 until it happens
        self.creates = dict.fromkeys(CREATE_OUTCOMES, 0)
        #: Sessions created through the API that have not run yet: when they were posted.
        self._starting: dict[str, float] = {}
        self.registry.register(_DaemonCollector(self))
        api.service.events.subscribe(self._event)

    # -- what the API and the sessions report ------------------------------------------

    def create_refused(self) -> None:
        """A POST /api/sessions was answered with an error."""
        self.creates["refused"] += 1

    def create_posted(self, session_id: str) -> None:
        """A POST /api/sessions made this session; it counts once its program runs or it ends."""
        self._starting[session_id] = self._clock.seconds()

    def _event(self, event: SessionEvent) -> None:
        self.session_events.labels(event.type).inc()
        if event.type not in (SESSION_START, SESSION_EXIT) or event.session_id is None:
            return
        posted = self._starting.pop(event.session_id, None)
        if posted is None:
            return  # not created through this API (another process's, or found on disk)
        if event.type == SESSION_START:
            self.creates["ok"] += 1
            self.session_start.observe(max(0.0, self._clock.seconds() - posted))
        else:
            self.creates["failed"] += 1  # it never ran: it could not start, or was deleted first

    def count_request(self, method: bytes, path: bytes, status: int) -> None:
        """One request answered with status."""
        name = method.decode("latin-1")
        route = route_template(self._url_map, name, path)
        self.requests.labels(route, name if name in METHODS else "other", str(status)).inc()

    # -- exposition ----------------------------------------------------------------------

    def render(self, request: Any) -> bytes:
        """The metrics, in the format the request's Accept asks for (Prometheus text by default)."""
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"cache-control", b"no-store")
        return encoder(self.registry)


class _DaemonCollector:
    """The figures read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # the figures are read only when scraped

    def collect(self) -> Iterator[Metric]:
        api = self._metrics.api
        service = api.service
        tally = service.tally
        info = GaugeMetricFamily("vibetwist_build", "The vibetwist version running", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        sessions = GaugeMetricFamily("vibetwist_sessions", "Sessions by status", labels=["status"])
        for status, count in service.counts().items():
            sessions.add_metric([status], count)
        yield sessions
        creates = CounterMetricFamily(
            "vibetwist_session_creates", "POST /api/sessions by outcome", labels=["outcome"]
        )
        for outcome, count in self._metrics.creates.items():
            creates.add_metric([outcome], count)
        yield creates
        yield CounterMetricFamily(
            "vibetwist_output_bytes", "Bytes programs wrote to their terminals", value=tally.output_bytes
        )
        yield CounterMetricFamily(
            "vibetwist_input_bytes", "Bytes typed into sessions", value=tally.input_bytes
        )
        viewers = GaugeMetricFamily(
            "vibetwist_viewers", "Open viewers of sessions, by channel", labels=["channel"]
        )
        viewers.add_metric(["sse"], len(api.viewers))
        viewers.add_metric(["stream"], len(api.websockets.stream.connections))
        viewers.add_metric(["buffers"], len(api.websockets.buffers.connections))
        yield viewers
        yield CounterMetricFamily(
            "vibetwist_viewer_skipped_bytes",
            "Bytes that byte-stream viewers too far behind skipped",
            value=tally.viewer_skipped_bytes,
        )
        backlog = 0
        for session in service.sessions.values():
            if session.status is not Status.EXITED:
                backlog += max(0, session.recorded_end - session.feed.position)
        yield GaugeMetricFamily(
            "vibetwist_screen_backlog_bytes",
            "Recorded bytes the screens of live sessions have not taken in yet",
            value=backlog,
        )
        errors = CounterMetricFamily(
            "vibetwist_recording_errors",
            "Recordings that stopped taking output, by reason",
            labels=["reason"],
        )
        for reason in RECORDING_ERRORS:
            errors.add_metric([reason], tally.recording_errors[reason])
        yield errors
        yield CounterMetricFamily(
            "vibetwist_login_failures", "Failed logins (passwords and SSH keys)", value=api.authority.failures
        )


class RequestCounter(Resource):
    """Counts every request the wrapped site answers (a WebSocket handshake it hands over: 101)."""

    isLeaf = True

    def __init__(self, inner: Resource, metrics: Metrics) -> None:
        super().__init__()
        self._inner = inner
        self._metrics = metrics

    def render(self, request: Any) -> Any:
        counted: list[int] = []

        def count(status: int) -> None:
            if not counted:
                counted.append(status)
                self._metrics.count_request(request.method, request.path, status)

        request.notifyFinish().addBoth(lambda _: count(request.code))
        result = self._inner.render(request)
        channel = getattr(request, "channel", None)  # gone once the request has finished
        if channel is not None and channel.transport is None:
            count(101)  # a WebSocket took the connection over: this request never finishes
        return result


class MetricsResource(Resource):
    """``/metrics`` alone (``--metrics-listen``): no other route, no login."""

    isLeaf = True

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_GET(self, request: Any) -> bytes:
        if request.path != b"/metrics":
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Only /metrics is served here.\n"
        return self._metrics.render(request)
