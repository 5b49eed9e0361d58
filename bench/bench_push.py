"""Benchmark Web Push: how long from a session event to the push request reaching the
push service, and to the event on ``/api/events``.

Run it from the repository root, with the project installed in the active venv::

    python bench/bench_push.py                          # 50 rounds, 1 and 10 subscriptions
    python bench/bench_push.py --rounds 100 --subscriptions 1,10,50 --json out.json

The script starts a daemon of its own (as ``bench_daemon.py`` does) and a push service
on 127.0.0.1 (``tests/support/pushservice.py``: it checks each message's VAPID
signature and decrypts it, as the end-to-end tests do), subscribes N made-up browsers
to it for ``session-exit`` (the push service keeps what arrives and checks it after
each round, so its own checking does not delay what it times), and follows
``/api/events``. Each round starts ``true`` and waits until its ``session-exit`` has
reached every subscription and the event stream. Per round it notes, from the event's
time (its ``timestamp``, which the daemon writes in whole milliseconds, rounded down:
figures may read up to 1 ms high):

to SSE
    when the event arrived on the ``/api/events`` stream;
to push (first, last)
    when the first and the last subscription's POST reached the push service (its
    arrival, before it checks and decrypts).

It prints p50, p90 and the maximum of each, with the daemon's longest reactor stall
during the rounds (``/api/stats``, a 1 ms timer), and stops the daemon at the end.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import defer, protocol, task
from twisted.web.client import Agent, HTTPConnectionPool

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from bench_daemon import (  # noqa: E402 (found through the path set just above)
    Api,
    fmt,
    install_watchdog,
    machine,
    percentile,
    say,
    start_daemon,
    stop_daemon,
)

from tests.support.pushservice import PushService  # noqa: E402


def event_time(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


class EventsReader(protocol.Protocol):
    """Reads /api/events: when each session-exit arrived, by session id."""

    def __init__(self) -> None:
        self.buffer = b""
        self.exits: dict[str, float] = {}
        self.opened: defer.Deferred[None] = defer.Deferred()

    def dataReceived(self, data: bytes) -> None:
        now = time.time()
        self.buffer += data
        while b"\n\n" in self.buffer:
            raw, self.buffer = self.buffer.split(b"\n\n", 1)
            fields = dict(line.split(b": ", 1) for line in raw.split(b"\n") if b": " in line)
            if fields.get(b"event") == b"connected" and not self.opened.called:
                self.opened.callback(None)
            elif fields.get(b"event") == b"session-exit":
                self.exits[json.loads(fields[b"data"])["sessionId"]] = now


async def wait_for(reactor: Any, check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not within {timeout} s")
        await task.deferLater(reactor, 0.002, lambda: None)


async def measure(
    reactor: Any, api: Api, push: PushService, events: EventsReader, count: int, rounds: int
) -> dict:
    """Subscribe up to count browsers, then run the rounds."""
    have = len(push.keys)
    for i in range(have, count):
        reply = await api.call("POST", "/api/push/subscribe", push.subscribe(f"b{i}", kinds=["session-exit"]))
        if not reply.ok:
            raise RuntimeError(f"subscribe answered {reply.kind}: {reply.body[:200]!r}")
    await api.stats(reset=True)
    push.messages.clear()
    to_sse, first, last = [], [], []
    for _ in range(rounds):
        created: list[str] = []
        reply = await api.create(["true"], created)
        if not created:
            raise RuntimeError(f"create answered {reply.kind}")
        sid = created[0]

        def done(sid: str = sid) -> bool:
            return len(push.unchecked) >= count and sid in events.exits

        await wait_for(reactor, done, 10, "the exit")
        # Checked and decrypted now, so that the timings leave the checks out.
        push.check_unchecked()
        messages = [m for m in push.messages if m.payload["event"].get("sessionId") == sid]
        if len(messages) != count:
            raise RuntimeError(f"{len(messages)} of {count} messages checked out: {push.refused[:2]}")
        at = event_time(messages[0].payload["event"]["timestamp"])
        times = sorted(m.arrived for m in messages)
        to_sse.append((events.exits[sid] - at) * 1000)
        first.append((times[0] - at) * 1000)
        last.append((times[-1] - at) * 1000)
        await api.call("DELETE", f"/api/sessions/{sid}")
    stats = await api.stats()
    lag = (stats or {}).get("reactorLag", {}).get("maxMs")

    def summary(values: list[float]) -> dict[str, float]:
        return {"p50": percentile(values, 50), "p90": percentile(values, 90), "max": max(values)}

    return {
        "subscriptions": count,
        "rounds": rounds,
        "to_sse_ms": summary(to_sse),
        "to_push_first_ms": summary(first),
        "to_push_last_ms": summary(last),
        "max_stall_ms": lag,
        "refused": list(push.refused),
    }


async def run(reactor: Any, args: argparse.Namespace) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="bench-push-")
    results: dict[str, Any] = {"machine": machine(), "runs": []}
    daemon = start_daemon(reactor, workdir)
    pool = HTTPConnectionPool(reactor)
    client = HTTPClient(Agent(reactor, pool=pool))
    push = PushService(reactor, check_later=True)
    events: EventsReader | None = None
    try:
        port = await daemon.port.addTimeout(30, reactor)
        api = Api(reactor, client, port)
        await push.start()
        push.vapid_key = (await api.call("GET", "/api/push/vapid-public-key")).json()["publicKey"]
        events = EventsReader()
        response = await treq.get(f"{api.base}/api/events", unbuffered=True, pool=pool)
        response.deliverBody(events)
        await events.opened.addTimeout(10, reactor)
        for count in args.subscriptions:
            say(f"{count} subscriptions, {args.rounds} rounds")
            results["runs"].append(await measure(reactor, api, push, events, count, args.rounds))
    finally:
        if events is not None and events.transport is not None:
            events.transport.stopProducing()  # end the event stream
        results["stop"] = await stop_daemon(reactor, daemon)
        await push.stop()
        await pool.closeCachedConnections()
        if args.keep_dir:
            say(f"daemon log kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}, load {m['load_before']}")
    print(f"{'subs':>5} {'rounds':>6}  {'to SSE p50/p90/max':>22}  {'to push first p50/p90/max':>27}  "
          f"{'to push last p50/p90/max':>26}  {'stall':>7}")  # fmt: skip
    for run_ in results["runs"]:
        cells = [
            "/".join(fmt(run_[key][q]) for q in ("p50", "p90", "max"))
            for key in ("to_sse_ms", "to_push_first_ms", "to_push_last_ms")
        ]
        head = f"{run_['subscriptions']:>5} {run_['rounds']:>6}"
        print(f"{head}  {cells[0]:>22}  {cells[1]:>27}  {cells[2]:>26}  {fmt(run_['max_stall_ms']):>7}")
        if run_["refused"]:
            print(f"      refused by the push service: {run_['refused'][:3]}")
    print("(milliseconds from the event's timestamp; timestamps are whole milliseconds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--subscriptions", default="1,10", help="comma-separated counts, rising")
    parser.add_argument("--json", metavar="OUT")
    parser.add_argument("--keep-dir", action="store_true")
    args = parser.parse_args()
    args.subscriptions = sorted(int(n) for n in args.subscriptions.split(","))
    install_watchdog(600)
    task.react(lambda reactor: defer.ensureDeferred(_main(reactor, args)))


async def _main(reactor: Any, args: argparse.Namespace) -> None:
    results = await run(reactor, args)
    report(results)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2, default=str)


if __name__ == "__main__":
    main()
