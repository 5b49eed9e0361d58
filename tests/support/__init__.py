"""What the test modules share, so that no test module imports another (tests/test_suite.py
checks it): one module per idea.

- L{tests.support.daemon}: a real ``twistd vibetunnel`` in a subprocess, and clients for it.
- L{tests.support.e2e}: L{DaemonTestCase<tests.support.e2e.DaemonTestCase>}, a trial test
  case with a real daemon shared by its class, and a reader of recording files.
- L{tests.support.login}: the same with login on, and logging in.
- L{tests.support.api}: the REST API in memory, on a clock, with a fake launcher.
- L{tests.support.sessions}: one session in memory, with a fake launcher.
- L{tests.support.sockets}: the daemon's WebSockets in memory.
- L{tests.support.resources}: stand-in web resources.
- L{tests.support.credentials}: a cheap password hasher, SSH keys as clients use them.
- L{tests.support.tls}: a certificate made for a test.
- L{tests.support.keys}: the named keys and the bytes each must type, written out.
- L{tests.support.programs}: small programs the tests run in sessions.
- L{tests.support.snapshots}: a snapshot header and hypothesis strategies for snapshots.
- L{tests.support.streams}: hypothesis strategies for terminal output, and a grammar of what
  programs send.
- L{tests.support.xterm}: xterm.js's headless build in Node as a reference terminal
  (``tests/xterm_screen.mjs``), and the model's screen in the same form.
- L{tests.support.fuzz}: hostile-input generators and a blocking wire client
  (also used by ``bench/fuzz_daemon.py``).
- L{tests.support.asciinema}: a real asciinema playing a recording.
- L{tests.support.browser}: Debian's Chromium through Playwright.
- L{tests.support.packaging}: vibetwist built as an sdist and a wheel, installed into
  fresh virtual environments.
- L{tests.support.summary}: trial's closing line as CI's ``tests: N passed, ...`` line
  (``python -m tests.support.summary LOG``, run by ``./dev test``).
"""
