"""Tests for vibetwist._reactor.immediate: writing at once when nothing is queued, in order always."""

from __future__ import annotations

from twisted.internet.abstract import FileDescriptor
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from vibetwist._reactor.immediate import write_now


class Descriptor(FileDescriptor):
    """A descriptor whose kernel takes ``room`` bytes per write."""

    def __init__(self, room: int) -> None:
        super().__init__(MemoryReactor())
        self.connected = 1
        self.room = room
        self.sent: list[bytes] = []

    def writeSomeData(self, data: bytes) -> int:  # type: ignore[override]
        taken = bytes(data[: self.room])
        self.sent.append(taken)
        return len(taken)

    def startWriting(self) -> None:
        pass  # the test looks at the queue instead of a reactor

    def queued(self) -> bytes:
        return b"".join(self._tempDataBuffer) + self.dataBuffer


class WriteNowTests(SynchronousTestCase):
    def test_written_at_once_when_nothing_is_queued(self) -> None:
        d = Descriptor(room=100)
        write_now(d, b"keystroke")
        self.assertEqual((d.sent, d.queued()), ([b"keystroke"], b""))

    def test_what_the_descriptor_does_not_take_is_queued(self) -> None:
        d = Descriptor(room=3)
        write_now(d, b"abcdef")
        self.assertEqual((d.sent, d.queued()), ([b"abc"], b"def"))

    def test_queued_data_keeps_its_place(self) -> None:
        """While data is queued, new data goes behind it, never around it."""
        d = Descriptor(room=0)
        write_now(d, b"first")
        write_now(d, b"second")
        self.assertEqual(d.queued(), b"firstsecond")
        self.assertEqual(d.sent, [b""])

    def test_tls_and_other_transports_just_write(self) -> None:
        d = Descriptor(room=100)
        d.TLS = True  # type: ignore[attr-defined]
        write_now(d, b"secret")
        self.assertEqual((d.sent, d.queued()), ([], b"secret"))
        other = StringTransport()
        write_now(other, b"plain")
        self.assertEqual(other.value(), b"plain")

    def test_closing_descriptor_not_written(self) -> None:
        d = Descriptor(room=100)
        d.disconnecting = True
        write_now(d, b"late")
        self.assertEqual(d.sent, [])
