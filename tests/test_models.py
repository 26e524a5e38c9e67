"""The data contracts: strict where producers could go wrong, lossless where they are right."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from auditor import AuthzEvent, Finding, finding_id
from auditor.vocabulary import DetectorName, FailureReason, Outcome, Severity


def _event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "kind": "authz",
        "event_id": str(uuid4()),
        "time": "2026-11-28T10:00:00Z",
        "source": {"role": "service", "name": "cds-greeter", "instance": "pod-1"},
        "action": "token.rejected",
        "outcome": "failure",
        "reason": "expired",
        "client": {"iss": "https://ehr.example.org", "tenant": "t1"},
        "service": {
            "id": "patient-greeter",
            "url": "https://cds.example.com/cds-services/patient-greeter",
        },
        "token": {
            "jti": "j-1",
            "kid": "k1",
            "alg": "ES384",
            "typ": "JWT",
            "iat": 1,
            "exp": 301,
            "aud": "https://cds.example.com/cds-services/patient-greeter",
        },
    }
    base.update(overrides)
    return base


def test_a_complete_event_validates_from_bytes() -> None:
    event = AuthzEvent.model_validate_json(json.dumps(_event()).encode())
    assert event.reason is FailureReason.EXPIRED
    assert event.client_iss == "https://ehr.example.org"
    assert event.token is not None
    assert event.token.aud == ("https://cds.example.com/cds-services/patient-greeter",)
    assert event.token.lifetime_seconds == 300


def test_unknown_top_level_field_is_rejected() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AuthzEvent.model_validate(_event(authorization="Bearer abc"))


def test_a_token_string_has_no_place_in_the_token_claims() -> None:
    # A producer that tries to ship the raw token inside `token` is refused, not stored.
    token = {"jti": "j-1", "raw": "eyJhbGciOiJFUzM4NCJ9.e30.sig"}
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        AuthzEvent.model_validate(_event(token=token))


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        AuthzEvent.model_validate(_event(time="2026-11-28T10:00:00"))


def test_time_with_offset_is_kept_in_utc() -> None:
    event = AuthzEvent.model_validate(_event(time="2026-11-28T12:00:00+02:00"))
    assert event.time == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert event.time.tzinfo is UTC


@pytest.mark.parametrize("time", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_a_time_with_no_utc_equivalent_is_a_validation_error_not_a_crash(time: str) -> None:
    # Its UTC time falls outside what datetime holds: astimezone raises OverflowError,
    # which would escape validation and stop the decoder instead of dead-lettering.
    raw = (
        AuthzEvent.model_validate(_event())
        .model_dump_json()
        .replace(AuthzEvent.model_validate(_event()).time.isoformat().replace("+00:00", "Z"), time)
    )
    with pytest.raises(ValidationError, match="time in UTC is out of range"):
        AuthzEvent.model_validate_json(raw)
    with pytest.raises(ValidationError, match="time in UTC is out of range"):
        AuthzEvent.model_validate(_event(time=time))


def test_success_with_a_failure_reason_is_contradictory() -> None:
    with pytest.raises(ValidationError, match="no failure reason"):
        AuthzEvent.model_validate(_event(outcome="success"))


def test_success_without_reason_validates() -> None:
    event = AuthzEvent.model_validate(
        _event(outcome="success", reason=None, action="token.validated")
    )
    assert event.outcome is Outcome.SUCCESS


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("action", "token.stolen"),  # not a known action
        ("reason", "because"),  # not a known reason
        ("trace_id", "xyz"),  # not 32 hex digits
        ("http_status", 42),  # not an HTTP status
    ],
)
def test_out_of_vocabulary_values_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        AuthzEvent.model_validate(_event(**{field: value}))


def test_fingerprint_must_be_keyed_form() -> None:
    token = {"jti": "j", "fingerprint": "3fa9c1d2"}  # no key id, too short
    with pytest.raises(ValidationError, match="pattern"):
        AuthzEvent.model_validate(_event(token=token))


def test_event_round_trips_through_json() -> None:
    event = AuthzEvent.model_validate(_event())
    again = AuthzEvent.model_validate_json(event.model_dump_json())
    assert again == event


def _finding(**overrides: object) -> Finding:
    fields: dict[str, object] = {
        "finding_id": finding_id("leaked_token", "jwt", "app.log:3", 10),
        "detector": "leaked_token",
        "rule": "jwt",
        "kind": "jwt",
        "severity": "critical",
        "observed_at": "2026-11-28T10:00:00Z",
        "title": "Live JWT in a log line",
    }
    fields.update(overrides)
    return Finding.model_validate(fields)


def test_finding_ids_are_deterministic_and_anchor_sensitive() -> None:
    a = finding_id("leaked_token", "jwt", "app.log:3", 10)
    assert a == finding_id("leaked_token", "jwt", "app.log:3", 10)
    assert a != finding_id("leaked_token", "jwt", "app.log:3", 11)
    assert a != finding_id("phi_in_logs", "jwt", "app.log:3", 10)
    # Parts are separated, so shifting text between parts changes the id.
    assert finding_id("d", "r", "ab", "c") != finding_id("d", "r", "a", "bc")


def _part_by_part_id(*parts: object) -> str:
    """The id as first defined: each part's UTF-8, then a 0x1F byte, hashed in turn."""
    h = hashlib.sha256()
    for part in parts:
        h.update(str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\x1f")
    return h.hexdigest()[:32]


# Ids are stored: the store counts on the same input giving the same id, release to release.
_ANY_TEXT = st.text(st.characters(exclude_categories=()))  # lone surrogates too


@given(
    st.sampled_from(list(DetectorName)),
    _ANY_TEXT,
    st.lists(st.one_of(_ANY_TEXT, st.integers(), st.sampled_from(list(Severity))), max_size=4),
)
def test_finding_ids_stay_what_they_were(detector, rule, anchor) -> None:
    assert finding_id(detector, rule, *anchor) == _part_by_part_id(detector, rule, *anchor)


def test_finding_validates_and_orders_by_severity() -> None:
    finding = _finding()
    assert finding.detector is DetectorName.LEAKED_TOKEN
    assert finding.is_at_least(Severity.HIGH)
    assert not _finding(severity="low").is_at_least(Severity.MEDIUM)


def test_finding_rejects_unknown_detector_and_fields() -> None:
    with pytest.raises(ValidationError):
        _finding(detector="regex_soup")
    with pytest.raises(ValidationError, match="Extra inputs"):
        _finding(value="eyJhbGciOi")


def test_finding_facts_are_bounded() -> None:
    with pytest.raises(ValidationError, match="longer than 512"):
        _finding(facts={"note": "x" * 600})


def test_severity_orders_from_info_to_critical() -> None:
    ordered = sorted(
        [Severity.CRITICAL, Severity.INFO, Severity.HIGH, Severity.LOW, Severity.MEDIUM]
    )
    assert ordered == [
        Severity.INFO,
        Severity.LOW,
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
    ]
