# -*- test-case-name: tests.test_cluster_options -*-
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

from vibetwist.errors import VibetwistError
from vibetwist.model.privatefiles import UnsafePath, check_private_file

#: URL schemes of a NATS server.
SCHEMES = ("nats", "tls")
#: A host id: one token of a NATS subject (``vt.h.<host-id>``) and one key of the registry.
HOST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class NATSOptionError(VibetwistError):
    """A NATS option that cannot work (the daemon refuses to start)."""


def check_host_id(name: str) -> str:
    """name if it may be a host id (letters, digits, "-" and "_", at most 64), else NATSOptionError."""
    if not HOST_ID.fullmatch(name):
        raise NATSOptionError(
            f"--host-id {name!r}: a host id is 1 to 64 letters, digits, '-' or '_' (no dots)"
        )
    return name


def default_host_id(hostname: str) -> str:
    """The host id of a machine by default: its hostname up to the first dot."""
    return hostname.split(".", 1)[0]


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


def _existing(path: str | Path | None, option: str, secret: bool) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    try:
        exists = check_private_file(path, secret=secret, root_may_own=not secret)
    except UnsafePath as e:
        raise NATSOptionError(f"{option}: {e}") from None
    if not exists:
        raise NATSOptionError(f"{option}: {path} does not exist")
    return path


def tls_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    """The TLS context of NATS connections: the system's CAs or ca, and the client certificate
    if one is given. NATSOptionError if the files cannot be read."""
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
        if cert is not None and key is not None:
            context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as e:
        raise NATSOptionError(f"the NATS TLS files cannot be used: {e}") from None
    return context


@dataclass(frozen=True)
class NATSConfig:
    """Where the NATS servers are and how to authenticate to them.

    Built by :meth:`from_options`, which checks everything; :meth:`connect_options`
    gives the keyword arguments of ``nats.connect`` for it.
    """

    servers: tuple[str, ...]
    creds: Path | None = None
    nkey: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: The TLS context made from the files (None: no TLS, or the client's default for tls://).
    tls: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

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
        """The configuration the options describe; NATSOptionError for one that cannot work."""
        urls = parse_servers(servers)
        if creds is not None and nkey is not None:
            raise NATSOptionError("--nats-creds and --nats-nkey contradict each other: give one")
        if (creds is not None or nkey is not None) and any(urlsplit(u).username for u in urls):
            raise NATSOptionError(
                "credentials in a --nats URL and --nats-creds or --nats-nkey contradict each other"
            )
        if (tls_cert is None) != (tls_key is None):
            raise NATSOptionError("--nats-tls-cert and --nats-tls-key go together: give both or neither")
        files = {
            "creds": _existing(creds, "--nats-creds", secret=True),
            "nkey": _existing(nkey, "--nats-nkey", secret=True),
            "tls_ca": _existing(tls_ca, "--nats-tls-ca", secret=False),
            "tls_cert": _existing(tls_cert, "--nats-tls-cert", secret=False),
            "tls_key": _existing(tls_key, "--nats-tls-key", secret=True),
        }
        tls = None
        if any(u.startswith("tls://") for u in urls) or files["tls_ca"] or files["tls_cert"]:
            tls = tls_context(files["tls_ca"], files["tls_cert"], files["tls_key"])
        return cls(urls, tls=tls, **files)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments of ``nats.connect`` for these servers, credentials and TLS
        (credentials in the URLs are read by the client from the URLs themselves)."""
        options: dict[str, Any] = {"servers": list(self.servers)}
        if self.creds is not None:
            options["user_credentials"] = str(self.creds)
        if self.nkey is not None:
            options["nkeys_seed"] = str(self.nkey)
        if self.tls is not None:
            options["tls"] = self.tls
        return options

    def describe(self) -> str:
        """The servers, credentials hidden, for the log."""
        return ",".join(redacted_url(u) for u in self.servers)
