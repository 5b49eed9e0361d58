"""Tests for vibetwist.sessions.lifecycle: a session's stages and the one table that moves them."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from vibetwist.model.info import Status
from vibetwist.sessions.lifecycle import STATUS, TRANSITIONS, Lifecycle, Stage

EVENTS = ("spawned", "ended", "removed")


class TransitionTests(SynchronousTestCase):
    """Each edge of the table, and every pair that is not an edge."""

    def _at(self, stage: Stage) -> tuple[Lifecycle, list[Status]]:
        seen: list[Status] = []
        lifecycle = Lifecycle(Status.STARTING, seen.append)
        lifecycle.stage = stage
        return lifecycle, seen

    def test_starting_spawned_runs(self) -> None:
        """A starting program that spawned is running, and the change is told."""
        lifecycle, seen = self._at(Stage.STARTING)
        self.assertTrue(lifecycle.move("spawned"))
        self.assertEqual((lifecycle.stage, seen), (Stage.RUNNING, [Status.RUNNING]))

    def test_starting_ended_exits(self) -> None:
        """A program that ends before it runs (failed or killed in the queue) has exited."""
        lifecycle, seen = self._at(Stage.STARTING)
        self.assertTrue(lifecycle.move("ended"))
        self.assertEqual((lifecycle.stage, seen), (Stage.EXITED, [Status.EXITED]))

    def test_running_ended_exits(self) -> None:
        """A running program that ends has exited."""
        lifecycle, seen = self._at(Stage.RUNNING)
        self.assertTrue(lifecycle.move("ended"))
        self.assertEqual((lifecycle.stage, seen), (Stage.EXITED, [Status.EXITED]))

    def test_exited_removed(self) -> None:
        """Removing an exited session changes no status on disk (removed shows as exited)."""
        lifecycle, seen = self._at(Stage.EXITED)
        self.assertTrue(lifecycle.move("removed"))
        self.assertEqual((lifecycle.stage, lifecycle.status, seen), (Stage.REMOVED, Status.EXITED, []))

    def test_everything_else_stays(self) -> None:
        """Any (stage, event) not in the table leaves the stage as it was and tells nobody."""
        for stage in Stage:
            for event in EVENTS:
                if (stage, event) in TRANSITIONS:
                    continue
                lifecycle, seen = self._at(stage)
                self.assertFalse(lifecycle.move(event), (stage, event))
                self.assertEqual((lifecycle.stage, seen), (stage, []))

    def test_every_stage_has_a_status(self) -> None:
        """Each stage maps to one of the statuses session.json knows."""
        self.assertEqual(set(STATUS), set(Stage))
        self.assertTrue(set(STATUS.values()) <= set(Status))


class EndedTests(SynchronousTestCase):
    def test_when_ended_fires_on_exit(self) -> None:
        """when_ended fires once the session exits, and at once afterwards."""
        lifecycle = Lifecycle(Status.RUNNING)
        d = lifecycle.when_ended()
        self.assertNoResult(d)
        lifecycle.move("ended")
        self.successResultOf(d)
        self.successResultOf(lifecycle.when_ended())

    def test_change_told_before_waiters(self) -> None:
        """Whoever is told of the exit has done its work before those waiting on it run."""
        order: list[str] = []
        lifecycle = Lifecycle(Status.RUNNING, lambda status: order.append("told"))
        lifecycle.when_ended().addCallback(lambda _: order.append("waiter"))
        lifecycle.move("ended")
        self.assertEqual(order, ["told", "waiter"])
