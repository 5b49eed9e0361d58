# -*- test-case-name: tests.test_cluster_link -*-
"""How a daemon reaches its NATS servers: URLs, credentials and TLS.

:class:`NATSConfig` is a frozen value; :meth:`NATSConfig.connect_options` turns it into
the keyword arguments of nats-py's ``connect``.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NATSConfig:
    """The NATS servers a daemon connects to, and how it proves who it is."""

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
