"""Rules with an anchor start their search near the next anchor: the same matches.

The e-mail rule's matches hold an ``@`` at most 64 characters after their start, the URL
userinfo rule's a ``://`` at most 16 after: the search skips the positions before that,
where no match can start, and stops when no anchor is left. Compared here with the same
rule searching from every position.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auditor.patterns.rules import BUILTIN_RULES, EMAIL_RULE, USERINFO_RULE, TextRule

ANCHORED = [r for r in BUILTIN_RULES if isinstance(r, TextRule) and r.anchor]

# Pieces of addresses and URLs, look-alikes (asset names, a userinfo without scheme),
# and runs long enough to reach past the anchors' reach (a local part of 65 characters).
_PIECES = st.sampled_from(
    [
        "@",
        "://",
        ":",
        ".",
        "-",
        " ",
        "/",
        "a",
        "Z9",
        "jane.doe",
        "example.org",
        "png",
        "icon@2x.png",
        "https",
        "svc:pw",
        "mailto:",
        "x" * 30,
        "y" * 65,
        "é",
    ]
)


def _unanchored(rule: TextRule) -> TextRule:
    return dataclasses.replace(rule, anchor="", reach=0)


def test_the_address_and_userinfo_rules_are_anchored() -> None:
    # Why: the property below is vacuous for a rule that lost its anchor.
    assert {EMAIL_RULE.name, USERINFO_RULE.name} <= {r.name for r in ANCHORED}


@pytest.mark.parametrize("rule", ANCHORED, ids=lambda r: r.name)
@given(st.lists(_PIECES, max_size=16).map("".join))
def test_an_anchored_rule_finds_what_it_finds_searching_from_every_position(
    rule: TextRule, text: str
) -> None:
    assert list(rule.find(text)) == list(_unanchored(rule).find(text))


@pytest.mark.parametrize("rule", ANCHORED, ids=lambda r: r.name)
def test_an_anchored_rule_still_finds_its_examples(rule: TextRule) -> None:
    for example in rule.examples:
        assert list(rule.find(example))
