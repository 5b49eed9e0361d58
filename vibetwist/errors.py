# -*- test-case-name: tests.test_api -*-
"""The exceptions vibetwist raises; every one derives from VibetwistError."""


class VibetwistError(Exception):
    """The root of every error vibetwist raises on purpose."""


class BadRequest(VibetwistError):
    """A client sent something the daemon will not act on (HTTP 400)."""

    status = 400

    def __init__(self, message: str, details: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


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


class FormatError(VibetwistError):
    """Bytes that do not follow the format they claim (asciicast, snapshot, IPC)."""
