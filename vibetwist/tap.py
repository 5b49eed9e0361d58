# -*- test-case-name: tests.test_tap -*-
"""``twistd vibetunnel``: the daemon's options and service."""

from __future__ import annotations

import gc
import ipaddress
import os
import re
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.test.proto_helpers import MemoryReactor
from twisted.web.server import Site

from vibetwist import __version__
from vibetwist.api import API
from vibetwist.command import default_shell
from vibetwist.controldir import default_control_dir
from vibetwist.fairness import cap_events_per_turn
from vibetwist.guard import Guard
from vibetwist.lag import LagMonitor
from vibetwist.limits import ConnectionLimiter, Limits, SessionGate
from vibetwist.pty import PTYLauncher, SessionSignaller
from vibetwist.screenfeed import budget_cooperator
from vibetwist.service import SessionService

DEFAULT_LISTEN = "tcp:4020:interface=127.0.0.1"
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes from "1048576", "512K", "100M", "2G"; ValueError otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    return int(number) * 1024 ** " kmgt".index(unit.lower() or " ")


def is_loopback_interface(interface: str) -> bool:
    """True if binding interface exposes nothing beyond this machine."""
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def check_listen(description: str) -> None:
    """Refuse an endpoint string that is malformed or reachable from other machines."""
    try:
        endpoint = endpoints.serverFromString(MemoryReactor(), description)
    except (ValueError, TypeError, KeyError) as e:
        raise usage.UsageError(f"--listen {description!r}: {e}") from e
    if isinstance(endpoint, endpoints.UNIXServerEndpoint):
        return
    interface = getattr(endpoint, "_interface", None)
    if isinstance(interface, str) and is_loopback_interface(interface):
        return
    raise usage.UsageError(
        f"--listen {description!r} would accept connections from other machines, and "
        "vibetwist has no authentication yet: listen on a loopback address "
        "(interface=127.0.0.1 or ::1) or a unix: socket"
    )


class Options(usage.Options):
    """Options of ``twistd vibetunnel``."""

    synopsis = "[options]"
    longdesc = (
        "Runs programs in pseudo-terminals and serves them to browsers and "
        "VibeTunnel clients over HTTP on http://127.0.0.1:4020/ by default."
    )
    optParameters = [
        [
            "control-dir",
            "d",
            None,
            "Folder of session files (default: $VIBETUNNEL_CONTROL_DIR, else ~/.vibetunnel/control).",
        ],
        ["shell", None, None, "Shell for commands that are not programs (default: $SHELL)."],
        ["scrollback", None, "10000", "Lines of scrollback kept per session screen."],
        ["max-recording", None, "1G", "Largest recording per session, e.g. 500M or 2G."],
        ["max-sessions", None, "1000", "Live sessions at most; a create past it answers 503."],
        ["max-create-rate", None, "200", "Session creates per second over time; faster ones answer 429."],
        ["create-burst", None, "200", "Session creates allowed at once before the rate applies."],
        ["max-connections", None, "2000", "HTTP and WebSocket connections at most; more get a 503."],
        [
            "request-timeout",
            None,
            "30",
            "Seconds a connection has to send a whole request (headers and body); then 408.",
        ],
    ]
    optFlags = [
        ["measure-lag", None, "Measure reactor stalls (reported by GET /api/stats)."],
        ["access-log", None, "Log every HTTP request."],
        [
            "compress",
            None,
            "Accept permessage-deflate on WebSockets (costs CPU per viewer; off by default).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """Where to listen, as a Twisted endpoint string (repeatable; default
        tcp:4020:interface=127.0.0.1). Only loopback or unix: endpoints are accepted."""
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"vibetwist {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        for description in self["listen"]:
            check_listen(description)
        self["control-dir"] = (
            Path(self["control-dir"]).expanduser() if self["control-dir"] else default_control_dir()
        )
        self["shell"] = self["shell"] or default_shell()
        try:
            self["scrollback"] = int(self["scrollback"])
            if not 0 <= self["scrollback"] <= 1_000_000:
                raise ValueError
        except ValueError:
            raise usage.UsageError("--scrollback must be a number of lines from 0 to 1000000") from None
        try:
            self["max-recording"] = parse_size(str(self["max-recording"]))
        except ValueError as e:
            raise usage.UsageError(f"--max-recording: {e}") from e
        self["limits"] = parse_limits(self)


def parse_limits(options: Any) -> Limits:
    """The Limits named by the options; UsageError for a value out of range."""
    fields: dict[str, Any] = {}
    for option, name, kind, low in [
        ("max-sessions", "max_sessions", int, 1),
        ("max-create-rate", "create_rate", float, 0.001),
        ("create-burst", "create_burst", int, 1),
        ("max-connections", "max_connections", int, 1),
        ("request-timeout", "request_timeout", float, 0.1),
    ]:
        try:
            value = kind(options[option])
            if not low <= value < 1e9:
                raise ValueError
        except ValueError:
            raise usage.UsageError(f"--{option} must be a number of at least {low}") from None
        fields[name] = value
    return Limits(**fields)


class _QuietSite(Site):
    """A Site that writes no access log."""

    def log(self, request: Any) -> None:
        pass


class Listener(Service):
    """Listens on one endpoint; fails start-up at once if it cannot."""

    log = Logger()

    def __init__(self, reactor: Any, description: str, factory: Any) -> None:
        self._reactor = reactor
        self.description = description
        self._factory = factory
        self._port: Any = None

    def startService(self) -> None:
        super().startService()
        results: list[Any] = []
        endpoint = endpoints.serverFromString(self._reactor, self.description)
        endpoint.listen(self._factory).addBoth(results.append)
        if results and isinstance(results[0], Failure):
            results[0].raiseException()
        if results:
            self._listening(results[0])

    def _listening(self, port: Any) -> None:
        self._port = port
        address = port.getHost()
        if hasattr(address, "port"):
            host = address.host if ":" not in address.host else f"[{address.host}]"
            url = f"http://{host}:{address.port}/"
        else:
            url = f"unix:{address.name.decode() if isinstance(address.name, bytes) else address.name}"
        self.log.info("vibetwist listening on {url}", url=url)

    def stopService(self) -> Any:
        super().stopService()
        if self._port is not None:
            return self._port.stopListening()
        return None


def freeze_startup_objects() -> None:
    """Keep the objects made at start-up (modules, classes, the site) out of garbage collection.

    A full collection walks every live object: with Twisted, klein and pyte
    loaded that is tens of milliseconds during which no session is served.
    Frozen objects are never walked.
    """
    gc.collect()
    gc.freeze()


class _APIService(Service):
    def __init__(self, api: API, lag: LagMonitor | None, reactor: Any) -> None:
        self._api = api
        self._lag = lag
        self._reactor = reactor

    def startService(self) -> None:
        super().startService()
        self._api.start()
        if self._lag is not None:
            self._lag.start()
        self._reactor.callWhenRunning(freeze_startup_objects)
        cap_events_per_turn(self._reactor)

    def stopService(self) -> Any:
        super().stopService()
        if self._lag is not None:
            self._lag.stop()
        return self._api.stop()


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """The daemon: the sessions, the API and its listeners."""
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    top = MultiService()
    # Reading recordings back for viewers and scanning /proc for kills share one
    # cooperator of 2 ms a turn.
    background = budget_cooperator(reactor, 0.002)
    sessions = SessionService(
        options["control-dir"],
        reactor=reactor,
        launcher=PTYLauncher(reactor, SessionSignaller(background)),
        shell=options["shell"],
        scrollback=options["scrollback"],
        max_recording=options["max-recording"],
        environ=dict(os.environ),
    )
    lag = LagMonitor(reactor) if options["measure-lag"] else None
    limits = options.get("limits") or Limits()
    api = API(sessions, reactor, lag, background, compress=bool(options["compress"]))
    api.gate = SessionGate(limits, reactor)
    # Services stop in the reverse order: listeners, then sessions (their viewers
    # get the exit lines), then the API (which lets those lines flush).
    _APIService(api, lag, reactor).setServiceParent(top)
    sessions.setServiceParent(top)
    site_class = Site if options["access-log"] else _QuietSite
    site = site_class(Guard(api.resource()))
    site.noisy = False
    limited = ConnectionLimiter(site, limits, reactor)
    for description in options["listen"]:
        Listener(reactor, description, limited).setServiceParent(top)
    return top
