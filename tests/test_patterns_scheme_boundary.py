"""The ``Bearer``/``Basic`` rules check the word boundary after the scheme word.

A lookbehind placed after the word lets ``re`` skip ahead to the word instead of trying
every position; it must accept exactly what the boundary before the word accepted.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from auditor.patterns.rules import _SCHEME_SEP, BASIC_RE, BEARER_RE

BEFORE_WORD = {
    BEARER_RE: re.compile(
        r"(?<![A-Za-z0-9_-])(?i:bearer)" + _SCHEME_SEP + r"(?P<cred>[A-Za-z0-9._~+/-]{1,4096}+=*+)"
    ),
    BASIC_RE: re.compile(
        r"(?<![A-Za-z0-9_-])(?i:basic)"
        + _SCHEME_SEP
        + r"(?P<cred>[A-Za-z0-9+/]{6,4096}+={0,2}+)(?![A-Za-z0-9+/=_-])"
    ),
}

# Scheme words in any case, glued to word characters or not, with every separator.
_PIECES = st.sampled_from(
    [
        "Bearer",
        "bEaReR",
        "Basic",
        "BASIC",
        " ",
        "\t",
        "%20",
        "+",
        "-",
        "_",
        "x",
        "0",
        "=",
        "/",
        "\n",
        "é",
        "dG9rZW4x",
        "tok.en~1",
    ]
)


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_boundary_after_the_scheme_word_is_the_boundary_before_it(text) -> None:
    for rule, before in BEFORE_WORD.items():
        got = [(m.span(), m.groups()) for m in rule.finditer(text)]
        assert got == [(m.span(), m.groups()) for m in before.finditer(text)]
