"""Baselines and allowlists: a file format that never holds a value, bound to its key."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from content_support import KEY, NOW, context, scanner

from auditor.errors import ConfigurationError
from auditor.fingerprints import Fingerprinter
from detectors import Baseline, BaselineBuilder, ContentConfig, ContentScanner, parse_allowlist

LINE = "Authorization: Bearer mF_9.B5f-4.1JqMxR2vT8kLp3Zq ssn 536-22-8714"


def _baseline() -> Baseline:
    builder = BaselineBuilder(KEY.key_id)
    builder.extend(scanner().scan(LINE, context("old.log:3")))
    return builder.build(NOW)


def test_a_baseline_lists_fingerprints_rules_locations_and_first_seen_never_values() -> None:
    text = _baseline().render()
    doc = json.loads(text)
    assert doc["version"] == 1
    assert doc["fingerprint_key_id"] == KEY.key_id
    assert doc["matching"] == "detector+fingerprint"
    assert {(e["detector"], e["kind"]) for e in doc["entries"]} == {
        ("leaked_token", "bearer_token"),
        ("phi_in_logs", "ssn"),
    }
    entry = doc["entries"][0]
    assert set(entry) == {
        "detector",
        "fingerprint",
        "rule",
        "kind",
        "location",
        "origin",
        "first_seen",
    }
    assert entry["origin"] == "old.log:3"
    assert "mF_9.B5f" not in text
    assert "536-22-8714" not in text


def test_a_baseline_survives_a_round_trip() -> None:
    baseline = _baseline()
    again = Baseline.parse(baseline.render())
    assert again.entries == baseline.entries
    assert again.key_id == baseline.key_id


def test_known_findings_are_suppressed_wherever_the_value_appears_again() -> None:
    baseline = _baseline()
    # Another file, another line, another place in the line: the same values.
    outcome = scanner(baseline=baseline).examine(f"retry: {LINE}", context("new.log:99"))
    assert outcome.findings == ()
    assert outcome.suppressed == 2


def test_a_new_value_is_still_reported_under_a_baseline() -> None:
    outcome = scanner(baseline=_baseline()).examine("ssn 219-09-9990", context())
    assert [f.kind for f in outcome.findings] == ["ssn"]


def test_a_baseline_made_under_another_key_is_refused_and_says_why() -> None:
    other = Fingerprinter(b"another-key-0123456789abcdef")
    baseline = _baseline()
    with pytest.raises(ConfigurationError) as caught:
        ContentScanner(ContentConfig(fingerprinter=other, baseline=baseline))
    message = str(caught.value)
    assert KEY.key_id in message
    assert other.key_id in message
    assert "none of its entries can match" in message


def test_rewriting_a_baseline_keeps_the_earliest_first_seen() -> None:
    old = _baseline()
    builder = BaselineBuilder(KEY.key_id, old)
    later = datetime(2027, 1, 1, tzinfo=UTC)
    builder.extend(scanner().scan(LINE, context("new.log:1", observed_at=later)))
    rewritten = builder.build(later)
    assert rewritten.entries == old.entries


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "is not JSON"),
        ('{"version": 2}', "not a version 1 baseline"),
        ('{"version": 1, "entries": []}', "lacks fingerprint_key_id"),
        (
            (
                '{"version": 1, "fingerprint_key_id": "k1", '
                '"entries": [{"detector": "x", "fingerprint": "k1:zz"}]}'
            ),
            "malformed fingerprint",
        ),
        (
            '{"version": 1, "fingerprint_key_id": "k1", '
            '"entries": [{"detector": "x", "fingerprint": "k2:' + "0" * 32 + '"}]}',
            "another key",
        ),
    ],
)
def test_a_broken_baseline_is_a_configuration_error(text, problem) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        Baseline.parse(text, "b.json")


def test_an_allowlist_has_one_fingerprint_a_line_with_comments() -> None:
    fp = KEY("x")
    assert parse_allowlist(f"# known test tokens\n{fp}  # fixture\n\n") == {fp}


def test_an_allowlist_line_that_is_not_a_fingerprint_is_named() -> None:
    with pytest.raises(ConfigurationError, match=r"allow.txt:2"):
        parse_allowlist("# ok\nBearer abc\n", "allow.txt")


def test_an_allowlist_of_another_key_is_refused() -> None:
    other = Fingerprinter(b"another-key-0123456789abcdef")
    with pytest.raises(ConfigurationError, match="none of its entries can match"):
        scanner(allow_fingerprints=frozenset({other("x")}))
