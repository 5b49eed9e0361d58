# -*- test-case-name: tests.test_vt -*-
"""``vt COMMAND``: run a program in a PTY inside the user's own terminal, as a session.

The program's output is mirrored to the local terminal and recorded in the
session's ``stdout`` (asciicast v2, one whole line per write, so the file is
valid up to its last line whatever kills either side). Keystrokes come from
the local terminal and from ``ipc.sock``, where the daemon also sends
resizes and kills. One ``select`` loop does it all; no reactor is needed.

The terminal's size follows the last side that acted: a local keystroke or
window change gives the local size back to the PTY, a resize from the daemon
sets the browser's.

The same forwarder, given a :class:`Held` session, runs without a terminal of
its own: it holds a session the daemon started (``--sessions-outlive-daemon``,
see :mod:`vibetwist.vt._hold`), so that the program outlives the daemon.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import socket
import subprocess
import termios
import time
import tty
from pathlib import Path
from typing import Any

import attrs

from vibetwist.errors import FormatError
from vibetwist.model.asciicast import (
    Header,
    OutputDecoder,
    encode_event,
    encode_exit,
    encode_header,
    encode_size,
)
from vibetwist.model.controldir import FILE_MODE, ControlDir, SocketAddress
from vibetwist.model.info import MAX_SIZE, LaunchPlan, SessionInfo, Status, now_iso
from vibetwist.model.ipc import Decoder, MessageType, OversizedMessage, encode, parse_json
from vibetwist.model.launch import default_name, default_shell, plan_launch
from vibetwist.model.recording import Recording
from vibetwist.model.winsize import set_size, terminal_size

#: Seconds the PTY may stay open (held by background jobs) after the program exits.
HANGUP_GRACE = 1.0
#: Bytes read at once from the PTY, the local terminal or a socket.
READ_SIZE = 65536
#: The most reads of the PTY before its output is written out (about 64 KB).
READ_BURST = 16
#: Most ipc.sock clients at once (the daemon needs one; VibeTunnel's tools a few).
MAX_CLIENTS = 16
#: Size used when stdin is not a terminal.
DEFAULT_SIZE = (80, 24)

_SIGNALS = (signal.SIGWINCH, signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)


def wait_code(status: int) -> int:
    """A wait status as a shell reports it: the exit status, or 128+N for signal N."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def signal_number(value: object) -> int | None:
    """A signal from a kill command: a number, or a name such as "SIGTERM" or "TERM"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 < value < signal.NSIG else None
    if isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        found = getattr(signal.Signals, name, None) if name.isidentifier() else None
        return int(found) if found is not None else None
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except InterruptedError:
            continue
        except BlockingIOError:
            select.select([], [fd], [])


@attrs.frozen
class Held:
    """A session the daemon started and made the files of, for the forwarder to hold.

    The daemon has made its folder, the recording's header and session.json
    (status starting); the forwarder runs the program the daemon planned, in a
    PTY of ``info``'s initial size, with no terminal of its own.
    """

    info: SessionInfo
    plan: LaunchPlan


class _Client:
    """One connection to ipc.sock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = Decoder()


class Forwarder:
    """One ``vt`` session: the program, its PTY, the local terminal, its files and ipc.sock."""

    def __init__(
        self,
        command: list[str],
        files: ControlDir,
        session_id: str,
        *,
        environ: dict[str, str],
        stdin: int = 0,
        stdout: int = 1,
        held: Held | None = None,
    ) -> None:
        """
        :param held: a session the daemon started, held here without a terminal.
        """
        self.command = command
        self.files = files
        self.id = session_id
        self._environ = environ
        self._stdin = stdin
        self._stdout = stdout
        self._held = held
        self._local = held is None and os.isatty(stdin)
        self.local_size = (terminal_size(stdin) if self._local else None) or DEFAULT_SIZE
        if held is not None:
            self.local_size = (held.info.initial_cols, held.info.initial_rows)
        self.pty_size = self.local_size
        self._saved_mode: list[Any] | None = None
        self._decoder = OutputDecoder()
        self._recording: Recording | None = None
        self._clients: dict[int, _Client] = {}
        self._listener: socket.socket | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._wake_r = self._wake_w = -1
        self._stdin_open = held is None
        self._stdout_open = held is None
        self._code: int | None = None
        self._hangup_at: float | None = None
        self._start = 0.0
        self._ready: Any = None
        self.dir: Path = files.session_dir(session_id)
        self._info: SessionInfo | None = None

    # -- files ---------------------------------------------------------------------------

    def _save(self, **changes: Any) -> None:
        """Update session.json, keeping what others changed there (a new name)."""
        try:
            self.files.update_info(self.id, lambda current: current.update(changes, lastModified=now_iso()))
        except OSError:
            pass  # the session goes on; the daemon shows what it can

    def _record(self, kind: str, data: str) -> None:
        if self._recording is not None:
            self._recording.append(encode_event(max(0.0, time.monotonic() - self._start), kind, data))

    def _make_files(self, shell: str, cwd: str, home: str) -> None:
        if self._held is not None:
            # The daemon made the folder, the header and session.json.
            self._recording = Recording(self.files.recording_path(self.id))
            self._info = self._held.info
        else:
            self._make_new_files(shell, cwd, home)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        path = self.dir / "ipc.sock"
        with SocketAddress(path) as address:
            self._listener.bind(address)
        os.chmod(path, FILE_MODE)
        self._listener.listen(MAX_CLIENTS)
        self._listener.setblocking(False)

    def _make_new_files(self, shell: str, cwd: str, home: str) -> None:
        self.files.create()
        self.files.make_session_dir(self.id)
        cols, rows = self.local_size
        name = default_name(self.command, cwd, home)
        header = Header(
            width=cols,
            height=rows,
            timestamp=int(time.time()),
            command=" ".join(self.command),
            title=name,
            env={"TERM": self._environ.get("TERM", "xterm-256color"), "SHELL": shell},
        )
        self._recording = Recording(self.files.recording_path(self.id))
        self._recording.append(encode_header(header), final=True)
        started = now_iso()
        self._info = SessionInfo(
            id=self.id,
            name=name,
            command=tuple(self.command),
            working_dir=cwd,
            status=Status.STARTING,
            started_at=started,
            last_modified=started,
            initial_cols=cols,
            initial_rows=rows,
            attached_via_vt=True,
        )

    # -- the program -------------------------------------------------------------------

    def _spawn(self, shell: str, cwd: str) -> None:
        if self._held is not None:
            plan = self._held.plan
            env = dict(plan.env)
        else:
            plan = plan_launch(self.command, cwd, self.id, shell, self._environ)
            env = dict(plan.env)
            if self._environ.get("TERM"):
                env["TERM"] = self._environ["TERM"]  # the program draws for the local terminal first
        master, slave = pty.openpty()
        set_size(slave, *self.pty_size)

        def controlling_terminal() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        try:
            self._child = subprocess.Popen(
                list(plan.argv),
                executable=plan.executable,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=plan.cwd,
                env=env,
                start_new_session=True,
                preexec_fn=controlling_terminal,
                restore_signals=True,
            )
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self._master = master

    # -- the run -------------------------------------------------------------------------

    def run(self, ready: Any = None) -> int:
        """Run the program to its end; its exit code.

        :param ready: called (with no arguments) once the session's files and ipc.sock are
            made and the program started, or its failure to start recorded.
        """
        self._ready = ready
        shell = default_shell(self._environ)
        cwd = os.getcwd()
        home = self._environ.get("HOME") or os.path.expanduser("~")
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        previous = {sig: signal.signal(sig, lambda *_: None) for sig in _SIGNALS}
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            self._make_files(shell, cwd, home)
            try:
                self._spawn(shell, cwd)
            except OSError as e:
                message = f"vt: cannot start {self.command[0]}: {e.strerror}\r\n"
                os.write(2, message.encode())
                self._record("o", message)
                self._code = 127
                return 127
            assert self._child is not None and self._info is not None
            # session.json comes last: whoever reads it finds the recording and ipc.sock ready.
            running = attrs.evolve(self._info, status=Status.RUNNING, pid=self._child.pid)
            if self._held is None:
                self.files.save_info(self.id, running.to_json())
            else:
                fields = running.to_json()
                # The daemon may have renamed the session meanwhile: its name stays.
                self.files.update_info(
                    self.id, lambda current: current.update(fields, name=current.get("name", fields["name"]))
                )
            self._announce()
            if self._local:
                self._saved_mode = termios.tcgetattr(self._stdin)
                tty.setraw(self._stdin, termios.TCSANOW)
            self._start = time.monotonic()
            self._loop()
            return self._code if self._code is not None else 1
        finally:
            self._restore_terminal()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._finish()

    def _restore_terminal(self) -> None:
        if self._saved_mode is not None:
            try:
                termios.tcsetattr(self._stdin, termios.TCSAFLUSH, self._saved_mode)
            except termios.error:
                pass
            self._saved_mode = None

    def _announce(self) -> None:
        """Tell whoever waits for the session to be set up (once)."""
        ready, self._ready = self._ready, None
        if ready is not None:
            ready()

    def _finish(self) -> None:
        """Write the exit line and the final session.json; let go of everything."""
        if self._child is not None and self._code is None:
            # Leaving early (an error in vt itself): do not leave the program behind.
            self._signal_program(signal.SIGHUP)
            try:
                returncode = self._child.wait(HANGUP_GRACE)
            except subprocess.TimeoutExpired:
                self._signal_program(signal.SIGKILL)
                returncode = self._child.wait()
            self._code = 128 - returncode if returncode < 0 else returncode
        rest = self._decoder.flush()
        if rest:
            self._record("o", rest)
        if self._recording is not None:
            self._recording.append(encode_exit(self._code, self.id), final=True)
            self._recording.close()
        if self._listener is not None:
            if self._info is not None and not self.files.info_path(self.id).exists():
                self.files.save_info(self.id, self._info.to_json())
            self._save(status=Status.EXITED.value, exitCode=self._code)
            self._listener.close()
            try:
                os.unlink(self.dir / "ipc.sock")
            except OSError:
                pass
        for client in self._clients.values():
            client.sock.close()
        self._clients.clear()
        for fd in (self._master, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._master = self._wake_r = self._wake_w = -1
        if self._recording is not None:
            self._announce()  # its end is recorded: the program never started, or has ended

    def _loop(self) -> None:
        while self._master >= 0:
            readers = [self._master, self._wake_r]
            if self._listener is not None:
                readers.append(self._listener.fileno())
            if self._stdin_open:
                readers.append(self._stdin)
            readers.extend(self._clients)
            timeout = None
            if self._hangup_at is not None:
                timeout = max(0.0, self._hangup_at - time.monotonic())
            try:
                ready, _, _ = select.select(readers, [], [], timeout)
            except InterruptedError:
                continue
            if self._master in ready:
                if not self._read_program():
                    break
            if self._wake_r in ready:
                self._signals()
            if self._stdin in ready and self._stdin_open:
                self._read_local()
            if self._listener is not None and self._listener.fileno() in ready:
                self._accept()
            for fd in [fd for fd in ready if fd in self._clients]:
                self._read_client(self._clients[fd])
            if self._hangup_at is not None and time.monotonic() >= self._hangup_at:
                # Background jobs still hold the terminal: end them as a closing terminal would.
                self._signal_program(signal.SIGHUP)
                break
        self._reap(block=True)

    def _read_program(self) -> bool:
        """Mirror and record what the program wrote; False once its terminal is closed."""
        chunks: list[bytes] = []
        alive = True
        # Linux hands out at most 4095 bytes per read of a PTY: reading on until it is
        # empty makes one local write and one recording line of a burst of output.
        for _ in range(READ_BURST):
            try:
                chunk = os.read(self._master, READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                alive = False  # EIO: every copy of the terminal's slave side is closed
                break
            if not chunk:
                alive = False
                break
            chunks.append(chunk)
        if chunks:
            self._output(b"".join(chunks))
        return alive

    def _output(self, data: bytes) -> None:
        if self._stdout_open:
            try:
                _write_all(self._stdout, data)
            except OSError:
                self._stdout_open = False  # the local terminal is gone; the session goes on
        text = self._decoder.decode(data)
        if text:
            self._record("o", text)

    def _signals(self) -> None:
        try:
            numbers = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for number in numbers:
            if number == signal.SIGWINCH:
                size = terminal_size(self._stdin) if self._local else None
                if size is not None:
                    self.local_size = size
                    self._resize(size)
            elif number == signal.SIGCHLD:
                self._reap(block=False)
            elif number in (signal.SIGINT, signal.SIGQUIT):
                self._signal_program(number)
            elif number in (signal.SIGTERM, signal.SIGHUP):
                # vt is going away, as its terminal would: the program is told so even
                # if it ignores SIGTERM (an interactive shell does).
                if number == signal.SIGHUP:
                    self._stdout_open = self._stdin_open = False
                self._signal_program(number)
                self._signal_program(signal.SIGHUP)
                self._signal_program(signal.SIGCONT)

    def _reap(self, block: bool) -> None:
        if self._child is None or self._code is not None:
            return
        try:
            pid, status = os.waitpid(self._child.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self._code = 1
            return
        if pid:
            self._code = wait_code(status)
            self._child.returncode = self._code
            self._hangup_at = time.monotonic() + HANGUP_GRACE

    def _signal_program(self, number: int) -> None:
        """Signal the program's process group (it leads its own session)."""
        if self._child is None or self._code is not None:
            return
        try:
            os.killpg(self._child.pid, number)
        except OSError:
            pass

    def _resize(self, size: tuple[int, int]) -> None:
        if size == self.pty_size or self._master < 0:
            return
        try:
            set_size(self._master, *size)
        except OSError:
            return
        self.pty_size = size
        self._record("r", encode_size(*size))

    def _type(self, data: bytes) -> None:
        try:
            _write_all(self._master, data)
        except OSError:
            pass  # the program is gone; its end is on its way

    def _read_local(self) -> None:
        try:
            data = os.read(self._stdin, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stdin_open = False
            return
        # The local terminal acted: it gets its size back.  Its size is asked afresh,
        # so keys typed just after a window change never reach the program before the
        # change does (SIGWINCH may be handled after these keys were read).
        if self._local:
            self.local_size = terminal_size(self._stdin) or self.local_size
        self._resize(self.local_size)
        self._type(data)

    # -- ipc.sock ------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        if len(self._clients) >= MAX_CLIENTS:
            sock.close()
            return
        sock.setblocking(False)
        self._clients[sock.fileno()] = _Client(sock)

    def _drop(self, client: _Client) -> None:
        self._clients.pop(client.sock.fileno(), None)
        client.sock.close()

    def _read_client(self, client: _Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        try:
            messages = client.decoder.feed(data)
        except OversizedMessage as e:
            for kind, payload in e.messages:
                self._message(client, kind, payload)
            self._reply_error(client, str(e))
            self._drop(client)
            return
        for kind, payload in messages:
            self._message(client, kind, payload)

    def _reply(self, client: _Client, frame: bytes) -> None:
        try:
            client.sock.send(frame)
        except OSError:
            pass  # a client that does not read its answers does not get them

    def _reply_error(self, client: _Client, message: str) -> None:
        body = json.dumps({"message": message}, ensure_ascii=False).encode("utf-8")
        self._reply(client, encode(MessageType.ERROR, body))

    def _message(self, client: _Client, kind: int, payload: bytes) -> None:
        if kind == MessageType.STDIN:
            self._type(payload)
        elif kind == MessageType.HEARTBEAT:
            self._reply(client, encode(MessageType.HEARTBEAT, b""))
        elif kind == MessageType.CONTROL:
            try:
                self._control(parse_json(payload))
            except FormatError as e:
                self._reply_error(client, str(e))

    def _control(self, command: dict[str, Any]) -> None:
        cmd = command.get("cmd")
        if cmd == "resize":
            cols, rows = command.get("cols"), command.get("rows")
            if all(
                isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_SIZE for v in (cols, rows)
            ):
                self._resize((int(cols), int(rows)))  # type: ignore[arg-type]
            else:
                raise FormatError(f"resize needs cols and rows from 1 to {MAX_SIZE}")
        elif cmd == "reset-size":
            self._resize(self.local_size)
        elif cmd == "kill":
            number = signal_number(command.get("signal", signal.SIGTERM))
            if number is None:
                raise FormatError("kill needs a signal number or name")
            self._signal_program(number)
        elif cmd == "update-title":
            title = command.get("title")
            if not isinstance(title, str) or not title.strip():
                raise FormatError("update-title needs a title")
            self._save(name=title.strip()[:256])
        else:
            raise FormatError(f"unknown command: {str(cmd)[:100]}")
