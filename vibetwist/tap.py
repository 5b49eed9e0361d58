# -*- test-case-name: tests.test_tap -*-
"""``twistd vibetunnel``: the daemon's options and service."""

from __future__ import annotations

import gc
import os
import re
import socket
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python import usage

from vibetwist import __version__
from vibetwist._reactor.cooperate import budget_cooperator
from vibetwist._reactor.fairness import cap_events_per_turn
from vibetwist._reactor.lag import COARSE_INTERVAL, FINE_INTERVAL, LagMonitor
from vibetwist.login.authority import LOGIN_LIFETIME, Authority, authority_from_options
from vibetwist.login.passwords import PasswordFileError, read_password_file
from vibetwist.login.tokens import SecretError, Tokens, check_secret_file, issuer_for, load_secret
from vibetwist.model.controldir import default_control_dir
from vibetwist.model.launch import DAEMON_SECRETS, default_shell
from vibetwist.model.privatefiles import UnsafePath, check_private_dir, check_private_file
from vibetwist.model.vapid import VapidKeyError, load_vapid
from vibetwist.model.webpush import load_encoder
from vibetwist.server.api import API
from vibetwist.server.limits import ConnectionLimiter, Limits, SessionCreateLimit
from vibetwist.server.listen import Listener, check_listen, is_unspecified, parse_listen
from vibetwist.server.metrics import MetricsResource
from vibetwist.server.push import PushAPI
from vibetwist.server.restart import Restarter, close_unclaimed, report_takeover, take_handover
from vibetwist.server.site import guarded_resource, make_site
from vibetwist.sessions.held import HolderLauncher
from vibetwist.sessions.pty import PTYLauncher, SessionSignaller
from vibetwist.sessions.push import PushNotifier, PushStoreError, PushSubscriptions, TreqPushSender
from vibetwist.sessions.service import SessionService

DEFAULT_LISTEN = "tcp:4020:interface=127.0.0.1"
DEFAULT_PUSH_CONTACT = "mailto:vibetwist@localhost"
_log = Logger()
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_byte_size(text: str) -> int:
    """Bytes from "1048576", "512K", "100M", "2G"; ValueError otherwise."""
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    return int(number) * 1024 ** " kmgt".index(unit.lower() or " ")


class Options(usage.Options):
    """Options of ``twistd vibetunnel``."""

    synopsis = "[options]"
    longdesc = (
        "Runs programs in pseudo-terminals and serves them to browsers and "
        "VibeTunnel clients over HTTP on http://127.0.0.1:4020/ by default. Login is on when "
        "VIBETUNNEL_USERNAME and VIBETUNNEL_PASSWORD are set, or with --password-file or --ssh-keys; "
        "a --listen address other than loopback or unix: needs a login (or --allow-no-auth-on-network)."
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
        [
            "password-file",
            None,
            None,
            "Users and Argon2 password hashes allowed to log in (make one with: "
            "python -m vibetwist.passwd FILE [USER]).",
        ],
        [
            "authorized-keys",
            None,
            None,
            "With --ssh-keys: the authorized_keys file whose ssh-ed25519 keys may log in "
            "(default: ~/.ssh/authorized_keys).",
        ],
        [
            "secret-file",
            None,
            None,
            "The secret that signs tokens, made (0600) on first start "
            "(default: vibetwist.secret beside the control directory).",
        ],
        ["token-lifetime", None, str(LOGIN_LIFETIME), "Seconds a login token stays valid."],
        [
            "push-key-file",
            None,
            None,
            "The VAPID key that signs Web Push messages, made (0600) on first start "
            "(default: vibetwist.vapid.pem beside the secret file); the push subscriptions "
            "are kept beside it (vibetwist.push.json).",
        ],
        [
            "push-contact",
            None,
            DEFAULT_PUSH_CONTACT,
            "Who push services may contact about this daemon's messages (a mailto: or https: URL).",
        ],
        ["max-sessions", None, "1000", "Live sessions at most; a create past it answers 503."],
        [
            "command-min-seconds",
            None,
            "3",
            "Seconds a command typed into a session's shell must run for its end to be an event "
            "(command-finished, command-error on /api/events).",
        ],
        ["max-create-rate", None, "200", "Session creates per second over time; faster ones answer 429."],
        ["create-burst", None, "200", "Session creates allowed at once before the rate applies."],
        ["max-connections", None, "2000", "HTTP and WebSocket connections at most; more get a 503."],
        [
            "request-timeout",
            None,
            "30",
            "Seconds a connection has to send a whole request (headers and body); then 408.",
        ],
        [
            "metrics-listen",
            None,
            None,
            "Also serve GET /metrics alone, without login, on this endpoint "
            "(e.g. tcp:9120:interface=127.0.0.1); bind it where only your Prometheus reaches.",
        ],
        [
            "host-id",
            None,
            None,
            "With --nats: this host's name in the cluster, letters, digits, - and _ "
            "(default: the hostname up to its first dot).",
        ],
        [
            "gateway-id",
            None,
            None,
            "With --gateway: this gateway's name in the cluster, letters, digits, - and _; "
            "it receives on NATS subjects under _INBOX.g.<gateway-id> "
            "(default: the hostname up to its first dot and random digits).",
        ],
        ["nats-creds", None, None, "With --nats: a JWT and NKey credentials file to authenticate with."],
        ["nats-nkey", None, None, "With --nats: an NKey seed file to authenticate with."],
        [
            "nats-tls-ca",
            None,
            None,
            "With --nats: the CA certificates that NATS servers' certificates are checked against.",
        ],
        ["nats-tls-cert", None, None, "With --nats: a client certificate for NATS (with --nats-tls-key)."],
        ["nats-tls-key", None, None, "With --nats: the private key of --nats-tls-cert."],
    ]
    optFlags = [
        [
            "ssh-keys",
            None,
            "Allow logging in with an Ed25519 key listed in --authorized-keys "
            "(as the user running the daemon).",
        ],
        ["require-login", None, "Refuse to start unless a login method is configured."],
        ["no-auth", None, "Turn login off even if credentials are configured."],
        [
            "allow-no-auth-on-network",
            None,
            "Allow listening on a non-loopback address with login off: anyone who can reach "
            "the port gets a shell.",
        ],
        [
            "measure-lag",
            None,
            "Measure reactor stalls with a 1 ms timer (reported by GET /api/stats), not a 250 ms one.",
        ],
        ["no-metrics", None, "Serve no /metrics and count nothing for it."],
        ["no-push", None, "Send no Web Push notifications (/api/push/* answers 503)."],
        ["access-log", None, "Log every HTTP request."],
        [
            "compress",
            None,
            "Accept permessage-deflate on WebSockets (costs CPU per viewer; off by default).",
        ],
        [
            "gateway",
            None,
            "Run no programs: serve the sessions of every host of the cluster that --nats "
            "joins, through their tunnels, with this daemon's login and listeners.",
        ],
        [
            "sessions-outlive-daemon",
            None,
            "Run each new session's program in a small holder process of its own, so that it goes "
            "on when the daemon stops or dies; a daemon started later picks it up.",
        ],
    ]

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        super().__init__()
        self.environ = dict(os.environ) if environ is None else environ
        self["listen"] = []
        self["allow-host"] = []
        self["nats"] = []

    def opt_listen(self, description: str) -> None:
        """Where to listen (repeatable), e.g. ssl:4443:privateKey=key.pem:certKey=cert.pem for HTTPS."""
        self["listen"].append(description)

    opt_l = opt_listen

    def opt_nats(self, urls: str) -> None:
        """Join a cluster through these NATS servers (repeatable, or comma-separated):
        nats://[user:pass@ or TOKEN@]host:4222, tls://host:4222."""
        self["nats"].append(urls)

    def opt_allow_host(self, name: str) -> None:
        """A Host name (or address) browsers may use to reach the daemon, besides loopback
        names and the addresses it listens on (repeatable)."""
        self["allow-host"].append(name.strip().lower().strip("[]"))

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"vibetwist {__version__}")
        raise SystemExit(0)

    def postOptions(self) -> None:
        self._post_gateway()
        if not self["listen"]:
            self["listen"] = [DEFAULT_LISTEN]
        self["control-dir"] = (
            Path(self["control-dir"]).expanduser() if self["control-dir"] else default_control_dir()
        )
        try:
            check_private_dir(self["control-dir"])
        except UnsafePath as e:
            raise usage.UsageError(f"the control directory: {e}") from None
        self._post_login()
        specs = [
            check_listen(d, self["login"], bool(self["allow-no-auth-on-network"])) for d in self["listen"]
        ]
        self["allowed-hosts"] = frozenset(self["allow-host"]) | {
            spec.interface for spec in specs if spec.exposed and not is_unspecified(spec.interface)
        }
        self["shell"] = self["shell"] or default_shell()
        try:
            self["scrollback"] = int(self["scrollback"])
            if not 0 <= self["scrollback"] <= 1_000_000:
                raise ValueError
        except ValueError:
            raise usage.UsageError("--scrollback must be a number of lines from 0 to 1000000") from None
        try:
            self["max-recording"] = parse_byte_size(str(self["max-recording"]))
        except ValueError as e:
            raise usage.UsageError(f"--max-recording: {e}") from e
        self["limits"] = parse_limits(self)
        if self["metrics-listen"]:
            if self["no-metrics"]:
                raise usage.UsageError("--metrics-listen and --no-metrics contradict each other")
            parse_listen(self["metrics-listen"])
        self._post_cluster()

    def _post_cluster(self) -> None:
        """The NATS configuration (None without --nats) and the host id (or the gateway id)."""
        self["nats-config"] = None
        cluster_only = (
            "host-id",
            "gateway-id",
            "nats-creds",
            "nats-nkey",
            "nats-tls-ca",
            "nats-tls-cert",
            "nats-tls-key",
        )
        if not self["nats"]:
            for name in cluster_only:
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} goes with --nats")
            return
        from vibetwist.cluster.options import (
            NATSConfig,
            NATSOptionError,
            check_gateway_id,
            check_host_id,
            default_host_id,
        )

        try:
            self["nats-config"] = NATSConfig.from_options(
                self["nats"],
                creds=self["nats-creds"],
                nkey=self["nats-nkey"],
                tls_ca=self["nats-tls-ca"],
                tls_cert=self["nats-tls-cert"],
                tls_key=self["nats-tls-key"],
            )
            if self["gateway-id"] is not None:
                if not self["gateway"]:
                    raise usage.UsageError("--gateway-id goes with --gateway")
                self["gateway-id"] = check_gateway_id(self["gateway-id"])
            if not self["gateway"]:
                self["host-id"] = check_host_id(self["host-id"] or default_host_id(socket.gethostname()))
        except NATSOptionError as e:
            raise usage.UsageError(str(e)) from None

    def _post_gateway(self) -> None:
        """A gateway joins a cluster and runs no sessions: the options of sessions make no sense there."""
        if not self["gateway"]:
            return
        if not self["nats"]:
            raise usage.UsageError("--gateway needs --nats: the cluster whose hosts it serves")
        for name in ("sessions-outlive-daemon", "shell", "host-id", "metrics-listen"):
            if self[name]:
                raise usage.UsageError(f"--{name} makes no sense with --gateway, which runs no sessions")

    def _post_login(self) -> None:
        """Work out whether login is on, and read the credentials."""
        self["passwords"] = {}
        if self["password-file"]:
            self["password-file"] = Path(self["password-file"]).expanduser()
            try:
                self["passwords"] = read_password_file(self["password-file"])
            except PasswordFileError as e:
                raise usage.UsageError(f"--password-file: {e}") from e
            if not self["passwords"]:
                raise usage.UsageError(f"--password-file {self['password-file']}: no users in it")
        if self["authorized-keys"]:
            self["ssh-keys"] = True
        self["authorized-keys"] = Path(self["authorized-keys"] or "~/.ssh/authorized_keys").expanduser()
        env_user = self.environ.get("VIBETUNNEL_USERNAME")
        env_password = self.environ.get("VIBETUNNEL_PASSWORD")
        if bool(env_user) != bool(env_password):
            raise usage.UsageError("set both VIBETUNNEL_USERNAME and VIBETUNNEL_PASSWORD, or neither")
        self["env-credentials"] = (env_user, env_password) if env_user else None
        configured = bool(self["passwords"] or self["env-credentials"] or self["ssh-keys"])
        if self["no-auth"] and self["require-login"]:
            raise usage.UsageError("--no-auth and --require-login contradict each other")
        if self["require-login"] and not configured:
            raise usage.UsageError(
                "--require-login: no login method is configured (VIBETUNNEL_USERNAME and "
                "VIBETUNNEL_PASSWORD, --password-file or --ssh-keys)"
            )
        self["login"] = configured and not self["no-auth"]
        try:
            self["token-lifetime"] = int(self["token-lifetime"])
            if not 60 <= self["token-lifetime"] <= 365 * 24 * 3600:
                raise ValueError
        except ValueError:
            raise usage.UsageError(
                "--token-lifetime must be a number of seconds from 60 to 31536000"
            ) from None
        try:
            self["command-min-seconds"] = float(self["command-min-seconds"])
            if not 0 <= self["command-min-seconds"] <= 86400:
                raise ValueError
        except ValueError:
            raise usage.UsageError(
                "--command-min-seconds must be a number of seconds from 0 to 86400"
            ) from None
        self["secret-file"] = (
            Path(self["secret-file"]).expanduser()
            if self["secret-file"]
            else self["control-dir"].parent / "vibetwist.secret"
        )
        try:
            check_secret_file(self["secret-file"])
        except SecretError as e:
            raise usage.UsageError(str(e)) from e
        self._post_push()

    def _post_push(self) -> None:
        """Where the VAPID key and the push subscriptions are kept, and who to contact."""
        self["push-key-file"] = (
            Path(self["push-key-file"]).expanduser()
            if self["push-key-file"]
            else self["secret-file"].parent / "vibetwist.vapid.pem"
        )
        self["push-subscriptions"] = self["push-key-file"].parent / "vibetwist.push.json"
        contact = self["push-contact"]
        if not re.match(r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$", contact):
            raise usage.UsageError("--push-contact must be a mailto: or https: URL")
        if self["no-push"]:
            return
        for path in (self["push-key-file"], self["push-subscriptions"]):
            try:
                check_private_file(path)
            except UnsafePath as e:
                raise usage.UsageError(f"Web Push: {e}") from None


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


def make_authority(options: Options, reactor: Any) -> Authority:
    """The login methods and token signer the options describe (the secret from its file)."""
    tokens = Tokens(load_secret(options["secret-file"]), issuer=issuer_for(options["control-dir"]))
    return authority_from_options(options, reactor, tokens)


def freeze_startup_objects() -> None:
    """Keep the objects made at start-up (modules, classes, the site) out of garbage collection.

    A full collection walks every live object: with Twisted, klein and pyte
    loaded that is tens of milliseconds during which no session is served.
    Frozen objects are never walked.
    """
    gc.collect()
    gc.freeze()


def make_notifier(options: Options, events: Any, reactor: Any) -> PushNotifier | None:
    """The Web Push notifier the options describe (None with --no-push); the key is made
    on first start. UsageError if the key or the subscriptions cannot be read."""
    if options["no-push"]:
        return None
    try:
        key = load_vapid(options["push-key-file"])
        subscriptions = PushSubscriptions(options["push-subscriptions"])
        subscriptions.load()
    except (VapidKeyError, PushStoreError) as e:
        raise usage.UsageError(f"Web Push: {e}") from None
    return PushNotifier(
        key,
        subscriptions,
        TreqPushSender(reactor),
        events,
        options["push-contact"],
        reactor,
        # pywebpush takes 0.2-0.3 s to import: in a thread, after the daemon has started.
        prepare=lambda: deferToThreadPool(reactor, reactor.getThreadPool(), load_encoder),
    )


class _PushService(Service):
    def __init__(self, notifier: PushNotifier) -> None:
        self._notifier = notifier

    def startService(self) -> None:
        super().startService()
        self._notifier.start()

    def stopService(self) -> Any:
        super().stopService()
        return self._notifier.stop()


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


def makeService(options: Options, reactor: Any = None, restart_signal: bool = True) -> MultiService:
    """The daemon: the sessions, the API, its listeners, and its restart in place.

    After a restart in place (see :mod:`vibetwist.server.restart`) the daemon
    takes over the sockets and sessions the earlier daemon of this process
    handed over.

    :param restart_signal: whether SIGUSR2 restarts the daemon in place.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    if options.get("gateway"):
        # Only with --gateway: the NATS client and its thread are not loaded otherwise.
        from vibetwist.cluster.gateway import make_gateway_service

        return make_gateway_service(options, reactor)
    # Before anything copies the environment: the programs started later must not see it.
    handover = take_handover()
    top = MultiService()
    # Reading recordings back for viewers and scanning /proc for kills share one
    # cooperator of 2 ms a turn.
    background = budget_cooperator(reactor, 0.002)
    # Read by the options already; no session (or anything else the daemon starts) gets them.
    for name in DAEMON_SECRETS:
        os.environ.pop(name, None)
    sessions = SessionService(
        options["control-dir"],
        reactor=reactor,
        launcher=PTYLauncher(reactor, SessionSignaller(background)),
        shell=options["shell"],
        scrollback=options["scrollback"],
        max_recording=options["max-recording"],
        environ=dict(os.environ),
        background=background,
        holders=HolderLauncher(reactor) if options["sessions-outlive-daemon"] else None,
        command_min_seconds=options["command-min-seconds"],
    )
    if handover is not None:
        sessions.handed = handover.sessions
    lag = LagMonitor(reactor, FINE_INTERVAL if options["measure-lag"] else COARSE_INTERVAL)
    authority = make_authority(options, reactor)
    limits = options.get("limits") or Limits()
    api = API(
        sessions,
        reactor,
        lag,
        background,
        compress=bool(options["compress"]),
        authority=authority,
        metrics=not options["no-metrics"],
    )
    api.gate = SessionCreateLimit(limits, reactor)
    notifier = make_notifier(options, sessions.events, reactor)
    if notifier is not None:
        api.push = PushAPI(notifier, reactor.seconds)
    if api.metrics is not None:
        lag.observe = api.metrics.reactor_lag.observe
    # Services stop in the reverse order: listeners, then sessions (their viewers
    # get the exit lines), then the API (which lets those lines flush).
    _APIService(api, lag, reactor).setServiceParent(top)
    if notifier is not None:
        # Stopped after the sessions, so that their exit events are still sent.
        _PushService(notifier).setServiceParent(top)
    sessions.setServiceParent(top)
    cluster: Any = None
    if options.get("nats-config") is not None:
        # Only with --nats: the NATS client and its thread are not loaded otherwise.
        from vibetwist.cluster import host

        cluster = host
    guarded = guarded_resource(
        api.resource(),
        authority,
        allowed_hosts=options["allowed-hosts"],
        metrics=api.metrics,
        vouched=cluster.cluster_grant if cluster else None,
        exempt=cluster.is_tunnel_request if cluster else None,
    )
    limited = ConnectionLimiter(make_site(guarded, bool(options["access-log"])), limits, reactor)
    handed = {h.description: h for h in handover.listeners} if handover is not None else {}
    listeners = []
    for description in options["listen"]:
        spec = parse_listen(description)
        if spec.exposed and is_unspecified(spec.interface) and not options["allow-host"]:
            _log.warn(
                "{listen} listens on every interface: browsers reaching it by a name or address "
                "other than loopback need --allow-host NAME",
                listen=description,
            )
        listener = Listener(reactor, description, limited, spec.tls, handed=handed.pop(description, None))
        listener.setServiceParent(top)
        listeners.append(listener)
    if options["metrics-listen"] and api.metrics is not None:
        metrics_site = make_site(MetricsResource(api.metrics))
        spec = parse_listen(options["metrics-listen"])
        limited_metrics = ConnectionLimiter(metrics_site, limits, reactor)
        listener = Listener(
            reactor,
            options["metrics-listen"],
            limited_metrics,
            spec.tls,
            what="vibetwist metrics",
            handed=handed.pop(options["metrics-listen"], None),
        )
        listener.setServiceParent(top)
        listeners.append(listener)
    if handover is not None:
        close_unclaimed(handover, {h.fd for h in handover.listeners if h.description not in handed})
        report_takeover(reactor, handover, len(handover.sessions))
    if cluster is not None:
        cluster.ClusterHost(
            reactor, options["nats-config"], options["host-id"], cluster.tunnel_site(guarded), sessions.counts
        ).setServiceParent(top)
    restarter = Restarter(
        reactor, sessions=sessions, api=api, connections=limited, listeners=listeners, signals=restart_signal
    )
    restarter.setServiceParent(top)
    api.restarter = restarter
    return top
