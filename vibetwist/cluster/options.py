# -*- test-case-name: tests.test_cluster_options,tests.test_cluster_link -*-
"""How a daemon reaches NATS: its servers, its credentials and its TLS files.

``--nats`` names the servers (repeatable, and each value may be a comma-separated
list, as a NATS cluster's seed list usually is): ``nats://host:4222`` or
``tls://host:4222``, with credentials in the URL when the cluster uses a user
and password (``nats://user:pass@host:4222``) or a token
(``nats://TOKEN@host:4222``). ``--nats-creds`` names a JWT and NKey credentials
file, ``--nats-nkey`` an NKey seed file; ``--nats-tls-ca``, ``--nats-tls-cert``
and ``--nats-tls-key`` the files of a TLS connection. Everything is checked when
the daemon starts, so a mistake is a usage error rather than a daemon that
retries for ever: URLs must be well formed, files must exist, and the secret ones
(credentials, seed, private key) must be this user's alone.

Nothing here imports the NATS client: without ``--nats`` the daemon loads none of it.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from vibetwist.errors import VibetwistError
from vibetwist.model.privatefiles import UnsafePath, check_private_file

#: URL schemes of a NATS server.
SCHEMES = ("nats", "tls")
#: A host or gateway id: one token of a NATS subject (``vt.h.<host-id>``,
#: ``_INBOX.h.<host-id>``, ``_INBOX.g.<gateway-id>``) and one key of the registry.
HOST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The inboxes of hosts and of gateways: every reply and tunnel frame a daemon receives
#: comes on a subject under its own prefix, ``_INBOX.h.<host-id>`` or
#: ``_INBOX.g.<gateway-id>``, so that NATS permissions can give each the right to
#: read its own inboxes and no one else's.
HOST_INBOXES = "_INBOX.h"
GATEWAY_INBOXES = "_INBOX.g"


class NATSOptionError(VibetwistError):
    """A NATS option that cannot work (the daemon refuses to start)."""


def check_host_id(name: str, option: str = "--host-id") -> str:
    """name if it may be a host id (letters, digits, "-" and "_", at most 64), else NATSOptionError."""
    if not HOST_ID.fullmatch(name):
        noun = "a gateway id" if option == "--gateway-id" else "a host id"
        raise NATSOptionError(f"{option} {name!r}: {noun} is 1 to 64 letters, digits, '-' or '_' (no dots)")
    return name


def check_gateway_id(name: str) -> str:
    """name if it may be a gateway id (as a host id), else NATSOptionError."""
    return check_host_id(name, "--gateway-id")


def default_host_id(hostname: str) -> str:
    """The host id of a machine by default: its hostname up to the first dot."""
    return hostname.split(".", 1)[0]


def default_gateway_id(hostname: str, suffix: str) -> str:
    """A gateway id by default: the hostname up to the first dot, with what may not be
    in an id replaced by "-", then "-" and suffix (random per process)."""
    label = re.sub(r"[^A-Za-z0-9_-]", "-", hostname.split(".", 1)[0])[: 63 - len(suffix)]
    return check_gateway_id(f"{label}-{suffix}" if label else suffix)


def host_inbox_prefix(host_id: str) -> str:
    """The prefix of a host's inboxes: ``_INBOX.h.<host-id>``."""
    return f"{HOST_INBOXES}.{check_host_id(host_id)}"


def gateway_inbox_prefix(gateway_id: str) -> str:
    """The prefix of a gateway's inboxes: ``_INBOX.g.<gateway-id>``."""
    return f"{GATEWAY_INBOXES}.{check_gateway_id(gateway_id)}"


def _check_url(text: str) -> str:
    """text if it is a well-formed server URL, NATSOptionError otherwise (never echoing a password)."""
    try:
        parts: SplitResult = urlsplit(text)
        port = parts.port
    except ValueError:
        raise NATSOptionError(f"not a NATS server URL: {redacted_url(text)}") from None
    if parts.scheme not in SCHEMES:
        raise NATSOptionError(f"a NATS server URL starts with nats:// or tls://: {redacted_url(text)}")
    if not parts.hostname:
        raise NATSOptionError(f"a NATS server URL names a host: {redacted_url(text)}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise NATSOptionError(f"a NATS server URL has no path, query or fragment: {redacted_url(text)}")
    if port == 0:
        raise NATSOptionError(f"a NATS server's port is from 1 to 65535: {redacted_url(text)}")
    if parts.password is not None and not parts.username:
        raise NATSOptionError(f"a NATS server URL with a password names a user: {redacted_url(text)}")
    return text


def redacted_url(text: str) -> str:
    """A server URL as it may be shown in logs and messages: what stands before "@" (a
    token, a user and password) hidden."""
    scheme, sep, rest = text.rpartition("://")
    if "@" not in rest:
        return text
    return f"{scheme}{sep}[redacted]@{rest.rpartition('@')[2]}"


def parse_servers(values: Iterable[str]) -> tuple[str, ...]:
    """The servers named by the ``--nats`` values, each a URL or a comma-separated list of them,
    in order and without repeats; NATSOptionError for one that is not a NATS server URL."""
    servers: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            url = _check_url(item)
            if url not in servers:
                servers.append(url)
    if not servers:
        raise NATSOptionError("--nats names no server")
    return tuple(servers)


def _existing(path: str | Path | None, option: str, secret: bool) -> str | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    try:
        exists = check_private_file(path, secret=secret, root_may_own=not secret)
    except UnsafePath as e:
        raise NATSOptionError(f"{option}: {e}") from None
    if not exists:
        raise NATSOptionError(f"{option}: {path} does not exist")
    return str(path)


@dataclass(frozen=True)
class NATSConfig:
    """The NATS servers a daemon connects to, and how it proves who it is.

    Built from the command line by :meth:`from_options`, which checks everything;
    :meth:`connect_options` gives the keyword arguments of nats-py's ``connect``.
    """

    servers: tuple[str, ...]
    token: str | None = None
    user: str | None = None
    password: str | None = None
    #: A JWT + NKey ``.creds`` file.
    creds_file: str | None = None
    #: A file holding an NKey seed.
    nkey_file: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Seconds between reconnect attempts to the same server.
    reconnect_wait: float = 0.5
    #: Seconds between pings; two unanswered pings mark the server as gone.
    ping_interval: float = 2.0
    connect_timeout: float = 2.0

    @classmethod
    def from_options(
        cls,
        servers: Iterable[str],
        *,
        creds: str | Path | None = None,
        nkey: str | Path | None = None,
        tls_ca: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
    ) -> NATSConfig:
        """The configuration the options describe; NATSOptionError for one that cannot work
        (credentials in the URLs are read by the client from the URLs themselves)."""
        urls = parse_servers(servers)
        if creds is not None and nkey is not None:
            raise NATSOptionError("--nats-creds and --nats-nkey contradict each other: give one")
        if (creds is not None or nkey is not None) and any(urlsplit(u).username for u in urls):
            raise NATSOptionError(
                "credentials in a --nats URL and --nats-creds or --nats-nkey contradict each other"
            )
        if (tls_cert is None) != (tls_key is None):
            raise NATSOptionError("--nats-tls-cert and --nats-tls-key go together: give both or neither")
        config = cls(
            urls,
            creds_file=_existing(creds, "--nats-creds", secret=True),
            nkey_file=_existing(nkey, "--nats-nkey", secret=True),
            tls_ca=_existing(tls_ca, "--nats-tls-ca", secret=False),
            tls_cert=_existing(tls_cert, "--nats-tls-cert", secret=False),
            tls_key=_existing(tls_key, "--nats-tls-key", secret=True),
        )
        try:
            config.tls_context()  # read the TLS files now: one that cannot be used stops the start
        except (ssl.SSLError, OSError) as e:
            raise NATSOptionError(f"the NATS TLS files cannot be used: {e}") from None
        return config

    def tls_context(self) -> ssl.SSLContext | None:
        """The TLS context for the connection, or None when none of the TLS files is given
        (a ``tls://`` URL then uses nats-py's default context)."""
        if not (self.tls_ca or self.tls_cert):
            return None
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    def connect_options(self) -> dict[str, Any]:
        """The keyword arguments of ``nats.aio.client.Client.connect`` for this config.

        Reconnects never give up: a daemon keeps trying every ``reconnect_wait`` seconds
        for as long as it runs.
        """
        options: dict[str, Any] = {
            "servers": list(self.servers),
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": self.reconnect_wait,
            "ping_interval": self.ping_interval,
            "max_outstanding_pings": 2,
            "connect_timeout": self.connect_timeout,
        }
        if self.token is not None:
            options["token"] = self.token
        if self.user is not None:
            options["user"] = self.user
        if self.password is not None:
            options["password"] = self.password
        if self.creds_file is not None:
            options["user_credentials"] = self.creds_file
        if self.nkey_file is not None:
            options["nkeys_seed"] = self.nkey_file
        context = self.tls_context()
        if context is not None:
            options["tls"] = context
        return options

    def describe(self) -> str:
        """The servers, credentials hidden, for the log."""
        return ",".join(redacted_url(u) for u in self.servers)
