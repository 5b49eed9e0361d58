"""Tests for L{vibetwist.model.termsignals}."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from vibetwist.model.termsignals import MAX_STRING, MAX_TITLE, Bell, ShellMark, SignalScanner, Title


def scan(*chunks: str) -> list[object]:
    scanner = SignalScanner()
    found: list[object] = []
    for chunk in chunks:
        found.extend(scanner.feed(chunk))
    return found


# Output made of the pieces the scanner cares about, and plain text between them.
pieces = st.sampled_from(
    [
        "plain text ",
        "\x07",
        "\x1b",
        "\x1b\\",
        "\x1b]0;a title\x07",
        "\x1b]2;other\x1b\\",
        "\x1b]1;icon only\x07",
        "\x1b]133;A\x07",
        "\x1b]133;D;0\x07",
        "\x1b]633;D;127\x1b\\",
        "\x1b]133;D\x07",
        "\x1bP+q\x07\x1b\\",
        "\x1b_apc\x1b\\",
        "\x1b[31m",
        "\x18",
        "\x1b]0;cut",
        "é€😀",
        "\r\n",
    ]
)
outputs = st.lists(pieces, max_size=30).map("".join)


@st.composite
def cuts(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(outputs)
    points = sorted(draw(st.lists(st.integers(0, len(text)), max_size=10)))
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    return text, chunks


class SignalScannerTests(SynchronousTestCase):
    def test_bell(self) -> None:
        """A BEL in text is a bell."""
        self.assertEqual(scan("make: done\x07\r\n"), [Bell()])

    def test_bell_ending_an_osc_is_no_bell(self) -> None:
        """The BEL that ends an OSC string is its terminator, not a bell."""
        self.assertEqual(scan("\x1b]0;build\x07"), [Title("build")])

    def test_bell_inside_other_strings_is_no_bell(self) -> None:
        """A BEL inside a DCS or APC string (which only ST ends) rings nothing."""
        self.assertEqual(scan("\x1bPdata\x07more\x1b\\\x1b_x\x07\x1b\\"), [])

    def test_titles(self) -> None:
        """OSC 0 and OSC 2 set the title, ended by BEL or by ST; OSC 1 (the icon) does not."""
        self.assertEqual(
            scan("\x1b]0;one\x07\x1b]2;two\x1b\\\x1b]1;icon\x07"),
            [Title("one"), Title("two")],
        )

    def test_title_without_controls_and_bounded(self) -> None:
        """A title loses its control characters and is cut to MAX_TITLE characters."""
        self.assertEqual(scan("\x1b]2;a\x01b\x9bc\x07"), [Title("abc")])
        self.assertEqual(scan("\x1b]2;" + "x" * 1000 + "\x07"), [Title("x" * MAX_TITLE)])

    def test_shell_marks(self) -> None:
        """OSC 133 and OSC 633 marks are shell marks; D carries the exit code when given."""
        self.assertEqual(
            scan(
                "\x1b]133;A\x07\x1b]133;B\x07\x1b]133;C\x07\x1b]133;D;2\x07\x1b]633;D\x07\x1b]633;D;0;x\x1b\\"
            ),
            [
                ShellMark("A"),
                ShellMark("B"),
                ShellMark("C"),
                ShellMark("D", 2),
                ShellMark("D"),
                ShellMark("D", 0),
            ],
        )

    def test_odd_codes(self) -> None:
        """A D mark whose code is not a small whole number gives no code."""
        self.assertEqual(
            scan("\x1b]133;D;-1\x07\x1b]133;D;x\x07\x1b]133;D;99999999999\x07"),
            [ShellMark("D"), ShellMark("D"), ShellMark("D")],
        )

    def test_other_osc_is_nothing(self) -> None:
        """OSC strings of other numbers (colours, hyperlinks, clipboard) say nothing."""
        self.assertEqual(scan("\x1b]8;;http://x\x07link\x1b]8;;\x07\x1b]52;c;eA==\x07"), [])

    def test_aborted_strings(self) -> None:
        """CAN aborts a string, and an ESC that is not ST aborts it and starts a new one."""
        self.assertEqual(scan("\x1b]0;lost\x18\x07"), [Bell()])
        self.assertEqual(scan("\x1b]0;lost\x1b]2;kept\x07"), [Title("kept")])

    def test_long_string_passed_over(self) -> None:
        """An OSC string longer than MAX_STRING is passed over whole, and what follows is read."""
        self.assertEqual(scan("\x1b]2;" + "y" * (MAX_STRING + 10) + "\x07\x07"), [Bell()])

    def test_split_anywhere(self) -> None:
        """Sequences cut between chunks, even between ESC and its next character, are found."""
        self.assertEqual(
            scan("\x1b", "]0;t", "i", "tle\x1b", "\\", "\x1b]133;D;", "1\x07"),
            [Title("title"), ShellMark("D", 1)],
        )

    @given(cuts())
    def test_chunking_does_not_matter(self, case: tuple[str, list[str]]) -> None:
        """Whatever the cuts, the signals found are those of the whole text."""
        text, chunks = case
        self.assertEqual(scan(*chunks), scan(text))

    @given(st.text())
    def test_any_text(self, text: str) -> None:
        """Any text is read without error, and a text without BEL or ESC gives nothing."""
        scan(text)
        self.assertEqual(scan(text.replace("\x07", "").replace("\x1b", "")), [])
