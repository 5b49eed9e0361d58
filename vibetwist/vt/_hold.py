# -*- test-case-name: tests.test_outlive -*-
"""A session holder: one small process per session, so the program outlives the daemon.

With ``--sessions-outlive-daemon`` the daemon does not run a new session's
program itself. It makes the session's files and starts this, with what to
run in the environment (:data:`vibetwist.model.holder.HOLD`: the session's
info and its launch plan; the rest of the environment is the program's)::

    python -m vibetwist.vt._hold

The holder leaves the daemon behind at once: it forks, and its first process
exits when the second, in a process session of its own (so no signal meant
for the daemon's group or terminal reaches it, and it is nobody's child to
wait for), has made ``ipc.sock``, started the program and marked the session
running: exit status 0, or 1 if it could not. The second runs vt's forwarder
without a terminal of its own: it writes the recording and session.json and
listens on ``ipc.sock``, exactly as ``vt`` does, so the daemon serves the
session as it serves vt's, and a daemon started after this one died (kill -9,
the OOM killer) picks it up with its whole history.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from vibetwist.errors import FormatError
from vibetwist.model.controldir import ControlDir
from vibetwist.model.holder import HOLD, decode_spec
from vibetwist.vt._forward import Forwarder, Held


def main() -> None:
    """Hold the session the environment names; see the module's text."""
    env = dict(os.environ)
    value = env.pop(HOLD, "")
    try:
        control_dir, info, plan = decode_spec(value, env)
    except FormatError as e:
        sys.stderr.write(f"vibetwist holder: {e}\n")
        raise SystemExit(1) from e
    read, write = os.pipe()
    if os.fork():
        os.close(write)
        # The first process ends as soon as the second has set the session up (or failed to).
        answer = os.read(read, 1)
        os._exit(0 if answer == b"1" else 1)
    os.close(read)
    os.setsid()

    def ready() -> None:
        os.write(write, b"1")
        os.close(write)

    try:
        files = ControlDir(Path(control_dir))
        forwarder = Forwarder(list(info.command), files, info.id, environ=env, held=Held(info, plan))
        code = forwarder.run(ready)
    except Exception:
        sys.stderr.write(f"vibetwist holder of {info.id}:\n{traceback.format_exc()}")
        sys.stderr.flush()
        os._exit(1)
    os._exit(code)


if __name__ == "__main__":
    main()
