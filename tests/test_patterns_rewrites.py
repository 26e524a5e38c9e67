"""Patterns rewritten for speed match exactly what their plain forms matched.

Each plain form is the pattern as first written (kept here as the reference): the
rewrites only move a boundary check behind a literal, so the engine can scan for the
literal, or take runs of a character class whole.
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from auditor.patterns.rules import EXAMPLE_JWS, JWT_RE, PEM_BODY, PEM_RE, pem_body_text

PLAIN_JWT_RE = re.compile(
    r"(?:(?<![A-Za-z0-9_-])|(?<=%[0-9A-Fa-f]{2}))eyJ[A-Za-z0-9_-]{4,}+(?:\.[A-Za-z0-9_-]*+){1,5}+"
)
PLAIN_PEM_RE = re.compile(
    r"-----BEGIN(?P<type>[A-Z0-9 ]{0,40})PRIVATE KEY(?: BLOCK)?-----"
    r"(?P<body>(?:[A-Za-z0-9+/=\s:,.]|\\[nrt]|-(?!----))*+)"
    r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?"
)
PLAIN_PEM_NOISE = re.compile(r"\\[nrt]|\s")


def _all(pattern: re.Pattern[str], text: str) -> list[tuple[int, int, dict[str, str | None]]]:
    """Every match a rule's search loop could see: from each position, the next match."""
    found = []
    for pos in range(len(text) + 1):
        m = pattern.search(text, pos)
        if m is not None:
            found.append((m.start(), m.end(), m.groupdict()))
    return found


# Texts built from the pieces that decide a JWT match: the literal, its boundary
# characters (a base64url letter, `%22`, a space), dots and base64url runs.
_jwt_texts = st.lists(
    st.sampled_from(["eyJ", "eyJhbGciOi", "a", "-", "_", "%22", "%2", "%", " ", ".", "Zm9v", "\n"]),
    max_size=14,
).map("".join)


@given(_jwt_texts)
@example(f"%22{EXAMPLE_JWS}%22")
@example(f"x{EXAMPLE_JWS} {EXAMPLE_JWS}.")
@example("eyJeyJhbGciOi.eyJ")
def test_the_jwt_pattern_finds_what_its_plain_form_finds(text: str) -> None:
    assert _all(JWT_RE, text) == _all(PLAIN_JWT_RE, text)


_pem_texts = st.lists(
    st.sampled_from(
        [
            "-----BEGIN PRIVATE KEY-----",
            "-----BEGIN EC PRIVATE KEY-----",
            "-----END PRIVATE KEY-----",
            "MIGHAgEAMBMG",
            "+/=",
            "\n",
            "\\n",
            "\\r\\t",
            "\\",
            "-",
            "----",
            " ",
            ":,.",
            "\u2003",  # a Unicode space: \s matches it, and so does str.split
            '"',
        ]
    ),
    max_size=16,
).map("".join)


@given(_pem_texts)
def test_the_pem_pattern_finds_what_its_plain_form_finds(text: str) -> None:
    assert _all(PEM_RE, text) == _all(PLAIN_PEM_RE, text)


@given(_pem_texts)
def test_a_pem_body_loses_exactly_what_the_plain_substitution_removed(text: str) -> None:
    body = re.match(PEM_BODY, text)
    assert body is not None  # the body pattern accepts the empty string
    assert pem_body_text(body.group()) == PLAIN_PEM_NOISE.sub("", body.group())
