"""`TriggerSearch` gives the prefilter's answer exactly, with or without Aho-Corasick."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.patterns import PatternLibrary, default_library
from auditor.patterns import prefilter as prefilter_module
from detectors.triggers import TriggerSearch

LIBRARY = default_library()
SEARCH = TriggerSearch(LIBRARY)
TRIGGERS = sorted({t for rule in LIBRARY.rules.values() for t in rule.triggers})
EXAMPLES = [e for rule in LIBRARY.rules.values() for e in rule.examples]

# Fragments that hold triggers (in any case, digits anywhere) and look-alikes around them.
fragments = st.one_of(
    st.sampled_from(TRIGGERS).map(lambda t: t.upper() if len(t) % 2 else t),
    st.sampled_from(EXAMPLES),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyzABC0123456789 :=\"'\\/-_.@#?&%{}[]\n", max_size=30),
    st.sampled_from(["é", "☃", "\udcff", "Patient/", "eyJ", "bearer", "@2x.png"]),
)
texts = st.lists(st.lists(fragments, max_size=8).map("".join), max_size=6)


def test_the_accelerated_engine_is_in_use_here() -> None:
    # ahocorasick-rs comes with the fast extra, which the test environment installs.
    assert SEARCH.accelerated


@settings(max_examples=400, deadline=None)
@given(texts)
def test_it_finds_the_same_rules_for_the_same_strings_as_the_prefilter(strings) -> None:
    assert SEARCH.segments(strings) == LIBRARY.prefilter.segments(strings)


@pytest.mark.parametrize("example", EXAMPLES[:40])
def test_every_rule_example_trips_it(example) -> None:
    assert SEARCH.rules(example) == set(LIBRARY.prefilter.rules(example))


def test_without_the_extra_it_gives_the_same_answers(monkeypatch) -> None:
    monkeypatch.setattr(prefilter_module, "BytesAhoCorasick", None)
    plain = TriggerSearch(PatternLibrary())
    assert not plain.accelerated
    strings = ["nothing here", "Authorization: Bearer abc123def456", "ssn 536-22-8714"]
    assert plain.segments(strings) == SEARCH.segments(strings)
    assert plain.segments(strings)  # the case table holds triggers: not a vacuous match
