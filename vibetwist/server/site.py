# -*- test-case-name: tests.test_tap,tests.test_gateway -*-
"""The site every daemon serves: its routes behind the Host/Origin check and the login gate,
counted for ``/metrics``, with connections capped and their peers found.

Hosts and gateways both serve their routes through :func:`guarded_site`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Site

from vibetwist.login.authority import Authority
from vibetwist.login.gate import LoginGate, redacted_log_formatter
from vibetwist.login.tokens import Grant
from vibetwist.server.hostcheck import HostOriginCheck
from vibetwist.server.limits import ConnectionLimiter, Limits, connection_peer
from vibetwist.server.metrics import RequestCounter


class QuietSite(Site):
    """A Site that writes no access log."""

    def log(self, request: Any) -> None:
        pass


def make_site(resource: Resource, access_log: bool = False) -> Site:
    """A Site of resource: with an access log (tokens redacted), or quiet."""
    site = Site(resource, logFormatter=redacted_log_formatter) if access_log else QuietSite(resource)
    site.noisy = False
    return site


def guarded_resource(
    routes: Resource,
    authority: Authority,
    *,
    allowed_hosts: frozenset[str] = frozenset(),
    metrics: Any = None,
    vouched: Callable[[Any], Grant | None] | None = None,
    exempt: Callable[[Any], bool] | None = None,
) -> Resource:
    """routes behind HostOriginCheck and LoginGate, each request counted by metrics (anything
    with ``count_request``) if given. vouched and exempt are the gate's and the check's hooks
    for requests a cluster tunnel carries."""
    guarded: Resource = HostOriginCheck(
        LoginGate(routes, authority, connection_peer, vouched=vouched),
        allowed_hosts=allowed_hosts,
        exempt=exempt,
    )
    if metrics is not None:
        guarded = RequestCounter(guarded, metrics)
    return guarded


def guarded_site(
    routes: Resource,
    authority: Authority,
    reactor: Any,
    *,
    allowed_hosts: frozenset[str] = frozenset(),
    limits: Limits | None = None,
    metrics: Any = None,
    access_log: bool = False,
) -> ConnectionLimiter:
    """The factory to listen with: :func:`guarded_resource` in a Site, its connections capped."""
    guarded = guarded_resource(routes, authority, allowed_hosts=allowed_hosts, metrics=metrics)
    return ConnectionLimiter(make_site(guarded, access_log), limits or Limits(), reactor)
