"""The Redactor's memory of clean strings and its look-alike shapes never let a secret by."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from auditor.fingerprints import Fingerprinter
from auditor.patterns import default_library
from auditor.patterns.matches import Match
from auditor.patterns.memory import MAX_CHARS, CleanMemory
from auditor.patterns.rules import TextRule
from auditor.redaction import Redactor, RedactorConfig
from auditor.vocabulary import TokenKind

KEY = Fingerprinter(b"memory-test-key-0123456789")
UUID = "deadbeef-6b2e-4f4a-9c1d-0a1b2c3d4e5f"
ACME_TOKEN = "acme_tok_8f3kQ9zLr2VxA7mN1pTq"


def _rule(name: str, pattern: str, trigger: str) -> TextRule:
    """An organisation's own token format, as a deployment would add it."""

    def check(m: re.Match[str], _text: str) -> Match:
        return Match(TokenKind.BEARER_TOKEN, name, m.start(), m.end(), m.group(), priority=2)

    return TextRule(name, TokenKind.BEARER_TOKEN, re.compile(pattern), check, (trigger,), ())


def _redactor(**config: Any) -> Redactor:
    return Redactor(RedactorConfig(fingerprinter=KEY, **config))


def test_a_clean_string_is_remembered_and_a_secret_is_not() -> None:
    redactor = _redactor()
    redactor(None, "info", {"event": "user lookup", "note": "ssn 536-22-8714"})
    memory = redactor.memory
    assert "user lookup" in memory
    assert "ssn 536-22-8714" not in memory
    assert not any("536-22-8714" in text for text in memory.strings)


def test_a_remembered_string_is_not_scanned_again_but_its_event_still_is() -> None:
    redactor = _redactor()
    event = {"event": "cards.returned", "hook": "patient-view"}
    assert redactor(None, "info", dict(event)) == event
    out = redactor(None, "info", {**event, "detail": "call (617) 555-0143"})
    assert "555-0143" not in out["detail"]


def test_a_remembered_string_says_nothing_about_strings_like_it() -> None:
    # "ssn 000-00-0000" holds triggers; the rules clear it (no SSN has area 000). The same
    # text up to its digits, "ssn 536-22-8714", is a real SSN: only exact strings count.
    redactor = _redactor()
    assert redactor(None, "info", {"event": "ssn 000-00-0000"})["event"] == "ssn 000-00-0000"
    assert "ssn 000-00-0000" in redactor.memory
    assert "ssn 536-22-8714" not in redactor.memory
    assert "536-22-8714" not in redactor(None, "info", {"event": "ssn 536-22-8714"})["event"]


def test_the_memory_is_bounded_and_forgotten_whole_when_full() -> None:
    memory = CleanMemory(default_library().prefilter, entries=3)
    memory.remember(["a", "b", "c"])
    assert len(memory) == 3
    memory.remember(["d"])
    assert memory.strings == {"d"}
    memory.remember(["x" * (MAX_CHARS + 1)])
    assert len(memory) == 1
    memory.remember(["e", "f"], joined="e\nf")
    assert memory.strings == {"d", "e", "f"}


def test_memory_entries_zero_remembers_nothing() -> None:
    redactor = _redactor(memory_entries=0)
    redactor(None, "info", {"event": "user lookup"})
    assert len(redactor.memory) == 0


def test_a_rule_of_another_library_is_not_defeated_by_a_memory() -> None:
    # Each Redactor remembers what its own rules found clean: a string clean for the
    # default rules is still a token for a Redactor that knows the organisation's format.
    default = _redactor()
    acme = _redactor(extra_rules=(_rule("acme.token", r"acme_tok_[A-Za-z0-9]{20}", "acme_tok_"),))
    assert default(None, "info", {"event": ACME_TOKEN})["event"] == ACME_TOKEN
    assert ACME_TOKEN in default.memory
    assert ACME_TOKEN not in acme.memory
    assert acme(None, "info", {"event": ACME_TOKEN})["event"].startswith("[REDACTED:bearer_token")


def test_a_rule_whose_trigger_fits_a_shape_switches_that_shape_off() -> None:
    # UUIDs are look-alikes for the default rules; a rule that finds UUIDs of one
    # tenant must see them, so the proof drops the UUID (and hex) shapes for it.
    tenant = _rule("tenant.uuid", r"deadbeef-[0-9a-f-]{27}", "deadbeef")
    redactor = _redactor(extra_rules=(tenant,))
    assert UUID not in redactor.memory
    assert UUID in _redactor().memory
    out = redactor(None, "info", {"event": "x", "request_id": UUID})
    assert out["request_id"].startswith("[REDACTED:bearer_token")


def test_values_of_known_shapes_leave_a_clean_event_untouched_and_unremembered() -> None:
    redactor = _redactor()
    event = {
        "event": "request",
        "request_id": UUID,
        "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "peer": "10.23.0.17",
        "started": "2026-11-28T10:00:00.123456Z",
    }
    assert redactor(None, "info", event) is event
    assert redactor.memory.strings == {"request"}


def test_a_header_pair_is_judged_by_its_name_after_the_name_was_seen_clean() -> None:
    # "authorization" alone is a clean string; as the name of a (name, value) pair it
    # makes the value a credential, whatever the value looks like.
    redactor = _redactor()
    redactor(None, "info", {"event": "x", "header": "authorization"})
    assert "authorization" in redactor.memory
    out = redactor(None, "info", {"event": "x", "pair": ["authorization", "opaque-s3cr3t-77"]})
    assert out["pair"][1].startswith("[REDACTED:bearer_token")


def test_a_value_longer_than_the_limit_is_replaced_whatever_its_shape() -> None:
    redactor = _redactor(max_value_chars=20)
    out = redactor(None, "info", {"event": "x", "request_id": UUID})
    assert out["request_id"] == "[REDACTED:oversized chars=36]"


# --- properties ----------------------------------------------------------------------------

WARM = _redactor()
"""Shared across examples, so it has seen many look-alikes before each secret."""

secrets = st.one_of(
    st.builds(lambda a, g, s: f"{a:03d}-{g:02d}-{s:04d}", st.integers(1, 665), st.integers(1, 99),
              st.integers(1, 9999)),
    st.builds(lambda a, b: f"({a}) 555-{b:04d}", st.sampled_from(["617", "212", "415"]),
              st.integers(100, 9999)),
    st.builds(lambda u, d: f"{u}@{d}.org", st.text("abcdefghij", min_size=2, max_size=8),
              st.text("klmnopqrst", min_size=2, max_size=8)),
    st.builds(lambda t: f"Bearer {t}9", st.text("ABCDEFabcdef0123456789-._~", min_size=16,
              max_size=40)),
    st.builds(lambda t: f"access_token={t}7", st.text("ABCDEFabcdef012345", min_size=12,
              max_size=30)),
)  # fmt: skip
words = st.text("abcdefghilorstu 0123456789.-/", max_size=20)


@settings(max_examples=300, deadline=None)
@given(secret=secrets, before=words, key=st.sampled_from(["event", "detail", "url"]))
def test_no_secret_survives_a_memory_warmed_with_its_look_alikes(secret, before, key) -> None:
    text = f"{before} {secret}"
    # Every prefix of the text that the rules leave alone (a look-alike sharing the
    # secret's beginning) is logged first, so it is remembered clean.
    for cut in range(1, len(text)):
        WARM(None, "info", {"event": "x", key: text[:cut]})
    out = WARM(None, "info", {"event": "x", key: text, "nested": [text]})
    value = secret.removeprefix("Bearer ").removeprefix("access_token=")
    assert value not in repr(out)
    assert text not in WARM.memory


def test_without_the_fast_extra_the_same_values_are_redacted(monkeypatch) -> None:
    from auditor.patterns import prefilter

    accelerated = _redactor()
    assert accelerated.library.prefilter.accelerated
    monkeypatch.setattr(prefilter, "BytesAhoCorasick", None)
    plain = _redactor()
    assert not plain.library.prefilter.accelerated
    events = [
        {"event": "x", "note": "ssn 536-22-8714", "request_id": UUID},
        {"event": "callback requested at (617) 555-0143", "hook": "patient-view"},
        {"event": "x", "url": "https://fhir.example.org/r4/Observation?access_token=8f3kQ9zLr2Vx"},
        {"event": "x", "headers": {"Authorization": "Bearer 8f3kQ9zLr2VxA7mN1pTq"}},
        {"event": "cards.returned", "hook": "patient-view", "cards": 2},
    ]
    for event in events:
        assert plain(None, "info", dict(event)) == accelerated(None, "info", dict(event))


def test_a_list_of_remembered_strings_is_skipped_but_a_new_item_in_it_is_scanned() -> None:
    redactor = _redactor()
    event = {"event": "prefetch.fetched", "resource_types": ["Observation", "Condition"]}
    redactor(None, "info", dict(event))
    assert {"Observation", "Condition"} <= redactor.memory.strings
    clean = {"event": "prefetch.fetched", "resource_types": ["Condition", "Observation"]}
    assert redactor(None, "info", clean) is clean
    out = redactor(None, "info", {"event": "x", "tags": ["Observation", "ssn 536-22-8714"]})
    assert "536-22-8714" not in repr(out)


def test_a_key_whose_value_was_no_look_alike_has_its_later_values_scanned_whole() -> None:
    # After "request_id" held an order number (no look-alike), its new values skip the
    # look-alike test and go to the prefilter: a UUID is still clean, an SSN still redacted.
    redactor = _redactor()
    redactor(None, "info", {"event": "order", "request_id": "ORD-2026-004216"})  # keys learnt
    redactor(None, "info", {"event": "order", "request_id": "ORD-2026-004217"})
    event = {"event": "order", "request_id": UUID}
    assert redactor(None, "info", dict(event)) == event
    assert UUID in redactor.memory.strings  # the prefilter judged it (and it was remembered)
    out = redactor(None, "info", {"event": "order", "request_id": "536-22-8714"})
    assert "536-22-8714" not in out["request_id"]


def test_a_look_alike_under_a_shaped_key_is_not_remembered() -> None:
    # A key whose values were all look-alikes so far tests the shape first: a UUID passes
    # without entering the memory (it would never repeat, and only churn the set).
    redactor = _redactor()
    redactor(None, "info", {"event": "order", "request_id": UUID})
    assert UUID not in redactor.memory.strings


def test_the_look_alike_test_comes_back_when_the_memory_forgets() -> None:
    # A key made plain by one odd value gets its look-alike test back when the memory is
    # full and forgets: then a UUID under it passes without being remembered again.
    redactor = _redactor(memory_entries=4)
    redactor(None, "info", {"event": "order", "request_id": "ORD-2026-004216"})  # keys learnt
    redactor(None, "info", {"event": "order", "request_id": "ORD-2026-004217"})
    for number in range(5):
        redactor(None, "info", {"event": f"filler {number}", "note": f"n{number}"})
    assert redactor.memory.forgotten >= 1
    redactor(None, "info", {"event": "order", "request_id": UUID})
    assert UUID not in redactor.memory.strings


def test_a_string_with_a_lone_surrogate_is_judged_not_failed() -> None:
    # Strings are encoded by the strict UTF-8 fast path, which refuses a lone surrogate
    # (a log may hold one, from bytes decoded with surrogateescape): it must fall back.
    redactor = _redactor()
    event = {"event": "file \udc80 read", "request_id": "\ud800"}
    assert redactor(None, "info", dict(event)) == event
    out = redactor(None, "info", {"event": "file \udc80 read", "note": "ssn 536-22-8714"})
    assert redactor.failures == 0
    assert "536-22-8714" not in out["note"]
