# -*- test-case-name: tests.test_activity -*-
"""What a session is doing: bells, titles, commands its shell runs, waiting for input.

Each session has an :class:`ActivityWatch`, told of its output text and of its input.
From the output alone (:class:`vibetwist.model.termsignals.SignalScanner`) it sends
``bell`` (at most one a second) and ``title`` events. Where the daemon holds the PTY's
master, it also looks at the terminal's foreground process group
(:meth:`vibetwist.interfaces.ITerminalProcess.foreground`): when it moves away from
the session's program a command runs, when it comes back the command has ended
(``command-finished``/``command-error`` if it ran ``command_min_seconds`` or more, with
the exit code an ``OSC 133;D`` mark gave); and once the session has been quiet for
:data:`QUIET` seconds after output, whether its foreground process sleeps reading the
terminal (``needs-input``), unless that output was the echo of typing.

It looks when output or input comes (at most every :data:`RECHECK` seconds, but at every
output while a command runs, so that its end is seen with the shell's prompt), and the
daemon's one :class:`ActivityMonitor` looks again every :data:`TICK` seconds at the
sessions that did something within the last :data:`HOT` seconds only. An idle session
costs nothing: no timer, no system call.
"""

from __future__ import annotations

import datetime
from typing import Any

import attrs
from twisted.logger import Logger

from vibetwist.model.termsignals import Bell, ShellMark, SignalScanner, Title
from vibetwist.sessions import procfs
from vibetwist.sessions.events import BELL, COMMAND_ERROR, COMMAND_FINISHED, NEEDS_INPUT, TITLE, SessionEvents

#: Seconds between a monitor's looks at the sessions that did something lately.
TICK = 0.25
#: Seconds after its last output or input that a session is looked at on the timer.
HOT = 5.0
#: Seconds of quiet after output before a session is asked whether it waits for input.
QUIET = 1.0
#: Seconds at least between two looks at the foreground on output or input.
RECHECK = 0.1
#: Seconds after a keystroke within which output is its echo: a pause in typing is not a
#: program waiting for input.
ECHO = 0.2
#: Seconds a session stays "active" after output.
ACTIVE = 2.0
#: Seconds between two bell events of one session, at least.
BELL_INTERVAL = 1.0
#: Seconds a command's end waits for the shell's exit-code mark, when the shell makes them.
MARK_WAIT = 0.5
#: Seconds a command that still has its shell's command line is read again (it may not
#: have exec'd its program yet when first seen).
EXEC_WAIT = 2.0
#: Command lines of foreground groups a watch keeps (the shell's, and the last few commands').
NAMES_KEPT = 8
#: Shells: one a session runs bare, waiting at its own prompt, is not a program asking for input.
SHELLS = frozenset({"bash", "zsh", "sh", "dash", "fish", "ksh", "mksh", "tcsh", "csh"})


def interactive_shell(command: tuple[str, ...] | list[str]) -> bool:
    """Whether command runs an interactive shell: a shell with options only (no script, no
    ``-c``)."""
    if not command or command[0].rsplit("/", 1)[-1].lstrip("-") not in SHELLS:
        return False
    return all(arg.startswith("--") or (arg.startswith("-") and "c" not in arg[1:]) for arg in command[1:])


def iso(seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@attrs.frozen
class Command:
    """A command running in a session's foreground."""

    group: int
    line: str
    started: float


class ActivityMonitor:
    """The daemon's one timer over the sessions that did something lately."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        events: SessionEvents,
        command_min_seconds: float = 3.0,
        proc: str = "/proc",
    ) -> None:
        self._reactor = reactor
        self.events = events
        self.command_min_seconds = command_min_seconds
        self.proc = proc
        self._hot: set[ActivityWatch] = set()
        self._timer: Any = None

    def watch(self, session: Any) -> ActivityWatch:
        """A watch for session."""
        return ActivityWatch(session, self)

    def now(self) -> float:
        return float(self._reactor.seconds())

    def heat(self, watch: ActivityWatch) -> None:
        """watch did something: look at it on the timer for a while."""
        self._hot.add(watch)
        if self._timer is None:
            self._timer = self._reactor.callLater(TICK, self._tick)

    def forget(self, watch: ActivityWatch) -> None:
        self._hot.discard(watch)

    @property
    def hot(self) -> int:
        """How many sessions the timer looks at now."""
        return len(self._hot)

    def later(self, seconds: float, call: Any) -> Any:
        return self._reactor.callLater(seconds, call)

    def _tick(self) -> None:
        self._timer = None
        now = self.now()
        for watch in list(self._hot):
            try:
                keep = watch.tick(now)
            except Exception:
                self.log.failure("watching {id} failed", id=watch.session_id)
                keep = False
            if not keep:
                self._hot.discard(watch)
        if self._hot:
            self._timer = self._reactor.callLater(TICK, self._tick)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._hot.clear()


class ActivityWatch:
    """What one session is doing, and the events that tells."""

    def __init__(self, session: Any, monitor: ActivityMonitor) -> None:
        self._session = session
        self._monitor = monitor
        self._scanner = SignalScanner()
        now = monitor.now()
        self._last_output: float | None = None
        self._last_input: float | None = None
        self._last_check = 0.0
        #: When the program was last seen holding its own terminal.
        self._leader_seen = now
        self._active_since = now
        self._idle_since = now
        self._last_bell: float | None = None
        self._title: str | None = None
        self._command: Command | None = None
        #: The exit code the shell's last D mark gave, since the command began.
        self._code: int | None = None
        self._code_seen = False
        #: Whether this shell writes D marks (so an ended command waits for one).
        self._marks = False
        self._ending: tuple[Command, float, Any] | None = None
        self._quiet_checked = True
        self._waiting_since: float | None = None
        self._since: tuple[float, str] = (-1.0, "")
        #: Command lines of the foreground groups seen lately, by group.
        self._names: dict[int, str | None] = {}

    @property
    def session_id(self) -> str:
        return str(self._session.id)

    # -- what the session tells -----------------------------------------------------

    def output(self, text: str) -> None:
        """The program printed text."""
        now = self._monitor.now()
        for signal in self._scanner.feed(text):
            if isinstance(signal, Bell):
                self._bell(now)
            elif isinstance(signal, Title):
                self._titled(signal.title)
            elif isinstance(signal, ShellMark) and signal.kind == "D":
                self._marked(signal.code)
        if not self._active(now):
            self._active_since = now
        self._last_output = now
        self._waiting_since = None
        self._quiet_checked = False
        self._stirred(now)

    def typed(self) -> None:
        """Someone typed into the program."""
        now = self._monitor.now()
        self._last_input = now
        if self._waiting_since is not None:
            self._waiting_since = None
            self._idle_since = now
        self._stirred(now)

    def ended(self) -> None:
        """The session has ended: nothing more to watch."""
        self._monitor.forget(self)
        self._idle_since = self._monitor.now()
        if self._ending is not None:
            self._ending[2].cancel()
            self._finish()
        self._command = None
        self._waiting_since = None

    def _stirred(self, now: float) -> None:
        self._monitor.heat(self)
        # While a command runs, its end (the shell's prompt) is looked for in every output.
        if self._command is not None or now - self._last_check >= RECHECK:
            self._check(now)

    # -- the timer ---------------------------------------------------------------------

    def tick(self, now: float) -> bool:
        """Look again; True while the session is to be looked at on the timer."""
        self._check(now)
        last = max(self._last_output or 0.0, self._last_input or 0.0)
        if not self._quiet_checked and self._last_output is not None and now - self._last_output >= QUIET:
            self._quiet_checked = True
            if not self._echoed():
                self._check_waiting(now)
        return now - last < HOT or not self._quiet_checked or self._ending is not None

    # -- what the foreground says ------------------------------------------------------

    def _process(self) -> Any:
        process = self._session.process
        if process is None or not self._session.live:
            return None
        return process

    def _foreground(self) -> tuple[int, int] | None:
        """(the program's pid, the terminal's foreground group), None where it is not known."""
        process = self._process()
        if process is None:
            return None
        group = process.foreground()
        if not group or group < 0:
            return None
        return process.pid, group

    def _check(self, now: float) -> None:
        self._last_check = now
        seen = self._foreground()
        if seen is None:
            return
        leader, group = seen
        command = self._command
        if command is not None and group == command.group:
            if now - command.started < EXEC_WAIT and command.line == self._name(leader):
                # Seen between the shell's fork and the command's exec: read it again (for a
                # while: a subshell keeps the shell's command line).
                self._names.pop(group, None)
                self._command = attrs.evolve(command, line=self._name(group) or "")
            return
        if command is not None:
            self._command = None
            self._command_ended(command, now)
        if group == leader:
            self._leader_seen = now
            return
        # A command runs: it began after the program was last seen holding the terminal,
        # and after the last keystroke if that came later.
        started = max(self._leader_seen, self._last_input or 0.0)
        if not self._active(now):
            self._active_since = now
        self._command = Command(group, self._name(group) or "", started)
        self._code = None
        self._code_seen = False

    def _command_ended(self, command: Command, now: float) -> None:
        if now - command.started < self._monitor.command_min_seconds:
            return
        if self._code_seen or not self._marks:
            self._ending = (command, now, None)
            self._finish()
            return
        # The shell tells exit codes: give its mark a moment to come.
        self._ending = (command, now, self._monitor.later(MARK_WAIT, self._finish))

    def _marked(self, code: int | None) -> None:
        self._marks = True
        self._code = code
        self._code_seen = True
        if self._ending is not None and self._ending[2] is not None:
            self._ending[2].cancel()
            self._finish()

    def _finish(self) -> None:
        if self._ending is None:
            return
        command, ended, _ = self._ending
        self._ending = None
        self._idle_since = max(self._idle_since, ended)
        code = self._code if self._code_seen else None
        fields: dict[str, Any] = {
            "sessionName": self._session.info.name,
            "command": command.line,
            "duration": max(0, round((ended - command.started) * 1000)),
        }
        if code is not None:
            fields["exitCode"] = code
        kind = COMMAND_ERROR if code else COMMAND_FINISHED
        self._monitor.events.publish(kind, self.session_id, **fields)

    def _echoed(self) -> bool:
        """Whether the last output came right after typing (its echo): someone is typing."""
        typed, printed = self._last_input, self._last_output
        return typed is not None and printed is not None and 0 <= printed - typed < ECHO

    def _check_waiting(self, now: float) -> None:
        seen = self._foreground()
        if seen is None:
            return
        leader, group = seen
        if group == leader and interactive_shell(self._session.info.command):
            return  # the session's shell at its prompt
        if not procfs.waits_on_terminal(group, self._monitor.proc):
            return
        self._waiting_since = now
        self._monitor.events.publish(
            NEEDS_INPUT,
            self.session_id,
            sessionName=self._session.info.name,
            command=self._name(group) or self._session_command(),
        )

    def _name(self, group: int) -> str | None:
        if group not in self._names:
            if len(self._names) >= NAMES_KEPT:
                self._names.clear()
            self._names[group] = procfs.command_line(group, self._monitor.proc)
        return self._names[group]

    # -- bells and titles --------------------------------------------------------------

    def _bell(self, now: float) -> None:
        if self._last_bell is not None and now - self._last_bell < BELL_INTERVAL:
            return
        self._last_bell = now
        command = self._command.line if self._command is not None else self._session_command()
        self._monitor.events.publish(
            BELL, self.session_id, sessionName=self._session.info.name, command=command
        )

    def _titled(self, title: str) -> None:
        if title == self._title:
            return
        self._title = title
        self._monitor.events.publish(TITLE, self.session_id, sessionName=self._session.info.name, title=title)

    # -- the state ---------------------------------------------------------------------

    def _session_command(self) -> str:
        return " ".join(self._session.info.command)

    def _active(self, now: float) -> bool:
        if self._command is not None:
            return True
        return self._last_output is not None and now - self._last_output < ACTIVE

    def state(self) -> dict[str, str]:
        """``{state, since, foreground}``: the session's ``activity`` in the API."""
        now = self._monitor.now()
        process = self._process()
        group = process.foreground() if process is not None else None
        foreground = self._name(group) if group is not None and group > 0 else None
        if foreground is None:
            foreground = self._session_command()
        if self._waiting_since is not None:
            state, since = "needs-input", self._waiting_since
        elif process is not None and self._active(now):
            state, since = "active", self._active_since
        else:
            state = "idle"
            since = self._idle_since
            if self._last_output is not None:
                since = max(since, min(now, self._last_output + ACTIVE))
        if self._since[0] != since:
            self._since = (since, iso(since))  # formatted once: lists ask often
        return {"state": state, "since": self._since[1], "foreground": foreground}
