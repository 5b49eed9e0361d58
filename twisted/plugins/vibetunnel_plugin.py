"""Makes ``twistd vibetunnel`` start vibetwist's daemon."""

from twisted.application.service import ServiceMaker

vibetunnel = ServiceMaker(
    "vibetwist",
    "vibetwist.tap",
    "Share terminals with browsers over HTTP, SSE and WebSockets (VibeTunnel protocol)",
    "vibetunnel",
)
