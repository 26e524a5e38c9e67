"""The prefilter names exactly the rules whose triggers occur, string by string.

Both engines: CPython's ``re`` (always there) and the Rust Aho-Corasick of the ``fast``
extra (installed with the dev extras, so the tests cover both).
"""

from __future__ import annotations

from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.patterns import default_library
from auditor.patterns.prefilter import Prefilter, fold

LIBRARY = default_library()
TRIGGERS: dict[bytes, set[str]] = {}
for _name, _rule in LIBRARY.rules.items():
    for _trigger in _rule.triggers:
        TRIGGERS.setdefault(fold(_trigger), set()).add(_name)
WITH_RE = Prefilter(TRIGGERS, accelerate=False)
WITH_AUTOMATON = Prefilter(TRIGGERS)


def test_the_fast_extra_is_installed_for_the_tests() -> None:
    assert WITH_AUTOMATON.accelerated
    assert not WITH_RE.accelerated


def brute_force(texts: list[str]) -> dict[int, set[str]]:
    """Every occurrence of every trigger, found one by one, owned by the text it starts in."""
    folded = fold("\n".join(texts))
    starts, at = [], 0
    for text in texts:
        starts.append(at)
        at += len(text.encode("utf-8", "surrogatepass")) + 1
    found: dict[int, set[str]] = {}
    for trigger, rules in TRIGGERS.items():
        pos = folded.find(trigger)
        while pos >= 0:
            found.setdefault(bisect_right(starts, pos) - 1, set()).update(rules)
            pos = folded.find(trigger, pos + 1)
    return found


# Fragments of triggers (and of their near misses) glued with base64 and separators, so
# that triggers occur often, overlap, straddle texts, and hide inside token-like runs.
fragments = st.sampled_from(
    [
        *{t.decode("latin-1") for t in TRIGGERS},
        *{t.decode("latin-1")[:-1] for t in TRIGGERS if len(t) > 2},
        "eyJhbGciOiJFUzM4NCJ9",
        "Bearer ",
        "SSN",
        "Patient/",
        "kty",
        "security",
        "assertion",
        "@",
        ":",
        "=",
        '"',
        " ",
        "-",
        "_",
        "123",
        "ZXlK",
        "qZ",
    ]
)
texts = st.lists(st.lists(fragments, max_size=12).map("".join), min_size=1, max_size=4)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_identify_finds_every_trigger_and_no_other(strings) -> None:
    expected = brute_force(strings)
    assert WITH_RE.identify(strings) == expected
    assert WITH_AUTOMATON.identify(strings) == expected


@settings(max_examples=300, deadline=None)
@given(texts)
def test_the_quick_test_says_yes_whenever_a_trigger_occurs(strings) -> None:
    joined = "\n".join(strings)
    if brute_force(strings):
        assert WITH_RE.quick(joined)
        assert WITH_AUTOMATON.quick(joined)
    else:
        assert not WITH_AUTOMATON.quick(joined)  # exact: yes only for a trigger
