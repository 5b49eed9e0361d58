"""Tests for vibetwist.cluster.options and the cluster options of twistd vibetunnel."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.support.tls import make_certificate
from vibetwist.cluster.options import (
    NATSConfig,
    NATSOptionError,
    check_gateway_id,
    check_host_id,
    default_gateway_id,
    default_host_id,
    gateway_inbox_prefix,
    host_inbox_prefix,
    parse_servers,
    redacted_url,
)
from vibetwist.tap import Options

_label = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
_credentials = st.one_of(
    st.just(""),
    st.from_regex(r"[A-Za-z0-9]{1,12}@", fullmatch=True),
    st.from_regex(r"[a-z]{1,8}:[A-Za-z0-9]{1,8}@", fullmatch=True),
)
_urls = st.builds(
    lambda scheme, cred, host, port: f"{scheme}://{cred}{host}{port}",
    st.sampled_from(["nats", "tls"]),
    _credentials,
    st.one_of(_label, st.just("127.0.0.1"), st.just("[::1]")),
    st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
)


def _private(folder: Path, name: str, text: str = "x", mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(mode)
    return path


class ServerListTests(SynchronousTestCase):
    """--nats values: URLs, repeatable and comma-separated."""

    @given(st.lists(st.lists(_urls, min_size=1, max_size=4), min_size=1, max_size=4), st.data())
    def test_any_grouping_gives_the_same_servers(self, groups: list[list[str]], data: st.DataObject) -> None:
        """However the servers are split over --nats values and commas (spaces and empty items
        around them), the list is theirs in order, each once."""
        values = [data.draw(st.sampled_from([",", ", ", " ,"])).join(group) for group in groups]
        if data.draw(st.booleans()):
            values[-1] += ","
        expected: list[str] = []
        for url in (u for group in groups for u in group):
            if url not in expected:
                expected.append(url)
        self.assertEqual(parse_servers(values), tuple(expected))

    @given(
        st.sampled_from(["nats", "tls"]),
        _credentials,
        st.one_of(_label, st.just("127.0.0.1"), st.just("[::1]")),
        st.sampled_from(["/path", ":1/x", "?q=1", "#f", ":0", ":99999", ":port"]),
    )
    def test_a_bad_url_is_refused(self, scheme: str, cred: str, host: str, tail: str) -> None:
        """A URL with a path, a query, a fragment or a port out of range is refused."""
        with self.assertRaises(NATSOptionError):
            parse_servers([f"{scheme}://{cred}{host}{tail}"])

    def test_refusals(self) -> None:
        """Other schemes, no host, no server at all, a password without a user: each refused
        with a message that shows no secret."""
        for value in [
            "http://h:4222",
            "h:4222",
            "nats://",
            "nats://:secret@h:4222",
            "",
            ",",
            "nats://user:pass@h:4222/x",
        ]:
            with self.assertRaises(NATSOptionError) as caught:
                parse_servers([value])
            self.assertNotIn("secret", str(caught.exception))
            self.assertNotIn("pass@", str(caught.exception))

    def test_redacted(self) -> None:
        """Credentials are hidden when a URL is shown."""
        self.assertEqual(redacted_url("nats://u:p@h:4222"), "nats://[redacted]@h:4222")
        self.assertEqual(redacted_url("tls://TOKEN@h"), "tls://[redacted]@h")
        self.assertEqual(redacted_url("nats://h:4222"), "nats://h:4222")
        config = NATSConfig.from_options(["nats://u:p@a:1,nats://b:2"])
        self.assertEqual(config.describe(), "nats://[redacted]@a:1,nats://b:2")


class HostIdTests(SynchronousTestCase):
    """A host id is one NATS subject token."""

    @given(st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True))
    def test_valid(self, name: str) -> None:
        """Letters, digits, - and _, 1 to 64 of them, are a host id."""
        self.assertEqual(check_host_id(name), name)

    def test_invalid(self) -> None:
        """Dots, wildcards, spaces, the empty name and 65 characters are not."""
        for name in ["a.b", "*", ">", "a b", "", "x" * 65, "é", "abc\n"]:
            self.assertRaises(NATSOptionError, check_host_id, name)

    def test_default(self) -> None:
        """By default the host id is the hostname up to its first dot."""
        self.assertEqual(default_host_id("build.example.com"), "build")
        self.assertEqual(default_host_id("laptop"), "laptop")


class GatewayIdTests(SynchronousTestCase):
    """A gateway id is one NATS subject token too, and so is the default one."""

    def test_checked_as_a_host_id(self) -> None:
        self.assertEqual(check_gateway_id("gw-1"), "gw-1")
        for name in ["a.b", "*", ">", "", "x" * 65]:
            with self.assertRaises(NATSOptionError) as caught:
                check_gateway_id(name)
            self.assertIn("--gateway-id", str(caught.exception))

    @given(st.text(max_size=80), st.from_regex(r"[0-9a-f]{8}", fullmatch=True))
    def test_default_is_a_valid_id_of_any_hostname(self, hostname: str, suffix: str) -> None:
        """Whatever the hostname holds, the default gateway id is a valid one ending in the suffix."""
        name = default_gateway_id(hostname, suffix)
        self.assertEqual(check_gateway_id(name), name)
        self.assertTrue(name.endswith(suffix))

    def test_default(self) -> None:
        self.assertEqual(default_gateway_id("edge.example.com", "0a1b2c3d"), "edge-0a1b2c3d")
        self.assertEqual(default_gateway_id("my box*", "0a1b2c3d"), "my-box--0a1b2c3d")
        self.assertEqual(default_gateway_id("", "0a1b2c3d"), "0a1b2c3d")


class InboxPrefixTests(SynchronousTestCase):
    """Hosts receive under _INBOX.h.<host-id>, gateways under _INBOX.g.<gateway-id>."""

    def test_prefixes(self) -> None:
        self.assertEqual(host_inbox_prefix("host-a"), "_INBOX.h.host-a")
        self.assertEqual(gateway_inbox_prefix("gw1"), "_INBOX.g.gw1")

    def test_an_id_that_is_not_one_token_is_refused(self) -> None:
        """An id that would add tokens or wildcards to the prefix is refused."""
        for name in ["a.b", "*", ">", ""]:
            self.assertRaises(NATSOptionError, host_inbox_prefix, name)
            self.assertRaises(NATSOptionError, gateway_inbox_prefix, name)


class FileTests(SynchronousTestCase):
    """Credentials and TLS files are checked when the daemon starts."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp())
        self.folder.mkdir(mode=0o700)

    def test_creds_and_nkey(self) -> None:
        """--nats-creds and --nats-nkey must exist and be private; they go to the client."""
        creds = _private(self.folder, "user.creds")
        config = NATSConfig.from_options(["nats://h:4222"], creds=creds)
        options = config.connect_options()
        self.assertEqual(options["servers"], ["nats://h:4222"])
        self.assertEqual(options["user_credentials"], str(creds))
        self.assertEqual(options["max_reconnect_attempts"], -1)
        seed = _private(self.folder, "user.nk")
        self.assertEqual(
            NATSConfig.from_options(["nats://h"], nkey=seed).connect_options()["nkeys_seed"], str(seed)
        )
        with self.assertRaises(NATSOptionError) as caught:
            NATSConfig.from_options(["nats://h"], creds=self.folder / "missing.creds")
        self.assertIn("does not exist", str(caught.exception))
        loose = _private(self.folder, "loose.creds", mode=0o644)
        with self.assertRaises(NATSOptionError) as caught:
            NATSConfig.from_options(["nats://h"], nkey=loose)
        self.assertIn("chmod 600", str(caught.exception))

    def test_contradictions(self) -> None:
        """Two ways of authenticating at once, or half a client certificate, are refused."""
        creds = _private(self.folder, "user.creds")
        seed = _private(self.folder, "user.nk")
        for servers, kwargs in [
            (["nats://h"], {"creds": creds, "nkey": seed}),
            (["nats://u:p@h"], {"creds": creds}),
            (["nats://TOKEN@h"], {"nkey": seed}),
            (["tls://h"], {"tls_cert": creds}),
            (["tls://h"], {"tls_key": seed}),
        ]:
            self.assertRaises(NATSOptionError, NATSConfig.from_options, servers, **kwargs)

    def test_tls(self) -> None:
        """tls:// URLs or TLS files give the client a TLS context with the CA and the client
        certificate; a file that is no certificate is refused at start."""
        key, cert, _ = make_certificate(self.folder)
        os.chmod(key, 0o600)
        config = NATSConfig.from_options(["tls://127.0.0.1:4222"], tls_ca=cert, tls_cert=cert, tls_key=key)
        context = config.connect_options()["tls"]
        self.assertIsInstance(context, ssl.SSLContext)
        self.assertEqual(context.verify_mode, ssl.CERT_REQUIRED)
        self.assertEqual(len(context.get_ca_certs()), 1)
        # A tls:// URL alone: nats-py makes its default context, with the system's CAs.
        self.assertNotIn("tls", NATSConfig.from_options(["tls://h"]).connect_options())
        self.assertNotIn("tls", NATSConfig.from_options(["nats://h"]).connect_options())
        junk = _private(self.folder, "junk.pem", "not a certificate", mode=0o644)
        with self.assertRaises(NATSOptionError) as caught:
            NATSConfig.from_options(["tls://h"], tls_ca=junk)
        self.assertIn("TLS", str(caught.exception))


class TapOptionsTests(SynchronousTestCase):
    """The cluster options of twistd vibetunnel."""

    def setUp(self) -> None:
        base = Path(self.mktemp())
        base.mkdir(mode=0o700)
        self.control = base / "control"

    def parse(self, *args: str) -> Options:
        options = Options(environ={})
        options.parseOptions(["--control-dir", str(self.control), *args])
        return options

    def test_without_nats(self) -> None:
        """Without --nats there is no cluster configuration, and the cluster options are refused."""
        self.assertIsNone(self.parse()["nats-config"])
        for option in ["--host-id", "--gateway-id", "--nats-creds", "--nats-tls-ca"]:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(option, "x")
            self.assertIn("goes with --nats", str(caught.exception))

    def test_with_nats(self) -> None:
        """--nats repeatable and comma-separated; --host-id checked, the hostname by default."""
        options = self.parse("--nats", "nats://a:1,nats://b:2", "--nats", "nats://c:3", "--host-id", "box-1")
        self.assertEqual(options["nats-config"].servers, ("nats://a:1", "nats://b:2", "nats://c:3"))
        self.assertEqual(options["host-id"], "box-1")
        self.assertEqual(self.parse("--nats", "nats://a")["host-id"], default_host_id(os.uname().nodename))

    def test_gateway_id(self) -> None:
        """--gateway-id names a gateway; without it the gateway makes one when it starts."""
        self.assertEqual(
            self.parse("--gateway", "--nats", "nats://a", "--gateway-id", "gw1")["gateway-id"], "gw1"
        )
        self.assertIsNone(self.parse("--gateway", "--nats", "nats://a")["gateway-id"])

    def test_usage_errors(self) -> None:
        """A bad URL, host id or file is a usage error naming the option."""
        for args, needle in [
            (["--nats", "http://a"], "nats://"),
            (["--nats", "nats://a", "--host-id", "a.b"], "--host-id"),
            (["--nats", "nats://a", "--gateway-id", "gw1"], "--gateway-id goes with --gateway"),
            (["--gateway", "--nats", "nats://a", "--gateway-id", "g.1"], "--gateway-id"),
            (["--nats", "nats://a", "--nats-creds", "/nonexistent/x.creds"], "--nats-creds"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(*args)
            self.assertIn(needle, str(caught.exception))

    def test_options_load_no_nats_client(self) -> None:
        """Parsing the options, --nats included, loads nothing of the NATS client."""
        code = (
            "import sys\n"
            "from vibetwist.cluster.options import NATSConfig\n"
            "NATSConfig.from_options(['nats://a:1'])\n"
            "import vibetwist.tap\n"
            "print(sorted(m for m in sys.modules if m == 'nats' or m.startswith('nats.')))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "[]", out.stderr)
