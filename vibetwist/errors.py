# -*- test-case-name: tests.test_api -*-
"""The exceptions vibetwist raises; every one derives from VibetwistError."""


class VibetwistError(Exception):
    """The root of every error vibetwist raises on purpose."""


class RequestError(VibetwistError):
    """A request the daemon answers with an error status and ``{"error": message}``."""

    status = 500
    #: The reason phrase of the status line, when it is not the standard one.
    reason: bytes | None = None
    #: Seconds after which the client may try again (a ``Retry-After`` header), if it may.
    retry_after: int | None = None

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(RequestError):
    """A client sent something the daemon will not act on (HTTP 400)."""

    status = 400


class RetryLater(RequestError):
    """The daemon cannot take the request now; the client may try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(BadRequest):
    """The thing a client named does not exist (HTTP 404)."""

    status = 404


class Conflict(BadRequest):
    """The request does not fit the session's current state (HTTP 409)."""

    status = 409


class UnsupportedMediaType(BadRequest):
    """A body came with a content type other than JSON (HTTP 415)."""

    status = 415


class PayloadTooLarge(BadRequest):
    """A body is larger than the daemon accepts (HTTP 413)."""

    status = 413


class UpgradeRequired(BadRequest):
    """A plain HTTP request reached a WebSocket endpoint (HTTP 426)."""

    status = 426


class RestartFailed(RequestError):
    """A restart in place did not happen: the daemon goes on serving (HTTP 500)."""

    status = 500


class FormatError(VibetwistError):
    """Bytes that do not follow the format they claim (asciicast, snapshot, IPC)."""
