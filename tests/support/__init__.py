"""What the test modules share, so that no test module imports another.

- L{tests.support.daemon}: a real ``twistd vibetunnel`` in a subprocess, and clients for it.
- L{tests.support.streams}: hypothesis strategies for terminal output.
- L{tests.support.fuzz}: hostile-input generators and a blocking wire client
  (also used by ``bench/fuzz_daemon.py``).
"""
