"""Waits on sessions: the request's checks, the bounded output search, and the waits of
a session (in memory, with a clock and a fake program), for POST /api/sessions/:id/wait."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.sessions import Harness
from vibetwist.errors import BadRequest
from vibetwist.model.wait import MAX_TIMEOUT, OutputSearch, WaitRequest
from vibetwist.sessions.waiters import SCREEN_INTERVAL, TooManyWaiters, WaitService
from vibetwist.testing import pump


class RequestTests(SynchronousTestCase):
    """What a wait's JSON body may say."""

    def test_defaults(self) -> None:
        """A pattern alone waits 30 s on the screen, from now."""
        wanted = WaitRequest.from_json({"pattern": "ok"})
        self.assertEqual((wanted.timeout, wanted.on, wanted.after, wanted.idle), (30.0, "screen", None, None))
        self.assertEqual(wanted.pattern, re.compile("ok"))

    def test_output_after_and_idle(self) -> None:
        """on, after and timeout are taken as given; idle stands in for a pattern."""
        wanted = WaitRequest.from_json({"pattern": "a+", "on": "output", "after": 120, "timeout": 2.5})
        self.assertEqual((wanted.on, wanted.after, wanted.timeout), ("output", 120, 2.5))
        quiet = WaitRequest.from_json({"idle": 1, "timeout": 5})
        self.assertEqual((quiet.idle, quiet.pattern, quiet.timeout), (1.0, None, 5.0))

    def test_refused(self) -> None:
        """Every body out of place is a BadRequest saying why."""
        bad: list[dict[str, Any]] = [
            {},
            {"pattern": "a", "idle": 1},
            {"pattern": ""},
            {"pattern": 5},
            {"pattern": "a" * 1001},
            {"pattern": "("},
            {"pattern": "a", "timeout": 0},
            {"pattern": "a", "timeout": -1},
            {"pattern": "a", "timeout": MAX_TIMEOUT + 1},
            {"pattern": "a", "timeout": True},
            {"pattern": "a", "timeout": "5"},
            {"pattern": "a", "on": "screens"},
            {"pattern": "a", "after": -1},
            {"pattern": "a", "after": 1.5},
            {"pattern": "a", "after": False},
            {"idle": 0},
            {"idle": 1, "on": "output"},
            {"idle": 1, "after": 0},
            {"pattern": "a", "patern": "b"},
        ]
        for body in bad:
            with self.assertRaises(BadRequest, msg=repr(body)) as caught:
                WaitRequest.from_json(body)
            self.assertTrue(caught.exception.message, body)


def _chunks(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:])]


class OutputSearchTests(SynchronousTestCase):
    """The search of output handed in piece by piece."""

    @given(
        st.text(alphabet="abc\n>", max_size=200),
        st.sampled_from(["abc", r"c\n>", r"(?m)^>", "^ab", r"\Ac", r"a[bc]{2,5}a", r"b+c"]),
        st.lists(st.integers(min_value=0, max_value=400), max_size=12),
        st.sampled_from([7, 4096]),
    )
    def test_split_anywhere(self, text: str, pattern: str, cuts: list[int], overlap: int) -> None:
        """However output is cut into pieces, a pattern whose matches are no longer than the
        overlap shows in it exactly when it shows in the whole, and the text matched is a
        match of the whole (the same one for a pattern of fixed length)."""
        if overlap < 200 and pattern in (r"a[bc]{2,5}a", r"b+c"):
            pattern = "abc"  # matches of these may be longer than the short overlap
        search = OutputSearch(re.compile(pattern), overlap=overlap)
        found = None
        for piece in _chunks(text, cuts):
            found = search.feed(piece)
            if found is not None:
                break
        whole = re.search(pattern, text)
        self.assertEqual(found is not None, whole is not None)
        if found is not None and whole is not None:
            self.assertRegex(found[0], pattern)
            if pattern in ("abc", r"c\n>", "^ab", r"\Ac"):
                self.assertEqual(found[0], whole.group(0))

    def test_start_of_output(self) -> None:
        """^ matches where the output searched starts, not where the overlap cut it; (?m)^
        matches after any line break."""
        search = OutputSearch(re.compile("^ab"), overlap=4)
        self.assertIsNone(search.feed("x"))
        self.assertIsNone(search.feed("yyyyyyab"))
        self.assertIsNone(search.feed("ab"))
        self.assertEqual(OutputSearch(re.compile("^ab"), overlap=4).feed("abc"), ("ab", 2))
        lines = OutputSearch(re.compile("(?m)^ab"), overlap=4)
        self.assertIsNone(lines.feed("zzzzzzzz\n"))
        self.assertEqual(lines.feed("abc"), ("ab", 2))

    def test_overlap_bounds_the_reach(self) -> None:
        """A match may begin at most the overlap before the piece that completes it."""
        search = OutputSearch(re.compile("start.*end"), overlap=10)
        self.assertIsNone(search.feed("start" + "x" * 20))
        self.assertIsNone(search.feed("end"))
        near = OutputSearch(re.compile("start.*end"), overlap=10)
        self.assertIsNone(near.feed("start" + "x" * 4))
        self.assertEqual(near.feed("end"), ("startxxxxend", 3))


class WaitersTests(SynchronousTestCase):
    """The waits of sessions, on a clock, with programs played by the test."""

    def setUp(self) -> None:
        self.h = Harness(self)
        self.service = WaitService(self.h.clock, max_per_session=5, max_waiters=8)

    def running(self) -> Any:
        session = self.h.create()
        pump(self.h.clock)
        return session

    def wait(self, session: Any, **body: Any) -> list[Any]:
        answers: list[Any] = []
        self.service.wait(session, WaitRequest.from_json(body)).addCallback(answers.append)
        return answers

    def settle(self, seconds: float = 0.0) -> None:
        self.h.clock.advance(seconds)
        pump(self.h.clock)

    def test_output_match_and_offset(self) -> None:
        """An output wait answers with the text matched and the recording offset just past the
        line that completed it; the session has a listener only while the wait is pending."""
        session = self.running()
        self.assertEqual(session.listeners, frozenset())
        answers = self.wait(session, pattern=r"rea\w+", on="output")
        self.assertEqual(len(session.listeners), 1)
        self.h.launcher.last.say(b"not yet; al")
        self.h.launcher.last.say(b"ready now")
        self.settle()
        self.assertEqual(answers, [(200, {"matched": True, "text": "ready", "offset": session.recorded_end})])
        self.assertEqual(session.listeners, frozenset())
        self.assertEqual(self.service.count, 0)

    def test_after_searches_what_was_recorded(self) -> None:
        """With after, output recorded since that offset counts; output before it does not."""
        session = self.running()
        self.h.launcher.last.say(b"first DONE\r\n")
        middle = session.recorded_end
        self.h.launcher.last.say(b"second\r\n")
        self.assertEqual(
            self.wait(session, pattern="second", on="output", after=0)[0][1]["offset"], session.recorded_end
        )
        late = self.wait(session, pattern="DONE", on="output", after=middle)
        self.assertEqual(late, [])
        now = self.wait(session, pattern="second", on="output")
        self.assertEqual(now, [], "without after, only output from now on counts")

    def test_one_listener_for_many_waits(self) -> None:
        """Five waits on one session share one listener, each answered by its own pattern."""
        session = self.running()
        answers = [self.wait(session, pattern=f"n{i}\\b", on="output") for i in range(5)]
        self.assertEqual(len(session.listeners), 1)
        self.h.launcher.last.say(b"n0 n2 n4\r\n")
        self.settle()
        self.assertEqual([bool(a) for a in answers], [True, False, True, False, True])
        self.assertEqual(len(session.listeners), 1)

    def test_limits(self) -> None:
        """Past the waits a session may have, or the daemon in all, a wait is refused with 503."""
        first, second = self.running(), self.running()
        for _ in range(5):
            self.wait(first, pattern="x", on="output")
        with self.assertRaises(TooManyWaiters) as caught:
            self.wait(first, pattern="x", on="output")
        self.assertEqual(caught.exception.status, 503)
        for _ in range(3):
            self.wait(second, pattern="x", on="output")
        self.assertRaises(TooManyWaiters, self.wait, second, pattern="x")

    def test_timeout(self) -> None:
        """A pattern that does not show answers 408 at the timeout, and the wait is forgotten."""
        session = self.running()
        answers = self.wait(session, pattern="never", on="output", timeout=2)
        self.settle(1.9)
        self.assertEqual(answers, [])
        self.settle(0.2)
        self.assertEqual(answers[0][0], 408)
        self.assertIn("error", answers[0][1])
        self.assertEqual((self.service.count, session.listeners), (0, frozenset()))
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_client_gone(self) -> None:
        """A wait whose answer is cancelled (its client went away) is forgotten at once."""
        session = self.running()
        d = self.service.wait(session, WaitRequest.from_json({"pattern": "x", "on": "output"}))
        d.addErrback(lambda f: None)
        d.cancel()
        self.assertEqual((self.service.count, session.listeners), (0, frozenset()))
        self.assertEqual(self.h.clock.getDelayedCalls(), [])

    def test_forgotten_when_the_session_ends(self) -> None:
        """The waits of a running session share one entry however many come and go; it is
        dropped when the session ends, and an ended session's waits leave none behind."""
        session = self.running()
        for _ in range(20):
            self.wait(session, pattern="x", on="output", timeout=1)
            self.settle(1)
        self.assertEqual(list(self.service.sessions), [session.id])
        self.h.launcher.last.exit(0)
        self.settle(1)
        self.assertEqual(self.service.sessions, {})
        self.wait(session, pattern="x")
        self.settle(3)
        self.assertEqual((self.service.sessions, self.service.count), ({}, 0))

    def test_exit_searches_the_last_output_first(self) -> None:
        """When the program ends, what it printed last still matches; other waits answer exited."""
        session = self.running()
        found = self.wait(session, pattern="bye", on="output")
        missed = self.wait(session, pattern="never", on="output")
        self.h.launcher.last.say(b"bye\r\n")
        self.h.launcher.last.exit(4)
        self.settle(1)
        self.assertTrue(found[0][1]["matched"])
        self.assertEqual(missed, [(200, {"matched": False, "exited": True, "exitCode": 4})])
        late = self.wait(session, pattern="never")
        self.settle()
        self.assertEqual(late, [(200, {"matched": False, "exited": True, "exitCode": 4})])

    def test_screen(self) -> None:
        """A screen wait answers at once for text the screen shows, else when it shows; the
        screen is searched at most every SCREEN_INTERVAL however often it changes."""
        session = self.running()
        self.h.launcher.last.say(b"$ ")
        self.settle(1)
        shown = self.wait(session, pattern=r"\$")
        self.settle()
        self.assertEqual(shown[0][1]["text"], "$")
        searched: list[int] = []
        text = session.screen.text

        def counted() -> str:
            searched.append(1)
            return text()

        session.screen.text = counted
        later = self.wait(session, pattern="done")
        for i in range(20):
            self.h.launcher.last.say(f"line {i}\r\n".encode())
            self.settle(0.001)
        self.assertEqual(later, [])
        self.h.launcher.last.say(b"done\r\n")
        self.settle(SCREEN_INTERVAL)
        self.assertEqual(later[0][1]["text"], "done")
        self.assertLessEqual(len(searched), 3)

    def test_idle(self) -> None:
        """An idle wait answers once no output has come for that long."""
        session = self.running()
        answers = self.wait(session, idle=1)
        self.settle(0.6)
        self.h.launcher.last.say(b"busy")
        self.settle(0.6)
        self.assertEqual(answers, [])
        self.settle(0.5)
        self.assertEqual(
            answers, [(200, {"matched": True, "text": "", "offset": session.recorded_end, "idle": 1.0})]
        )

    def test_interrupt(self) -> None:
        """A restart in place or a stop answers every wait 503."""
        session = self.running()
        answers = [self.wait(session, pattern="x"), self.wait(session, idle=5)]
        self.service.interrupt()
        self.assertEqual([a[0][0] for a in answers], [503, 503])
        self.assertEqual(self.service.count, 0)
