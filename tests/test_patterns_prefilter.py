"""The prefilter: never says no when a rule would match; says no to clean text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.patterns import PatternLibrary, default_library
from auditor.patterns.prefilter import Prefilter, fold

LIBRARY = default_library()
EXAMPLES = [(name, example) for name, rule in LIBRARY.rules.items() for example in rule.examples]


@pytest.mark.parametrize(("rule", "example"), EXAMPLES)
def test_every_rule_finds_its_examples(rule, example) -> None:
    assert list(LIBRARY.rules[rule].find(example))


@pytest.mark.parametrize(("rule", "example"), EXAMPLES)
def test_every_example_trips_the_prefilter_for_its_rule(rule, example) -> None:
    assert LIBRARY.prefilter.hits(example)
    assert rule in LIBRARY.prefilter.rules(example)


# Clean log text: the alphabet of CDS service logs without the characters of any trigger
# that a random draw could assemble; used to surround examples.
clean_text = st.text(alphabet="abcdefgh ijkl0123456789-./:", max_size=40)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLES), clean_text, clean_text)
def test_an_example_anywhere_in_a_line_still_trips_the_prefilter(pair, before, after) -> None:
    rule, example = pair
    line = f"{before} {example} {after}"
    if list(LIBRARY.rules[rule].find(line)):
        assert rule in LIBRARY.prefilter.rules(line)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_whenever_a_rule_matches_the_prefilter_said_yes(text) -> None:
    # The contract, checked over arbitrary text: no rule matches where the prefilter
    # saw none of its triggers.
    named = LIBRARY.prefilter.rules(text)
    for name, rule in LIBRARY.rules.items():
        if name not in named:
            assert not list(rule.find(text)), name


def test_case_and_digits_are_folded() -> None:
    assert fold("Bearer ABC 2026") == b"bearer abc 0000"
    assert LIBRARY.prefilter.hits("BEARER 8f3kQ9zLr2VxA7mN1pTq")


def test_too_many_triggers_without_an_anchor_byte_are_refused() -> None:
    # Each is a pass of its own over the text; a rule set that needs many is a mistake.
    plain = {
        f"{word}": {"x"}
        for word in (
            "street",
            "road",
            "court",
            "circle",
            "trail",
            "ridge",
            "terrace",
            "route",
            "lot",
        )
    }
    with pytest.raises(ValueError, match="no anchor byte"):
        Prefilter({k.encode(): v for k, v in plain.items()})


def test_triggers_without_an_anchor_are_tested_directly() -> None:
    prefilter = Prefilter({b"@": {"email"}, b"000-00-0000": {"ssn"}, b"kty": {"jwk"}})
    assert prefilter.rules("x@y") == {"email"}
    assert prefilter.rules("ssn 123-45-6789") == {"ssn"}
    assert prefilter.rules("plain") == frozenset()


def test_anchors_that_look_alike_are_told_apart_exactly() -> None:
    # "k" and "z" fold to the same mark; "kty" must not hit on "zty".
    prefilter = Prefilter({b"kty": {"jwk"}, b"zz": {"z"}})
    assert not prefilter.hits("zty")
    assert prefilter.hits("kty")


def test_overlapping_triggers_are_all_seen() -> None:
    prefilter = Prefilter({b"token": {"a"}, b"token=": {"b"}, b"ken=": {"c"}})
    assert prefilter.rules("x token=1") == {"a", "b", "c"}


def test_a_library_limited_to_some_kinds_compiles_only_their_rules() -> None:
    from auditor.vocabulary import TokenKind

    library = PatternLibrary(kinds={TokenKind.JWT})
    assert set(library.rules) == {"jwt", "jwt.base64", "keyed"}
    assert library.find_in_text("ssn 536-22-8714") == []
