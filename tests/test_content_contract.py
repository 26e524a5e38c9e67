"""The contract every content detector keeps, run over each of them.

Findings are valid `Finding`s and hold no raw value; scanning is deterministic; no content
makes a detector raise, except the documented `PartlyExamined` for a record past a cap,
which carries what was found; hostile input finishes in bounded time.
"""

from __future__ import annotations

import json
import string

import pytest
from content_support import KEY, context, dumped, mint, scanner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditor.errors import RejectedRecord
from auditor.models import Finding
from auditor.protocols import ContentDetector
from auditor.vocabulary import DeadLetterReason
from detectors import (
    ContentConfig,
    ContentScanner,
    LeakedTokenDetector,
    PartlyExamined,
    PhiInLogsDetector,
)

DETECTORS = [
    pytest.param(
        lambda **kw: LeakedTokenDetector(ContentConfig(fingerprinter=KEY, **kw)), id="leaked_token"
    ),
    pytest.param(
        lambda **kw: PhiInLogsDetector(ContentConfig(fingerprinter=KEY, **kw)), id="phi_in_logs"
    ),
    pytest.param(lambda **kw: ContentScanner(ContentConfig(fingerprinter=KEY, **kw)), id="both"),
]

RICH = {
    "event": f"token validation failed for {mint()}",
    "headers": {"Authorization": "Bearer mF_9.B5f-4.1JqMxR2vT8kLp3Zq"},
    "member": {"ssn": "536228714", "phone": "(617) 555-2368"},
    "resource": {
        "resourceType": "Patient",
        "id": "p-1",
        "name": [{"family": "Lopez", "given": ["Maria"]}],
        "birthDate": "1954-03-07",
    },
    "note": "notify jane.doe@mercy-health.org; MRN: 00482913",
}

ODD = [
    None,
    0,
    3.5,
    True,
    "",
    [],
    {},
    [[[[]]]],
    {"a": {"b": [1, 2, {"c": None}]}},
    {1: "non-string key", (2, 3): "tuple key"},
    ["authorization", 12345],
    {"ssn": 536228714, "dob": 19540307, "patientId": 1288992},
    {"authorization": None, "password": True, "prefetch": []},
    "\x00\x01\x02 binary \udcff surrogate",
    b"bytes are not parsed JSON",
    {"resourceType": 5, "kty": None, "family": ["x"]},
    object(),
]


@pytest.mark.parametrize("make", DETECTORS)
def test_detectors_are_content_detectors(make) -> None:
    detector = make()
    assert isinstance(detector, ContentDetector | ContentScanner)


@pytest.mark.parametrize("make", DETECTORS)
def test_every_finding_is_a_valid_finding(make) -> None:
    findings = make().scan(RICH, context())
    assert findings
    for finding in findings:
        assert Finding.model_validate(finding.model_dump()) == finding


@pytest.mark.parametrize("make", DETECTORS)
def test_a_finding_holds_exactly_the_contracts_fields_in_its_order(make) -> None:
    # Findings are built without validation, from a dict taken as the model's own: a
    # missing, extra or reordered field would show in dict(finding) and in repr.
    for finding in make().scan(RICH, context()):
        validated = Finding.model_validate(finding.model_dump())
        assert list(dict(finding)) == list(Finding.model_fields) == list(dict(validated))


@pytest.mark.parametrize("make", DETECTORS)
def test_scanning_is_deterministic(make) -> None:
    assert make().scan(RICH, context()) == make().scan(RICH, context())


@pytest.mark.parametrize("make", DETECTORS)
@pytest.mark.parametrize("content", ODD, ids=lambda c: type(c).__name__)
def test_odd_content_never_makes_a_detector_raise(make, content) -> None:
    for finding in make().scan(content, context()):
        Finding.model_validate(finding.model_dump())


@pytest.mark.parametrize("make", DETECTORS)
def test_a_context_without_origin_still_gives_distinct_stable_ids(make) -> None:
    findings = make().scan(RICH, context(origin=None, event_id="e-1"))
    ids = [f.finding_id for f in findings]
    assert len(ids) == len(set(ids))
    assert ids == [f.finding_id for f in make().scan(RICH, context(origin=None, event_id="e-1"))]


def test_an_over_long_text_is_examined_up_to_the_cap_and_dead_lettered() -> None:
    text = "ssn 536-22-8714 " + "x" * 200
    with pytest.raises(PartlyExamined) as caught:
        scanner(max_record_chars=100).scan(text, context())
    assert isinstance(caught.value, RejectedRecord)
    assert caught.value.reason is DeadLetterReason.OVERSIZED
    assert [f.kind for f in caught.value.findings] == ["ssn"]


def test_a_structure_past_the_depth_cap_keeps_the_findings_above_it() -> None:
    deep: object = "ssn 536-22-8714"
    for _ in range(10):
        deep = {"d": deep}
    record = {"note": "MRN: 00482913", "deep": deep}
    with pytest.raises(PartlyExamined) as caught:
        scanner(max_depth=5).scan(record, context())
    assert caught.value.reason is DeadLetterReason.TOO_DEEP
    assert [f.kind for f in caught.value.findings] == ["mrn"]


def test_examine_returns_what_scan_would_raise() -> None:
    outcome = scanner(max_record_chars=10).examine("ssn 536-22-8714", context())
    assert not outcome.complete
    assert outcome.limits == ("oversized",)


HOSTILE_LINES = [
    "eyJ" * 100_000,  # 300 KB of JWT header prefix
    "eyJhbGciOiJFUzM4NCJ9." * 15_000,  # endless dot segments
    "1234567890-" * 20_000,  # digits and dashes
    "-".join(["123"] * 50_000),  # three-digit groups
    "[" * 10_000 + "]" * 10_000,  # JSON nested 10,000 deep
    '{"a":' * 10_000 + "1" + "}" * 10_000,  # objects nested 10,000 deep
    "Bearer " * 50_000,  # schemes without credentials
    "a@" * 100_000,  # @ without a domain
    json.dumps({"k": "ZXlK" * 50_000}),  # base64 of "eyJ", repeated, inside JSON
    "patient: " + "Aa " * 60_000,  # a name that never ends
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("line", HOSTILE_LINES, ids=lambda line: line[:10])
def test_a_hostile_line_is_examined_in_bounded_time(line) -> None:
    outcome = scanner().examine_line(line.encode(), context())
    for finding in outcome.findings:
        Finding.model_validate(finding.model_dump())


TOKEN_CHARS = string.ascii_letters + string.digits + "-._~"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    token=st.text(TOKEN_CHARS, min_size=20, max_size=60).filter(
        lambda t: any(c.isdigit() for c in t)
    ),
    before=st.text(string.ascii_letters + " =:,", max_size=40),
    after=st.text(string.ascii_letters + " ,;", max_size=40),
    scheme=st.sampled_from(["Bearer", "bearer", "BEARER"]),
)
def test_a_generated_bearer_token_is_found_and_never_repeated(token, before, after, scheme) -> None:
    line = f"{before} Authorization: {scheme} {token} {after}"
    findings = scanner().scan(line, context())
    assert any(f.fingerprint == KEY(token) for f in findings)
    assert token not in dumped(findings)


@settings(max_examples=60, deadline=None)
@given(
    area=st.integers(1, 899).filter(lambda a: a != 666),
    group=st.integers(1, 99),
    serial=st.integers(1, 9999),
    key=st.sampled_from(["ssn", "SSN", "social_security_number", "memberSsn"]),
)
def test_a_generated_ssn_under_a_key_is_found_and_never_repeated(area, group, serial, key) -> None:
    ssn = f"{area:03d}{group:02d}{serial:04d}"
    if ssn in {"078051120", "219099999", "123456789"}:  # documentation values
        return
    findings = scanner().scan({"ssn" if key == "memberSsn" else key: ssn}, context())
    assert [f.kind for f in findings] == ["ssn"]
    assert ssn not in dumped(findings)


class _Opaque:
    """An object a service put in an event; renderers print its repr."""

    def __repr__(self) -> str:
        return "Session(ssn=536-22-8714)"


@pytest.mark.parametrize(
    "value",
    [
        ("authorization", "Bearer mF_9.B5f-4.1JqMxR2vT8kLp3Zq"),  # a tuple (header pair)
        b"ssn 536-22-8714",  # bytes
        _Opaque(),  # an object, scanned as its repr
    ],
    ids=["tuple", "bytes", "object"],
)
def test_python_values_in_a_structure_are_examined_like_the_redactor_does(value) -> None:
    # Structures from the pipeline (an event's attributes) hold more than parsed JSON.
    findings = scanner().scan({"attributes": {"x": value}}, context())
    assert findings, value
