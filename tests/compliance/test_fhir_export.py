"""FHIR R4 AuditEvent export, validated with the fhir.resources R4B models.

fhir.resources 8.x has R5 at its root and R4B under ``fhir.resources.R4B``; R4B kept
R4's AuditEvent and Bundle, so R4B validation is R4 validation for these resources.
"""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from audit_scenario import NOW, A, AuditFixture, B, at
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from auditor.vocabulary import FailureReason, Severity
from dashboards.fhir import (
    DCM,
    JTI_URN,
    Observer,
    authz_audit_event,
    failure_outcome,
    finding_audit_event,
    severity_outcome,
    write_bundle,
)
from dashboards.records import EventScope, iter_authz, iter_findings
from dashboards.storage import open_store


def export(
    fixture: AuditFixture, scope: EventScope = EventScope.FAILURES, **period: datetime
) -> dict[str, Any]:
    out = io.StringIO()
    observer = Observer(name="auditor@test", site="hospital-1")
    with open_store(fixture.path) as store:
        resources = [
            finding_audit_event(f, observer) for f in iter_findings(store, batch_size=7, **period)
        ]
        resources += [
            authz_audit_event(e) for e in iter_authz(store, scope, batch_size=7, **period)
        ]
    write_bundle(out, resources, generated_at=NOW, bundle_id="export-1")
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def resources_of(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle.get("entry", [])]


@pytest.fixture(scope="module")
def bundle(_pristine_audit_db: AuditFixture) -> dict[str, Any]:
    return export(_pristine_audit_db)


def test_the_export_is_one_valid_r4_bundle_of_audit_events(bundle: dict[str, Any]) -> None:
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    assert parsed.entry is not None
    assert {type(e.resource).__name__ for e in parsed.entry} == {"AuditEvent"}


def test_every_entry_validates_as_an_audit_event(bundle: dict[str, Any]) -> None:
    for resource in resources_of(bundle):
        AuditEvent.model_validate(resource)


def test_the_bundle_holds_every_finding_and_every_refusal(bundle: dict[str, Any]) -> None:
    kinds = [r["type"]["code"] for r in resources_of(bundle)]
    assert kinds.count("110113") == 19
    assert kinds.count("110114") == 17


def test_entry_urls_are_unique_uuids(bundle: dict[str, Any]) -> None:
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(set(urls)) == len(urls)
    assert all(u.startswith("urn:uuid:") for u in urls)


def test_successful_validations_are_node_authentications_when_asked_for(
    shared_audit_db: AuditFixture,
) -> None:
    doc = export(shared_audit_db, EventScope.ALL)
    Bundle.model_validate(doc)
    resources = resources_of(doc)
    codes = [r["type"]["code"] for r in resources]
    assert codes.count("110126") == 162
    assert len(resources) == 19 + 17 + 162
    node = next(r for r in resources if r["type"]["code"] == "110126")
    assert node["outcome"] == "0"


def test_a_period_selects_findings_and_events_by_their_own_time(
    shared_audit_db: AuditFixture,
) -> None:
    resources = resources_of(export(shared_audit_db, since=at(22), until=at(23)))
    kinds = [r["type"]["code"] for r in resources]
    assert (kinds.count("110113"), kinds.count("110114")) == (5, 8)


def test_an_empty_export_is_still_a_valid_bundle(shared_audit_db: AuditFixture) -> None:
    doc = export(shared_audit_db, since=at(1), until=at(1, 1))
    assert "entry" not in doc  # FHIR JSON forbids empty arrays
    Bundle.model_validate(doc)


def test_a_refused_token_is_a_login_failure_with_the_jti_as_agent_policy(
    bundle: dict[str, Any],
) -> None:
    replay = next(
        r
        for r in resources_of(bundle)
        if r.get("outcomeDesc") == "replayed_jti" and r["agent"][0]["who"]["display"] == A
    )
    assert replay["type"] == {"system": DCM, "code": "110114", "display": "User Authentication"}
    assert {"system": DCM, "code": "110122", "display": "Login"} in replay["subtype"]
    assert replay["outcome"] == "8"
    assert replay["action"] == "E"
    client, service = replay["agent"]
    assert client["requestor"] is True
    assert client["policy"] == [JTI_URN + "jti-leak-1"]
    assert client["type"]["coding"][0]["code"] == "UserOauthAgent"
    assert service["who"]["identifier"]["value"] == "patient-greeter"
    assert replay["recorded"] == "2026-11-20T10:30:00.000Z"


def test_a_refused_token_carries_its_fingerprint_never_the_token(
    bundle: dict[str, Any], shared_audit_db: AuditFixture
) -> None:
    replay = next(r for r in resources_of(bundle) if r.get("outcomeDesc") == "replayed_jti")
    values = [e["what"]["identifier"]["value"] for e in replay["entity"]]
    assert any(v.startswith(shared_audit_db.fingerprinter.key_id + ":") for v in values)


def test_a_finding_is_a_security_alert_from_the_observer(
    bundle: dict[str, Any], shared_audit_db: AuditFixture
) -> None:
    leak = next(
        r for r in resources_of(bundle) if r["id"] == f"finding-{shared_audit_db.fid('L1')}"
    )
    assert leak["type"]["code"] == "110113"
    assert leak["outcome"] == "12"  # critical: a live token leaked, the system may be compromised
    assert leak["source"]["observer"]["display"] == "auditor@test"
    assert leak["source"]["site"] == "hospital-1"
    client = next(a for a in leak["agent"] if a["who"].get("display") == A)
    assert client["policy"] == [JTI_URN + "jti-leak-1"]
    identifiers = {
        e["what"]["identifier"]["system"]: e["what"]["identifier"]["value"] for e in leak["entity"]
    }
    assert identifiers["urn:cds-hooks-auditor:fingerprint"] == shared_audit_db.fp_leak
    details = {d["type"]: d["valueString"] for d in leak["entity"][0]["detail"]}
    assert details["review_status"] == "resolved"
    assert details["fact.live"] == "true"


def test_a_burst_names_its_events_and_its_window(
    bundle: dict[str, Any], shared_audit_db: AuditFixture
) -> None:
    burst = next(
        r for r in resources_of(bundle) if r["id"] == f"finding-{shared_audit_db.fid('R1')}"
    )
    assert burst["period"] == {
        "start": "2026-11-22T09:00:00.000Z",
        "end": "2026-11-22T09:05:00.000Z",
    }
    events = [
        e
        for e in burst["entity"]
        if e["what"]["identifier"]["system"] == "urn:cds-hooks-auditor:authz-event"
    ]
    assert len(events) == 3
    assert any(a["who"].get("display") == B for a in burst["agent"])


@pytest.mark.parametrize(
    ("severity", "outcome"),
    [
        # DICOM Security Alert: success = informative alert ...
        (Severity.INFO, "0"),
        # ... minor or serious failure = mitigation held ...
        (Severity.LOW, "4"),
        (Severity.MEDIUM, "4"),
        (Severity.HIGH, "8"),
        # ... major failure = the system may have been compromised.
        (Severity.CRITICAL, "12"),
    ],
)
def test_alert_outcome_follows_severity(severity: Severity, outcome: str) -> None:
    assert severity_outcome(severity) == outcome


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [
        # A trusted client's timing or housekeeping problem: minor.
        (FailureReason.EXPIRED, "4"),
        (FailureReason.IAT_IN_FUTURE, "4"),
        (FailureReason.RATE_LIMITED, "4"),
        (FailureReason.JWKS_UNAVAILABLE, "4"),
        # A credential or peer that cannot be trusted: serious.
        (FailureReason.BAD_SIGNATURE, "8"),
        (FailureReason.ALG_NOT_ALLOWED, "8"),
        (FailureReason.REPLAYED_JTI, "8"),
        (FailureReason.UNKNOWN_ISSUER, "8"),
        (FailureReason.AUD_MISMATCH, "8"),
        # Unknown or missing reasons fail closed.
        ("some_new_reason", "8"),
        (None, "8"),
    ],
)
def test_failure_outcome_separates_housekeeping_from_distrust(
    reason: str | None, outcome: str
) -> None:
    assert failure_outcome(reason) == outcome


def test_the_bundle_is_streamed_entry_by_entry() -> None:
    # A generator that fails after two resources: two entries are already written, so
    # the writer held no more than one resource at a time.
    out = io.StringIO()

    def resources() -> Any:
        for i in range(2):
            yield {"resourceType": "AuditEvent", "id": f"r{i}"}
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        write_bundle(out, resources(), generated_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert out.getvalue().count('"resourceType":"AuditEvent"') == 2


def _walk(value: Any) -> Any:
    yield value
    if isinstance(value, dict):
        for child in value.values():
            yield from _walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child)


def test_rules_the_fhir_library_does_not_check_hold_too(shared_audit_db: AuditFixture) -> None:
    # fhir.resources checks types and required elements, not cardinality minimums,
    # bound code values or JSON's no-empty-values rule; these are checked here.
    doc = export(shared_audit_db, EventScope.ALL)
    id_pattern = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
    for resource in resources_of(doc):
        assert id_pattern.match(resource["id"])
        assert len(resource["agent"]) >= 1  # AuditEvent.agent 1..*
        assert resource["outcome"] in {"0", "4", "8", "12"}  # required binding, R4
        assert resource["type"]["system"] == DCM
        assert resource.get("action", "E") in {"C", "R", "U", "D", "E"}
        for agent in resource["agent"]:
            assert isinstance(agent["requestor"], bool)  # 1..1
            for policy in agent.get("policy", []):
                assert policy.startswith("urn:")
                assert " " not in policy
        for entity in resource.get("entity", []):
            assert not ("name" in entity and "query" in entity)  # sev-1
    for node in _walk(doc):
        assert node not in ("", [], {}), "FHIR JSON has no empty strings, arrays or objects"
