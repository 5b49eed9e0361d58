"""Small programs the tests run in sessions, as argv lists or ``python -c`` scripts."""

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
