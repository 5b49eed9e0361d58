"""Tests for the login options of twistd vibetunnel and the HostOriginCheck's allowed hosts."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.support.credentials import FAST
from tests.support.resources import Echo
from tests.support.tls import make_certificate
from vibetwist.login.passwords import format_password_file
from vibetwist.server.hostcheck import HostOriginCheck, host_allowed, origin_allowed
from vibetwist.server.listen import check_listen, private_unix
from vibetwist.tap import Options, make_authority

CREDENTIALS = {"VIBETUNNEL_USERNAME": "me", "VIBETUNNEL_PASSWORD": "pw"}


class LoginModeTests(SynchronousTestCase):
    """Login is on when credentials are configured; exposing the daemon needs login or a flag."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())

    def parse(self, *args: str, environ: dict[str, str] | None = None) -> Options:
        options = Options(environ=environ if environ is not None else {})
        options.parseOptions(["--control-dir", str(self.tmp / "control"), *args])
        return options

    def password_file(self) -> Path:
        path = self.tmp / "passwords"
        path.write_text(format_password_file({"alice": FAST.hash("pw")}))
        os.chmod(path, 0o600)
        return path

    def test_off_by_default_on_loopback(self) -> None:
        """With no credentials, login is off and loopback listening is fine."""
        options = self.parse()
        self.assertFalse(options["login"])
        self.assertEqual(options["secret-file"], self.tmp / "vibetwist.secret")

    def test_on_with_credentials(self) -> None:
        """Environment credentials, a password file, or --ssh-keys turn login on."""
        self.assertTrue(self.parse(environ=CREDENTIALS)["login"])
        self.assertTrue(self.parse("--password-file", str(self.password_file()))["login"])
        self.assertTrue(self.parse("--ssh-keys")["login"])
        self.assertTrue(self.parse("--authorized-keys", str(self.tmp / "keys"))["ssh-keys"])

    def test_no_auth(self) -> None:
        """--no-auth turns login off even with credentials; it contradicts --require-login."""
        self.assertFalse(self.parse("--no-auth", environ=CREDENTIALS)["login"])
        self.assertRaises(usage.UsageError, self.parse, "--no-auth", "--require-login", environ=CREDENTIALS)

    def test_require_login_needs_a_method(self) -> None:
        """--require-login without any login method refuses to start."""
        self.assertRaises(usage.UsageError, self.parse, "--require-login")
        self.assertTrue(self.parse("--require-login", environ=CREDENTIALS)["login"])

    def test_half_credentials(self) -> None:
        """A username without a password (or the reverse) is an error, not a silent no-login."""
        self.assertRaises(usage.UsageError, self.parse, environ={"VIBETUNNEL_USERNAME": "me"})
        self.assertRaises(usage.UsageError, self.parse, environ={"VIBETUNNEL_PASSWORD": "pw"})

    def test_network_needs_login(self) -> None:
        """A non-loopback listener is refused without login, accepted with it or with the flag."""
        exposed = ["tcp:4020", "tcp:4020:interface=0.0.0.0", "tcp6:4020", "tcp:4020:interface=192.168.1.2"]
        for description in exposed:
            self.assertRaises(usage.UsageError, self.parse, "--listen", description)
            self.assertRaises(usage.UsageError, self.parse, "--listen", description, "--no-auth")
            self.parse("--listen", description, environ=CREDENTIALS)
            self.parse("--listen", description, "--allow-no-auth-on-network")
        self.assertRaises(usage.UsageError, self.parse, "--listen", "nonsense:1", environ=CREDENTIALS)

    def test_check_listen(self) -> None:
        """check_listen tells loopback, exposed and unix endpoints apart."""
        self.assertFalse(check_listen("tcp:0:interface=127.0.0.1").exposed)
        self.assertFalse(check_listen("unix:/tmp/x.sock").exposed)
        self.assertTrue(check_listen("tcp:0", login=True).exposed)
        self.assertRaises(usage.UsageError, check_listen, "tcp:0")

    def test_ssl_files_checked(self) -> None:
        """An ssl: endpoint with missing or bad key files is a usage error, not a traceback."""
        bad = self.tmp / "bad.pem"
        bad.write_text("not a key")
        for description in [
            "ssl:0:privateKey=/nonexistent.pem",
            f"ssl:0:privateKey={bad}:interface=127.0.0.1",
        ]:
            self.assertRaises(usage.UsageError, self.parse, "--listen", description)

    def test_ssl_on_network_needs_login(self) -> None:
        """An ssl: listener on a non-loopback interface is refused without login, like tcp:."""
        key, cert, _ = make_certificate(self.tmp)
        exposed = f"ssl:0:privateKey={key}:certKey={cert}:interface=0.0.0.0"
        self.assertRaises(usage.UsageError, self.parse, "--listen", exposed)
        self.assertTrue(self.parse("--listen", exposed, environ=CREDENTIALS)["login"])
        self.parse("--listen", f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1")

    def test_allowed_hosts(self) -> None:
        """--allow-host names and the specific addresses listened on are allowed Hosts
        (not the "every interface" address)."""
        options = self.parse(
            "--listen",
            "tcp:0:interface=192.168.1.2",
            "--listen",
            "tcp:0:interface=0.0.0.0",
            "--allow-host",
            "Box.Example",
            "--allow-host",
            "[fe80::1]",
            environ=CREDENTIALS,
        )
        self.assertEqual(options["allowed-hosts"], {"box.example", "fe80::1", "192.168.1.2"})

    def test_unsafe_secret_file_refused(self) -> None:
        """A secret file others may read stops start-up with a usage error naming chmod."""
        secret = self.tmp / "vibetwist.secret"
        secret.write_text("ab" * 32)
        os.chmod(secret, 0o644)
        with self.assertRaises(usage.UsageError) as caught:
            self.parse()
        self.assertIn("chmod 600", str(caught.exception))
        os.chmod(secret, 0o600)
        self.parse()

    def test_password_file_errors(self) -> None:
        """A missing, malformed or empty password file is a usage error, and so is one that
        others may read or write, or a symbolic link."""
        bad = self.tmp / "bad"
        bad.write_text("alice:plaintext\n")
        empty = self.tmp / "empty"
        empty.write_text("# nobody\n")
        for path in (bad, empty):
            os.chmod(path, 0o600)
        link = self.tmp / "link"
        link.symlink_to(self.password_file())
        readable = self.password_file()
        os.chmod(readable, 0o644)
        for path in [self.tmp / "missing", bad, empty, readable, link]:
            self.assertRaises(usage.UsageError, self.parse, "--password-file", str(path))
        os.chmod(readable, 0o600)
        self.assertTrue(self.parse("--password-file", str(readable))["login"])

    def test_unsafe_control_dir_refused(self) -> None:
        """A control directory that is a symbolic link, or inside a folder others may change,
        stops start-up with a usage error."""
        shared = self.tmp / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        options = Options(environ={})
        with self.assertRaises(usage.UsageError) as caught:
            options.parseOptions(["--control-dir", str(shared / "control")])
        self.assertIn("may be changed by other users", str(caught.exception))
        (self.tmp / "real").mkdir()
        (self.tmp / "linked").symlink_to(self.tmp / "real")
        with self.assertRaises(usage.UsageError):
            Options(environ={}).parseOptions(["--control-dir", str(self.tmp / "linked")])

    def test_unix_sockets_private(self) -> None:
        """A unix: listener is made 0600 unless its string names a mode."""
        self.assertEqual(private_unix("unix:/run/x.sock"), "unix:/run/x.sock:mode=600")
        self.assertEqual(private_unix("unix:/run/x.sock:mode=660"), "unix:/run/x.sock:mode=660")
        self.assertEqual(private_unix("unix:/run/a\\:mode=1.sock"), "unix:/run/a\\:mode=1.sock:mode=600")
        self.assertEqual(private_unix("tcp:4020"), "tcp:4020")

    def test_token_lifetime(self) -> None:
        """--token-lifetime takes seconds within bounds."""
        self.assertEqual(self.parse("--token-lifetime", "3600")["token-lifetime"], 3600)
        for value in ["0", "x", "-1", str(400 * 86400)]:
            self.assertRaises(usage.UsageError, self.parse, "--token-lifetime", value)

    def test_authority(self) -> None:
        """The authority the options make has their methods, and its secret file is 0600."""
        options = self.parse("--ssh-keys", "--password-file", str(self.password_file()), environ=CREDENTIALS)
        authority = make_authority(options, Clock())
        self.assertEqual(
            authority.config(), {"enableSSHKeys": True, "disallowUserPassword": False, "noAuth": False}
        )
        self.assertEqual(os.stat(self.tmp / "vibetwist.secret").st_mode & 0o777, 0o600)
        again = make_authority(options, Clock())
        token = authority.tokens.login("me", "password", 60)
        self.assertIsNotNone(again.tokens.verify(token))


class AllowedHostTests(SynchronousTestCase):
    """Allowed hosts pass the Host check; everything else still stops DNS rebinding."""

    def test_host_allowed(self) -> None:
        """A listed name passes with any port; other names do not."""
        allowed = frozenset({"box.example", "192.168.1.2"})
        for host in ["box.example", "box.example:4020", "192.168.1.2:1", "localhost:4020"]:
            self.assertTrue(host_allowed(host, allowed), host)
        for host in ["evil.example", "box.example.evil", "192.168.1.3", "box.example:x"]:
            self.assertFalse(host_allowed(host, allowed), host)

    def test_origin_scheme(self) -> None:
        """Over TLS the Origin must be https; over plain HTTP it must be http."""
        self.assertTrue(origin_allowed("https://box.example:4443", "box.example:4443", secure=True))
        self.assertFalse(origin_allowed("http://box.example:4443", "box.example:4443", secure=True))
        self.assertFalse(origin_allowed("https://box.example:4443", "box.example:4443", secure=False))
        self.assertTrue(origin_allowed("https://box.example", "box.example", secure=True))

    def test_guard(self) -> None:
        """The HostOriginCheck lets allowed hosts through and refuses others."""
        treq = StubTreq(HostOriginCheck(Echo(), allowed_hosts=frozenset({"box.example"})))
        ok = self.successResultOf(treq.get("http://box.example:4020/", headers={"Host": "box.example:4020"}))
        self.assertEqual(ok.code, 200)
        bad = self.successResultOf(treq.get("http://evil.example/", headers={"Host": "evil.example"}))
        self.assertEqual(bad.code, 403)
