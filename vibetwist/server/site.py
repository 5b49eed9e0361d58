# -*- test-case-name: tests.test_tap,tests.test_gateway -*-
"""The site every daemon serves: its routes behind the Host/Origin check and the login gate,
counted for ``/metrics``, with connections capped and their peers found.

Hosts and gateways both serve their routes through :func:`guarded_site`.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import Site

from vibetwist.login.authority import Authority
from vibetwist.login.gate import LoginGate, redacted_log_formatter
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
    """The factory to listen with: routes behind HostOriginCheck and LoginGate, each request
    counted by metrics (anything with ``count_request``) if given."""
    guarded: Resource = HostOriginCheck(
        LoginGate(routes, authority, connection_peer), allowed_hosts=allowed_hosts
    )
    if metrics is not None:
        guarded = RequestCounter(guarded, metrics)
    return ConnectionLimiter(make_site(guarded, access_log), limits or Limits(), reactor)
