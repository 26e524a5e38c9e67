"""`is_placeholder` answers as its plain definition does, with fewer steps on credentials."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.patterns.validators import _PLACEHOLDER_SHAPE, _PLACEHOLDERS, is_placeholder


def _reference(value: str) -> bool:
    """The definition: a placeholder word, or wholly one of the placeholder shapes."""
    stripped = value.strip().strip("\"'")
    return stripped.lower() in _PLACEHOLDERS or _PLACEHOLDER_SHAPE.fullmatch(stripped) is not None


# Pieces the shapes and words are made of, so generated values often are placeholders
# (mixed case, quotes and spaces around, Unicode whose lower case is longer).
_PIECES = st.sampled_from(
    [
        "<",
        ">",
        "{",
        "}",
        "$",
        "%",
        "(",
        ")",
        "s",
        "S",
        "[",
        "]",
        "*",
        "x",
        "X",
        "\u2022",
        "#",
        ".",
        "_",
        "-",
        "token",
        "REDACTED",
        "filtered",
        "Null",
        "n/a",
        "\u0130",
        "\u017f",
        '"',
        "'",
        " ",
        "\t",
        "eyJhbGciOi",
        "8f3kQ9zLr2",
    ]
)
_VALUES = st.one_of(
    st.text(max_size=40),
    st.lists(_PIECES, max_size=8).map("".join),
    st.sampled_from(sorted(_PLACEHOLDERS)).map(str.upper),
)


@settings(max_examples=500, deadline=None)
@given(value=_VALUES)
def test_is_placeholder_agrees_with_its_definition(value: str) -> None:
    assert is_placeholder(value) == _reference(value)
