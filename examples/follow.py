"""Start a session on a running vibetwist daemon and print its output as it comes.

    python examples/follow.py [--url http://127.0.0.1:4020] -- ls -la /

It creates the session with POST /api/sessions, then reads the session's
Server-Sent Events stream until the exit event, writing the program's
output to this terminal, and exits with the program's exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import treq
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import react
from twisted.python.failure import Failure


class EventStream(Protocol):
    """Splits an SSE body into asciicast lines and writes the output events to stdout."""

    def __init__(self, done: Any) -> None:
        self._buffer = b""
        self._done = done
        self.exit_code: int | None = None

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n\n" in self._buffer:
            message, self._buffer = self._buffer.split(b"\n\n", 1)
            if not message.startswith(b"data: "):
                continue  # a heartbeat comment
            event = json.loads(message[len(b"data: ") :])
            if isinstance(event, list) and event[0] == "exit":
                self.exit_code = event[1]
            elif isinstance(event, list) and event[1] == "o":
                sys.stdout.write(event[2])
                sys.stdout.flush()

    def connectionLost(self, reason: Failure) -> None:
        self._done.callback(self.exit_code)


async def follow(reactor: Any, url: str, command: list[str]) -> int:
    response = await treq.post(f"{url}/api/sessions", json={"command": command})
    body = await response.json()
    if response.code != 200:
        print(f"cannot start {command}: {body.get('error')}", file=sys.stderr)
        return 1
    session_id = body["sessionId"]
    stream = await treq.get(f"{url}/api/sessions/{session_id}/stream", unbuffered=True)
    done: Deferred[int | None] = Deferred()
    stream.deliverBody(EventStream(done))
    code = await done
    return 1 if code is None else int(code)


def main(reactor: Any) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:4020")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()

    async def run() -> None:
        code = await follow(reactor, args.url.rstrip("/"), args.command)
        raise SystemExit(code)

    return ensureDeferred(run())


if __name__ == "__main__":
    react(main)
