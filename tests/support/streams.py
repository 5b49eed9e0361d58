"""Hypothesis strategies for terminal output: printed, controls, escape sequences, scrolling lines."""

from __future__ import annotations

from hypothesis import strategies as st


def csi(final: str, *params: int) -> str:
    """A CSI sequence with numeric parameters."""
    return "\x1b[" + ";".join(map(str, params)) + final


counts = st.integers(0, 6)
sgr_param = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 21, 22, 23, 24, 25, 27, 28, 29, 39, 49]),
    st.integers(30, 37),
    st.integers(40, 47),
    st.integers(90, 97),
    st.integers(100, 107),
    st.builds("{};5;{}".format, st.sampled_from([38, 48]), st.integers(0, 300)),
    st.builds("{};2;{};{};{}".format, st.sampled_from([38, 48]), *[st.integers(0, 300)] * 3),
    st.sampled_from(["38", "38;5", "48;2;1"]),
)
sgr = st.lists(sgr_param, max_size=4).map(lambda ps: "\x1b[" + ";".join(map(str, ps)) + "m")
escapes = st.one_of(
    sgr,
    st.builds(csi, st.sampled_from("ABCDEFGLMPX@deag`"), counts),
    st.builds(lambda f: "\x1b[" + f, st.sampled_from("ABCDHJKLMPX@fdrm")),
    st.builds(csi, st.sampled_from("Hf"), st.integers(0, 12), st.integers(0, 30)),
    st.builds(csi, st.just("J"), st.integers(0, 3)),
    st.builds(csi, st.just("K"), st.integers(0, 2)),
    st.builds(csi, st.just("r"), st.integers(0, 12), st.integers(0, 12)),
    st.builds(
        lambda ms, on: "\x1b[?" + ";".join(map(str, ms)) + ("h" if on else "l"),
        st.lists(st.sampled_from([1, 3, 5, 7, 25, 1049, 2004]), min_size=1, max_size=2),
        st.booleans(),
    ),
    st.builds(lambda m, on: f"\x1b[{m}" + ("h" if on else "l"), st.sampled_from([4, 20]), st.booleans()),
    st.sampled_from(
        "\x1b7 \x1b8 \x1bD \x1bE \x1bM \x1bH \x1bc \x1b#8 \x1b(B \x1b(0 \x1b]0;title\x07 \x1b]2;t\x1b\\ "
        "\x9b1m \x1b[6n \x1b[c \x1b[>c \x1b[3g \x1b[1;2\x08H \x1bZ".split(" ")
    ),
)
printed = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30),
    st.sampled_from(["中", "日本語", "😀", "e\u0301", "\u0301", "é", "ß"]),
    st.sampled_from(["\u200d", "\ufe0f", "\u200b", "a\u200db"]),
    st.sampled_from(["\r", "\n", "\r\n", "\x08", "\t", "\x07", "\x0b", "\x0c"]),
    st.sampled_from(["\x0e", "\x0f", "\x01", "\x85", "\x00", "\x7f"]),
    st.text(max_size=4),
)
segment = st.one_of(
    st.lists(st.one_of(printed, escapes), min_size=1, max_size=40).map("".join),
    st.tuples(st.just("resize"), st.integers(1, 30), st.integers(1, 10)),
)


scrolling_lines = st.lists(
    st.lists(
        st.one_of(
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=14),
            st.sampled_from(
                ["中", "e\u0301", "\t", "\x08", "\u200d", "\x1b[38:2::1:2:3m", "\x1b[K", "\x1b[1K"]
            ),
            sgr,
        ),
        max_size=4,
    ).map("".join),
    max_size=40,
).map("\r\n".join)


# What programs really send, as a grammar for comparing the screen with a reference terminal
# (tests/test_differential.py).  Widths the model and xterm.js agree on: no emoji (one cell in
# xterm.js's Unicode 6 tables, two in wcwidth's); characters of no width only right after the
# character they join (after a control, xterm.js gives them a cell of their own).
n = st.integers(0, 12)
program_text = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=12),
    st.sampled_from(["中", "日本語", "表", "e\u0301", "é", "ß", "a\u200db", "x\ufe0f", "中\u0301"]),
    st.sampled_from(["\u1100\u1161\u11a8", "\u1100\u1161", "\u1100", "한"]),
)
program_controls = st.sampled_from(["\r", "\n", "\r\n", "\x08", "\t", "\x07", "\x0b", "\x0c", "\x0e", "\x0f"])
program_sgr = st.lists(
    st.one_of(
        st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 9, 22, 23, 24, 25, 27, 28, 29, 39, 49]),
        st.integers(30, 37),
        st.integers(40, 47),
        st.integers(90, 97),
        st.integers(100, 107),
        st.builds("{};5;{}".format, st.sampled_from([38, 48]), st.integers(0, 255)),
        st.builds("{};2;{};{};{}".format, st.sampled_from([38, 48]), *[st.integers(0, 255)] * 3),
    ),
    max_size=3,
).map(lambda ps: "\x1b[" + ";".join(map(str, ps)) + "m")
program_moves = st.one_of(
    st.builds(csi, st.sampled_from("ABCDEFGIZ`ade"), n),
    st.builds(lambda f: "\x1b[" + f, st.sampled_from("ABCDEFGHIZ`adef")),
    st.builds(csi, st.sampled_from("Hf"), st.integers(0, 10), st.integers(0, 25)),
    st.sampled_from(["\x1bD", "\x1bM", "\x1bE", "\x1bH", "\x1b[g", "\x1b[0g", "\x1b[3g", "\x84", "\x85"]),
)
program_edits = st.one_of(
    st.builds(csi, st.just("J"), st.integers(0, 3)),
    st.builds(csi, st.just("K"), st.integers(0, 2)),
    st.builds(lambda p, f: f"\x1b[?{p}{f}", st.integers(0, 2), st.sampled_from("JK")),
    st.builds(csi, st.sampled_from("@PXLMST"), n),
    st.builds(csi, st.just("r"), st.integers(0, 10), st.integers(0, 10)),
    st.just("\x1b[r"),
    st.just("\x1b#8"),
)
program_modes = st.one_of(
    st.builds(
        lambda m, on: f"\x1b[?{m}" + ("h" if on else "l"),
        st.sampled_from([1, 3, 7, 12, 25, 47, 1000, 1006, 1047, 2004]),
        st.booleans(),
    ),
    st.builds(lambda on: "\x1b[4" + ("h" if on else "l"), st.booleans()),
    st.sampled_from(["\x1b(0", "\x1b(B", "\x1b)0", "\x1b)B", "\x1b(A", "\x1b=", "\x1b>", "\x1bc", "\x1b[!p"]),
)
program_strings = st.sampled_from(
    [
        "\x1bP1$r\x1b\\",
        "\x1bP+q544e\x1b\\",
        "\x1bPq#0;2;0;0;0#0~~\x1b\\",
        "\x1b]0;title\x07",
        "\x1b]2;title\x1b\\",
        "\x1b_apc\x1b\\",
        "\x1b^pm\x1b\\",
        "\x1bXsos\x1b\\",
        "\x1b[!p",
        '\x1b[62;1"p',
        '\x1b[1"q\x1b[0"q',
        "\x1b[#{",
        "\x1b[#}",
        "\x1b[2 q",
        "\x1b[>4;2m",
        "\x1b[>c",
        "\x1b[=c",
        "\x1b[?1$p",
        "\x1b[c",
        "\x1b[6n",
        "\x1b[?u",
        "\x1b[>1u",
        "\x1b[18t",
    ]
)
#: Text followed at once by REP.
program_repeats = st.builds(lambda text, count: text + f"\x1b[{count}b", program_text, n)
#: Absolute moves and text in origin mode (xterm.js moves the cursor wrongly on relative moves there).
program_origin = st.builds(
    lambda moves: "\x1b[?6h" + "".join(moves) + "\x1b[?6l",
    st.lists(
        st.one_of(
            st.builds(csi, st.sampled_from("Hf"), st.integers(0, 10), st.integers(0, 25)),
            st.builds(csi, st.just("d"), n),
            program_text,
            st.sampled_from(["\r", "\n", "\r\n"]),
        ),
        max_size=6,
    ),
)
#: DECSC and DECRC, SCOSC and SCORC, and the alternate screen that saves and restores the cursor.
program_saves = st.sampled_from(["\x1b7", "\x1b8", "\x1b[s", "\x1b[u", "\x1b[?1049h", "\x1b[?1049l"])


def program_output(saves: bool) -> st.SearchStrategy[str]:
    """Output of full-screen programs and shells, as a string of pieces; with or without
    saving and restoring the cursor."""
    pieces = [
        program_text,
        program_text,
        program_controls,
        program_sgr,
        program_moves,
        program_edits,
        program_modes,
        program_strings,
        program_repeats,
        program_origin,
    ]
    if saves:
        pieces.append(program_saves)
    return st.lists(st.one_of(*pieces), min_size=1, max_size=60).map("".join)
