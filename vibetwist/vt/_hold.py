# -*- test-case-name: tests.test_outlive -*-
"""Session holders: one small process per session, so that its program outlives the daemon.

With ``--sessions-outlive-daemon`` the daemon does not run a new session's
program itself. It makes the session's files and asks a holder factory, one
process it starts once::

    python -m vibetwist.vt._hold

The factory reads requests on its standard input, one JSON line each
(``{"id", "spec", "env"}``: what to hold, as :mod:`vibetwist.model.holder`
encodes it, and the program's environment), and answers each on its standard
output with a line ``ready ID`` or ``failed ID``. For each it forks a holder,
which at once leaves the factory behind: a process session of its own (no
signal meant for the daemon's group or terminal reaches it) and a second fork,
so it is nobody's child. Forking a process that has everything imported
already takes a millisecond, where starting Python takes a hundred; and the
holders share the factory's pages until they write them.

A holder runs vt's forwarder without a terminal of its own: it makes
``ipc.sock``, starts the program, marks the session running, answers
``ready``, and from then on writes the recording and session.json exactly as
``vt`` does, so the daemon serves the session as it serves vt's, and a daemon
started after this one died (kill -9, the OOM killer) picks it up with its
whole history. The factory ends when its standard input does (the daemon
stopped or died); the holders go on.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from vibetwist.errors import FormatError
from vibetwist.model.controldir import ControlDir, is_session_id
from vibetwist.model.holder import decode_spec
from vibetwist.vt._forward import Forwarder, Held


def _answer(fd: int, kind: str, session_id: str) -> None:
    """One answer line (shorter than a pipe's atomic write, so answers never interleave)."""
    try:
        os.write(fd, f"{kind} {session_id}\n".encode())
    except OSError:
        pass  # the daemon is gone: nobody waits for the answer


def _hold(request: dict[str, Any], answers: int) -> int:
    """In the holder: run the session to its end; its program's exit code."""
    session_id = request["id"]
    control_dir, info, plan = decode_spec(request["spec"], request["env"])
    answered = []

    def ready() -> None:
        _answer(answers, "ready", session_id)
        answered.append(True)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, answers)  # the daemon's pipe is not kept open by a holder
        os.close(null)

    files = ControlDir(Path(control_dir))
    forwarder = Forwarder(list(info.command), files, info.id, environ=plan.env, held=Held(info, plan))
    try:
        return forwarder.run(ready)
    finally:
        if not answered:
            _answer(answers, "failed", session_id)


def _start(line: bytes, requests: int, answers: int) -> None:
    """Fork the holder one request asks for, and wait for the fork in between to end."""
    request: Any = None
    try:
        request = json.loads(line)
        session_id = request["id"]
        if not is_session_id(session_id):
            raise FormatError("not a session id")
        decode_spec(request["spec"], request["env"])
    except (ValueError, KeyError, TypeError, FormatError) as e:
        sys.stderr.write(f"vibetwist holder factory: a request it cannot read: {e}\n")
        sys.stderr.flush()
        session_id = request.get("id") if isinstance(request, dict) else None
        if isinstance(session_id, str) and is_session_id(session_id):
            _answer(answers, "failed", session_id)
        return
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    # The fork in between: a session of its own, then the holder, whose parent it leaves.
    code = 1
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, requests)
        os.close(null)
        code = _hold(request, answers)
    except BaseException:
        sys.stderr.write(f"vibetwist holder of {session_id}:\n{traceback.format_exc()}")
    finally:
        sys.stderr.flush()
        os._exit(code)


def serve(requests: int = 0, answers: int = 1) -> None:
    """Start a holder for every request line until the requests end."""
    gc.collect()
    gc.freeze()  # what is imported stays shared with every holder forked from here
    pending = b""
    while True:
        try:
            data = os.read(requests, 65536)
        except InterruptedError:
            continue
        if not data:
            return
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                _start(line, requests, answers)


if __name__ == "__main__":
    serve()
