"""Hostile input finishes in bounded time: every rule is linear or bounded per string.

These are functional tests with a generous timeout, not timings: a catastrophic
backtracking pattern would take minutes or hours on these inputs, not seconds.
"""

from __future__ import annotations

import json

import pytest

from auditor.patterns import default_library, scan
from auditor.redaction import Redactor

HOSTILE = [
    "eyJ" * 100_000,  # 300 KB of JWT header prefix
    "eyJhbGciOiJub25lIn0." * 15_000,  # endless dot segments
    ("1234567890-" * 10_000),  # digits and dashes
    "-".join(["123"] * 30_000),  # three-digit groups
    "a@" * 100_000,  # @ without a domain
    ("a." * 100_000) + "@x",  # an endless local part
    "Bearer " * 50_000,  # schemes without credentials
    "password=" * 30_000,  # keys without values
    '{"code":"MR"' * 20_000,  # a FHIR text rule's anchor, over and over
    "-----BEGIN PRIVATE KEY-----" + "A" * 300_000,  # an unterminated PEM
    "ZXlK" * 75_000,  # base64 of "eyJ", repeated
    "patient: " + "Aa " * 100_000,  # a name that never ends
    "1 " + "Main " * 60_000 + "Avenue",  # a street name that never ends
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: t[:12])
def test_hostile_text_is_scanned_in_bounded_time(text) -> None:
    default_library().find_in_text(text)


@pytest.mark.timeout(60)
def test_deeply_nested_json_is_bounded_by_depth() -> None:
    text = "[" * 10_000 + "]" * 10_000
    try:
        value = json.loads(text)
    except RecursionError:
        # The stdlib refuses it before we see it; the pipeline dead-letters such lines.
        return
    result = scan(value, max_depth=64)
    assert any(limit.reason == "too_deep" for limit in result.limits)


@pytest.mark.timeout(60)
def test_the_redactor_replaces_an_over_long_value_whole() -> None:
    redactor = Redactor()
    event = redactor(None, "info", {"event": "x", "blob": "eyJ" * 100_000})
    assert event["blob"] == "[REDACTED:oversized chars=300000]"
