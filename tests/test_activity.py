"""Tests for L{vibetwist.sessions.activity}: what a session is doing, told as events and as
its ``activity``, with a fake PTY process, a fake /proc and a clock. The real thing (bash,
a real PTY) is in L{tests.test_activity_e2e}."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support.sessions import Harness
from vibetwist.sessions import procfs
from vibetwist.sessions.activity import (
    BELL_INTERVAL,
    HOT,
    MARK_WAIT,
    QUIET,
    TICK,
    ActivityMonitor,
    interactive_shell,
)
from vibetwist.sessions.events import (
    BELL,
    COMMAND_ERROR,
    COMMAND_FINISHED,
    NEEDS_INPUT,
    SESSION_START,
    TITLE,
)
from vibetwist.testing import FakeTerminalProcess, pump

#: Where the tests' clock starts: a plausible time of day.
EPOCH = 1_800_000_000.0


class FakeProc:
    """A /proc of a few made-up processes."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.root = Path(tempfile.mkdtemp())
        case.addCleanup(shutil.rmtree, self.root, True)

    def add(
        self,
        pid: int,
        argv: list[str],
        wchan: str = "do_wait",
        syscall: str = "61 0x1 0x2",
        fds: dict[int, str] | None = None,
        fdinfo: dict[int, str] | None = None,
    ) -> None:
        """A process: its command line, where it waits, its fds (fd 0 a terminal unless
        told) and their fdinfo."""
        folder = self.root / str(pid)
        shutil.rmtree(folder, True)
        folder.mkdir()
        (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (folder / "wchan").write_text(wchan)
        if syscall:
            (folder / "syscall").write_text(syscall + " 0x7ffe 0x1\n")
        (folder / "fd").mkdir()
        (folder / "fdinfo").mkdir()
        for fd, target in ({0: "/dev/pts/9"} if fds is None else fds).items():
            (folder / "fd" / str(fd)).symlink_to(target)
        for fd, info in (fdinfo or {}).items():
            (folder / "fdinfo" / str(fd)).write_text(info)


class ActivityTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.h = Harness(self)
        self.h.clock.advance(EPOCH)
        self.proc = FakeProc(self)
        self.monitor = ActivityMonitor(
            self.h.clock, self.h.events, command_min_seconds=3.0, proc=str(self.proc.root)
        )
        self.session = self.h.create(command=("bash", "-l"))
        self.session.watch(self.monitor)
        pump(self.h.clock)
        self.process: FakeTerminalProcess = self.h.launcher.last
        self.proc.add(self.process.pid, ["-bash"], wchan="n_tty_read", syscall="0 0x0")

    def kinds(self) -> list[str]:
        return [e.type for e in self.h.published if e.type != SESSION_START]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.fields) for e in self.h.published if e.type == kind]

    def wait(self, seconds: float) -> None:
        """Let seconds pass, the clock moving in steps of the monitor's tick."""
        steps = int(round(seconds / TICK))
        for _ in range(steps):
            self.h.clock.advance(TICK)

    def run_command(self, pid: int, argv: list[str], seconds: float, **proc: Any) -> None:
        """The shell runs argv in process group pid for seconds, then takes its terminal back
        and prints its prompt."""
        self.proc.add(pid, argv, **proc)
        self.session.write(b" ".join(a.encode() for a in argv) + b"\r")
        self.process.foreground_group = pid
        self.wait(seconds)
        self.process.foreground_group = self.process.pid

    # -- bells and titles ---------------------------------------------------------------

    def test_bell(self) -> None:
        """A BEL in the output is a bell event with the session's name and command."""
        self.process.say(b"done\x07\r\n")
        self.assertEqual(self.of(BELL), [{"sessionName": "s1", "command": "bash -l"}])

    def test_bells_at_most_one_a_second(self) -> None:
        """Bells closer than BELL_INTERVAL to the last one sent are dropped."""
        self.process.say(b"\x07\x07")
        self.h.clock.advance(BELL_INTERVAL / 2)
        self.process.say(b"\x07")
        self.h.clock.advance(BELL_INTERVAL / 2)
        self.process.say(b"\x07")
        self.assertEqual(self.kinds(), [BELL, BELL])

    def test_title(self) -> None:
        """Setting the title is a title event; setting it again to the same is none."""
        self.process.say(b"\x1b]0;vim main.py\x07")
        self.process.say(b"\x1b]2;vim main.py\x1b\\")
        self.process.say(b"\x1b]2;make\x07")
        self.assertEqual([f["title"] for f in self.of(TITLE)], ["vim main.py", "make"])

    def test_split_output(self) -> None:
        """A title and a bell split between reads of the terminal are found."""
        for part in (b"\x1b]2;bu", b"ild\x1b", b"\\ok\x1b", b"]133;A\x07\x07"):
            self.process.say(part)
        self.assertEqual(self.kinds(), [TITLE, BELL])

    # -- commands -----------------------------------------------------------------------

    def test_command_finished(self) -> None:
        """A command that held the terminal for at least command_min_seconds and gave it back
        is command-finished, with its command line and duration, and no exit code when the
        shell tells none."""
        self.run_command(4242, ["sleep", "4"], 4.0)
        self.process.say(b"$ ")
        [fields] = self.of(COMMAND_FINISHED)
        self.assertEqual((fields["command"], fields["sessionName"]), ("sleep 4", "s1"))
        self.assertNotIn("exitCode", fields)
        self.assertGreaterEqual(fields["duration"], 4000 - TICK * 1000)
        self.assertLessEqual(fields["duration"], 4000 + TICK * 1000)

    def test_short_command(self) -> None:
        """A command shorter than command_min_seconds is no event."""
        self.run_command(4242, ["ls"], 2.0)
        self.process.say(b"$ ")
        self.assertEqual(self.kinds(), [])

    def test_exit_code_from_mark(self) -> None:
        """A shell that writes OSC 133 D marks tells the exit code: 0 is command-finished, any
        other code command-error."""
        self.process.say(b"\x1b]133;D;0\x07$ ")
        self.run_command(4242, ["make"], 3.5)
        self.process.say(b"\x1b]133;D;2\x07$ ")
        self.run_command(4243, ["make", "test"], 3.5)
        self.process.say(b"\x1b]633;D;0\x07$ ")
        self.assertEqual(
            [(e.type, e.fields["command"], e.fields["exitCode"]) for e in self.h.published[1:]],
            [(COMMAND_ERROR, "make", 2), (COMMAND_FINISHED, "make test", 0)],
        )

    def test_end_waits_for_the_mark(self) -> None:
        """When the shell makes marks and the end is seen first (on the timer), the event waits
        for the mark; without one within MARK_WAIT it goes without an exit code."""
        self.process.say(b"\x1b]133;D;0\x07$ ")
        self.run_command(4242, ["make"], 3.5)
        self.wait(TICK)  # the timer sees the end before any output
        self.assertEqual(self.kinds(), [])
        self.process.say(b"\x1b]133;D;1\x07$ ")
        self.assertEqual([f["exitCode"] for f in self.of(COMMAND_ERROR)], [1])
        self.run_command(4243, ["make"], 3.5)
        self.wait(TICK + MARK_WAIT)
        [finished] = self.of(COMMAND_FINISHED)
        self.assertNotIn("exitCode", finished)

    def test_command_seen_before_its_exec(self) -> None:
        """A command first seen when the shell has forked it but it has not exec'd yet (its
        command line is still the shell's) is named by what it execs."""
        self.proc.add(4242, ["-bash"])
        self.session.write(b"sleep 4\r")
        self.process.foreground_group = 4242
        self.wait(TICK)
        self.proc.add(4242, ["sleep", "4"])
        self.wait(4)
        self.process.foreground_group = self.process.pid
        self.process.say(b"$ ")
        self.assertEqual([f["command"] for f in self.of(COMMAND_FINISHED)], ["sleep 4"])

    def test_one_command_after_another(self) -> None:
        """A foreground group that gives way to another ends one command and starts the next."""
        self.proc.add(4242, ["sleep", "4"])
        self.proc.add(4243, ["sleep", "5"])
        self.session.write(b"sleep 4; sleep 5\r")
        self.process.foreground_group = 4242
        self.wait(4)
        self.process.foreground_group = 4243
        self.wait(5)
        self.process.foreground_group = self.process.pid
        self.process.say(b"$ ")
        self.assertEqual([f["command"] for f in self.of(COMMAND_FINISHED)], ["sleep 4", "sleep 5"])

    def test_exit_during_command(self) -> None:
        """A session that ends while a command is being finished still sends it."""
        self.process.say(b"\x1b]133;D;0\x07$ ")
        self.run_command(4242, ["make"], 3.5)
        self.wait(TICK)
        self.process.exit(0)
        pump(self.h.clock)
        self.assertEqual(self.kinds(), [COMMAND_FINISHED, "session-exit"])

    def test_unknown_foreground(self) -> None:
        """A session whose foreground cannot be known (another process holds its PTY's master)
        still tells bells, but no command."""
        self.process.foreground_group = None
        self.session.write(b"sleep 9\r")
        self.wait(9)
        self.process.say(b"\x07$ ")
        self.assertEqual(self.kinds(), [BELL])

    # -- needs-input ----------------------------------------------------------------------

    def test_needs_input(self) -> None:
        """A program that printed, went quiet and reads the terminal needs input, once per quiet
        spell; its activity says so until something happens."""
        self.proc.add(4242, ["python3", "ask.py"], wchan="wait_woken", syscall="0 0x0")
        self.process.foreground_group = 4242
        self.session.write(b"python3 ask.py\r")
        self.wait(0.5)  # it starts
        self.process.say(b"Name? ")
        self.wait(QUIET - TICK)
        self.assertEqual(self.kinds(), [])
        self.wait(2 * TICK)
        self.assertEqual(self.of(NEEDS_INPUT), [{"sessionName": "s1", "command": "python3 ask.py"}])
        self.assertEqual(self.session.activity.state()["state"], "needs-input")
        self.wait(5)
        self.assertEqual(len(self.of(NEEDS_INPUT)), 1)
        self.session.write(b"x\r")
        self.assertEqual(self.session.activity.state()["state"], "active")  # the command still runs
        self.process.say(b"x\r\n")  # the echo
        self.wait(0.5)  # some work
        self.process.say(b"Name? ")
        self.wait(QUIET + TICK)
        self.assertEqual(len(self.of(NEEDS_INPUT)), 2)

    def test_pause_in_typing(self) -> None:
        """A quiet spell after the echo of typing is someone typing, not a program waiting."""
        self.proc.add(4242, ["python3", "ask.py"], syscall="0 0x0")
        self.process.foreground_group = 4242
        self.session.write(b"ha")
        self.process.say(b"ha")
        self.wait(3)
        self.assertEqual(self.kinds(), [])

    def test_ways_of_waiting(self) -> None:
        """Waiting for the terminal is a read of a terminal fd, or an epoll wait whose set
        holds one (a node or asyncio program); without /proc/PID/syscall, wchan in the tty's
        read. A read of a socket, an epoll set without the terminal, or a poll is not."""
        epoll = {0: "/dev/pts/9", 5: "anon_inode:[eventpoll]", 7: "socket:[123]"}
        cases = [
            ("read", dict(syscall="0 0x3", fds={3: "/dev/tty"}), True),
            ("read-socket", dict(syscall="0 0x7", fds={7: "socket:[1]"}), False),
            (
                "epoll",
                dict(syscall="232 0x5", fds=epoll, fdinfo={5: "pos: 0\ntfd:        0 events: 19\n"}),
                True,
            ),
            (
                "epoll-net",
                dict(syscall="281 0x5", fds=epoll, fdinfo={5: "tfd:        7 events: 19\n"}),
                False,
            ),
            ("poll", dict(syscall="7 0x7ff 0x1"), False),
            ("wchan", dict(syscall="", wchan="n_tty_read"), True),
            ("running", dict(syscall="running"), False),
        ]
        for n, (name, proc, waits) in enumerate(cases):
            self.proc.add(5000 + n, [name], **proc)
            self.assertEqual(procfs.waits_on_terminal(5000 + n, str(self.proc.root), "x86_64"), waits, name)
        self.assertTrue(procfs.waits_on_terminal(5000, str(self.proc.root), "x86_64"))
        self.proc.add(6000, ["arm"], syscall="63 0x0")
        self.assertTrue(procfs.waits_on_terminal(6000, str(self.proc.root), "aarch64"))
        self.assertFalse(procfs.waits_on_terminal(6000, str(self.proc.root), "x86_64"))

    def test_busy_program_does_not_need_input(self) -> None:
        """A quiet program that is not reading the terminal (computing, or waiting on a child)
        needs nothing."""
        self.proc.add(4242, ["make"], wchan="do_wait", syscall="61 0x1")
        self.process.foreground_group = 4242
        self.process.say(b"building\r\n")
        self.wait(3)
        self.assertEqual(self.kinds(), [])

    def test_shell_prompt_is_not_needing_input(self) -> None:
        """A shell waiting at its own prompt (it reads the terminal) is not asking for input."""
        self.process.say(b"$ ")
        self.wait(3)
        self.assertEqual(self.kinds(), [])
        self.assertEqual(self.session.activity.state()["state"], "idle")

    def test_program_itself_reading(self) -> None:
        """A session whose own program is not an interactive shell (a script, a shell with -c,
        any other program) needs input when it reads its terminal."""
        for command in [("python3", "-c", "input()"), ("bash", "ask.sh"), ("sh", "-ec", "read x")]:
            session = self.h.create(command=command)
            session.watch(self.monitor)
            pump(self.h.clock)
            process = self.h.launcher.last
            self.proc.add(process.pid, list(command), syscall="0 0x0")
            process.say(b"? ")
        self.wait(QUIET + TICK)
        self.assertEqual(
            sorted(f["command"] for f in self.of(NEEDS_INPUT)),
            ["bash ask.sh", "python3 -c input()", "sh -ec read x"],
        )

    def test_interactive_shell(self) -> None:
        """A shell with options only is interactive; with a script or -c it is not."""
        self.assertTrue(interactive_shell(("bash",)))
        self.assertTrue(interactive_shell(("/bin/zsh", "-l", "--login", "-i")))
        self.assertFalse(interactive_shell(("bash", "script.sh")))
        self.assertFalse(interactive_shell(("bash", "-lc", "make")))
        self.assertFalse(interactive_shell(("python3",)))
        self.assertFalse(interactive_shell(()))

    # -- the state, and the cost of being idle --------------------------------------------

    def test_state(self) -> None:
        """activity is active while output comes and a little after, or while a command runs,
        then idle since the end of activity; foreground is the foreground group's command."""
        state = self.session.activity.state()
        self.assertEqual((state["state"], state["foreground"]), ("idle", "-bash"))
        self.process.say(b"$ ")
        state = self.session.activity.state()
        self.assertEqual(state["state"], "active")
        self.assertEqual(state["since"], "2027-01-15T08:00:00.000Z")
        self.wait(3)
        state = self.session.activity.state()
        self.assertEqual((state["state"], state["since"]), ("idle", "2027-01-15T08:00:02.000Z"))
        self.proc.add(4242, ["sleep", "100"])
        self.session.write(b"sleep 100\r")
        self.process.foreground_group = 4242
        self.wait(10)
        state = self.session.activity.state()
        self.assertEqual((state["state"], state["foreground"]), ("active", "sleep 100"))
        self.process.exit(0)
        pump(self.h.clock)
        state = self.session.activity.state()
        self.assertEqual((state["state"], state["foreground"]), ("idle", "bash -l"))

    def test_idle_sessions_cost_nothing(self) -> None:
        """HOT seconds after the last output or input the monitor stops looking at a session,
        and with no session to look at it has no timer."""
        self.process.say(b"$ ")
        self.assertEqual(self.monitor.hot, 1)
        self.wait(HOT + 2 * TICK)
        self.assertEqual(self.monitor.hot, 0)
        self.assertEqual(self.h.clock.getDelayedCalls(), [])


class ProcfsTests(SynchronousTestCase):
    """What the watch reads from /proc, against the real /proc."""

    def test_own_command_line(self) -> None:
        """The command line of this process is its arguments joined; a pid that is gone is None."""
        import os
        import sys

        line = procfs.command_line(os.getpid())
        self.assertIsNotNone(line)
        self.assertIn(Path(sys.executable).name.split(".")[0][:6], line or "")
        self.assertIsNone(procfs.command_line(2**22 + 1))
        self.assertFalse(procfs.waits_on_terminal(2**22 + 1))

    def test_running_process_does_not_read(self) -> None:
        """This process, running, is not sleeping in a read of a terminal."""
        import os

        self.assertFalse(procfs.waits_on_terminal(os.getpid()))
