# -*- test-case-name: tests.test_auth_options -*-
"""Where the daemon listens: endpoint strings checked for exposure, and a service per listener.

A ``--listen`` value is a Twisted endpoint string (``tcp:``, ``tcp6:``,
``unix:``, ``ssl:``). One that other machines can reach (any interface but
loopback, and not a unix socket) is refused unless a login is on or the user
allows it explicitly. A ``unix:`` socket is made 0600 (Twisted's default is
0666), unless the string asks for another ``mode=``. After a restart in place, a
listener takes over the socket an earlier daemon of this process listened on for
the same value, so the port never closes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

import attrs
from OpenSSL.crypto import Error as CryptoError
from OpenSSL.SSL import Error as SSLError
from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure

from vibetwist._reactor.internals import endpoint_interface, tls_context
from vibetwist.model.handover import HandedListener

#: A mode= parameter in an endpoint string (a colon before it not escaped).
_MODE = re.compile(r"(?<!\\):mode=")


def private_unix(description: str) -> str:
    """The endpoint string with mode=600 added to a unix: one that names no mode."""
    if description.startswith("unix:") and not _MODE.search(description):
        return description + ":mode=600"
    return description


def is_unspecified(interface: str | None) -> bool:
    """True for "every interface" ("", 0.0.0.0, ::): no one reaches the daemon by that name."""
    if not interface:
        return True
    try:
        return ipaddress.ip_address(interface).is_unspecified
    except ValueError:
        return False


def is_loopback_interface(interface: str) -> bool:
    """True if binding interface exposes nothing beyond this machine."""
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


@attrs.frozen
class ListenSpec:
    """What an endpoint string listens on."""

    description: str
    #: The interface it binds ("" for every interface), or None for a unix: socket.
    interface: str | None
    tls: bool

    @property
    def exposed(self) -> bool:
        """True if other machines may reach it."""
        return self.interface is not None and not is_loopback_interface(self.interface)


def parse_listen(description: str) -> ListenSpec:
    """The ListenSpec of an endpoint string; UsageError if it is malformed or its files unusable."""
    try:
        # No reactor: the endpoint is only parsed here, never listened on.
        endpoint = endpoints.serverFromString(None, description)
    except (ValueError, TypeError, KeyError, OSError, SSLError, CryptoError) as e:
        raise usage.UsageError(f"--listen {description!r}: {e}") from e
    if isinstance(endpoint, endpoints.UNIXServerEndpoint):
        return ListenSpec(description, None, False)
    tls = isinstance(endpoint, endpoints.SSL4ServerEndpoint)
    return ListenSpec(description, endpoint_interface(endpoint), tls)


def check_listen(description: str, login: bool = False, allow_no_auth: bool = False) -> ListenSpec:
    """Refuse an endpoint string that is malformed, or reachable from other machines
    while nobody has to log in (unless the user explicitly allows it)."""
    spec = parse_listen(description)
    if spec.exposed and not login and not allow_no_auth:
        raise usage.UsageError(
            f"--listen {description!r} would let other machines use the daemon without logging in: "
            "configure a login (VIBETUNNEL_USERNAME and VIBETUNNEL_PASSWORD, --password-file or "
            "--ssh-keys), listen on a loopback address (interface=127.0.0.1 or ::1) or a unix: socket, "
            "or, if every machine that can reach it is trusted, add --allow-no-auth-on-network"
        )
    return spec


class Listener(Service):
    """Listens on one endpoint; fails start-up at once if it cannot."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        description: str,
        factory: Any,
        tls: bool = False,
        what: str = "vibetwist",
        handed: HandedListener | None = None,
    ) -> None:
        """
        :param handed: the socket an earlier daemon of this process listened on for this
            description, taken over instead of listening anew.
        """
        self._reactor = reactor
        self.description = description
        #: What the log line says listens ("vibetwist listening on URL").
        self.what = what
        self._tls = tls
        self._scheme = "https" if tls else "http"
        self._factory = factory
        self._port: Any = None
        self._handed = handed

    def startService(self) -> None:
        super().startService()
        handed, self._handed = self._handed, None
        if handed is not None:
            self._adopt(handed)
            return
        results: list[Any] = []
        endpoint = endpoints.serverFromString(self._reactor, private_unix(self.description))
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
            url = f"{self._scheme}://{host}:{address.port}/"
        else:
            url = f"unix:{address.name.decode() if isinstance(address.name, bytes) else address.name}"
        self.log.info("{what} listening on {url}", what=self.what, url=url)

    def _adopt(self, handed: HandedListener) -> None:
        factory = self._factory
        if self._tls:
            endpoint = endpoints.serverFromString(self._reactor, self.description)
            factory = TLSMemoryBIOFactory(tls_context(endpoint), False, factory)
        try:
            port = self._reactor.adoptStreamPort(handed.fd, handed.family, factory)
        finally:
            os.close(handed.fd)  # the port holds a copy of its own
        self._listening(port)

    # -- a restart in place ----------------------------------------------------------

    def pause(self) -> None:
        """Accept nothing more for now: new connections wait in the socket's backlog."""
        if self._port is not None:
            self._reactor.removeReader(self._port)

    def resume(self) -> None:
        """Accept connections again."""
        if self._port is not None:
            self._reactor.addReader(self._port)

    def hand_over(self) -> HandedListener | None:
        """The listening socket, made to survive an exec, for the next daemon of this process."""
        if self._port is None:
            return None
        fd = self._port.fileno()
        os.set_inheritable(fd, True)
        return HandedListener(self.description, fd, int(self._port.socket.family))

    def take_back(self) -> None:
        if self._port is not None:
            os.set_inheritable(self._port.fileno(), False)

    def stopService(self) -> Any:
        super().stopService()
        if self._port is not None:
            return self._port.stopListening()
        return None
