# -*- test-case-name: tests.test_command -*-
"""Turning a requested command into what to exec: login shells, PATH look-up, environment."""

from __future__ import annotations

import os
import shlex
import shutil

from vibetwist.errors import BadRequest
from vibetwist.model.info import LaunchPlan

#: Shells that, asked for bare, run as an interactive login shell.
SHELLS = frozenset({"bash", "zsh", "sh", "dash", "fish", "ksh", "tcsh"})
#: Credentials the daemon (or vt) may be given in its environment, which no session gets:
#: a share-link viewer would read them after ``env``.
DAEMON_SECRETS = ("VIBETUNNEL_USERNAME", "VIBETUNNEL_PASSWORD", "VIBETWIST_TOKEN")


def default_shell(environ: dict[str, str] | None = None) -> str:
    """The user's shell: $SHELL, else bash, else sh."""
    env = os.environ if environ is None else environ
    return env.get("SHELL") or shutil.which("bash") or "/bin/sh"


def resolve_directory(working_dir: object, home: str) -> str:
    """The absolute working directory to use; BadRequest if it is not an existing directory."""
    if working_dir is None or working_dir == "":
        return home
    if not isinstance(working_dir, str) or "\0" in working_dir:
        raise BadRequest("workingDir must be a string")
    path = os.path.abspath(os.path.expanduser(working_dir))
    if not os.path.isdir(path):
        raise BadRequest("Working directory does not exist", details=working_dir)
    return path


def display_directory(path: str, home: str) -> str:
    """path with the home directory written as ~."""
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        return "~" + path[len(home.rstrip("/")) :]
    return path


def default_name(command: list[str], cwd: str, home: str) -> str:
    """The command's basename and the working directory, e.g. ``bash (~/src)``."""
    return f"{os.path.basename(command[0]) or command[0]} ({display_directory(cwd, home)})"


def plan_launch(
    command: list[str], cwd: str, session_id: str, shell: str, environ: dict[str, str]
) -> LaunchPlan:
    """What to exec for command: a bare shell as a login shell, a known program as it is,
    anything else through the user's shell (so aliases and typos behave as in a terminal).
    The environment is environ without DAEMON_SECRETS, with TERM, COLORTERM,
    VIBETUNNEL_SESSION_ID and PWD set."""
    env = {name: value for name, value in environ.items() if name not in DAEMON_SECRETS}
    env["TERM"] = "xterm-256color"
    env.setdefault("COLORTERM", "truecolor")
    env["VIBETUNNEL_SESSION_ID"] = session_id
    env["PWD"] = cwd
    search = env.get("PATH", os.defpath)
    first = command[0]
    if "/" in first:
        candidate = os.path.join(cwd, first)
        found = candidate if os.access(candidate, os.X_OK) and os.path.isfile(candidate) else None
    else:
        found = shutil.which(first, path=search)
    if found is not None:
        if len(command) == 1 and os.path.basename(first) in SHELLS:
            return LaunchPlan(found, (first, "-l"), env, cwd)
        return LaunchPlan(found, tuple(command), env, cwd)
    shell_path = shell if "/" in shell else (shutil.which(shell, path=search) or "/bin/sh")
    return LaunchPlan(shell_path, (shell_path, "-c", shlex.join(command)), env, cwd)
