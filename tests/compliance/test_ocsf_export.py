"""OCSF export: required attributes and enum values of Detection Finding and Authentication.

The required attributes come from the OCSF 1.4.0 schema: the base event requires
activity_id, category_uid, class_uid, metadata (product.name, version), severity_id,
time and type_uid; Detection Finding requires finding_info (with uid); Authentication
requires user, and at least one of service / dst_endpoint.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from audit_scenario import A, AuditFixture, at

from auditor.vocabulary import ReviewStatus, Severity
from dashboards.ocsf import (
    FINDING_STATUS,
    OCSF_VERSION,
    SEVERITY_ID,
    Product,
    authentication,
    detection_finding,
    write_jsonl,
)
from dashboards.records import EventScope, iter_authz, iter_findings
from dashboards.storage import open_store

BASE_REQUIRED = (
    "activity_id",
    "category_uid",
    "class_uid",
    "metadata",
    "severity_id",
    "time",
    "type_uid",
)
PRODUCT = Product(version="9.9.9")


def export(fixture: AuditFixture, scope: EventScope = EventScope.FAILURES) -> list[dict[str, Any]]:
    out = io.StringIO()
    with open_store(fixture.path) as store:
        events = [detection_finding(f, PRODUCT) for f in iter_findings(store, batch_size=4)]
        events += [authentication(e, PRODUCT) for e in iter_authz(store, scope, batch_size=4)]
    write_jsonl(out, events)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture(scope="module")
def events(_pristine_audit_db: AuditFixture) -> list[dict[str, Any]]:
    return export(_pristine_audit_db, EventScope.ALL)


def findings_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["class_uid"] == 2004]


def authentications_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["class_uid"] == 3002]


def test_one_event_per_finding_and_per_authz_event(events: list[dict[str, Any]]) -> None:
    assert len(findings_of(events)) == 19
    assert len(authentications_of(events)) == 17 + 162


def test_failures_scope_exports_only_refusals(shared_audit_db: AuditFixture) -> None:
    auths = authentications_of(export(shared_audit_db))
    assert len(auths) == 17
    assert {a["status_id"] for a in auths} == {2}


def test_every_event_has_the_base_required_attributes(events: list[dict[str, Any]]) -> None:
    for event in events:
        missing = [name for name in BASE_REQUIRED if event.get(name) is None]
        assert missing == [], event["metadata"]["uid"]
        assert event["metadata"]["version"] == OCSF_VERSION
        assert event["metadata"]["product"]["name"]
        assert event["type_uid"] == event["class_uid"] * 100 + event["activity_id"]
        assert isinstance(event["time"], int)  # timestamp_t: epoch milliseconds


def test_detection_findings_have_their_required_and_enum_attributes(
    events: list[dict[str, Any]],
) -> None:
    for event in findings_of(events):
        assert event["category_uid"] == 2
        assert event["finding_info"]["uid"]
        assert event["activity_id"] in {1, 2, 3}
        assert event["severity_id"] in {1, 2, 3, 4, 5}
        assert event["status_id"] in {1, 2, 3, 4}
        assert isinstance(event["is_alert"], bool)
        assert event["evidences"]
        evidence = event["evidences"][0]
        # OCSF: an evidence names at least one artifact.
        assert {"data", "actor"} & set(evidence)


def test_authentications_have_their_required_and_enum_attributes(
    events: list[dict[str, Any]],
) -> None:
    for event in authentications_of(events):
        assert event["category_uid"] == 3
        assert event["activity_id"] == 1  # Logon
        assert event["auth_protocol_id"] == 6  # OAuth 2.0
        assert event["status_id"] in {1, 2}
        assert event["user"]["uid"]
        assert event.get("service") or event.get("dst_endpoint")
        assert event["severity_id"] in {1, 2, 3}


def test_a_live_leak_is_an_open_critical_alert(
    events: list[dict[str, Any]], shared_audit_db: AuditFixture
) -> None:
    leak = next(
        e for e in findings_of(events) if e["finding_info"]["uid"] == shared_audit_db.fid("L5")
    )
    assert (leak["severity_id"], leak["severity"]) == (5, "Critical")
    assert (leak["activity_id"], leak["status_id"], leak["is_alert"]) == (1, 1, True)
    assert leak["evidences"][0]["data"]["fingerprint"] == shared_audit_db.fp_leak
    assert leak["evidences"][0]["actor"] == {"app_name": A}


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        # Resolved: closed, no longer alerting.
        ("L1", (3, 4, False)),
        # False positive: closed and suppressed.
        ("P1", (3, 3, False)),
        # Acknowledged: updated, in progress, still an alert.
        ("V1", (2, 2, True)),
        # A burst that grew (revision 2) is an update even before review.
        ("R1", (2, 1, True)),
        # Informational findings do not alert.
        ("V3", (1, 1, False)),
    ],
)
def test_activity_status_and_alert_follow_the_review(
    events: list[dict[str, Any]],
    shared_audit_db: AuditFixture,
    label: str,
    expected: tuple[int, int, bool],
) -> None:
    event = next(
        e for e in findings_of(events) if e["finding_info"]["uid"] == shared_audit_db.fid(label)
    )
    assert (event["activity_id"], event["status_id"], event["is_alert"]) == expected


def test_a_refusal_reports_reason_token_claims_and_peer(events: list[dict[str, Any]]) -> None:
    refusal = next(
        e for e in authentications_of(events) if e.get("status_detail") == "alg_not_allowed"
    )
    assert (refusal["status"], refusal["severity_id"]) == ("Failure", 3)
    assert refusal["src_endpoint"] == {"ip": "203.0.113.9"}
    assert refusal["unmapped"]["token"]["alg"] == "ES384"
    assert refusal["unmapped"]["token"]["fingerprint"].count(":") == 1


def test_an_expired_token_is_a_low_severity_failure(events: list[dict[str, Any]]) -> None:
    expired = next(e for e in authentications_of(events) if e.get("status_detail") == "expired")
    assert expired["severity_id"] == 2


def test_a_validated_token_is_an_informational_success(events: list[dict[str, Any]]) -> None:
    success = next(e for e in authentications_of(events) if e["status_id"] == 1)
    assert (success["status"], success["severity_id"]) == ("Success", 1)
    assert "status_detail" not in success


def test_severity_and_status_maps_cover_every_value() -> None:
    assert set(SEVERITY_ID) == set(Severity)
    assert set(FINDING_STATUS) == set(ReviewStatus)


def test_times_are_epoch_milliseconds(
    events: list[dict[str, Any]], shared_audit_db: AuditFixture
) -> None:
    burst = next(
        e for e in findings_of(events) if e["finding_info"]["uid"] == shared_audit_db.fid("R1")
    )
    assert burst["start_time"] == int(at(22, 9).timestamp() * 1000)
    assert burst["end_time"] == int(at(22, 9, 5).timestamp() * 1000)
