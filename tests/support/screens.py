"""The screen a WebSocket client of C{/ws/sessions/ID} has been sent, for the tests that
compare it with the host's own (L{tests.test_e2e_websocket} and the cluster's)."""

from __future__ import annotations

import json

from tests.support.daemon import WSClient
from vibetwist.screen.terminal import TerminalScreen


def screen_of(client: WSClient, scrollback: int = 1000) -> TerminalScreen:
    """A terminal fed what a byte-stream client has got so far."""
    screen: TerminalScreen | None = None
    for binary, payload in client.messages:
        if not binary:
            message = json.loads(payload)
            if message["type"] == "replay":
                screen = TerminalScreen(message["cols"], message["rows"], scrollback=scrollback)
            elif message["type"] == "resize" and screen is not None:
                screen.resize(message["cols"], message["rows"])
        elif screen is not None:
            screen.feed(payload.decode("utf-8", "replace"))
    assert screen is not None, "no replay message"
    return screen


def all_rows(screen: TerminalScreen) -> list[str]:
    history = ["".join(c.char for c in row).rstrip() for row in screen.history_rows()]
    return history + screen.lines()
