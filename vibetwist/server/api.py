# -*- test-case-name: tests.test_api -*-
"""The REST API under /api, as VibeTunnel's clients expect it."""

from __future__ import annotations

import gc
import json
import os
import pwd
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from klein import Klein
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.task import Cooperator, LoopingCall, deferLater
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as RouteNotFound
from werkzeug.routing import RequestRedirect

from vibetwist import __version__
from vibetwist._reactor.cooperate import budget_cooperator
from vibetwist._reactor.lag import LagMonitor
from vibetwist.errors import (
    BadRequest,
    NotFound,
    PayloadTooLarge,
    RequestError,
    RestartFailed,
    UpgradeRequired,
)
from vibetwist.interfaces import ISession
from vibetwist.login.authority import Authority, open_authority
from vibetwist.login.gate import AUTH_REQUIRED, READ_ONLY, redact, request_grant, request_token
from vibetwist.model import jsontext
from vibetwist.model.asciicast import iter_playable
from vibetwist.model.info import Status
from vibetwist.model.keys import key_sequence
from vibetwist.model.peercred import Peer, client_key
from vibetwist.model.snapshot import encode
from vibetwist.model.wait import WaitRequest
from vibetwist.server.eventstream import EventStreamResource
from vibetwist.server.limits import SessionCreateLimit, connection_peer
from vibetwist.server.metrics import Metrics
from vibetwist.server.push import PushAPI
from vibetwist.server.sse import StreamResource
from vibetwist.server.static import WebClient
from vibetwist.server.websocket import WebSocketFactory, WebSockets
from vibetwist.sessions.recording import RecordingReader
from vibetwist.sessions.service import SessionService
from vibetwist.sessions.waiters import WaitService

#: How long /text and /buffer wait for the screen to catch up before answering anyway.
SCREEN_WAIT = 2.0
HEARTBEAT_INTERVAL = 30.0

#: The largest body of POST /api/logs/client, and the most of its text logged.
MAX_CLIENT_LOG = 64 * 1024
MAX_CLIENT_LOG_TEXT = 4000
CLIENT_LOG_LEVELS = frozenset({"log", "info", "warn", "error", "debug"})
#: What GET /api/config suggests for new sessions (VibeTunnel's client shows them as buttons).
QUICK_START = ("python3", "htop", "top")
#: VibeTunnel's notification preferences, all off: each browser picks the kinds of event it
#: hears of when it subscribes (POST /api/push/subscribe).
NOTIFICATION_PREFERENCES = {
    key: False
    for key in (
        "enabled",
        "sessionStart",
        "sessionExit",
        "commandCompletion",
        "commandError",
        "bell",
        "claudeTurn",
        "soundEnabled",
        "vibrationEnabled",
    )
}


def _session_json(session: ISession) -> dict[str, Any]:
    """A Session as the API answers it: session.json's fields, ``source`` and ``activity``."""
    body = session.info.to_json()
    body["source"] = "local"
    activity = session.activity
    if activity is not None:
        body["activity"] = activity.state()
    else:
        # Nobody watches it (an ended session found on disk): idle since its last change.
        body["activity"] = {
            "state": "idle",
            "since": session.info.last_modified or session.info.started_at,
            "foreground": " ".join(session.info.command),
        }
    return body


def _json(request: Any, value: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _body(request: Any) -> dict[str, Any]:
    """The request's JSON object body, or BadRequest."""
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        return {}
    try:
        value = jsontext.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BadRequest("Malformed JSON body", details=str(e)[:200]) from e
    if not isinstance(value, dict):
        raise BadRequest("The JSON body must be an object")
    return value


def _client(request: Any, peer: Peer, authority: Authority) -> str | None:
    """Who is logging in, for counting failed logins: None for a process of the daemon's own
    user (never throttled), else its user on this machine or its address (see client_key)."""
    if authority.trusts(peer):
        return None
    return client_key(peer, getattr(request.getClientAddress(), "host", None))


def _object_counts() -> dict[str, int]:
    """The live objects made since startup (the startup heap is frozen), by type, most first."""
    counts = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    return dict(counts.most_common())


def _daemon_user() -> str:
    """The name of the account the daemon runs as."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _client_log_text(args: list[Any]) -> str:
    """A browser's log arguments as one line: strings as they are, the rest as JSON."""
    parts = [a if isinstance(a, str) else json.dumps(a, ensure_ascii=False) for a in args]
    text = " ".join(parts).replace("\r", " ").replace("\n", " ")
    if len(text) > MAX_CLIENT_LOG_TEXT:
        text = text[:MAX_CLIENT_LOG_TEXT] + "..."
    return redact(text)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class RecordingDownload(Resource):
    """GET /api/sessions/:id/recording: the cast file, playable by asciinema (no exit line)."""

    isLeaf = True

    def __init__(self, session: ISession, cooperator: Any) -> None:
        super().__init__()
        self._session = session
        self._cooperator = cooperator

    def render_GET(self, request: Any) -> Any:
        session = self._session
        request.setHeader(b"content-type", b"application/x-asciicast")
        request.setHeader(b"content-disposition", f'attachment; filename="{session.id}.cast"'.encode())
        reader = RecordingReader(session.recording_path, 0)
        end = session.recorded_end
        stopped = []
        request.notifyFinish().addBoth(lambda _: stopped.append(True))

        def send() -> Any:
            try:
                while not stopped:
                    lines = reader.read_lines(end, 65536)
                    if not lines:
                        break
                    request.write(b"".join(iter_playable(line for _, line in lines)))
                    yield None
            finally:
                reader.close()
            if not stopped:
                request.finish()

        self._cooperator.cooperate(send())
        return NOT_DONE_YET


class API:
    """The routes of /api, bound to one SessionService."""

    app = Klein()
    log = Logger()
    #: Where POST /api/logs/client writes what browsers log (at debug level).
    client_log = Logger(namespace="vibetwist.browser")

    def __init__(
        self,
        service: SessionService,
        reactor: Any,
        lag: LagMonitor | None = None,
        background: Cooperator | None = None,
        compress: bool = False,
        authority: Authority | None = None,
        web: WebClient | None = None,
        peer_of: Callable[[Any], Peer] = connection_peer,
        metrics: bool = True,
    ) -> None:
        self.service = service
        #: Who may do what; without one, login is off and a fresh secret signs share links.
        self.authority = authority if authority is not None else open_authority(reactor)
        #: Who made a request (the peer its connection found).
        self.peer_of = peer_of
        #: The browser client's files, served at / and /static/.
        self.web = web if web is not None else WebClient()
        self._reactor = reactor
        self._started = reactor.seconds()
        self.lag = lag
        #: Where replays and downloads read recordings, a slice per turn.
        self.streams = background if background is not None else budget_cooperator(reactor, 0.002)
        #: The SSE streams of sessions, and those of /api/events.
        self.viewers: set[Any] = set()
        self.event_streams: set[Any] = set()
        self.websockets = WebSockets(
            service, reactor, self.streams, compress=compress, authority=self.authority
        )
        #: Admits session creates (the live-session cap and the creation rate).
        self.gate: SessionCreateLimit | None = None
        #: GET /metrics (None with --no-metrics).
        self.metrics = Metrics(self, reactor) if metrics else None
        #: Restarts the daemon in place (POST /api/server/restart); None where it cannot.
        self.restarter: Any = None
        #: /api/push/*: Web Push is off until a notifier is given (tap.makeService does).
        self.push = PushAPI(None, reactor.seconds)
        #: The pending waits of POST /api/sessions/:id/wait.
        self.waiters = WaitService(reactor)
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = reactor

    def start(self) -> None:
        self._heartbeat.start(HEARTBEAT_INTERVAL, now=False)

    def stop(self) -> Deferred[None]:
        """Stop the heartbeat and give viewers that got their exit line a moment to flush it."""
        if self._heartbeat.running:
            self._heartbeat.stop()
        self.waiters.interrupt()
        for stream in list(self.event_streams):
            stream.close()
        for connection in self.websockets.connections():
            connection.going_away()
        return Deferred.fromCoroutine(self._drain())

    def restarting(self) -> None:
        """The daemon restarts in place: close every WebSocket with 1012 and end every SSE
        stream (without an exit line); their clients come back to the new daemon."""
        self.waiters.interrupt()
        for connection in self.websockets.connections():
            connection.restarting()
        for viewer in list(self.viewers):
            viewer.interrupt()

    async def _drain(self, limit: float = 1.0, step: float = 0.05) -> None:
        waited = 0.0
        while (self.viewers or self.websockets.connections()) and waited < limit:
            await deferLater(self._reactor, step, lambda: None)
            waited += step
        # The last responses are written out on the reactor's next rounds.
        await deferLater(self._reactor, step, lambda: None)

    def _beat(self) -> None:
        for viewer in [*self.viewers, *self.event_streams]:
            viewer.heartbeat()

    def resource(self) -> Resource:
        return self.app.resource()

    # -- errors ---------------------------------------------------------------------

    @app.handle_errors(RequestError)
    def _bad_request(self, request: Any, failure: Any) -> bytes:
        error = failure.value
        body = {"error": error.message}
        if error.details:
            body["details"] = error.details
        answer = _json(request, body, error.status)
        if error.reason is not None:
            request.setResponseCode(error.status, error.reason)
        if error.retry_after is not None:
            request.setHeader(b"retry-after", str(error.retry_after).encode())
        return answer

    @app.handle_errors(RouteNotFound)
    @app.handle_errors(RequestRedirect)  # a path with "//" or "/../": no route of ours
    def _no_route(self, request: Any, failure: Any) -> bytes:
        return _json(request, {"error": "Not found"}, 404)

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request: Any, failure: Any) -> bytes:
        return _json(request, {"error": "Method not allowed"}, 405)

    @app.handle_errors(Exception)
    def _internal(self, request: Any, failure: Any) -> bytes:
        self.log.failure("internal error answering {uri}", failure, uri=redact(request.uri.decode("latin-1")))
        return _json(request, {"error": "Internal server error"}, 500)

    # -- server ---------------------------------------------------------------------

    @app.route("/", methods=["GET"])
    def index(self, request: Any) -> bytes:
        return self.web.page(request)

    @app.route("/static/<name>", methods=["GET"])
    def static(self, request: Any, name: str) -> bytes:
        return self.web.asset(request, name)

    @app.route("/api/health", methods=["GET"])
    def health(self, request: Any) -> bytes:
        return _json(
            request,
            {
                "status": "ok",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "mode": "remote",
                "version": __version__,
                "uptime": round(self._reactor.seconds() - self._started, 3),
                "pid": os.getpid(),
            },
        )

    @app.route("/api/server/restart", methods=["POST"])
    async def restart(self, request: Any) -> bytes:
        """Hand over to a fresh copy of the daemon as installed now, once it is known to start."""
        if self.restarter is None:
            raise RestartFailed("This daemon cannot restart in place")
        await self.restarter.restart()
        return _json(request, {"success": True, "message": "Restarting"})

    # -- login (open routes: see vibetwist.login.gate) ---------------------------------------

    def _client(self, request: Any) -> str | None:
        return _client(request, self.peer_of(request), self.authority)

    @app.route("/api/auth/config", methods=["GET"])
    def auth_config(self, request: Any) -> bytes:
        return _json(request, self.authority.config())

    @app.route("/api/auth/verify", methods=["GET"])
    def auth_verify(self, request: Any) -> bytes:
        grant = self.authority.login_grant(request_token(request))
        if grant is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="VibeTunnel"')
            return _json(request, {"valid": False, "error": AUTH_REQUIRED}, 401)
        if grant.read_only:
            return _json(request, {"error": READ_ONLY}, 403)
        return _json(request, {"valid": True, "userId": grant.user_id})

    @app.route("/api/auth/password", methods=["POST"])
    async def auth_password(self, request: Any) -> bytes:
        answer = await self.authority.password_login(self._client(request), _body(request))
        return _json(request, answer)

    @app.route("/api/auth/challenge", methods=["POST"])
    def auth_challenge(self, request: Any) -> bytes:
        return _json(request, self.authority.challenge(self._client(request), _body(request)))

    @app.route("/api/auth/ssh-key", methods=["POST"])
    async def auth_ssh_key(self, request: Any) -> bytes:
        answer = await self.authority.ssh_key_login(self._client(request), _body(request))
        return _json(request, answer)

    @app.route("/api/config", methods=["GET"])
    def config(self, request: Any) -> bytes:
        """VibeTunnel's client configuration: where repositories are, commands to offer."""
        return _json(
            request,
            {
                "repositoryBasePath": "~",
                "serverConfigured": True,
                "quickStartCommands": [
                    {"name": "shell", "command": os.path.basename(self.service.shell)},
                    *({"command": command} for command in QUICK_START),
                ],
                "notificationPreferences": NOTIFICATION_PREFERENCES,
            },
        )

    @app.route("/api/server/status", methods=["GET"])
    def server_status(self, request: Any) -> bytes:
        return _json(request, {"macAppConnected": False, "isHQMode": False, "version": __version__})

    @app.route("/api/auth/current-user", methods=["GET"])
    def current_user(self, request: Any) -> bytes:
        """The user the request acts for: the one logged in, else the daemon's own."""
        grant = request_grant(request)
        user = grant.user_id if grant is not None and grant.user_id else _daemon_user()
        return _json(request, {"userId": user})

    @app.route("/api/push/vapid-public-key", methods=["GET"])
    def push_key(self, request: Any) -> bytes:
        return _json(request, *self.push.public_key())

    @app.route("/api/push/subscribe", methods=["POST"])
    def push_subscribe(self, request: Any) -> bytes:
        return _json(request, self.push.subscribe(_body(request)))

    @app.route("/api/push/unsubscribe", methods=["POST"])
    def push_unsubscribe(self, request: Any) -> bytes:
        return _json(request, self.push.unsubscribe(_body(request)))

    @app.route("/api/push/test", methods=["POST"])
    async def push_test(self, request: Any) -> bytes:
        return _json(request, await self.push.test(_body(request)))

    @app.route("/api/push/status", methods=["GET"])
    def push_status(self, request: Any) -> bytes:
        return _json(request, self.push.status())

    @app.route("/api/logs/client", methods=["POST"])
    def client_logs(self, request: Any) -> bytes:
        """A browser's console line, logged at debug level (tokens redacted)."""
        content = request.content
        if content is not None:
            content.seek(0, 2)
            size = content.tell()
            content.seek(0)
            if size > MAX_CLIENT_LOG:
                raise PayloadTooLarge(f"A client log entry is at most {MAX_CLIENT_LOG} bytes")
        body = _body(request)
        level, module, args = body.get("level"), body.get("module"), body.get("args")
        if level not in CLIENT_LOG_LEVELS:
            raise BadRequest(f"level must be one of {', '.join(sorted(CLIENT_LOG_LEVELS))}")
        if not isinstance(module, str) or len(module) > 200:
            raise BadRequest("module must be a string of at most 200 characters")
        if not isinstance(args, list):
            raise BadRequest("args must be an array")
        self.client_log.debug(
            "browser {console} [{module}] {text}",
            console=level,
            module=redact(module),
            text=_client_log_text(args),
        )
        return _json(request, {"success": True})

    @app.route("/api/events", methods=["GET"])
    def events(self, request: Any) -> Resource:
        return EventStreamResource(self.service.events, self.event_streams)

    @app.route("/metrics", methods=["GET"])
    def metrics_route(self, request: Any) -> bytes:
        if self.metrics is None:
            raise NotFound("Metrics are off (--no-metrics)")
        return self.metrics.render(request)

    @app.route("/api/stats", methods=["GET"])
    def stats(self, request: Any) -> bytes:
        lag = self.lag
        body = {
            "reactorLag": {
                "maxMs": round(lag.max_lag * 1000, 3) if lag else None,
                "samples": lag.samples if lag else 0,
                "intervalMs": round(lag.interval * 1000, 3) if lag else None,
            },
            "sessions": len(self.service.sessions),
            "statuses": self.service.counts(),
            "rssBytes": _rss_bytes(),
            "delayedCalls": len(self._reactor.getDelayedCalls()),
        }
        if request.args.get(b"objects") == [b"1"]:
            gc.collect()
            body["objects"] = _object_counts()
        if lag is not None and request.args.get(b"reset") == [b"1"]:
            lag.reset()
        return _json(request, body)

    # -- sessions -------------------------------------------------------------------

    @app.route("/api/sessions", methods=["GET"])
    def list_sessions(self, request: Any) -> bytes:
        return _json(request, [_session_json(s) for s in self.service.list()])

    @app.route("/api/sessions", methods=["POST"])
    def create_session(self, request: Any) -> bytes:
        try:
            body = _body(request)
            if self.gate is not None:
                self.gate.admit(sum(s.status is not Status.EXITED for s in self.service.sessions.values()))
            session = self.service.create(
                body.get("command"),
                working_dir=body.get("workingDir"),
                name=body.get("name"),
                cols=body.get("cols"),
                rows=body.get("rows"),
                title_mode=body.get("titleMode"),
            )
        except RequestError:
            if self.metrics is not None:
                self.metrics.create_refused()
            raise
        if self.metrics is not None:
            self.metrics.create_posted(session.id)
        return _json(request, {"sessionId": session.id})

    @app.route("/api/cleanup-exited", methods=["POST"])
    async def cleanup_exited(self, request: Any) -> bytes:
        count = await self.service.cleanup_exited()
        return _json(
            request,
            {"success": True, "message": f"{count} exited sessions cleaned up", "localCleaned": count},
        )

    @app.route("/api/sessions/<session_id>", methods=["GET"])
    def get_session(self, request: Any, session_id: str) -> bytes:
        return _json(request, _session_json(self.service.get(session_id)))

    @app.route("/api/sessions/<session_id>", methods=["PATCH"])
    def rename_session(self, request: Any, session_id: str) -> bytes:
        self.service.get(session_id)
        name = self.service.rename(session_id, _body(request).get("name"))
        return _json(request, {"success": True, "name": name})

    @app.route("/api/sessions/<session_id>", methods=["DELETE"])
    def delete_session(self, request: Any, session_id: str) -> bytes:
        session = self.service.get(session_id)
        if session.status is Status.EXITED:
            self.service.remove(session_id)
            return _json(request, {"success": True, "message": "Session cleaned up"})
        session.kill()
        return _json(request, {"success": True, "message": "Session killed"})

    @app.route("/api/sessions/<session_id>/cleanup", methods=["DELETE"])
    def cleanup_session(self, request: Any, session_id: str) -> bytes:
        self.service.remove(session_id)
        return _json(request, {"success": True, "message": "Session cleaned up"})

    @app.route("/api/sessions/<session_id>/share", methods=["POST"])
    def share_session(self, request: Any, session_id: str) -> bytes:
        session = self.service.get(session_id)
        return _json(request, self.authority.share(session.id, _body(request)))

    @app.route("/api/sessions/<session_id>/input", methods=["POST"])
    def input(self, request: Any, session_id: str) -> bytes:
        session = self.service.get(session_id)
        body = _body(request)
        has_text, has_key = "text" in body, "key" in body
        if has_text == has_key:
            raise BadRequest("Exactly one of text or key is required")
        if has_text:
            if not isinstance(body["text"], str):
                raise BadRequest("text must be a string")
            data = body["text"]
        else:
            data = key_sequence(body["key"])
        session.write(data.encode("utf-8", "surrogateescape"))
        return _json(request, {"success": True})

    @app.route("/api/sessions/<session_id>/resize", methods=["POST"])
    def resize(self, request: Any, session_id: str) -> bytes:
        session = self.service.get(session_id)
        body = _body(request)
        session.resize(body.get("cols"), body.get("rows"))
        return _json(request, {"success": True, "cols": body["cols"], "rows": body["rows"]})

    async def _fresh_screen(self, session: ISession) -> None:
        """Wait (briefly) until the screen shows the output recorded so far."""
        try:
            await session.feed.when_caught_up().addTimeout(SCREEN_WAIT, self._reactor)
        except TimeoutError:
            pass  # answer with what the screen shows

    @app.route("/api/sessions/<session_id>/text", methods=["GET"])
    async def text(self, request: Any, session_id: str) -> bytes:
        session = self.service.get(session_id)
        await self._fresh_screen(session)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return session.screen.text().encode("utf-8")

    @app.route("/api/sessions/<session_id>/buffer", methods=["GET"])
    async def buffer(self, request: Any, session_id: str) -> bytes:
        session = self.service.get(session_id)
        await self._fresh_screen(session)
        request.setHeader(b"content-type", b"application/octet-stream")
        return encode(session.screen.snapshot())

    @app.route("/api/sessions/<session_id>/wait", methods=["POST"])
    async def wait(self, request: Any, session_id: str) -> bytes:
        """Answer once a pattern shows on the screen or in the output, or the program goes quiet
        (see vibetwist.sessions.waiters); 408 at the timeout."""
        session = self.service.get(session_id)
        code, body = await self.waiters.wait(session, WaitRequest.from_json(_body(request)))
        if code == 503:
            request.setHeader(b"retry-after", b"1")
        return _json(request, body, code)

    @app.route("/api/sessions/<session_id>/stream", methods=["GET"])
    def stream(self, request: Any, session_id: str) -> Resource:
        return StreamResource(self.service.get(session_id), self.streams, self.viewers)

    # -- WebSockets -------------------------------------------------------------------

    def _upgrade(self, request: Any, endpoints: WebSocketFactory) -> Any:
        if (request.getHeader(b"upgrade") or b"").lower() != b"websocket":
            raise UpgradeRequired("This is a WebSocket endpoint")
        return endpoints.web_resource()

    @app.route("/buffers", methods=["GET"])
    def buffers(self, request: Any) -> Resource:
        return self._upgrade(request, self.websockets.buffers)

    @app.route("/ws/input", methods=["GET"])
    def input_socket(self, request: Any) -> Resource:
        session_id = (request.args.get(b"sessionId") or [b""])[0].decode("utf-8", "replace")
        self.service.get(session_id)
        return self._upgrade(request, self.websockets.input)

    @app.route("/ws/sessions/<session_id>", methods=["GET"])
    def stream_socket(self, request: Any, session_id: str) -> Resource:
        self.service.get(session_id)
        return self._upgrade(request, self.websockets.stream)

    @app.route("/api/sessions/<session_id>/recording", methods=["GET"])
    def recording(self, request: Any, session_id: str) -> Resource:
        return RecordingDownload(self.service.get(session_id), self.streams)
