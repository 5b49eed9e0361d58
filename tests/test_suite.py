"""The test suite's own rules: each test module stands alone, and no test can silently not run.

Shared fixtures live in L{tests.support}: a test module that imported another could
not be read on its own, and a change to one test module could break another.
An C{async def} test on a class that is not a C{twisted.trial.unittest.TestCase}
is never awaited, so it passes whatever it asserts: every such test is refused here,
and so is a generator test, which no TestCase runs.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import unittest as pyunit
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest
from twisted.trial.unittest import SynchronousTestCase

TESTS = Path(__file__).resolve().parent
PACKAGE = TESTS.name


def suite_modules() -> list[Path]:
    """Every test module trial finds: tests/test_*.py."""
    return sorted(TESTS.glob("test_*.py"))


def imported(source: str, module: str) -> set[str]:
    """Every module an import statement of source names (also those inside functions),
    relative imports made absolute for a module named module, and ``from P import name``
    counted as importing P.name too, since name may be a module."""
    package = module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    return found


def wrong_imports(source: str, module: str) -> list[str]:
    """The test modules (and other non-support modules of the test package) that source
    imports: all of them are mistakes."""
    wrong = []
    for name in sorted(imported(source, module)):
        parts = name.split(".")
        if parts[0] != PACKAGE or len(parts) == 1 or name == module:
            continue
        if parts[1] != "support" and name.rpartition(".")[0] not in wrong:
            wrong.append(name)
    return wrong


def unawaited_tests(classes: Iterable[type]) -> list[str]:
    """Test methods of classes that trial would call without running what they do: coroutine
    functions (or functions wrapping one) on a class that is not a trial TestCase, where
    the coroutine is made and dropped; and generator functions (async ones too) anywhere."""
    found = []
    for cls in classes:
        if not issubclass(cls, pyunit.TestCase):
            continue
        for name in dir(cls):
            if not name.startswith("test"):
                continue
            method = getattr(cls, name)
            if not callable(method):
                continue
            inner = inspect.unwrap(method)
            where = f"{cls.__module__}.{cls.__qualname__}.{name}"
            if inspect.iscoroutinefunction(inner) and not issubclass(cls, unittest.TestCase):
                found.append(f"{where}: async, but not on a trial TestCase")
            elif inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner):
                found.append(f"{where}: a generator, never run")
    return found


def classes_of(module: object) -> list[type]:
    """The classes a module defines (not the ones it imports)."""
    name = getattr(module, "__name__", "")
    return [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == name]


class ImportTests(SynchronousTestCase):
    """No test module imports another; what they share is in tests.support."""

    def test_no_test_module_imports_another(self) -> None:
        """Every import statement of every tests/test_*.py (and of tests/support/, which
        must not lean on a test module either), also inside functions, names no test
        module, relatively or absolutely."""
        modules = suite_modules()
        self.assertGreater(len(modules), 40)
        support = sorted((TESTS / "support").glob("*.py"))
        self.assertIn(TESTS / "support" / "e2e.py", support)
        wrong = {}
        for path in modules + support:
            name = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
            names = wrong_imports(path.read_text(), name)
            if names:
                wrong[str(path.relative_to(TESTS))] = names
        self.assertEqual(wrong, {}, "move what they share to tests/support/")

    def test_check_catches_imports(self) -> None:
        """The check sees every spelling of importing a test module, and lets support and
        the rest of the world through."""
        module = f"{PACKAGE}.test_here"
        for source in [
            "from tests.test_e2e import DaemonTestCase",
            "from .test_api import APITestCase",
            "from . import test_api",
            "from tests import test_api",
            "import tests.test_api",
            "def f():\n    from .test_tls import make_certificate\n",
            "from tests._daemon import Daemon",
        ]:
            self.assertNotEqual(wrong_imports(source, module), [], source)
        for source in [
            "from tests.support.e2e import DaemonTestCase",
            "from .support import api",
            "from tests.support import fuzz",
            "import tests.support.daemon",
            "from twisted.trial import unittest",
            "from vibetwist.model.keys import KEYS",
            "import tests",
        ]:
            self.assertEqual(wrong_imports(source, module), [], source)


class AsyncTests(SynchronousTestCase):
    """Every async test is on a trial TestCase, which runs its coroutine to the end."""

    def test_every_async_test_runs(self) -> None:
        """Importing every test module, no coroutine (or generator) test method sits on a class
        that would drop it unrun."""
        classes = []
        for path in suite_modules():
            classes.extend(classes_of(importlib.import_module(f"{PACKAGE}.{path.stem}")))
        self.assertGreater(len(classes), 100)
        self.assertEqual(unawaited_tests(classes), [])

    def test_check_catches_forgotten_base(self) -> None:
        """An async test on a SynchronousTestCase (bare, or behind a decorator that wraps it)
        and generator tests are caught; the same async test on a trial TestCase is not."""

        def wrapping(f: Callable[[Any], Coroutine[Any, Any, None]]) -> Callable[[Any], defer.Deferred[None]]:
            @functools.wraps(f)
            def run(self: Any) -> defer.Deferred[None]:
                return defer.ensureDeferred(f(self))

            return run

        class Forgot(SynchronousTestCase):
            async def test_never_awaited(self) -> None:
                raise AssertionError("not run")

            @wrapping
            async def test_wrapped(self) -> None:
                raise AssertionError("not run")

            def test_generator(self) -> Iterator[None]:
                yield None

            async def test_async_generator(self) -> AsyncIterator[None]:
                yield None

            def test_plain(self) -> None:
                pass

        class Remembered(unittest.TestCase):
            async def test_awaited(self) -> None:
                pass

        found = unawaited_tests([Forgot, Remembered])
        self.assertEqual(
            [line.rpartition(".")[2] for line in found],
            [
                "test_async_generator: a generator, never run",
                "test_generator: a generator, never run",
                "test_never_awaited: async, but not on a trial TestCase",
                "test_wrapped: async, but not on a trial TestCase",
            ],
        )
