"""Drive a Python REPL in a session of a running vibetwist daemon, as a script or an agent would.

    python examples/repl.py [--url http://127.0.0.1:4020] [EXPRESSION...]

It starts ``python3 -q`` in a new session, waits for its prompt, types each
expression (``6 * 7`` by default), waits for the next prompt and prints what
the REPL answered, then types ``exit()`` and waits for the program to end.
Each wait looks only at the output after the previous one (``after``), so an
old prompt never answers for a new one. No reactor is needed: the synchronous
client runs it in a thread of its own.
"""

from __future__ import annotations

import argparse
import re
import sys

from vibetwist.client import SyncClient

PROMPT = r"(?m)^>>> "


def evaluate(client: SyncClient, session_id: str, expression: str, after: int) -> tuple[str, int]:
    """Type an expression, and read what the REPL prints until its next prompt."""
    client.send_text(session_id, expression + "\r")
    # The echo of the line, the answer, the next prompt: all of it in one match.
    result = client.wait(
        session_id, rf"{re.escape(expression)}\r?\n(?P<out>(?s:.*?))\r?\n>>> ", on="output", after=after
    )
    if not result.matched or result.offset is None:
        raise SystemExit(f"no prompt after {expression!r}")
    answer = re.search(rf"{re.escape(expression)}\r?\n((?s:.*?))\r?\n>>> ", result.text)
    return (answer.group(1) if answer else ""), result.offset


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:4020")
    parser.add_argument("expressions", nargs="*", default=["6 * 7"])
    args = parser.parse_args()
    client = SyncClient(args.url)
    session_id = client.create(["python3", "-q"], name="repl example")
    prompt = client.wait(session_id, PROMPT, on="output", after=0, timeout=20)
    if not prompt.matched or prompt.offset is None:
        print("the REPL did not start", file=sys.stderr)
        return 1
    offset = prompt.offset
    for expression in args.expressions:
        answer, offset = evaluate(client, session_id, expression, offset)
        print(f"{expression} -> {answer}")
    client.send_text(session_id, "exit()\r")
    end = client.wait(session_id, r"(?!)", on="output", after=offset, timeout=10)
    print(f"the REPL ended with exit code {end.exit_code}")
    return 0 if end.exited and end.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
