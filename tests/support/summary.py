"""Turns trial's closing line into ``tests: N passed, N failed`` (what CI reads).

Usage: ``python -m tests.support.summary TRIAL_OUTPUT_FILE`` (from the checkout, as
``./dev test`` runs it); exits 1 unless trial passed and ran at least one test. A test
tool, so it lives with the tests rather than in the vibetwist package.
"""

from __future__ import annotations

import re
import sys

_CLOSING = re.compile(r"^(PASSED|FAILED) \((.*)\)\s*$")


def summarize(output: str) -> tuple[int, int, int, bool]:
    """(passed, failed, skipped, ok) from trial's output."""
    for line in reversed(output.splitlines()):
        match = _CLOSING.match(line.strip())
        if match is None:
            continue
        counts = dict.fromkeys(
            ("successes", "failures", "errors", "skips", "expectedFailures", "unexpectedSuccesses"), 0
        )
        for part in match.group(2).split(","):
            name, _, value = part.strip().partition("=")
            if name in counts and value.isdigit():
                counts[name] = int(value)
        failed = counts["failures"] + counts["errors"] + counts["unexpectedSuccesses"]
        passed = counts["successes"] + counts["expectedFailures"]
        return passed, failed, counts["skips"], match.group(1) == "PASSED" and passed > 0
    return 0, 1, 0, False


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8", errors="replace") as f:
        passed, failed, skipped, ok = summarize(f.read())
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
