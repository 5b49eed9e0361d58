"""Packaging for vibetwist, a terminal-sharing daemon on Twisted.

Two build steps are vibetwist's own (the rest is setuptools'):

- The browser client. Built from a source tree (a checkout), every sdist, wheel and
  ``pip install`` (editable too) first runs ``npm ci`` (when ``node_modules`` is
  missing or older than ``package-lock.json``) and ``npm run build`` in
  ``vibetwist/web``, which writes ``vibetwist/web/dist``. An sdist carries that built
  client, so building from an sdist needs no npm. Without npm a build from a source
  tree stops and says what to install: a package without its client would answer 503
  at ``/``.
- The twistd plugin under a plain editable install. ``twistd`` finds plugins as files
  in a ``twisted/plugins`` folder on ``sys.path``; an editable install of this flat
  layout puts no such folder there (setuptools maps the packages with an import
  hook), so the editable wheel gets a copy of the plugin file, which only imports
  ``vibetwist.tap`` from the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import ExecError, SetupError

HERE = Path(__file__).resolve().parent
WEB = HERE / "vibetwist" / "web"
PLUGIN = Path("twisted", "plugins", "vibetunnel_plugin.py")

NO_NPM = """\
vibetwist's browser client is built with Node.js and npm, and npm is not on PATH.
Install Node.js 18 or later with npm (Debian and Ubuntu: apt-get install nodejs npm;
elsewhere see https://nodejs.org/) and build again, or install vibetwist from an sdist
or a wheel, which carry the built client."""


def _npm(npm: str, *args: str) -> None:
    command = [npm, *args]
    print(f"vibetwist: running {' '.join(command[1:])} in vibetwist/web", flush=True)
    if subprocess.run(command, cwd=WEB).returncode:
        raise ExecError(f"`npm {' '.join(args)}` failed in {WEB}; its output is above")


def build_web_client() -> None:
    """Build vibetwist/web/dist from the client's sources, or check an sdist's copy of it."""
    if (HERE / "PKG-INFO").exists():
        # An sdist: its client was built when the sdist was made.
        if not (WEB / "dist" / "index.html").is_file():
            raise SetupError(f"this sdist lacks its built browser client ({WEB / 'dist'})")
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SetupError(NO_NPM)
    installed = WEB / "node_modules" / ".package-lock.json"
    lock = WEB / "package-lock.json"
    if not installed.exists() or lock.stat().st_mtime > installed.stat().st_mtime:
        _npm(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
    _npm(npm, "run", "--silent", "build")


class BuildPy(build_py):
    """build_py that builds the browser client first, and exposes the plugin to twistd in
    an editable install."""

    def run(self) -> None:
        build_web_client()
        # Package data is found lazily; a look before the client was built saw no dist/.
        self.__dict__.pop("data_files", None)
        if self.editable_mode:
            self._expose_plugin()
        super().run()

    def _expose_plugin(self) -> None:
        mode = getattr(self.distribution.get_command_obj("editable_wheel"), "mode", None)
        if mode in ("compat", "strict"):
            return  # these put a twisted/plugins folder of the tree's on sys.path already
        # The editable wheel is made from what lands in the install folder.
        target = Path(self.get_finalized_command("install").install_lib, PLUGIN)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(HERE / PLUGIN, target)


class SDist(sdist):
    """sdist that builds the browser client first, so the sdist carries it."""

    def run(self) -> None:
        build_web_client()
        super().run()


setup(
    name="vibetwist",
    version="0.1.0",
    description="Share terminals with any browser: PTY sessions over REST, SSE and WebSockets",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted.plugins must be listed by hand: find_packages() would miss it,
    # and it must ship without an __init__.py of its own.
    packages=[*find_packages(include=["vibetwist", "vibetwist.*"]), "twisted.plugins"],
    # The built browser client (vibetwist/web/dist, made by `npm run build`).
    package_data={"twisted.plugins": ["vibetunnel_plugin.py"], "vibetwist": ["web/dist/*"]},
    cmdclass={"build_py": BuildPy, "sdist": SDist},
    install_requires=[
        # tls: pyOpenSSL and service_identity for ssl: endpoints.
        "twisted[tls]>=24.3",
        "autobahn[twisted]>=24.4",
        "pyte>=0.8.2",
        "treq>=23.11",
        "klein>=24.8",
        "attrs>=23.1",
        # Login: Ed25519/OpenSSH key checks, signed expiring tokens, Argon2 password hashes.
        "cryptography>=42",
        "pyjwt>=2.8",
        "argon2-cffi>=23.1",
        # GET /metrics: the Prometheus text format, and the standard process metrics.
        "prometheus-client>=0.20",
        # POST /api/sessions/:id/wait: regular expressions searched with a time limit, which
        # Python's re lacks, so a pattern that backtracks without end cannot hold the daemon.
        "regex>=2024.4",
        # Web Push: VAPID keys and signatures (py-vapid), and each message encrypted for
        # its subscription (pywebpush, aes128gcm). pywebpush's own sending (requests,
        # synchronous) is not used: the daemon posts the bodies itself, with treq, and
        # imports pywebpush in a thread once it runs, as it takes 0.2-0.3 s.
        "py-vapid>=1.9",
        "pywebpush>=2.0",
        # A cluster over NATS (--nats): the official client, run in an asyncio loop on a
        # thread of its own; 2.16 is what is tested against nats-server 2.9 (JetStream KV).
        "nats-py>=2.16",
        # NKey seeds and JWT credentials for nats-py.
        "nkeys>=0.2",
        # Recording lines: every byte of output is encoded into one and parsed back from it;
        # orjson does both several times faster than json (vibetwist.model.asciicast).
        "orjson>=3.9",
    ],
    extras_require={
        "test": [
            "hypothesis>=6.100",
            "ruff>=0.6",
            "mypy>=1.10",
            "mypy-zope>=1.0",
            "asciinema>=2.4,<3",
            # The tests' push service decrypts what the daemon sends (aes128gcm).
            "http-ece>=1.2",
            # Drives the system's Chromium in tests/test_browser.py (no browser download).
            "playwright>=1.40",
            # tests/test_packaging.py builds the sdist and wheel without build isolation.
            "build>=1.2",
            "setuptools>=70.1",
        ],
    },
    entry_points={"console_scripts": ["vt = vibetwist.vt:main"]},
)
