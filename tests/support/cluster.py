# -*- test-case-name: tests.test_gateway, tests.test_cluster_faults -*-
"""Clusters for the tests: a directory of hosts made by hand, and real processes.

L{FakeDirectory} holds L{FakeView} values (what a gateway knows of a host) that a test
sets and changes; the gateway reads them the way it reads a
L{vibetwist.cluster.registry.HostDirectory}.

L{Cluster} runs a real nats-server, host daemons and gateway daemons, each a process
of its own, and ends them all.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from twisted.internet import defer

from tests.support.daemon import Client, Daemon, kill_sessions, poll
from tests.support.nats import NATSServer


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class FakeRecord:
    host: str
    boot: str = "boot"
    version: str = "test"
    started_at: str = ""
    heartbeat: str = ""
    running: int = 0
    exited: int = 0
    status: str = "up"


@dataclass(frozen=True)
class FakeView:
    name: str
    status: str
    record: FakeRecord

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.name,
            "status": self.status,
            "sessions": {"running": self.record.running, "exited": self.record.exited},
            "lastHeartbeat": self.record.heartbeat,
            "version": self.record.version,
            "startedAt": self.record.started_at,
        }


class FakeDirectory:
    """Hosts a test declares up, down or stopped, with their session counts."""

    def __init__(self) -> None:
        self._views: dict[str, FakeView] = {}
        self._callbacks: list[Callable[[Any], None]] = []

    def set(self, name: str, status: str = "up", running: int = 0, heartbeat: str | None = None) -> FakeView:
        """Make (or change) a host; its callbacks hear of it."""
        old = self._views.get(name)
        record = old.record if old is not None else FakeRecord(name, started_at=_now())
        record = replace(record, running=running, heartbeat=heartbeat or _now())
        view = FakeView(name, status, record)
        self._views[name] = view
        for callback in list(self._callbacks):
            callback(view)
        return view

    def hosts(self) -> list[FakeView]:
        return sorted(self._views.values(), key=lambda v: v.name)

    def get(self, name: str) -> FakeView | None:
        return self._views.get(name)

    def up(self) -> list[FakeView]:
        return [v for v in self.hosts() if v.status == "up"]

    def when_changed(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)


# -- a cluster of real processes ----------------------------------------------------------


class Cluster:
    """A nats-server, host daemons (``--nats --host-id``) and gateway daemons
    (``--gateway --nats``), every one a process of its own, under one base folder.

    L{stop} ends every process the cluster started, also when a test failed half-way;
    register it as a clean-up before starting anything. nats_options are those of
    L{NATSServer} (token, user and password); nats_url is what the daemons are given
    (by default the server's URL, credentials added as userinfo when the server has
    any).
    """

    def __init__(self, reactor: Any, base: Path, nats_options: dict[str, Any] | None = None) -> None:
        self.reactor = reactor
        self.base = Path(base)
        self.nats = NATSServer(reactor, **(nats_options or {}))
        options = nats_options or {}
        if options.get("token"):
            self.userinfo = f"{options['token']}@"
        elif options.get("user"):
            self.userinfo = f"{options['user']}:{options.get('password', '')}@"
        else:
            self.userinfo = ""
        self.hosts: dict[str, Daemon] = {}
        self.gateways: dict[str, Daemon] = {}
        self.sessions: set[str] = set()
        self._clients: list[Client] = []
        self._stopped = False

    @property
    def nats_url(self) -> str:
        """The server's URL with the cluster's credentials in it."""
        scheme, _, rest = self.nats.url.partition("://")
        return f"{scheme}://{self.userinfo}{rest}"

    async def start(
        self, hosts: tuple[str, ...] = ("alpha", "beta"), gateways: tuple[str, ...] = ("gw-a", "gw-b")
    ) -> None:
        """Start the nats-server, then every host and gateway at once; wait until every
        gateway lists every host up."""
        await self.nats.start()
        starting = [self.start_host(name) for name in hosts] + [self.start_gateway(name) for name in gateways]
        await defer.gatherResults([defer.ensureDeferred(s) for s in starting], consumeErrors=True)
        await self.wait_hosts({name: "up" for name in hosts})

    def _daemon(self, name: str, args: tuple[str, ...]) -> Daemon:
        base = self.base / name
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Daemon(self.reactor, base, args=args)

    async def start_host(self, name: str, *args: str) -> Daemon:
        """A host daemon named name (started again, with its control dir, if it ran before)."""
        daemon = self.hosts.get(name)
        if daemon is None:
            daemon = self._daemon(name, ("--nats", self.nats_url, "--host-id", name, *args))
            self.hosts[name] = daemon
        await daemon.start(timeout=30)
        return daemon

    async def start_gateway(self, name: str, *args: str) -> Daemon:
        """A gateway daemon named name."""
        daemon = self.gateways.get(name)
        if daemon is None:
            daemon = self._daemon(name, ("--gateway", "--nats", self.nats_url, *args))
            self.gateways[name] = daemon
        await daemon.start(timeout=30)
        return daemon

    def client(self, name: str) -> Client:
        """A client of the host or gateway called name, closed by L{stop}."""
        client = Client(self.reactor, self.hosts.get(name) or self.gateways[name])
        self._clients.append(client)
        return client

    async def create(self, gateway: str, command: list[str], **fields: Any) -> tuple[str, str]:
        """(session id, host) of a session made through a gateway."""
        code, body, _ = await self.client(gateway).request(
            "POST", "/api/sessions", dict(fields, command=command)
        )
        if code != 200:
            raise AssertionError(f"create {command} at {gateway}: {code} {body!r}")
        self.sessions.add(body["sessionId"])
        return body["sessionId"], body["host"]

    async def statuses(self, gateway: str) -> dict[str, str]:
        """Host name -> status, as a gateway lists them in /api/hosts."""
        return {h["host"]: h["status"] for h in await self.client(gateway).get("/api/hosts")}

    async def wait_hosts(
        self, wanted: dict[str, str], gateways: tuple[str, ...] | None = None, timeout: float = 20.0
    ) -> float:
        """Wait until every gateway lists every host of wanted with its status; the seconds it took."""
        started = self.reactor.seconds()

        async def every() -> bool:
            for gateway in gateways or tuple(self.gateways):
                listed = await self.statuses(gateway)
                if any(listed.get(host) != status for host, status in wanted.items()):
                    return False
            return True

        await poll(self.reactor, every, timeout, 0.1, f"hosts {wanted}")
        return float(self.reactor.seconds() - started)

    async def stop(self) -> None:
        """End every process: clients, gateways, hosts (SIGTERM, then SIGKILL), the
        sessions' programs, the nats-server."""
        if self._stopped:
            return
        self._stopped = True
        for client in self._clients:
            await client.close()
        daemons = [*self.gateways.values(), *self.hosts.values()]
        ending = [defer.ensureDeferred(d.stop()) for d in daemons]
        results = await defer.DeferredList(ending, consumeErrors=True)
        kill_sessions(self.sessions)
        await self.nats.cleanup()
        for ok, failure in results:
            if not ok:
                failure.raiseException()
