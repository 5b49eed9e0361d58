# -*- test-case-name: tests.test_gateway_ws -*-
"""The errors a gateway answers with when a host cannot be reached."""

from __future__ import annotations

from vibetwist.errors import RetryLater


class HostUnreachable(RetryLater):
    """The host that owns a session does not answer (HTTP 503, ``Retry-After: 2``)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"host {host} is unreachable", retry_after=2)
        self.host = host
