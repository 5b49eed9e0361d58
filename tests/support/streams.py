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
