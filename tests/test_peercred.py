"""Tests for vibetwist.model.peercred: who is at the other end of a connection, over real
sockets of this machine, as the daemon's user and as another user (nobody, via setpriv)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.otheruser import NOBODY, python_as_nobody
from vibetwist.model.peercred import (
    REMOTE,
    UNKNOWN_LOCAL,
    Peer,
    SockDiag,
    SocketOwners,
    _find_line,
    client_key,
    is_loopback_address,
    proc_owner,
    tcp_peer,
    unix_peer_uid,
)

FAMILIES = [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]


def listener(family: int, host: str) -> socket.socket:
    server = socket.socket(family)
    server.bind((host, 0))
    server.listen(16)
    server.settimeout(20)
    return server


class OwnerTests(SynchronousTestCase):
    """sock_diag and /proc/net/tcp name the same owner for every kind of connection."""

    def setUp(self) -> None:
        self.owners = SocketOwners()
        self.addCleanup(self.owners.close)

    def both(self, end: tuple[str, int], other: tuple[str, int]) -> tuple[int | None, int | None]:
        return SockDiag().owner(end, other), proc_owner(end, other)

    def test_netlink_works_here(self) -> None:
        """On this machine the look-up goes through sock_diag."""
        self.assertEqual(self.owners.method, "sock_diag")

    def test_own_connections(self) -> None:
        """A connection this process made, IPv4 and IPv6, belongs to this user."""
        for family, host in FAMILIES:
            server = listener(family, host)
            client = socket.socket(family)
            client.connect(server.getsockname()[:2])
            accepted, address = server.accept()
            here = accepted.getsockname()[:2]
            self.assertEqual(self.both(address[:2], here), (os.getuid(), os.getuid()), host)
            self.assertEqual(self.owners.owner(address[:2], here), os.getuid())
            for sock in (client, accepted, server):
                sock.close()

    def test_dual_stack(self) -> None:
        """An IPv4 client of an IPv6 listener (seen as ::ffff:127.0.0.1) is found, from an IPv4
        socket and from an IPv6 one."""
        server = socket.socket(socket.AF_INET6)
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind(("::", 0))
        server.listen(4)
        port = server.getsockname()[1]
        for family, host in [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::ffff:127.0.0.1")]:
            client = socket.socket(family)
            client.connect((host, port))
            accepted, address = server.accept()
            self.assertEqual(address[0], "::ffff:127.0.0.1")
            here = accepted.getsockname()[:2]
            self.assertEqual(self.both(address[:2], here), (os.getuid(), os.getuid()), host)
            client.close()
            accepted.close()
        server.close()

    def test_another_users_connection(self) -> None:
        """A connection made by nobody belongs to nobody, while it is open; once nobody has
        closed it (an orphan, then TIME_WAIT, listed under uid 0) its owner is unknown."""
        for family, host in FAMILIES:
            server = listener(family, host)
            port = server.getsockname()[1]
            code = (
                "import socket, sys, time\n"
                f"s = socket.create_connection(({host!r}, {port}))\n"
                "sys.stdin.readline()\n"
            )
            child = subprocess.Popen(python_as_nobody(code), stdin=subprocess.PIPE, cwd="/")
            accepted, address = server.accept()
            here = accepted.getsockname()[:2]
            self.assertEqual(self.both(address[:2], here), (NOBODY, NOBODY), host)
            assert child.stdin is not None
            child.stdin.write(b"\n")
            child.stdin.close()
            child.wait(20)
            time.sleep(0.05)
            self.assertEqual(self.both(address[:2], here), (None, None), host)
            accepted.close()
            time.sleep(0.05)
            self.assertEqual(self.both(address[:2], here), (None, None), host)
            server.close()

    def test_nothing_there(self) -> None:
        """A connection that does not exist, or addresses that are not IP addresses, have no owner."""
        self.assertIsNone(self.owners.owner(("127.0.0.1", 1), ("127.0.0.1", 2)))
        self.assertIsNone(self.owners.owner(("::1", 1), ("127.0.0.1", 2)))
        self.assertIsNone(self.owners.owner(("not-an-address", 1), ("127.0.0.1", 2)))
        self.assertIsNone(proc_owner(("127.0.0.1", 1), ("127.0.0.1", 2)))

    def test_fallback_to_proc(self) -> None:
        """Without netlink the owner comes from /proc/net/tcp{,6}."""
        owners = SocketOwners(use_netlink=False)
        self.assertEqual(owners.method, "/proc/net/tcp")
        server = listener(socket.AF_INET, "127.0.0.1")
        client = socket.create_connection(server.getsockname())
        accepted, address = server.accept()
        self.assertEqual(owners.owner(address, accepted.getsockname()), os.getuid())
        for sock in (client, accepted, server):
            sock.close()

    def test_unix_socket(self) -> None:
        """SO_PEERCRED gives the user at the other end of a Unix socket."""
        left, right = socket.socketpair()
        self.assertEqual(unix_peer_uid(left), os.getuid())
        left.close()
        right.close()


class TableTests(SynchronousTestCase):
    """Reading a /proc table a chunk at a time finds the line wherever it falls."""

    @settings(max_examples=30)
    @given(st.integers(0, 3000), st.integers(1, 3001), st.sampled_from([0, 1, 7]))
    def test_find_line(self, before: int, total: int, pad: int) -> None:
        """The line holding the needle is found whole, across 64 KiB chunk boundaries, and a
        table without it gives None."""
        lines = [
            f"{n:4}: 0100007F:{n:04X} 0100007F:1F90 01 uid {n}{' ' * (pad * (n % 50))}" for n in range(total)
        ]
        path = Path(tempfile.mkdtemp()) / "tcp"
        path.write_text("header\n" + "\n".join(lines) + "\n")
        wanted = min(before, total - 1)
        needle = f" 0100007F:{wanted:04X} 0100007F:1F90 ".encode()
        self.assertEqual(_find_line(str(path), needle), lines[wanted].encode())
        self.assertIsNone(_find_line(str(path), b" 0200007F:0001 0100007F:1F90 "))
        self.assertIsNone(_find_line(str(path.with_name("missing")), needle))


class PeerTests(SynchronousTestCase):
    """A Peer from an owner look-up, and the keys clients are counted under."""

    def test_tcp_peer(self) -> None:
        """Found: the owner's Peer; not found on loopback: unknown local; elsewhere: remote."""
        self.assertEqual(tcp_peer(lambda a, b: 7, ("127.0.0.1", 1), ("127.0.0.1", 2)), Peer(7, True))
        self.assertEqual(tcp_peer(lambda a, b: 7, ("192.0.2.1", 1), ("192.0.2.2", 2)), Peer(7, True))
        for host in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"]:
            self.assertEqual(tcp_peer(lambda a, b: None, (host, 1), (host, 2)), UNKNOWN_LOCAL, host)
        for host in ["192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1"]:
            self.assertEqual(tcp_peer(lambda a, b: None, (host, 1), ("192.0.2.9", 2)), REMOTE, host)
            self.assertEqual(tcp_peer(lambda a, b: None, (host, 1), (host, 2)), UNKNOWN_LOCAL, host)
        self.assertEqual(
            tcp_peer(lambda a, b: None, ("::ffff:192.0.2.1", 1), ("192.0.2.1", 2)), UNKNOWN_LOCAL
        )
        self.assertFalse(is_loopback_address("localhost"))

    def test_is_user(self) -> None:
        """Only a local peer with that uid is that user."""
        self.assertTrue(Peer(5, True).is_user(5))
        self.assertFalse(Peer(5, True).is_user(6))
        self.assertFalse(UNKNOWN_LOCAL.is_user(5))
        self.assertFalse(REMOTE.is_user(0))

    @given(st.ip_addresses(v=6), st.integers(0, 2**64 - 1))
    def test_ipv6_by_64(self, address: object, low: int) -> None:
        """Every address of one IPv6 /64 is one client; a mapped IPv4 address is its IPv4 self."""
        base = ipaddress.IPv6Address(int(address) & ~(2**64 - 1))  # type: ignore[call-overload]
        if base.ipv4_mapped is not None:
            return
        other = ipaddress.IPv6Address(int(base) | low)
        if other.ipv4_mapped is not None:
            return  # an IPv4 client
        self.assertEqual(client_key(REMOTE, str(base)), client_key(REMOTE, str(other)))
        self.assertEqual(client_key(REMOTE, "::ffff:192.0.2.7"), "192.0.2.7")

    def test_keys(self) -> None:
        """A local user is its uid, whatever its address; an IPv4 client its address."""
        self.assertEqual(client_key(Peer(1000, True), "127.0.0.1"), "uid 1000")
        self.assertEqual(client_key(REMOTE, "192.0.2.1"), "192.0.2.1")
        self.assertEqual(client_key(REMOTE, "2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64")
        self.assertEqual(client_key(UNKNOWN_LOCAL, "127.0.0.1"), "127.0.0.1")
        self.assertEqual(client_key(REMOTE, None), "unknown")
