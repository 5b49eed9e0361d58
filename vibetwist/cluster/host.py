# -*- test-case-name: tests.test_cluster_host -*-
"""A daemon as a host of a cluster: ``twistd vibetunnel --nats URL --host-id NAME``.

:class:`ClusterHost` is the service that joins the daemon to the cluster: its
:class:`~vibetwist.cluster.link.NATSLink` (started in the background, trying for
ever), its record in the registry (:class:`~vibetwist.cluster.registry.HostBeacon`)
and a :class:`~vibetwist.cluster.tunnel.TunnelListener` on ``vt.h.<host-id>``
that serves the daemon's own site, the same resource tree as its HTTP listeners,
to the gateways' tunnels. Its link receives under ``_INBOX.h.<host-id>`` only
(:func:`~vibetwist.cluster.options.host_inbox_prefix`), which is what NATS
permissions let a host read besides ``vt.h.<host-id>``.

Trust: a host acts on what arrives through NATS, which only holders of the
cluster's credentials reach. A tunnel's request carries no token: the gateway
checked the login, Host and Origin, and put the grant in the tunnel's OPEN, so
the grant lives on the transport and cannot come from a header.
:func:`cluster_grant` gives it to the site's :class:`~vibetwist.login.gate.LoginGate`,
:func:`is_tunnel_request` exempts the request from
:class:`~vibetwist.server.hostcheck.HostOriginCheck`'s Host and Origin checks,
and the tunnel's site is not behind the connection caps (its connections are
the gateways', not browsers').
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site

from vibetwist import __version__
from vibetwist.cluster.link import NATSLink
from vibetwist.cluster.options import NATSConfig, host_inbox_prefix
from vibetwist.cluster.registry import HostBeacon, HostIdInUse
from vibetwist.cluster.tunnel import TunnelListener, TunnelTransport
from vibetwist.login.tokens import Grant
from vibetwist.model.controldir import is_session_id

#: The exit status of a daemon whose host id another live host holds.
EXIT_HOST_ID_IN_USE = 3
#: Seconds between two attempts to join when one failed half-way.
RETRY = 1.0

_log = Logger()

#: The grant of a tunnel whose OPEN carried none that makes sense: a read grant of no
#: session, so it may read nothing.
NOTHING = Grant(None, session_id="")


def host_subject(host_id: str) -> str:
    """The subject a host's tunnels are opened on."""
    return f"vt.h.{host_id}"


def grant_from(value: object) -> Grant:
    """The Grant of an OPEN's grant: ``{"kind": "full", "user": NAME|None}`` or
    ``{"kind": "read", "session": ID}``; :data:`NOTHING` for anything else."""
    if not isinstance(value, dict):
        return NOTHING
    kind = value.get("kind")
    if kind == "full":
        user = value.get("user")
        return Grant(user if isinstance(user, str) and user else None, method="cluster")
    if kind == "read":
        session_id = value.get("session")
        if is_session_id(session_id):
            return Grant(None, session_id=session_id)
    return NOTHING


def _tunnel_of(request: Any) -> TunnelTransport | None:
    transport = getattr(getattr(request, "channel", None), "transport", None)
    return transport if isinstance(transport, TunnelTransport) else None


def is_tunnel_request(request: Any) -> bool:
    """True if a twisted.web request arrived through a cluster tunnel."""
    return _tunnel_of(request) is not None


def cluster_grant(request: Any) -> Grant | None:
    """The grant a tunnel's OPEN gave its requests; None for a request that came another way."""
    transport = _tunnel_of(request)
    if transport is None:
        return None
    return grant_from(getattr(transport, "grant", None))


class _TunnelSite(Site):
    """The daemon's site as the tunnels serve it: no access log of its own."""

    noisy = False

    def log(self, request: Any) -> None:
        pass


def tunnel_site(resource: Resource) -> Site:
    """A site over the daemon's resource tree for its tunnels."""
    return _TunnelSite(resource)


class ClusterHost(Service):
    """Joins the daemon to a cluster (see the module's text).

    counts() gives the daemon's sessions by status, for its record. The link is
    made on start unless one is given.
    """

    def __init__(
        self,
        reactor: Any,
        config: NATSConfig,
        host_id: str,
        site: Any,
        counts: Callable[[], dict[str, int]],
        *,
        link: Any = None,
        version: str = __version__,
        on_refused: Callable[[HostIdInUse], None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._config = config
        self.host_id = host_id
        self._site = site
        self._counts = counts
        self._version = version
        self.link: Any = link
        self.beacon: HostBeacon | None = None
        self.listener: TunnelListener | None = None
        self._on_refused = on_refused if on_refused is not None else self._refuse
        self._joining: Deferred[None] | None = None
        self._stopping = False

    def startService(self) -> None:
        super().startService()
        if self.link is None:
            self.link = NATSLink(
                self._reactor,
                self._config,
                f"vibetwist host {self.host_id}",
                inbox_prefix=host_inbox_prefix(self.host_id),
            )
        self.beacon = HostBeacon(self._reactor, self.link, self.host_id, self._counts, self._version)
        self._joining = ensureDeferred(self._join())
        self._joining.addErrback(self._failed)

    async def _join(self) -> None:
        link, beacon = self.link, self.beacon
        if beacon is None:
            return
        _log.info(
            "cluster: host {host} joining through NATS {servers}",
            host=self.host_id,
            servers=self._config.describe(),
        )
        await link.start()
        while not self._stopping:
            try:
                await beacon.claim()
                if self._stopping:
                    return
                if self.listener is None:
                    listener = TunnelListener(link, host_subject(self.host_id), self._site)
                    await listener.start()
                    self.listener = listener
                if self._stopping:
                    return
                await beacon.start()
            except HostIdInUse:
                raise
            except Exception as error:
                # The link went down between two steps, or JetStream is not there yet: again.
                _log.warn(
                    "cluster: host {host} could not join yet ({error}); trying again",
                    host=self.host_id,
                    error=error,
                )
                await deferLater(self._reactor, RETRY, lambda: None)
                continue
            _log.info(
                "cluster: host {host} serving on {subject}",
                host=self.host_id,
                subject=host_subject(self.host_id),
            )
            return

    def _failed(self, failure: Any) -> None:
        if failure.check(HostIdInUse):
            self._on_refused(failure.value)
            return
        if not self._stopping:
            _log.failure("cluster: host {host} could not join", failure, host=self.host_id)

    def _refuse(self, error: HostIdInUse) -> None:
        """Another live host holds the name: the daemon stops, exiting with EXIT_HOST_ID_IN_USE."""
        _log.critical("cluster: {error}; the daemon stops (choose another --host-id)", error=str(error))

        def leave() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_HOST_ID_IN_USE)

        self._reactor.addSystemEventTrigger("after", "shutdown", leave)
        if self._reactor.running:
            self._reactor.stop()

    async def _leave(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        if self.beacon is not None:
            # Ends the heartbeat; the "stopped" record needs the link, waited for 2 s at most.
            try:
                await self.beacon.stop().addTimeout(2.0, self._reactor)
            except Exception as e:
                _log.warn("cluster: the stopped record of {host} was not put: {e}", host=self.host_id, e=e)
        if self.link is not None:
            await self.link.stop()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        return ensureDeferred(self._leave())
