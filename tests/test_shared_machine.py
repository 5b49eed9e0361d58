"""Safe on a shared machine: what a security review did to the daemon as an attacker, done
again against the real daemon over real sockets, as another user of the machine (nobody,
through setpriv) where the attack needs one. Each class is one finding of that review
(see the README's Security section); each test fails on a daemon without its fix.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support.credentials import FAST, openssh_line, sign
from tests.support.daemon import Client, Daemon, open_ws, parse_raw, poll, raw_request, sleep
from tests.support.e2e import DaemonTestCase
from tests.support.login import CREDENTIALS, LoginDaemonTestCase, log_in
from tests.support.otheruser import (
    NOBODY,
    http_as_nobody,
    python_as_nobody,
    request,
    run,
    start_as_nobody,
    upgrade,
)
from vibetwist.login.authority import MAX_FAILURES
from vibetwist.login.passwords import format_password_file
from vibetwist.login.sshkeys import MAX_CHALLENGES
from vibetwist.login.tokens import Tokens

OTHER_USER = {"error": "This daemon serves only the user it runs as"}


def public_folder() -> Path:
    """A fresh folder under /tmp that any user may enter and read (not write)."""
    folder = Path(tempfile.mkdtemp(prefix="vt-shared-", dir="/tmp"))
    os.chmod(folder, 0o755)
    return folder


def answer_json(answer: dict[str, Any]) -> Any:
    return json.loads(answer["body"]) if answer.get("body") else None


async def start_fails(daemon: Daemon) -> str:
    """The log of a daemon that must refuse to start."""
    try:
        await daemon.start()
    except AssertionError:
        return daemon.log()
    await daemon.stop()
    raise AssertionError(f"the daemon started:\n{daemon.log()}")


def new_base() -> Path:
    return Path(tempfile.mkdtemp(prefix="e2e-", dir=os.getcwd()))


async def running(
    test: unittest.TestCase, base: Path | None = None, control: Path | None = None, *args: str
) -> tuple[Daemon, Client]:
    """A daemon started for one test (stopped when it ends) and a client of it."""
    daemon = Daemon(reactor, base or new_base(), control, args=args)
    await daemon.start()
    test.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
    client = Client(reactor, daemon)
    test.addCleanup(lambda: defer.ensureDeferred(client.close()))
    return daemon, client


class OtherUserTests(DaemonTestCase):
    """Finding 1: with login off (the default on loopback), another user of the machine got a
    shell as the daemon's user with one curl. Now only the daemon's own user may use it."""

    def host(self) -> str:
        return f"127.0.0.1:{self.daemon.port}"

    def tcp(self) -> list[Any]:
        return ["tcp", "127.0.0.1", self.daemon.port]

    async def test_rest_refused(self) -> None:
        """POST /api/sessions from nobody is a 403 JSON error and runs nothing; listing and
        typing are refused too; the daemon's own user still needs no token."""
        marker = public_folder() / "ran"
        sid = await self.create(["cat"])
        before = len(await self.client.get("/api/sessions"))
        command = {"command": ["sh", "-c", f"id > {marker}"]}
        answers = await http_as_nobody(
            reactor,
            self.tcp(),
            [
                request("POST", "/api/sessions", self.host(), command),
                request("GET", "/api/sessions", self.host()),
                request("POST", f"/api/sessions/{sid}/input", self.host(), {"text": "x"}),
                request("GET", f"/api/sessions/{sid}/text?token=dev-token-1", self.host()),
            ],
        )
        for answer in answers:
            self.assertEqual((answer["status"], answer_json(answer)), (403, OTHER_USER), answer)
        await sleep(reactor, 0.5)
        self.assertFalse(marker.exists())
        self.assertEqual(len(await self.client.get("/api/sessions")), before)
        await self.create(["true"])

    async def test_streams_and_sockets_refused(self) -> None:
        """nobody's SSE stream and WebSocket handshakes are refused with 403 before anything
        is sent; the open routes still answer."""
        sid = await self.create(["cat"])
        answers = await http_as_nobody(
            reactor,
            self.tcp(),
            [
                request("GET", f"/api/sessions/{sid}/stream", self.host()),
                upgrade("/buffers", self.host()),
                upgrade(f"/ws/input?sessionId={sid}", self.host()),
                upgrade(f"/ws/sessions/{sid}", self.host()),
                request("GET", "/api/health", self.host()),
            ],
        )
        self.assertEqual([a["status"] for a in answers], [403, 403, 403, 403, 200], answers)

    async def test_closing_at_once_does_not_pass(self) -> None:
        """A request sent by nobody on a connection it closes at once (its socket then has no
        owner the kernel will name, or is listed under root) is not served."""
        marker = public_folder() / "ran"
        before = len(await self.client.get("/api/sessions"))
        command = {"command": ["sh", "-c", f"id > {marker}"]}
        await http_as_nobody(
            reactor,
            self.tcp(),
            [request("POST", "/api/sessions", self.host(), command)] * 20,
            then_close=True,
        )
        await sleep(reactor, 1.0)
        self.assertFalse(marker.exists())
        self.assertEqual(len(await self.client.get("/api/sessions")), before)

    async def test_share_link_restricts_nobody_too(self) -> None:
        """A share link the user gives another user of the machine reads its one session, and
        nothing more."""
        sid = await self.create(["cat"])
        code, link, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200)
        token = link["token"]
        answers = await http_as_nobody(
            reactor,
            self.tcp(),
            [
                request("GET", f"/api/sessions/{sid}?token={token}", self.host()),
                request("POST", f"/api/sessions/{sid}/input?token={token}", self.host(), {"text": "x"}),
                request("GET", f"/api/sessions?token={token}", self.host()),
            ],
        )
        self.assertEqual([a["status"] for a in answers], [200, 403, 403])


class UnixSocketTests(unittest.TestCase):
    """Finding 1, over a unix: listener: it was made 0666; now 0600, and a socket given a
    wider mode still serves only the daemon's user (SO_PEERCRED)."""

    timeout = 60

    async def test_unix_listeners(self) -> None:
        """unix:PATH is 0600 and nobody may not connect; with mode=666 nobody connects and gets
        403; the daemon's own user is served on both."""
        folder = public_folder()
        private, wide = folder / "d.sock", folder / "wide.sock"
        args = ("--listen", f"unix:{private}", "--listen", f"unix:{wide}:mode=666")
        daemon = Daemon(reactor, new_base(), args=args)
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        self.assertEqual(stat.S_IMODE(os.stat(private).st_mode), 0o600)
        health = request("GET", "/api/sessions", "localhost")
        refused = await http_as_nobody(reactor, ["unix", str(private)], [health])
        self.assertIn("PermissionError", refused[0].get("error", ""), refused)
        other = await http_as_nobody(reactor, ["unix", str(wide)], [health])
        self.assertEqual((other[0]["status"], answer_json(other[0])), (403, OTHER_USER))
        for path in (private, wide):
            mine = await http_as_nobody(reactor, ["unix", str(path)], [health], nobody=False)
            self.assertEqual(mine[0]["status"], 200, mine)


class ConcurrentGuessTests(LoginDaemonTestCase):
    """Finding 2: 40 wrong passwords and the right one sent at once from one client got
    40 x 401 and 1 x 200. Attempts now count as they arrive."""

    async def test_guesses_sent_at_once(self) -> None:
        """Of 41 logins sent by nobody at once, at most MAX_FAILURES are checked; the rest are
        429, the right password among them."""
        host = f"127.0.0.1:{self.daemon.port}"
        wrong = [
            request("POST", "/api/auth/password", host, {"userId": "tester", "password": f"guess {n}"})
            for n in range(40)
        ]
        right = request("POST", "/api/auth/password", host, {"userId": "tester", "password": "correct horse"})
        answers = await http_as_nobody(
            reactor, ["tcp", "127.0.0.1", self.daemon.port], wrong + [right], together=True
        )
        statuses = [a.get("status") for a in answers]
        checked = statuses.count(200) + statuses.count(401)
        self.assertLessEqual(checked, MAX_FAILURES, statuses)
        self.assertEqual(statuses.count(429), 41 - checked, statuses)
        self.assertNotEqual(statuses[-1], 200, statuses)

    async def test_own_user_is_not_throttled(self) -> None:
        """The daemon's own user (who could read the password file anyway) is not throttled:
        after more than MAX_FAILURES wrong passwords, the right one still logs in."""
        client = self.anonymous()
        for n in range(MAX_FAILURES + 1):
            code, _, _ = await client.request(
                "POST", "/api/auth/password", {"userId": "tester", "password": f"x{n}"}
            )
            self.assertEqual(code, 401)
        await log_in(client)


class PlantedFileTests(unittest.TestCase):
    """Finding 3: the token secret and the control directory were checked for mode but not
    owner: another user who made them first could forge tokens or read every session."""

    timeout = 60

    def shared_folder(self) -> Path:
        """A folder like /tmp: anyone may add names, only owners may remove theirs."""
        folder = public_folder()
        os.chmod(folder, 0o1777)
        return folder

    async def as_nobody(self, code: str) -> None:
        status, _, err = await run(reactor, python_as_nobody(code))
        self.assertEqual(status, 0, err)

    async def test_planted_secret(self) -> None:
        """A 0600 vibetwist.secret made by nobody where the daemon's would go stops the daemon
        (nobody knows that secret: it could sign any token)."""
        folder = self.shared_folder()
        secret = folder / "vibetwist.secret"
        plant = f"import os\nfd = os.open({str(secret)!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
        await self.as_nobody(plant + "os.write(fd, b'ab' * 32)")
        self.assertEqual(os.stat(secret).st_uid, NOBODY)
        daemon = Daemon(reactor, new_base(), folder / "control", env=CREDENTIALS)
        log = await start_fails(daemon)
        self.assertIn(f"{secret} belongs to nobody", log)

    async def test_planted_control_dir(self) -> None:
        """A control directory made by nobody first stops the daemon (nobody could read and
        replace every session's files)."""
        folder = self.shared_folder()
        control = folder / "control"
        await self.as_nobody(f"import os; os.mkdir({str(control)!r}, 0o700)")
        log = await start_fails(Daemon(reactor, new_base(), control))
        self.assertIn(f"{control} belongs to nobody", log)

    async def test_control_dir_in_a_folder_others_may_write(self) -> None:
        """A control directory inside a folder everyone may write (not sticky), where another user
        could rename it away and put their own in its place, stops the daemon."""
        folder = public_folder()
        os.chmod(folder, 0o777)
        log = await start_fails(Daemon(reactor, new_base(), folder / "control"))
        self.assertIn("may be changed by other users", log)

    async def test_dangling_symlink_secret(self) -> None:
        """A secret path that is a dangling symbolic link is a clear error, not a RecursionError."""
        base = new_base()
        (base / "vibetwist.secret").symlink_to(base / "nowhere")
        log = await start_fails(Daemon(reactor, base, base / "control", env=CREDENTIALS))
        self.assertIn("is a symbolic link", log)
        self.assertNotIn("RecursionError", log)
        self.assertFalse((base / "nowhere").exists())

    async def test_password_file_of_another_user(self) -> None:
        """A password file that belongs to nobody (who could add themselves) stops the daemon."""
        base = new_base()
        passwords = base / "passwords"
        passwords.write_text(format_password_file({"alice": FAST.hash("pw")}))
        os.chmod(passwords, 0o600)
        os.chown(passwords, NOBODY, NOBODY)
        log = await start_fails(Daemon(reactor, base, args=("--password-file", str(passwords))))
        self.assertIn("belongs to nobody", log)


class SecretEnvironmentTests(LoginDaemonTestCase):
    """Finding 4: VIBETUNNEL_PASSWORD, VIBETUNNEL_USERNAME and VIBETWIST_TOKEN reached every
    session's environment, where a share-link viewer saw them after ``env``."""

    async def start_daemon(
        self, base: Path | None = None, control_dir: Path | None = None, shared: bool = False
    ) -> Daemon:
        daemon = Daemon(
            reactor, base or new_base(), control_dir, env=dict(CREDENTIALS, VIBETWIST_TOKEN="tok-123")
        )
        await daemon.start()
        if not shared:
            self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        return daemon

    async def test_sessions_do_not_get_them(self) -> None:
        """A session's environment holds none of the daemon's credentials, as its own output
        read through a share link shows, and as /proc says of a running one."""
        sid = await self.create(["sh", "-c", "env; echo END-OF-ENV"])
        await self.client.wait_status(sid, "exited")
        code, link, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200)
        viewer = self.anonymous(link["token"])
        code, recording, _ = await viewer.request("GET", f"/api/sessions/{sid}/recording")
        self.assertEqual(code, 200)
        self.assertIn(b"END-OF-ENV", recording)
        self.assertIn(b"VIBETUNNEL_SESSION_ID", recording)
        for secret in [
            b"VIBETUNNEL_PASSWORD",
            b"VIBETUNNEL_USERNAME",
            b"VIBETWIST_TOKEN",
            b"correct horse",
            b"tok-123",
        ]:
            self.assertNotIn(secret, recording)
        running = await self.create(["sleep", "30"])
        info = await self.client.wait_status(running, "running")
        environ = Path(f"/proc/{info['pid']}/environ").read_bytes().split(b"\0")
        self.assertEqual(
            [e for e in environ if e.startswith((b"VIBETUNNEL_P", b"VIBETUNNEL_U", b"VIBETWIST_T"))], []
        )


class ForcedCommandKeyTests(unittest.TestCase):
    """Finding 5: SSH-key login ignored authorized_keys options and read keys out of comments:
    a key meant for a forced backup command became a full shell."""

    timeout = 60

    async def test_limited_and_hidden_keys(self) -> None:
        """A key with command= and no-pty, and a key written in another line's comment, are
        refused; a plain key logs in."""
        backup, hidden, plain = (Ed25519PrivateKey.generate() for _ in range(3))
        rsa = generate_private_key(public_exponent=65537, key_size=2048).public_key()
        rsa_line = rsa.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
        base = new_base()
        keys = base / "authorized_keys"
        keys.write_text(
            f'command="/usr/local/bin/backup",no-pty,no-port-forwarding {openssh_line(backup, "backup")}\n'
            f"{rsa_line} old laptop {openssh_line(hidden, '')}\n"
            f"{openssh_line(plain)}\n"
        )
        _, client = await running(self, base, None, "--authorized-keys", str(keys))
        user = pwd.getpwuid(os.getuid()).pw_name

        async def log_in_with(key: Ed25519PrivateKey) -> int:
            _, challenge, _ = await client.request("POST", "/api/auth/challenge", {"userId": user})
            body = {
                "challengeId": challenge["challengeId"],
                "publicKey": openssh_line(key),
                "signature": sign(key, challenge),
            }
            code, _, _ = await client.request("POST", "/api/auth/ssh-key", body)
            return code

        self.assertEqual([await log_in_with(k) for k in (backup, hidden, plain)], [401, 401, 200])


class OriginPortTests(DaemonTestCase):
    """Finding 6: with no port in Host, an Origin with any port passed (Host: 127.0.0.1 and
    Origin: http://127.0.0.1:3000 upgraded a WebSocket)."""

    async def answer(self, head: str) -> int:
        tcp = ["tcp", "127.0.0.1", self.daemon.port]
        answers = await http_as_nobody(reactor, tcp, [head], nobody=False)
        return int(answers[0]["status"])

    async def test_host_without_port(self) -> None:
        """Host without a port means port 80 for http: an Origin of another port is refused on a
        WebSocket handshake and a POST; Origin on port 80 matches."""

        def handshake(origin: str) -> str:
            return upgrade("/buffers", "127.0.0.1").replace("\r\n\r\n", f"\r\nOrigin: {origin}\r\n\r\n")

        self.assertEqual(await self.answer(handshake("http://127.0.0.1:3000")), 403)
        post = request(
            "POST", "/api/sessions", "127.0.0.1", {"command": ["true"]}, {"Origin": "http://127.0.0.1:3000"}
        )
        self.assertEqual(await self.answer(post), 403)
        self.assertEqual(await self.answer(handshake("http://127.0.0.1")), 101)


class LowFindingTests(LoginDaemonTestCase):
    """Finding 7 (low): Host values no browser sends, and share viewers told which session ids
    exist. (Tokens spelled in percent-escapes in the access log: test_auth_e2e.)"""

    async def test_host_values_no_browser_sends(self) -> None:
        """Host: evil.com#.localhost and Host: [::1]evil are refused."""
        for host in ["evil.com#.localhost", "[::1]evil", "[::1", "a b.localhost"]:
            raw = await raw_request(reactor, self.daemon.port, request("GET", "/api/health", host).encode())
            self.assertEqual(parse_raw(raw)[0], 403, host)

    async def test_buffers_tell_nothing_of_other_ids(self) -> None:
        """A share viewer subscribing on /buffers to another session that exists and to an id
        that does not gets the same error."""
        mine, other = await self.create(["cat"]), await self.create(["cat"])
        code, link, _ = await self.client.request("POST", f"/api/sessions/{mine}/share", {})
        self.assertEqual(code, 200)
        socket = await self.ws(f"/buffers?token={link['token']}")
        for sid in [other, "no-such-session"]:
            socket.send_json({"type": "subscribe", "sessionId": sid})

        def errors() -> list[dict[str, Any]]:
            return [t for t in socket.texts() if t["type"] == "error"]

        await socket.wait_for(lambda: len(errors()) >= 2)
        self.assertEqual(errors(), [{"type": "error", "message": "This link is read-only"}] * 2)


class ConnectionSlotTests(unittest.TestCase):
    """Finding 7 (low): unauthenticated clients could fill every connection slot with partial
    requests; another user's are now capped, and the daemon's user keeps headroom."""

    timeout = 60

    HOLD = r"""
import json, select, socket, sys, time
port, count = int(sys.argv[1]), int(sys.argv[2])
socks = []
for _ in range(count):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        socks.append(s)
    except OSError:
        pass
time.sleep(0.5)
refused = 0
for s in socks:
    if select.select([s], [], [], 0)[0] and s.recv(4096).startswith(b"HTTP/1.1 503"):
        refused += 1
print(json.dumps({"opened": len(socks), "refused": refused}), flush=True)
sys.stdin.readline()
"""

    async def test_partial_requests(self) -> None:
        """nobody holding partial requests on every connection it can open keeps at most an
        eighth of --max-connections; the daemon's user is still served."""
        daemon, client = await running(self, None, None, "--max-connections", "40")
        holder = start_as_nobody(reactor, self.HOLD, str(daemon.port), "40")
        try:
            counts = json.loads(await holder.first_line)
            self.assertEqual(counts["opened"], 40)
            self.assertEqual(counts["opened"] - counts["refused"], 40 // 8)
            self.assertEqual((await client.get("/api/health"))["status"], "ok")
        finally:
            await holder.finish(reactor)


class ChallengeFloodTests(unittest.TestCase):
    """Finding 7 (low): flooding /api/auth/challenge pushed out a real client's pending
    challenge; each client now holds a few at most."""

    timeout = 90

    async def test_flood_keeps_my_challenge(self) -> None:
        """After nobody asked for more challenges than the daemon keeps, the one the daemon's
        user asked for first still logs in."""
        key = Ed25519PrivateKey.generate()
        base = new_base()
        keys = base / "authorized_keys"
        keys.write_text(openssh_line(key) + "\n")
        daemon, client = await running(self, base, None, "--authorized-keys", str(keys))
        user = pwd.getpwuid(os.getuid()).pw_name
        _, challenge, _ = await client.request("POST", "/api/auth/challenge", {"userId": user})
        flood = f"""
import socket
s = socket.create_connection(("127.0.0.1", {daemon.port}))
body = b'{{"userId": "{user}"}}'
head = (b"POST /api/auth/challenge HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n"
        b"Content-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body))
for _ in range({MAX_CHALLENGES + 200}):
    s.sendall(head + body)
    got = b""
    while b"}}" not in got:
        got += s.recv(65536)
print("done", flush=True)
"""
        status, out, err = await run(reactor, python_as_nobody(flood), timeout=80)
        self.assertEqual((status, out.strip()), (0, b"done"), err)
        answer = {
            "challengeId": challenge["challengeId"],
            "publicKey": openssh_line(key),
            "signature": sign(key, challenge),
        }
        code, body, _ = await client.request("POST", "/api/auth/ssh-key", answer)
        self.assertEqual(code, 200, body)


class TokenIdentityTests(unittest.TestCase):
    """Finding 7 (low): a sibling daemon sharing the secret took this one's tokens, and a user
    removed from the password file kept access."""

    timeout = 60

    async def test_sibling_and_removed_user(self) -> None:
        """A token of one daemon is refused by another using the same secret file; bob's token
        stops working within seconds of bob leaving the password file, alice's goes on."""
        base = new_base()
        passwords = base / "passwords"
        passwords.write_text(format_password_file({"alice": FAST.hash("a"), "bob": FAST.hash("b")}))
        os.chmod(passwords, 0o600)
        shared = ("--password-file", str(passwords), "--secret-file", str(base / "shared.secret"))
        _, first = await running(self, base / "one", base / "one" / "control", *shared)
        _, sibling = await running(self, base / "two", base / "two" / "control", *shared)
        alice, bob = await log_in(first, "alice", "a"), await log_in(first, "bob", "b")
        sibling.token = alice
        self.assertEqual((await sibling.request("GET", "/api/sessions"))[0], 401)
        first.token = bob
        self.assertEqual((await first.request("GET", "/api/sessions"))[0], 200)
        passwords.write_text(format_password_file({"alice": FAST.hash("a")}))

        async def bob_refused() -> bool:
            return (await first.request("GET", "/api/sessions"))[0] == 401

        await poll(reactor, bob_refused, timeout=5, what="bob's token refused")
        first.token = alice
        self.assertEqual((await first.request("GET", "/api/sessions"))[0], 200)


class LoginOffTokenTests(DaemonTestCase):
    """With login off, a token the daemon does not know is ignored (VibeTunnel's client always
    sends ?token=, a made-up dev-token-<ms> when it has none); a share token still restricts."""

    UNKNOWN = ["", "dev-token-1733222333444", "not.a.jwt", Tokens(b"z" * 32).login("me", "password", 60)]

    async def test_ws_input(self) -> None:
        """/ws/input with an empty, a garbage and a stale token upgrades and types; with a share
        token it is refused before the upgrade."""
        sid = await self.create(["cat"])
        await self.client.wait_status(sid, "running")
        for n, token in enumerate(self.UNKNOWN):
            socket = await open_ws(reactor, self.daemon, f"/ws/input?sessionId={sid}&token={token}")
            socket.sendMessage(f"typed-{n}\r".encode())
            await self.client.wait_text(sid, f"typed-{n}")
            socket.sendClose()
        code, link, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        self.assertEqual(code, 200)
        answers = await http_as_nobody(
            reactor,
            ["tcp", "127.0.0.1", self.daemon.port],
            [upgrade(f"/ws/input?sessionId={sid}&token={link['token']}", f"127.0.0.1:{self.daemon.port}")],
            nobody=False,
        )
        self.assertEqual(answers[0]["status"], 403)

    async def test_sse_and_rest(self) -> None:
        """SSE and REST with an empty, a garbage and a stale token (as ?token= and as Bearer)
        answer as without one; a share token still cannot type."""
        sid = await self.create(["sh", "-c", "echo sse-said-hello; sleep 30"])
        for token in self.UNKNOWN:
            client = self.client_for(self.daemon)
            client.token = token
            stream = await client.stream(sid)
            await poll(reactor, lambda s=stream: "sse-said-hello" in s.output(), what="the stream")
            stream.abort()
            self.assertEqual((await client.request("GET", f"/api/sessions?token={token}"))[0], 200)
            code, _, _ = await client.request("POST", f"/api/sessions/{sid}/resize", {"cols": 90, "rows": 20})
            self.assertEqual(code, 200, token)
        code, link, _ = await self.client.request("POST", f"/api/sessions/{sid}/share", {})
        viewer = self.client_for(self.daemon)
        viewer.token = link["token"]
        self.assertEqual((await viewer.request("GET", f"/api/sessions/{sid}"))[0], 200)
        self.assertEqual((await viewer.request("POST", f"/api/sessions/{sid}/input", {"text": "x"}))[0], 403)
