"""The detectors' fast path reports exactly what the Redactor's walk would report.

`ContentScanner` skips the walk for records without FHIR or JWK shapes: it collects their
strings, judges values under sensitive keys as the walk does, and runs the rules only where
triggers are. These properties check it against the walk itself, on structures built from
sensitive keys, look-alikes and real values.
"""

from __future__ import annotations

from content_support import KEY, context, mint
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import ContentConfig, ContentScanner

SCANNER = ContentScanner(ContentConfig(fingerprinter=KEY))
JWT = mint()

KEYS = [
    "authorization",
    "Authorization",
    "token",
    "access_token",
    "accessToken",
    "password",
    "client_secret",
    "ssn",
    "SSN",
    "mrn",
    "dob",
    "birthDate",
    "phone",
    "email",
    "patient",
    "patientId",
    "patient_name",
    "first_name",
    "street_address",
    "zip_code",
    "cookie",
    "message",
    "event",
    "url",
    "note",
    "status",
    "hook",
    "name",
    "id",
    "value",
    "type",
]
VALUES = [
    f"Bearer {JWT}",
    "Bearer mF_9.B5f-4.1JqMxR2vT8kLp3Zq",
    "Bearer [REDACTED:jwt]",
    "Bearer <token>",
    "${CLIENT_SECRET}",
    "****",
    "null",
    "",
    "hunter2-Passw0rd",
    "536-22-8714",
    "536228714",
    "078-05-1120",
    "1954-03-07",
    "2026-11-28T10:00:00Z",
    "(617) 555-2368",
    "617-555-0123",
    "jane.doe@mercy-health.org",
    "icon@2x.png",
    "Maria Lopez",
    "drug-interaction-rules",
    "1428 Elm Avenue",
    "02115",
    "1288992",
    "Patient/1288992",
    "patient-view",
    "MRN: 00482913",
    "ssn 536-22-8714 for Maria",
    f"token validation failed for {JWT}",
    "GET /fhir/Observation?code=http://loinc.org|1",
    "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "ok",
]

leaves = st.one_of(st.sampled_from(VALUES), st.integers(0, 10**10), st.none(), st.booleans())
structures = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=12,
)


def _walked(content: object) -> set[tuple[str, str, str, str | None]]:
    gatherer = SCANNER._gatherer()
    gatherer.walker().walk(content)
    return {
        (str(h.match.path), h.match.rule, str(h.match.kind), KEY(h.match.value))
        for h in gatherer.hits
    }


def _fast(content: object) -> set[tuple[str, str, str, str | None]]:
    gatherer = SCANNER.gather(content)
    if gatherer is None:
        return set()
    return {
        (str(h.match.path), h.match.rule, str(h.match.kind), KEY(h.match.value))
        for h in gatherer.hits
    }


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), structures, max_size=6))
def test_the_fast_path_finds_what_the_walk_finds(record) -> None:
    assert _fast(record) == _walked(record)


def test_a_redacted_header_stays_on_the_fast_path_and_finds_nothing() -> None:
    assert SCANNER.gather({"authorization": "Bearer [REDACTED:jwt fp=3fa9c1d2]"}) is None


def test_a_keyed_value_is_reported_whole_on_the_fast_path() -> None:
    (finding,) = SCANNER.scan({"member": {"ssn": "536228714"}}, context())
    assert finding.location == "$.member.ssn"
    assert finding.rule == "key.ssn"
