"""Admission tokens: the Python signer and the committed vectors the edge gate is tested with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.admission import tokens
from functions.admission.tokens import sign, verify
from tests.edge.vectors import KEY_HEX, KEY_ID, NOW, ROOM, vectors

VECTORS_FILE = Path(__file__).resolve().parent.parent / "edge" / "vectors.json"


def test_committed_vectors_match_the_signer() -> None:
    """Regenerate with: python -m tests.edge.vectors > tests/edge/vectors.json"""
    assert json.loads(VECTORS_FILE.read_text()) == vectors()


def test_python_accepts_exactly_the_valid_vectors() -> None:
    data = vectors()
    keys = data["keys"]
    assert isinstance(keys, dict) and isinstance(data["valid"], list)
    assert [verify(t, ROOM, NOW, keys) for t in data["valid"]] == ["visitor-1", "visitor-2"]
    invalid = data["invalid"]
    assert isinstance(invalid, dict)
    for why, token in invalid.items():
        assert verify(token, ROOM, NOW, keys) is None, why


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("room", "a.b"),
        ("visitor", ""),
        ("kid", "k 1"),
        ("visitor", "x" * 65),
        ("visitor", "abc\n"),
        ("kid", "k1\n"),
    ],
)
def test_ids_that_could_forge_the_separator_are_refused(field: str, value: str) -> None:
    ids = {"room": ROOM, "visitor": "v", "kid": KEY_ID} | {field: value}
    with pytest.raises(ValueError, match=f"{field} .* must be 1-64 characters"):
        sign(ids["room"], ids["visitor"], NOW + 60, ids["kid"], KEY_HEX)


@given(position=st.integers(min_value=0, max_value=200), char=st.sampled_from("0a.Zv-"))
def test_any_single_character_change_is_rejected(position: int, char: str) -> None:
    token = sign(ROOM, "visitor-1", NOW + 600, KEY_ID, KEY_HEX)
    position %= len(token)
    changed = token[:position] + char + token[position + 1 :]
    if changed != token:
        assert verify(changed, ROOM, NOW, {KEY_ID: KEY_HEX}) is None


def test_a_token_is_refused_from_its_expiry_second_on() -> None:
    """Catches `<` for `<=` on the expiry: a token stamped to expire at second E verifies at
    E - 1 and not at E (the same instant the room stops answering with it)."""
    token = sign(ROOM, "visitor-1", NOW + 60, KEY_ID, KEY_HEX)
    assert verify(token, ROOM, NOW + 59, {KEY_ID: KEY_HEX}) == "visitor-1"
    assert verify(token, ROOM, NOW + 60, {KEY_ID: KEY_HEX}) is None


def test_the_session_the_gate_stamps_reads_back_and_any_change_is_refused() -> None:
    """The join reads the gate's sessions (room.Room.carry): the committed vector is the gate's
    own stamp (tests/edge/session.test.mjs asserts the gate writes exactly these bytes)."""
    stamped = vectors()["stamped"]
    assert isinstance(stamped, str)
    network = tokens.network_id(ROOM, "198.51.100.11")
    keys = {KEY_ID: KEY_HEX}
    assert tokens.read_session(stamped, ROOM, NOW, keys) == (network, NOW)
    assert tokens.read_session(stamped, ROOM, NOW + 1_200, keys) is None, "from its expiry on"
    assert tokens.read_session(stamped, "other-room", NOW, keys) is None
    assert tokens.read_session(stamped, ROOM, NOW, {KEY_ID: "cd" * 32}) is None
    for i, char in enumerate(stamped):
        changed = stamped[:i] + ("0" if char != "0" else "1") + stamped[i + 1 :]
        assert tokens.read_session(changed, ROOM, NOW, keys) is None, i
