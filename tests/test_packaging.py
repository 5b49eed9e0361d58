"""vibetwist installed as users install it: ``python -m build``, ``pip install`` of the
wheel into a fresh virtual environment outside the checkout, ``twistd vibetunnel`` from
it serving the browser client to Chromium, and a plain ``pip install -e .``.

The checkout is copied and built once per test process (see L{tests.support.packaging});
nothing is downloaded.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial import unittest

from tests.support.browser import Browser
from tests.support.daemon import Client, Daemon
from tests.support.packaging import built, fresh_env, run, sdist_names, wheel_names

#: The built browser client, as vibetwist/web/dist holds it.
CLIENT = tuple(
    f"vibetwist/web/dist/{name}"
    for name in (
        "index.html",
        "app.js",
        "app.css",
        "sw.js",
        "manifest.webmanifest",
        "icon-192.png",
        "icon.svg",
    )
)
PLUGIN = "twisted/plugins/vibetunnel_plugin.py"


class PackageTests(unittest.TestCase):
    """The sdist and the wheel, and installs from them."""

    timeout = 240

    async def test_sdist_carries_client_and_sources(self) -> None:
        """The sdist holds the built browser client and the client's sources (to build it
        again), but no npm packages and no tests."""
        names = sdist_names((await built()).sdist)
        for name in [*CLIENT, "vibetwist/web/src/main.js", "vibetwist/web/src/snapshot.js"]:
            self.assertIn(name, names)
        for name in [
            "package.json",
            "package-lock.json",
            "build.mjs",
            "icons.mjs",
            "manifest.webmanifest",
            "index.html",
        ]:
            self.assertIn(f"vibetwist/web/{name}", names)
        self.assertIn(PLUGIN, names)
        self.assertEqual([n for n in names if "node_modules" in n or n.startswith("tests/")], [])

    async def test_wheel_carries_client_and_plugin(self) -> None:
        """The wheel holds the built browser client and the twistd plugin (with no
        __init__.py of its own in twisted/ or twisted/plugins/), and not the client's
        sources."""
        names = wheel_names((await built()).wheel)
        for name in [*CLIENT, PLUGIN, "vibetwist/tap.py", "vibetwist/server/static.py"]:
            self.assertIn(name, names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertEqual([n for n in names if n.startswith("vibetwist/web/src/")], [])

    async def test_sdist_builds_without_npm(self) -> None:
        """A wheel is built from the sdist with no npm anywhere on PATH: the sdist's built
        client goes into it."""
        packages = await built()
        folder = Path(tempfile.mkdtemp(dir=packages.base))
        with tarfile.open(packages.sdist) as archive:
            # The "data" filter where this Python has it (3.11.4 and later).
            archive.extractall(folder, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        [source] = folder.iterdir()
        result = await packages.build_wheel(source, folder / "out", packages.env(packages.no_npm_path()))
        result.check("a wheel from the sdist without npm")
        [wheel] = (folder / "out").glob("*.whl")
        self.assertLessEqual(set(CLIENT), wheel_names(wheel))

    async def test_source_tree_without_npm_fails(self) -> None:
        """Building from a source tree without npm fails and says what to install, rather
        than making a package whose / would answer 503."""
        packages = await built()
        out = Path(tempfile.mkdtemp(dir=packages.base))
        result = await packages.build_wheel(packages.source, out, packages.env(packages.no_npm_path()))
        self.assertNotEqual(result.code, 0, result.out)
        self.assertIn("npm is not on PATH", result.out)
        self.assertIn("apt-get install nodejs npm", result.out)
        self.assertEqual(list(out.glob("*.whl")), [])

    async def test_wheel_serves_the_client(self) -> None:
        """``pip install`` of the wheel into a fresh virtual environment outside the checkout
        gives a ``twistd vibetunnel`` (and a ``vt``) whose / loads in Chromium with its
        script and styles, and lists a session with its live preview."""
        packages = await built()
        env = packages.env()
        venv = await fresh_env(packages.base / "wheel-env", packages.dependencies, env)
        (await venv.pip("install", "--no-index", str(packages.wheel), cwd=packages.base, env=env)).check(
            "pip install of the wheel"
        )
        self.assertTrue((venv.root / "bin" / "vt").exists())
        where = await run(
            [venv.python, "-c", "import vibetwist.server.static as s; print(s.WEB_DIST)"], packages.base, env
        )
        self.assertTrue(where.check("import").out.strip().startswith(str(venv.site_packages)), where.out)

        daemon = Daemon(reactor, Path(tempfile.mkdtemp(dir=packages.base)), python=venv.python)
        await daemon.start()
        self.addCleanup(lambda: defer.ensureDeferred(daemon.stop()))
        self.assertIn(venv.python, daemon.log())
        client = Client(reactor, daemon)
        self.addCleanup(lambda: defer.ensureDeferred(client.close()))
        session_id = await client.create(["sh", "-c", "echo packaged-$((6*7)); exec cat"])
        await client.wait_text(session_id, "packaged-42")

        browser = Browser()
        self.addCleanup(lambda: defer.ensureDeferred(browser.close()))
        await browser.start()
        page = await browser.page(daemon.url("/"))

        def look() -> tuple[str, int, list[str]]:
            page.wait_for_function(
                "(id) => /packaged-42/.test(document.querySelector(`li.session[data-id='${id}'] .preview`)"
                "?.textContent ?? '')",
                arg=session_id,
            )
            rules = page.evaluate(
                "() => [...document.styleSheets].filter((s) => s.href?.endsWith('/static/app.css'))"
                ".reduce((n, s) => n + s.cssRules.length, 0)"
            )
            return page.title(), rules, list(page.errors)

        title, rules, errors = await browser.run(look)
        self.assertEqual(title, "vibetwist")
        self.assertGreater(rules, 10)
        self.assertEqual(errors, [])

    async def test_pip_install_of_a_source_tree(self) -> None:
        """``pip install`` of a source tree (a checkout, not editable) builds the client into
        the installed package, and twistd finds the plugin outside the tree."""
        packages = await built()
        env = packages.env()
        venv = await fresh_env(packages.base / "tree-env", packages.dependencies, env)
        install = await venv.pip(
            "install", "--no-index", "--no-build-isolation", str(packages.source), cwd=packages.base, env=env
        )
        install.check("pip install of the source tree")
        for name in [*CLIENT, PLUGIN]:
            self.assertTrue((venv.site_packages / name).is_file(), name)
        outside = Path(tempfile.mkdtemp(dir=packages.base))
        result = (await venv.twistd("vibetunnel", "--help", cwd=outside, env=env)).check(
            "twistd vibetunnel --help"
        )
        self.assertIn("--metrics-listen", result.out)

    async def test_editable_install_finds_the_plugin(self) -> None:
        """After a plain ``pip install -e`` of a source tree (no compat mode), twistd finds
        the vibetunnel plugin, run outside the tree, and vibetwist is imported from the tree."""
        packages = await built()
        env = packages.env()
        venv = await fresh_env(packages.base / "editable-env", packages.dependencies, env)
        (
            await venv.pip(
                "install",
                "--no-index",
                "--no-build-isolation",
                "-e",
                str(packages.source),
                cwd=packages.base,
                env=env,
            )
        ).check("pip install -e")
        outside = Path(tempfile.mkdtemp(dir=packages.base))
        result = (await venv.twistd("vibetunnel", "--help", cwd=outside, env=env)).check(
            "twistd vibetunnel --help"
        )
        self.assertIn("--listen", result.out)
        where = await run([venv.python, "-c", "import vibetwist; print(vibetwist.__file__)"], outside, env)
        self.assertTrue(where.check("import").out.strip().startswith(str(packages.source)), where.out)
