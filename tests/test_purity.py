"""The layers of the package hold: the pure parts import no reactor, and no layer imports a higher one.

Read from the source (every import statement of every module, also those inside
functions), and checked once more by importing the pure parts in a fresh
interpreter and looking at what it loaded.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = Path(__file__).resolve().parent.parent / "vibetwist"

#: What each layer may import from vibetwist (besides itself and the package's __init__).
ALLOWED = {
    "model": {"errors"},
    "screen": {"errors", "model"},
    "_reactor": set(),
    "sessions": {"errors", "interfaces", "model", "screen", "_reactor"},
    "login": {"errors", "model"},
    "server": {"errors", "interfaces", "model", "screen", "_reactor", "sessions", "login"},
    "vt": {"errors", "model", "sessions", "client"},
    "cluster": {"errors", "interfaces", "model", "screen", "_reactor", "sessions", "login", "server"},
}
#: What no pure layer may import, however indirectly it is named.
REACTOR_CODE = ("twisted.internet", "twisted.web", "twisted.application", "autobahn", "klein", "treq")
PURE = ("model", "screen")


def imports_of(path: Path) -> set[str]:
    """Every module an import statement of path names (relative imports made absolute)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def layer_violations(layer: str) -> list[str]:
    """The imports of a layer's modules that break its rules, as "module: import" lines."""
    wrong = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in sorted(imports_of(path)):
            if name.startswith("vibetwist."):
                other = name.split(".")[1]
                if other != layer and other not in ALLOWED[layer] and other != "__version__":
                    if (PACKAGE / other).is_dir() or (PACKAGE / f"{other}.py").exists():
                        wrong.append(f"{path.relative_to(PACKAGE)}: {name}")
            elif layer in PURE and name.startswith(REACTOR_CODE):
                wrong.append(f"{path.relative_to(PACKAGE)}: {name}")
    return wrong


class LayerTests(SynchronousTestCase):
    def test_every_layer_is_known(self) -> None:
        """Each package of vibetwist has rules here, so a new one cannot slip past them."""
        packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
        self.assertEqual(packages, set(ALLOWED))

    def test_pure_layers_import_no_reactor_code(self) -> None:
        """model and screen import nothing of twisted.internet, twisted.web or autobahn,
        and nothing of a higher layer."""
        for layer in PURE:
            self.assertEqual(layer_violations(layer), [], layer)

    def test_no_layer_imports_a_higher_one(self) -> None:
        """sessions, login, server and vt import only the layers beneath them."""
        for layer in ALLOWED:
            self.assertEqual(layer_violations(layer), [], layer)

    def test_the_check_sees_a_violation(self) -> None:
        """The AST walk finds imports inside functions and relative ones."""
        path = PACKAGE / "model" / "_purity_probe.py"
        path.write_text("def f():\n    from twisted.internet import reactor\n    from ..server import api\n")
        self.addCleanup(path.unlink)
        self.assertEqual(
            layer_violations("model"),
            [
                "model/_purity_probe.py: twisted.internet",
                "model/_purity_probe.py: twisted.internet.reactor",
                "model/_purity_probe.py: vibetwist.server",
                "model/_purity_probe.py: vibetwist.server.api",
            ],
        )


class LoadedTests(SynchronousTestCase):
    def test_pure_parts_load_no_reactor(self) -> None:
        """Importing the pure layers, command planning and vt's forwarder loads no twisted.internet."""
        code = (
            "import sys, pkgutil, importlib, vibetwist.model, vibetwist.screen\n"
            "for pkg in (vibetwist.model, vibetwist.screen):\n"
            "    for m in pkgutil.iter_modules(pkg.__path__):\n"
            "        importlib.import_module(pkg.__name__ + '.' + m.name)\n"
            "import vibetwist.model.launch, vibetwist.vt._forward\n"
            f"print(sorted(m for m in sys.modules if m.startswith({REACTOR_CODE!r})))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "[]", out.stderr)

    def test_forwarder_loads_no_twisted(self) -> None:
        """vt's forwarder and the session holder built on it (one process per session that
        outlives the daemon) load nothing of Twisted: they start fast and stay small."""
        code = (
            "import sys, vibetwist.vt._forward, vibetwist.vt._hold\n"
            "print(sorted(m for m in sys.modules if m.startswith('twisted')))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        self.assertEqual(out.stdout.strip(), "[]", out.stderr)


class HeaderTests(SynchronousTestCase):
    def test_test_case_names_exist(self) -> None:
        """Every ``test-case-name`` header of the package names a test module that exists."""
        tests = PACKAGE.parent / "tests"
        missing = []
        for path in sorted(PACKAGE.rglob("*.py")):
            first = path.read_text().split("\n", 1)[0]
            if "test-case-name:" in first:
                for name in first.split("test-case-name:")[1].strip(" -*").split(","):
                    module = name.strip()
                    if not (tests.parent / (module.replace(".", "/") + ".py")).exists():
                        missing.append(f"{path.relative_to(PACKAGE)}: {module}")
        self.assertEqual(missing, [])
