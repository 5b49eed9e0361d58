# -*- test-case-name: tests.test_peercred -*-
"""Who is at the other end of a connection: the user of the process, when it runs on this machine.

A Unix socket's peer is told by the kernel (``SO_PEERCRED``). A TCP connection
from this machine has a socket of this machine at its other end, and the kernel's
socket table says which user owns it. That table is asked through netlink's
``sock_diag`` (one exact look-up of the connection's four addresses and ports,
whatever the number of sockets), or, where netlink is unavailable, read from
``/proc/net/tcp`` and ``/proc/net/tcp6`` until the connection's line is found.

Only a live socket counts: one its process has closed (an orphan, or a
TIME_WAIT entry, which the kernel lists under uid 0) is "unknown". What this
cannot see: the process behind a proxy or a port forward (the proxy's user is
seen), and a process in another network namespace (its sockets are not in this
table; it reaches a loopback listener only through such a forward).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable

import attrs

#: netlink's sock_diag family and its one request type (linux/sock_diag.h, inet_diag.h).
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
#: Every TCP state, as a bit mask; "no cookie" for an exact look-up.
_ALL_STATES = 0xFFFFFFFF
_NO_COOKIE = 0xFFFFFFFF
_NLMSG_HEADER = struct.Struct("=IHHII")
_DIAG_REQUEST = struct.Struct("=BBBBI")
_DIAG_MESSAGE_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode
_SOCKID_SIZE = 48
#: struct inet_diag_msg up to its inode: family, state, timer, retrans, the sockid, then the tail.
_DIAG_MESSAGE_SIZE = 4 + _SOCKID_SIZE + _DIAG_MESSAGE_TAIL.size
#: The first 12 bytes of an IPv4-mapped IPv6 address.
_MAPPED = b"\0" * 10 + b"\xff\xff"
#: TCP states of a socket a process still holds (ESTABLISHED .. CLOSING, not TIME_WAIT,
#: LISTEN or CLOSE), as numbered by the kernel.
_HELD_STATES = frozenset({1, 2, 3, 4, 5, 7, 8, 9, 11})

_PEERCRED = struct.Struct("=iII")  # struct ucred: pid, uid, gid


@attrs.frozen
class Peer:
    """The other end of one connection.

    ``uid`` is the user whose process holds it, when known; ``local`` says that it
    is on this machine (a Unix socket, loopback, or a socket found in the table).
    """

    uid: int | None
    local: bool

    def is_user(self, uid: int) -> bool:
        """True if the other end is a process of that user."""
        return self.local and self.uid == uid


#: A peer on another machine.
REMOTE = Peer(None, False)
#: A peer on this machine whose user could not be found (a proxy, a closed socket).
UNKNOWN_LOCAL = Peer(None, True)


def unix_peer_uid(sock: socket.socket) -> int | None:
    """The user of the process at the other end of a connected Unix socket."""
    try:
        _, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    except OSError:
        return None
    return uid


def _packed(host: str) -> tuple[int, bytes]:
    """(family, address bytes) of an address; an IPv4-mapped IPv6 address as IPv4."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if isinstance(address, ipaddress.IPv4Address):
        return socket.AF_INET, address.packed
    return socket.AF_INET6, address.packed


class SockDiag:
    """Exact look-ups in the kernel's TCP socket table over one netlink socket."""

    def __init__(self) -> None:
        self._socket = socket.socket(
            socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
        )
        self._sequence = 0

    def close(self) -> None:
        self._socket.close()

    def owner(self, end: tuple[str, int], other: tuple[str, int]) -> int | None:
        """The uid of the live socket whose own address is end and whose peer is other.

        :raises OSError: if netlink itself fails (not for a socket that is not found).
        """
        family, source = _packed(end[0])
        other_family, destination = _packed(other[0])
        if family != other_family:
            return None
        uid = self._ask(family, source, end[1], destination, other[1])
        if uid is None and family == socket.AF_INET:
            # An IPv6 socket may hold an IPv4 connection (as ::ffff:a.b.c.d).
            uid = self._ask(socket.AF_INET6, _MAPPED + source, end[1], _MAPPED + destination, other[1])
        return uid

    def _ask(self, family: int, source: bytes, sport: int, destination: bytes, dport: int) -> int | None:
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        sockid = (
            struct.pack("!HH", sport, dport)
            + source.ljust(16, b"\0")
            + destination.ljust(16, b"\0")
            + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
        )
        body = _DIAG_REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, _ALL_STATES) + sockid
        header = _NLMSG_HEADER.pack(
            _NLMSG_HEADER.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, self._sequence, 0
        )
        self._socket.send(header + body)
        # The kernel answers while it handles the request: the reply is queued already,
        # and recv never waits.
        while True:
            try:
                reply = self._socket.recv(8192, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return None
            answered, uid = self._read_reply(reply)
            if answered:
                return uid

    def _read_reply(self, reply: bytes) -> tuple[bool, int | None]:
        """(whether reply answers the last question, the uid it gives)."""
        offset = 0
        while offset + _NLMSG_HEADER.size <= len(reply):
            length, kind, _, sequence, _ = _NLMSG_HEADER.unpack_from(reply, offset)
            if length < _NLMSG_HEADER.size:
                break
            start = offset + _NLMSG_HEADER.size
            offset += (length + 3) & ~3
            if sequence != self._sequence:
                continue  # left over from an earlier question
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", reply, start)
                if code in (0, -errno.ENOENT):
                    return True, None
                raise OSError(-code, os.strerror(-code))
            if kind != SOCK_DIAG_BY_FAMILY or start + _DIAG_MESSAGE_SIZE > len(reply):
                return True, None
            state = reply[start + 1]
            _, _, _, uid, inode = _DIAG_MESSAGE_TAIL.unpack_from(reply, start + 4 + _SOCKID_SIZE)
            if state not in _HELD_STATES or inode == 0:
                return True, None  # closed by its process: whose it was is not known any more
            return True, uid
        return False, None


def _proc_hex(family: int, address: bytes, port: int) -> bytes:
    """An address and port as /proc/net/tcp{,6} print them (each 32-bit word in host order)."""
    words = struct.unpack(f"={len(address) // 4}I", address)
    return ("".join(f"{word:08X}" for word in words) + f":{port:04X}").encode("ascii")


def proc_owner(end: tuple[str, int], other: tuple[str, int], root: str = "/proc/net") -> int | None:
    """What :meth:`SockDiag.owner` answers, from /proc/net/tcp and /proc/net/tcp6.

    Reads each table until the connection's line: the cost grows with the number
    of sockets on the machine.
    """
    family, source = _packed(end[0])
    other_family, destination = _packed(other[0])
    if family != other_family:
        return None
    tables = [(family, source, destination)]
    if family == socket.AF_INET:
        # A socket of an IPv6 process can hold an IPv4 connection, listed in tcp6 as ::ffff:a.b.c.d.
        tables.append((socket.AF_INET6, _MAPPED + source, _MAPPED + destination))
    for table_family, mine, theirs in tables:
        needle = (
            b" "
            + _proc_hex(table_family, mine, end[1])
            + b" "
            + _proc_hex(table_family, theirs, other[1])
            + b" "
        )
        name = "tcp" if table_family == socket.AF_INET else "tcp6"
        line = _find_line(os.path.join(root, name), needle)
        if line is not None:
            return _owner_of_line(line)
    return None


def _find_line(path: str, needle: bytes) -> bytes | None:
    """The line of a /proc table that holds needle, read 64 KiB at a time until it is found."""
    try:
        with open(path, "rb") as f:
            rest = b""
            while True:
                chunk = f.read(1 << 16)
                block = rest + chunk
                cut = len(block) if not chunk else block.rfind(b"\n") + 1
                whole, rest = block[:cut], block[cut:]
                at = whole.find(needle)
                if at >= 0:
                    end = whole.find(b"\n", at)
                    return whole[whole.rfind(b"\n", 0, at) + 1 : end if end >= 0 else None]
                if not chunk:
                    return None
    except OSError:
        return None


def _owner_of_line(line: bytes) -> int | None:
    # sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
    fields = line.split()
    try:
        state, uid, inode = int(fields[3], 16), int(fields[7]), int(fields[9])
    except (IndexError, ValueError):
        return None
    if state not in _HELD_STATES or inode == 0:
        return None
    return uid


class SocketOwners:
    """The owner of the other end of TCP connections: sock_diag where it works, else /proc."""

    def __init__(self, use_netlink: bool = True) -> None:
        self._diag: SockDiag | None = None
        if use_netlink:
            try:
                self._diag = SockDiag()
                # One look-up proves the kernel answers (a sandbox may refuse sock_diag).
                self._diag.owner(("127.0.0.1", 1), ("127.0.0.1", 1))
            except OSError:
                self._fallback()
        self.method = "sock_diag" if self._diag is not None else "/proc/net/tcp"

    def _fallback(self) -> None:
        if self._diag is not None:
            self._diag.close()
        self._diag = None
        self.method = "/proc/net/tcp"

    def owner(self, end: tuple[str, int], other: tuple[str, int]) -> int | None:
        """The uid of this machine's socket at end that is connected to other, or None."""
        try:
            if self._diag is not None:
                try:
                    return self._diag.owner(end, other)
                except OSError:
                    self._fallback()
            return proc_owner(end, other)
        except ValueError:
            return None  # not an IP address

    def close(self) -> None:
        if self._diag is not None:
            self._diag.close()
            self._diag = None


def is_loopback_address(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and their IPv4-mapped forms."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def tcp_peer(
    owner: Callable[[tuple[str, int], tuple[str, int]], int | None],
    peer: tuple[str, int],
    host: tuple[str, int],
) -> Peer:
    """The Peer of a TCP connection that peer opened to host, owner being SocketOwners.owner.

    Not found, it is this machine's all the same when it comes from a loopback address
    or from the very address it reached (this machine talking to itself).
    """
    uid = owner(peer, host)
    if uid is not None:
        return Peer(uid, True)
    if is_loopback_address(peer[0]) or _same_address(peer[0], host[0]):
        return UNKNOWN_LOCAL
    return REMOTE


def _same_address(a: str, b: str) -> bool:
    try:
        first, second = _packed(a), _packed(b)
    except ValueError:
        return False
    return first == second


def client_key(peer: Peer, host: str | None) -> str:
    """The name a client's connections and login attempts are counted under.

    A process of this machine is its user (every local user shares 127.0.0.1);
    another machine is its address, an IPv6 one by its /64, which one machine
    may hold whole.
    """
    if peer.local and peer.uid is not None:
        return f"uid {peer.uid}"
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is None:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        address = address.ipv4_mapped
    return str(address)
