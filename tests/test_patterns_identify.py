"""The prefilter names exactly the rules whose triggers occur, string by string."""

from __future__ import annotations

from bisect import bisect_right

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.patterns import default_library
from auditor.patterns.prefilter import fold

LIBRARY = default_library()
PREFILTER = LIBRARY.prefilter
TRIGGERS: dict[bytes, set[str]] = {}
for _name, _rule in LIBRARY.rules.items():
    for _trigger in _rule.triggers:
        TRIGGERS.setdefault(fold(_trigger), set()).add(_name)


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
    assert PREFILTER.identify(strings) == brute_force(strings)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_the_quick_test_says_yes_whenever_a_trigger_occurs(strings) -> None:
    if brute_force(strings):
        assert PREFILTER.quick("\n".join(strings))
