# -*- test-case-name: tests.test_vt -*-
"""``vt``: run a program in your own terminal as a session the daemon shares.

Usage::

    vt [COMMAND [ARG...]]     run COMMAND (or your shell) here, shared as a session
    vt -- COMMAND [ARG...]    the same, for a command named like a subcommand (ls, attach, title)
    vt title NAME             inside a session (vt's or the daemon's): rename it
    vt ls                     list the daemon's sessions
    vt attach ID              attach this terminal to a session (Ctrl-] detaches)
    vt wait ID REGEX [--timeout S] [--on screen|output]
                              wait until REGEX shows in a session: exit status 0 when it
                              does (the match is printed), 1 at the timeout (30 s by
                              default), 2 when the program ends first, 3 on an error

``vt ls``, ``vt attach``, ``vt wait`` and ``vt title`` in a session the daemon started talk to
``--server URL`` (default $VIBETWIST_URL, else http://127.0.0.1:4020) and send
$VIBETWIST_TOKEN if it is set.
"""

from __future__ import annotations

import os
import sys
import uuid

SUBCOMMANDS = frozenset({"title", "ls", "attach", "wait", "help"})
DEFAULT_URL = "http://127.0.0.1:4020"


def _usage() -> str:
    return (__doc__ or "").split("Usage::", 1)[1].strip("\n") + "\n"


def _server(args: list[str], environ: dict[str, str]) -> tuple[str, list[str]]:
    """The daemon's URL (from --server URL or --server=URL, else the environment) and the rest."""
    url = environ.get("VIBETWIST_URL") or DEFAULT_URL
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--server" and i + 1 < len(args):
            url = args[i + 1]
            i += 2
            continue
        if arg.startswith("--server="):
            url = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return url.rstrip("/"), rest


def main(argv: list[str] | None = None) -> int:
    """The ``vt`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ)
    inside = environ.get("VIBETUNNEL_SESSION_ID")
    first = args[0] if args else None
    if first in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0
    if first == "title":
        from vibetwist.vt._remote import set_title

        url, rest = _server(args[1:], environ)
        return set_title(" ".join(rest), url, environ)
    if first in ("ls", "attach", "wait") or (first or "").startswith("--server"):
        url, rest = _server(args, environ)
        from vibetwist.vt import _remote

        if rest[:1] == ["ls"] and len(rest) == 1:
            return _remote.run_ls(url, environ)
        if rest[:1] == ["attach"] and len(rest) == 2:
            if inside:
                sys.stderr.write("vt: attaching from inside a session would feed it its own output\n")
                return 1
            return _remote.run_attach(url, rest[1], environ)
        if rest[:1] == ["wait"]:
            return _remote.run_wait(url, rest[1:], environ)
        sys.stderr.write(_usage())
        return 2
    if first == "--":
        args = args[1:]
    if inside:
        sys.stderr.write(
            f"vt: this terminal is already session {inside}; nested vt is refused "
            "(use `vt title NAME` to rename it)\n"
        )
        return 1
    return _run(args, environ)


def _run(command: list[str], environ: dict[str, str]) -> int:
    from vibetwist.model.controldir import ControlDir, default_control_dir
    from vibetwist.model.launch import default_shell
    from vibetwist.model.privatefiles import UnsafePath
    from vibetwist.vt._forward import Forwarder

    if not command:
        command = [default_shell(environ)]
    forwarder = Forwarder(
        command, ControlDir(default_control_dir(environ)), str(uuid.uuid4()), environ=environ
    )
    try:
        return forwarder.run()
    except UnsafePath as e:
        # Another user could read or replace what vt would write there.
        sys.stderr.write(f"vt: the control directory: {e}\n")
        return 1
    except OSError as e:
        sys.stderr.write(f"vt: {e}\n")
        return 1
