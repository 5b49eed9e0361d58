"""Small programs the tests run in sessions, as argv lists or ``python -c`` scripts."""

from __future__ import annotations

from typing import Any

#: A program that reads its terminal raw and prints each read as hex until it reads "!".
HEX_ECHO = (
    "import os, tty\n"
    "tty.setraw(0)\n"
    "os.write(1, b'READY\\r\\n')\n"
    "while True:\n"
    "    d = os.read(0, 4096)\n"
    "    os.write(1, b'<' + d.hex().encode() + b'>\\r\\n')\n"
    "    if not d or b'!' in d:\n"
    "        break\n"
)

#: A program that reads its terminal raw and throws the input away.
SINK = ["sh", "-c", "stty raw -echo; cat > /dev/null"]


def counter(interval: float = 0.003, python: str = "python3") -> list[str]:
    """A program that counts, one number a line ("n1", "n2", ...), a line every interval seconds."""
    return [
        python,
        "-c",
        "import sys, time\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    sys.stdout.write(f'n{i}\\n')\n"
        "    sys.stdout.flush()\n"
        f"    time.sleep({interval})\n",
    ]


#: A program that counts, one number a line, a few hundred lines a second.
COUNTER = counter()


def counted(text: str) -> list[int]:
    """The numbers of COUNTER's whole lines in text (a line still being written is left out)."""
    lines = text.split("\r\n")[:-1]
    return [int(line[1:]) for line in lines]


#: Lines of FLOOD: 100 bytes each, numbered from 0.
FLOOD_LINES = 200_000


def flood(mb_per_second: float) -> list[str]:
    """A program that writes 20 MB (FLOOD_LINES numbered lines) at about mb_per_second."""
    return [
        "python3",
        "-c",
        "import sys, time\n"
        "out = sys.stdout.buffer\n"
        "start = time.monotonic()\n"
        f"for block in range({FLOOD_LINES // 100}):\n"
        "    out.write(b''.join(b'%08d ' % (block * 100 + j) + b'x' * 90 + b'\\n' for j in range(100)))\n"
        "    out.flush()\n"
        f"    ahead = (block + 1) * 10000 / {mb_per_second * 1e6} - (time.monotonic() - start)\n"
        "    if ahead > 0:\n"
        "        time.sleep(ahead)\n",
    ]


def flooded(text: str) -> list[int]:
    """The numbers of FLOOD's whole lines in text."""
    return [int(line[:8]) for line in text.split("\r\n")[:-1]]


def last_count(screen: str) -> int:
    """The largest COUNTER number a screen's text shows (0 for none)."""
    return max(
        (int(word[1:]) for word in screen.split() if word[:1] == "n" and word[1:].isdigit()), default=0
    )


async def count_past(client: Any, session_id: str, number: int, timeout: float = 10.0) -> int:
    """Wait until COUNTER's screen shows a number past number; the largest it shows then."""
    from twisted.internet import reactor

    from tests.support.daemon import poll

    async def shown() -> int:
        last = last_count(await client.text(session_id))
        return last if last > number else 0

    return int(await poll(reactor, shown, timeout, what=f"the counter past {number}"))
