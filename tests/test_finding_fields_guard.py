"""The content detectors' findings never carry a credential that came from outside.

A finding's fields are built from the record: a JSON key becomes its location, the input's
name its origin, a JWT's claims its facts and title. The detectors check those texts with
the token rules before a finding leaves them, and remember the texts they found clean (the
same titles and paths come back on every line). These tests plant a credential in each
of those places, after the scanner has learnt the clean texts of records like it, and
look for the raw value anywhere in what is reported.
"""

from __future__ import annotations

import pytest
from content_support import context, dumped, mint, scanner

from auditor.models import Finding

BEARER = "mF_9.B5f-4.1JqMxR2vT8kLp3Zq"
INNER_JWT = mint("ES256", iss="https://inner.example.org")

CASES = [
    pytest.param(
        # A service keyed a map by the token itself: the JSON path names it.
        {INNER_JWT: {"note": "MRN: 00482913"}},
        {"k-clean": {"note": "MRN: 00482913"}},
        None,
        INNER_JWT,
        id="token-as-json-key",
    ),
    pytest.param(
        # The input's name holds a token (a file saved from a callback URL).
        "ssn 536-22-8714",
        "ssn 536-22-8714",
        f"cb?access_token={BEARER}.log:3",
        BEARER,
        id="token-in-origin",
    ),
    pytest.param(
        # A JWT's issuer claim carries a credential: the fact, the title and the client.
        f"token {mint(iss=f'https://ehr.example.org/?access_token={BEARER}')} rejected",
        f"token {mint()} rejected",
        None,
        BEARER,
        id="jwt-in-iss-claim",
    ),
    pytest.param(
        # A JWT's key id holds a bearer credential.
        f"token {mint(headers={'kid': f'Bearer {BEARER}'})} rejected",
        f"token {mint()} rejected",
        None,
        BEARER,
        id="bearer-in-kid-header",
    ),
]


@pytest.mark.parametrize(("record", "warm_up", "origin", "raw"), CASES)
def test_a_credential_from_the_record_never_reaches_a_finding(record, warm_up, origin, raw) -> None:
    detector = scanner()
    for _ in range(3):  # the clean texts of a record like it are learnt first
        detector.examine(warm_up, context(origin=origin or "app.log:7"))
    findings = detector.examine(record, context(origin=origin or "app.log:8")).findings
    assert findings
    for finding in findings:
        Finding.model_validate(finding.model_dump())
    if raw is not None:
        assert raw not in dumped(findings)


def test_the_same_texts_are_judged_alike_whether_remembered_or_not() -> None:
    record = f"token {mint()} rejected for patient MRN: 00482913 at (617) 555-2368"
    learnt = scanner()
    first = learnt.examine(record, context()).findings
    again = learnt.examine(record, context()).findings
    fresh = scanner().examine(record, context()).findings
    assert dumped(again) == dumped(first) == dumped(fresh)


class _Name(str):
    """A ``str`` subclass, as a caller's own path or name type may be."""

    __slots__ = ()


def test_a_credential_in_a_str_subclass_is_judged_like_any_text() -> None:
    detector = scanner()
    origin = _Name(f"cb?access_token={BEARER}.log:3")
    findings = detector.examine("ssn 536-22-8714", context(origin=origin)).findings
    assert findings
    assert BEARER not in dumped(findings)
