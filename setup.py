"""Packaging for vibetwist, a terminal-sharing daemon on Twisted."""

from setuptools import find_packages, setup

setup(
    name="vibetwist",
    version="0.1.0",
    description="Share terminals with any browser: PTY sessions over REST, SSE and WebSockets",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # twisted.plugins must be listed by hand: find_packages() would miss it,
    # and it must ship without an __init__.py of its own.
    packages=[*find_packages(include=["vibetwist", "vibetwist.*"]), "twisted.plugins"],
    # The built browser client (vibetwist/web/dist, made by `npm run build`), when it exists.
    package_data={"twisted.plugins": ["vibetunnel_plugin.py"], "vibetwist": ["web/dist/*"]},
    install_requires=[
        # tls: pyOpenSSL and service_identity for ssl: endpoints.
        "twisted[tls]>=24.3",
        "autobahn[twisted]>=24.4",
        "pyte>=0.8.2",
        "treq>=23.11",
        "klein>=24.8",
        "attrs>=23.1",
        # Login: Ed25519/OpenSSH key checks, signed expiring tokens, Argon2 password hashes.
        "cryptography>=42",
        "pyjwt>=2.8",
        "argon2-cffi>=23.1",
    ],
    extras_require={
        "test": [
            "hypothesis>=6.100",
            "ruff>=0.6",
            "mypy>=1.10",
            "mypy-zope>=1.0",
            "asciinema>=2.4,<3",
            # Drives the system's Chromium in tests/test_browser.py (no browser download).
            "playwright>=1.40",
        ],
    },
    entry_points={"console_scripts": ["vt = vibetwist.vt:main"]},
)
