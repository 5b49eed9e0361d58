# -*- test-case-name: tests.test_gateway_ws -*-
"""What a gateway answers when the host a request belongs to cannot be reached, or none is up."""

from __future__ import annotations

from vibetwist.errors import RetryLater


class HostUnreachable(RetryLater):
    """The host that owns a session (or was named) does not answer: HTTP 503."""

    status = 503

    def __init__(self, host: str) -> None:
        super().__init__(f"host {host} is unreachable", retry_after=2)
        self.host = host


class NoHostUp(RetryLater):
    """A session is to be made on whichever host is least loaded, and none is up: HTTP 503."""

    status = 503

    def __init__(self) -> None:
        super().__init__("No host is up", retry_after=2)
