# -*- test-case-name: tests.test_restart -*-
"""Would the daemon as installed now start with these twistd arguments?

A daemon about to restart in place (:mod:`vibetwist.server.restart`) runs this
in a child process first, with its own twistd command line::

    python -c 'from vibetwist.startcheck import main; main()' -n vibetunnel --listen ...

It imports the daemon's code as installed now, parses the whole command line
as twistd would (the plugin's options too: listeners, password file, secret),
and builds the daemon's service without starting it. It then prints one line
of JSON (what the restarting daemon needs to know: the hand-over versions this
code reads, twistd's pid file and log options) and exits 0; on any failure it
writes the error to standard error and exits 1, and the restart does not happen.
"""

from __future__ import annotations

import json
import sys
import traceback


def check(args: list[str]) -> dict[str, object]:
    """The report for these twistd arguments; raises whatever would stop the daemon starting."""
    from twisted.python.usage import UsageError
    from twisted.scripts.twistd import ServerOptions

    # Imported first, so that a daemon that cannot even be imported shows its traceback
    # rather than twistd's "Unknown command".
    import vibetwist.tap  # noqa: F401
    from vibetwist import __version__
    from vibetwist.model.handover import READABLE_VERSIONS

    config = ServerOptions()
    config.parseOptions(args)
    name = config.subCommand
    if not name:
        raise UsageError("no twistd plugin is named on the command line")
    config.loadedPlugins[name].makeService(config.subOptions)
    return {
        "ok": True,
        "version": __version__,
        "readable": list(READABLE_VERSIONS),
        "nodaemon": bool(config["nodaemon"]),
        "pidfile": config["pidfile"] or "",
        "logfile": config["logfile"],
        "syslog": bool(config["syslog"]),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the report and exit 0, or print why not and exit 1."""
    args = sys.argv[1:] if argv is None else argv
    try:
        report = check(args)
    except SystemExit as e:
        sys.stderr.write(f"startcheck: the daemon would exit at start ({e.code})\n")
        raise SystemExit(1) from e
    except Exception as e:
        from twisted.python.usage import UsageError

        if isinstance(e, UsageError):
            sys.stderr.write(f"startcheck: {e}\n")
        else:
            traceback.print_exc()
        raise SystemExit(1) from e
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    raise SystemExit(0)
