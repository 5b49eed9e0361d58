"""vibetwist as its users install it: built from a copy of this checkout as an sdist and a
wheel, and installed into fresh virtual environments outside the checkout.

Nothing is downloaded. The builds run ``python -m build`` with this virtualenv's
setuptools and no build isolation, and the browser client's build uses the checkout's
``node_modules`` (linked, not copied). A fresh environment sees this virtualenv's
installed packages, vibetwist's dependencies, through a folder of symbolic links that
leaves vibetwist itself out (L{dependency_view}); pip still checks that each dependency
is there. Every command runs as a process on the reactor, never blocking it.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import attrs
from twisted.internet.utils import getProcessOutputAndValue

from tests.support.daemon import CHECKOUT, TWISTD

#: What a copy of the checkout leaves out: builds, caches, virtualenvs, test folders.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "dist",
    "build",
    "*.egg-info",
    "_trial_temp*",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "dropin.cache",
    "results",
)
#: Entries of site-packages that are vibetwist's own (twisted/ is linked file by file).
NOT_DEPENDENCIES = ("vibetwist", "__editable__", "__pycache__")


@attrs.frozen
class Result:
    """What a command printed and its exit code."""

    out: str
    code: int

    def check(self, what: str) -> Result:
        if self.code != 0:
            raise AssertionError(f"{what} exited with {self.code}:\n{self.out[-6000:]}")
        return self


def environment(path: Sequence[str] | None = None, home: Path | None = None) -> dict[str, str]:
    """A small environment for a command: PATH (by default this process's), a HOME of
    its own, a UTF-8 locale, pip quiet about its version."""
    return {
        "PATH": os.pathsep.join(path) if path is not None else os.environ.get("PATH", os.defpath),
        "HOME": str(home or tempfile.gettempdir()),
        "LANG": "C.UTF-8",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }


async def run(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> Result:
    """Run argv in cwd; its output (stdout and stderr) and exit code."""
    out, err, code = await getProcessOutputAndValue(argv[0], list(argv[1:]), env=env, path=str(cwd))
    return Result((out + err).decode("utf-8", "replace"), code)


def copy_checkout(into: Path) -> Path:
    """A copy of the checkout's sources in into (a source tree as a user's checkout is),
    with the checkout's installed npm packages linked in when there are some."""
    shutil.copytree(CHECKOUT, into, ignore=NOT_COPIED, symlinks=True)
    modules = Path(CHECKOUT, "vibetwist", "web", "node_modules")
    if modules.is_dir():
        (into / "vibetwist" / "web" / "node_modules").symlink_to(modules)
        # npm ci is run when package-lock.json is newer than the installed packages.
        lock = Path(CHECKOUT, "vibetwist", "web", "package-lock.json").stat()
        os.utime(into / "vibetwist" / "web" / "package-lock.json", ns=(lock.st_atime_ns, lock.st_mtime_ns))
    return into


def _link_all(source: Path, into: Path, skip: Sequence[str], folders: Sequence[str] = ()) -> None:
    """Link every entry of source into into, but those whose names start with one of skip,
    .pth files (which only site-packages reads), and folders (made by the caller)."""
    into.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        name = entry.name
        if not name.startswith(tuple(skip)) and not name.endswith(".pth") and name not in folders:
            (into / name).symlink_to(entry)


def dependency_view(into: Path) -> Path:
    """A folder of links to this virtualenv's installed packages without vibetwist: no
    vibetwist package, no editable-install hook, no vibetwist plugin among Twisted's."""
    site = Path(sysconfig.get_path("purelib"))
    _link_all(site, into, NOT_DEPENDENCIES, folders=["twisted"])
    _link_all(site / "twisted", into / "twisted", ("__pycache__",), folders=["plugins"])
    _link_all(
        site / "twisted" / "plugins",
        into / "twisted" / "plugins",
        ("vibetunnel_plugin", "dropin.cache", "__pycache__"),
    )
    return into


@attrs.frozen
class FreshEnv:
    """A new virtual environment (without pip: this one's pip installs into it)."""

    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python*/site-packages"))

    async def pip(self, *args: str, cwd: Path, env: dict[str, str]) -> Result:
        """This virtualenv's pip, installing into the fresh environment."""
        argv = [sys.executable, "-m", "pip", "--python", self.python, *args]
        return await run(argv, cwd, env)

    async def twistd(self, *args: str, cwd: Path, env: dict[str, str]) -> Result:
        """``twistd ARGS`` run by the fresh environment's Python."""
        return await run([self.python, "-c", TWISTD, *args], cwd, env)


async def fresh_env(root: Path, dependencies: Path, env: dict[str, str]) -> FreshEnv:
    """A fresh virtual environment at root that sees the packages of dependencies."""
    (await run([sys.executable, "-m", "venv", "--without-pip", str(root)], root.parent, env)).check("venv")
    venv = FreshEnv(root)
    (venv.site_packages / "vibetwist-test-dependencies.pth").write_text(f"{dependencies}\n")
    return venv


def sdist_names(path: Path) -> set[str]:
    """The files of an sdist, without its top folder."""
    with tarfile.open(path) as archive:
        return {name.partition("/")[2] for name in archive.getnames()}


def wheel_names(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


@attrs.frozen
class Built:
    """A copy of the checkout and what ``python -m build`` made of it."""

    base: Path
    source: Path
    sdist: Path
    wheel: Path
    dependencies: Path

    def env(self, path: Sequence[str] | None = None) -> dict[str, str]:
        home = self.base / "home"
        home.mkdir(exist_ok=True)
        return environment(path, home)

    async def build_wheel(self, source: Path, out: Path, env: dict[str, str]) -> Result:
        """``python -m build --wheel`` of source into out, without build isolation."""
        argv = [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", str(out), str(source)]
        return await run(argv, self.base, env)

    def no_npm_path(self) -> list[str]:
        """A PATH with no npm on it (and nothing else: every command is run by full path)."""
        empty = self.base / "empty-bin"
        empty.mkdir(exist_ok=True)
        return [str(empty)]


#: The packages built in this test process, made by the first test that asks.
_built: dict[str, Built] = {}


async def built() -> Built:
    """The checkout built once per test process: a copy of it, its sdist and wheel."""
    if "built" not in _built:
        base = Path(tempfile.mkdtemp(prefix="packaging-", dir=os.getcwd()))
        source = copy_checkout(base / "source")
        out = base / "out"
        home = base / "home"
        home.mkdir()
        result = await run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
            base,
            environment(home=home),
        )
        result.check("python -m build")
        _built["built"] = Built(
            base=base,
            source=source,
            sdist=next(out.glob("vibetwist-*.tar.gz")),
            wheel=next(out.glob("vibetwist-*.whl")),
            dependencies=dependency_view(base / "dependencies"),
        )
    return _built["built"]
