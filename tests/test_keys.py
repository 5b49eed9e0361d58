"""Tests for L{vibetwist.model.keys}."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.support.keys import EXPECTED
from vibetwist.errors import BadRequest
from vibetwist.model.keys import KEYS, key_sequence


class KeysTests(SynchronousTestCase):
    """
    L{KEYS} holds exactly the named keys of the protocol.
    """

    def test_names(self) -> None:
        """
        L{KEYS} names the 28 keys of the protocol and no others.
        """
        self.assertEqual(sorted(KEYS), sorted(EXPECTED))

    def test_sequences(self) -> None:
        """
        Every key in L{KEYS} maps to the sequence the protocol gives for it.
        """
        for name, sequence in EXPECTED.items():
            with self.subTest(name=name):
                self.assertEqual(KEYS[name].encode("ascii"), sequence)

    def test_read_only(self) -> None:
        """
        L{KEYS} cannot be changed.
        """
        with self.assertRaises(TypeError):
            KEYS["enter"] = "\n"  # type: ignore[index]


class KeySequenceTests(SynchronousTestCase):
    """
    L{key_sequence} turns a key's name into the sequence it types.
    """

    def test_known(self) -> None:
        """
        L{key_sequence} returns each named key's sequence.
        """
        for name, sequence in EXPECTED.items():
            with self.subTest(name=name):
                self.assertEqual(key_sequence(name).encode("ascii"), sequence)

    def test_unknown(self) -> None:
        """
        L{key_sequence} raises L{BadRequest} (HTTP 400) naming an unknown key.
        """
        error = self.assertRaises(BadRequest, key_sequence, "arrow_sideways")
        self.assertEqual(error.message, "Unknown key: arrow_sideways")
        self.assertEqual(error.status, 400)

    def test_case_sensitive(self) -> None:
        """
        Key names are case-sensitive: C{"Enter"} is not a key.
        """
        self.assertRaises(BadRequest, key_sequence, "Enter")

    def test_not_a_string(self) -> None:
        """
        L{key_sequence} raises L{BadRequest} for a name that is not a string,
        including unhashable JSON values.
        """
        for name in [None, 1, ["enter"], {"enter": True}]:
            with self.subTest(name=name):
                error = self.assertRaises(BadRequest, key_sequence, name)
                self.assertEqual(error.message, f"Unknown key: {name}")

    @given(st.text())
    def test_any_text(self, name: str) -> None:
        """
        For any text, L{key_sequence} either returns the sequence in L{KEYS}
        or raises L{BadRequest}.
        """
        if name in EXPECTED:
            self.assertEqual(key_sequence(name), KEYS[name])
        else:
            self.assertRaises(BadRequest, key_sequence, name)
