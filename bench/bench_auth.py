"""What login and tokens cost: Argon2 checks, token checks, the gate per request, and
finding who is at the other end of each connection.

    .venv/bin/python bench/bench_auth.py            # a few seconds

Prints medians, the login rate that the two hashing threads allow, and how long this
thread stalls while another hashes. Runs in one process without a daemon: these are
the costs the daemon pays per login and per request. The peer check (once per
connection, when it is accepted) is timed on real loopback connections of this
process, with none and with --connections (1000) others open, through sock_diag and
through /proc/net/tcp.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from argon2 import PasswordHasher
from twisted.internet.task import Clock
from twisted.web.test.requesthelper import DummyRequest

from vibetwist.login.authority import HASHING_AT_ONCE, Authority
from vibetwist.login.gate import request_path, request_token, share_allows
from vibetwist.login.passwords import PasswordCheck
from vibetwist.login.tokens import Tokens
from vibetwist.model.peercred import Peer, SocketOwners, proc_owner, tcp_peer


def median_seconds(f: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worst_stall_while(work: Callable[[], Any], rounds: int) -> float:
    """The longest a 1 ms sleep of this thread takes while another thread runs work:
    Argon2 releases the GIL, so checks in the thread pool leave the reactor free."""
    done = threading.Event()

    def run() -> None:
        for _ in range(rounds):
            work()
        done.set()

    thread = threading.Thread(target=run)
    thread.start()
    worst = 0.0
    while not done.is_set():
        start = time.perf_counter()
        time.sleep(0.001)
        worst = max(worst, time.perf_counter() - start)
    thread.join()
    return worst


def open_connections(count: int) -> tuple[socket.socket, list[socket.socket]]:
    """A loopback listener and count connections to it, both ends open in this process."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(count + 8)
    held = []
    for _ in range(count):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        held += [client, accepted]
    return server, held


def peer_check_cost(server: socket.socket, rounds: int) -> tuple[float, float]:
    """Median seconds of one peer look-up of a fresh connection: (sock_diag, /proc/net/tcp)."""
    owners = SocketOwners()
    assert owners.method == "sock_diag", owners.method
    client = socket.create_connection(server.getsockname())
    accepted, address = server.accept()
    here = accepted.getsockname()
    assert tcp_peer(owners.owner, address, here) == Peer(os.getuid(), True)
    netlink = median_seconds(lambda: tcp_peer(owners.owner, address, here), rounds)
    proc = median_seconds(lambda: proc_owner(address, here), max(20, rounds // 20))
    for sock in (client, accepted):
        sock.close()
    owners.close()
    return netlink, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000, help="rounds of the cheap figures")
    parser.add_argument("--hash-rounds", type=int, default=10, help="rounds of the Argon2 figures")
    parser.add_argument("--connections", type=int, default=1000, help="connections open for the peer check")
    args = parser.parse_args()

    hasher = PasswordHasher()
    hashed = hasher.hash("correct horse")
    check = PasswordCheck({"alice": hashed})
    check.check("nobody", "warm the decoy up")
    right = median_seconds(lambda: check.check("alice", "correct horse"), args.hash_rounds)
    unknown = median_seconds(lambda: check.check("nobody", "correct horse"), args.hash_rounds)

    tokens = Tokens(b"b" * 32)
    login = tokens.login("alice", "password", 3600)
    share, _ = tokens.share("session-a", 3600)
    issue = median_seconds(lambda: tokens.login("alice", "password", 3600), args.rounds)
    verify = median_seconds(lambda: tokens.verify(login), args.rounds)

    authority = Authority(
        tokens, Clock(), required=True, passwords=PasswordCheck(env_user="alice", env_password="x")
    )
    peer = Peer(None, False)

    def decide(token: str) -> None:
        request = DummyRequest([b"api", b"sessions", b"session-a"])
        request.path = b"/api/sessions/session-a"
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
        path = request_path(request)
        grant = authority.grant_for(request_token(request), peer)
        assert path is not None and grant is not None
        share_allows(b"GET", path, grant)

    def build_only() -> None:
        request = DummyRequest([b"api", b"sessions", b"session-a"])
        request.path = b"/api/sessions/session-a"
        request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {login}".encode()])

    baseline = median_seconds(build_only, args.rounds)
    gate_login = median_seconds(lambda: decide(login), args.rounds) - baseline
    gate_share = median_seconds(lambda: decide(share), args.rounds) - baseline
    stall = worst_stall_while(lambda: check.check("alice", "wrong"), args.hash_rounds)
    server, held = open_connections(0)
    alone = peer_check_cost(server, args.rounds)
    server.close()
    server, held = open_connections(args.connections)
    crowded = peer_check_cost(server, args.rounds)
    for sock in [server, *held]:
        sock.close()

    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"argon2 defaults: time_cost={hasher.time_cost} memory_cost={hasher.memory_cost} KiB")
    rows = [
        ("password check, right password", right * 1e3, "ms"),
        ("password check, unknown user", unknown * 1e3, "ms"),
        (f"logins/s with {HASHING_AT_ONCE} hashing threads", HASHING_AT_ONCE / right, "/s"),
        ("token issue", issue * 1e6, "us"),
        ("token verify", verify * 1e6, "us"),
        ("gate decision, login token", gate_login * 1e6, "us"),
        ("gate decision, share token", gate_share * 1e6, "us"),
        ("longest 1 ms sleep while a thread hashes", stall * 1e3, "ms"),
        ("peer check, sock_diag", alone[0] * 1e6, "us"),
        (f"peer check, sock_diag, {args.connections} open", crowded[0] * 1e6, "us"),
        ("peer check, /proc/net/tcp", alone[1] * 1e6, "us"),
        (f"peer check, /proc/net/tcp, {args.connections} open", crowded[1] * 1e6, "us"),
    ]
    for name, value, unit in rows:
        print(f"{name:46} {value:10.1f} {unit}")


if __name__ == "__main__":
    main()
