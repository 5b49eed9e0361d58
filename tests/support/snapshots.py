"""Screen snapshots for the tests: a hand-made header, and hypothesis strategies for
cells and whole snapshots (shared by the Python decoder's tests and the browser's)."""

from __future__ import annotations

from hypothesis import strategies as st

from vibetwist.model.snapshot import BLANK, RGB, Cell, Snapshot


def header(count: int, cols: int = 80) -> bytes:
    """
    A snapshot header with C{count} rows, C{cols} columns, viewport and
    cursor at 0 (the layout itself is pinned by L{tests.test_snapshot.HeaderTests}).
    """
    return b"TV\x01\x00" + cols.to_bytes(4, "little") + count.to_bytes(4, "little") + bytes(16)


bytesValues = st.integers(min_value=0, max_value=255)
colours = st.one_of(
    st.none(),
    bytesValues,
    st.builds(RGB, bytesValues, bytesValues, bytesValues),
)
combiningSequences = st.builds(
    lambda base, marks: base + "".join(marks),
    st.characters(categories=("Lu", "Ll", "Lo")),
    st.lists(st.characters(categories=("Mn", "Me")), min_size=1, max_size=4),
)
characters = st.one_of(
    st.just(" "),
    st.characters(max_codepoint=0x7F),
    st.characters(codec="utf-8"),
    combiningSequences,
    st.sampled_from(["中", "é", "🙂", "\U0001f468\u200d\U0001f469\u200d\U0001f467"]),
    # Short strings (the empty one, several ASCII letters) and long ones
    # that cross the 255-byte limit.
    st.text(max_size=3),
    st.text(min_size=64, max_size=150),
)
cells = st.one_of(
    st.just(BLANK),
    st.builds(
        Cell,
        characters,
        colours,
        colours,
        st.integers(min_value=0, max_value=0x7F),
    ),
)
rows = st.lists(cells, max_size=12).map(tuple)
int32s = st.integers(min_value=-(2**31), max_value=2**31 - 1)
snapshots = st.builds(
    Snapshot,
    cols=st.integers(min_value=0, max_value=2**32 - 1),
    rows=st.lists(rows, max_size=8).map(tuple),
    viewport_y=int32s,
    cursor_x=int32s,
    cursor_y=int32s,
)
