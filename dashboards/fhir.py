"""FHIR R4 ``AuditEvent`` resources for findings and authz events, in one ``Bundle``.

Mapping (FHIR R4 AuditEvent, DICOM PS3.15 audit messages, IHE BALP):

- A finding is a **Security Alert**: ``type`` DCM 110113. Its ``outcome`` carries the
  seriousness as DICOM defines for Security Alert messages: 0 for an informative alert,
  4 / 8 for minor / serious problems that were contained (low and medium / high), 12
  when the system may have been compromised (critical: e.g. a live token leaked).
  The alerting agent is the auditor (DCM 110150 Application); the client and the service
  named by the finding are agents too. ``entity`` holds the finding id, the keyed
  fingerprint of the leaked value (never the value) and the authz events involved.
- A refused request is a **User Authentication / Login** failure: ``type`` DCM 110114,
  ``subtype`` DCM 110122, ``outcome`` 4 when a trusted client had a timing or
  housekeeping problem (expired, clock skew, limits, our own outage) and 8 when the
  credential or peer could not be trusted (bad signature, unknown key or issuer, wrong
  audience, replay, disallowed algorithm, policy refusals).
- A successful token validation (exported on request) is a system-to-system **Node
  Authentication**: ``type`` DCM 110126, ``outcome`` 0.
- For token decisions the client is the requesting agent, typed as BALP's
  ``UserOauthAgent``, and the token's ``jti`` is recorded as an agent policy URI
  ``urn:ietf:params:oauth:jti:<jti>``, as IHE BALP does for OAuth access tokens.

``fhir.resources`` 8.x ships R5 at its root and R4B in ``fhir.resources.R4B``; R4B left
``AuditEvent`` and ``Bundle`` as R4 defined them, so the tests validate our output with
the R4B models.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import IO, Any, Final

from auditor.vocabulary import FailureReason, Outcome, Severity
from dashboards.records import AuthzRecord, FindingRecord

__all__ = [
    "DCM",
    "Observer",
    "authz_audit_event",
    "failure_outcome",
    "finding_audit_event",
    "severity_outcome",
    "write_bundle",
]

DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
BALP_AGENT_TYPES: Final = "https://profiles.ihe.net/ITI/BALP/CodeSystem/UserAgentTypes"
SOURCE_TYPES: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPES: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLES: Final = "http://terminology.hl7.org/CodeSystem/object-role"
JTI_URN: Final = "urn:ietf:params:oauth:jti:"

SYSTEM_FINDING: Final = "urn:cds-hooks-auditor:finding"
SYSTEM_FINGERPRINT: Final = "urn:cds-hooks-auditor:fingerprint"
SYSTEM_EVENT: Final = "urn:cds-hooks-auditor:authz-event"
SYSTEM_DETECTOR: Final = "urn:cds-hooks-auditor:detector"
SYSTEM_ACTION: Final = "urn:cds-hooks-auditor:authz-action"
SYSTEM_CLIENT: Final = "urn:cds-hooks:client-iss"
SYSTEM_SERVICE: Final = "urn:cds-hooks:service-id"

MAX_EVENT_ENTITIES: Final = 50
"""A burst may name thousands of events; the first ones identify it well enough."""

try:
    import orjson

    def _dumps(value: object) -> str:
        return orjson.dumps(value).decode()

except ModuleNotFoundError:  # pragma: no cover - orjson comes with the pipeline extra

    def _dumps(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_NAMESPACE: Final = uuid.UUID("5b7e4a52-2f4c-4c6e-9a57-2d3c1f0e8a11")

_SEVERITY_OUTCOME: Final = {
    Severity.INFO: "0",
    Severity.LOW: "4",
    Severity.MEDIUM: "4",
    Severity.HIGH: "8",
    Severity.CRITICAL: "12",
}

_MINOR_FAILURES: Final = frozenset(
    {
        FailureReason.EXPIRED,
        FailureReason.NOT_YET_VALID,
        FailureReason.IAT_IN_FUTURE,
        FailureReason.LIFETIME_TOO_LONG,
        FailureReason.MISSING_TOKEN,
        FailureReason.PAYLOAD_TOO_LARGE,
        FailureReason.INVALID_REQUEST,
        FailureReason.RATE_LIMITED,
        FailureReason.JWKS_UNAVAILABLE,
        FailureReason.UNREACHABLE,
        FailureReason.INTERNAL_ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class Observer:
    """Who records the exported audit events: this auditor installation.

    Attributes:
        name: How the installation is known, e.g. ``cds-hooks-auditor@sec-01``.
        site: The enterprise site or data centre, when useful to the reader.
    """

    name: str = "cds-hooks-auditor"
    site: str | None = None


def severity_outcome(severity: Severity) -> str:
    """The AuditEvent outcome code of a Security Alert of this severity."""
    return _SEVERITY_OUTCOME[severity]


def failure_outcome(reason: str | None) -> str:
    """``4`` (minor failure) or ``8`` (serious failure) for a refusal with this reason.

    Unknown or missing reasons are serious: fail closed.
    """
    try:
        known = FailureReason(reason) if reason else None
    except ValueError:
        known = None
    return "4" if known in _MINOR_FAILURES else "8"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@cache
def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    # Shared, never mutated: the same few codings recur in every resource.
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def _client_agent(
    iss: str, *, jti: str | None, peer_ip: str | None, requestor: bool
) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {
            "coding": [_coding(BALP_AGENT_TYPES, "UserOauthAgent", "User OAuth Agent participant")]
        },
        "who": {"identifier": _identifier(SYSTEM_CLIENT, iss), "display": iss},
        "requestor": requestor,
    }
    if jti:
        agent["policy"] = [JTI_URN + jti]
    if peer_ip:
        agent["network"] = {"address": peer_ip, "type": "2"}
    return agent


def _service_agent(service_id: str | None, service_url: str | None) -> dict[str, Any]:
    name = service_id or service_url or "unknown"
    agent: dict[str, Any] = {
        "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
        "who": {"identifier": _identifier(SYSTEM_SERVICE, name), "display": name},
        "requestor": False,
    }
    if service_url:
        agent["network"] = {"address": service_url, "type": "5"}
    return agent


def _detail(pairs: Iterable[tuple[str, object]]) -> list[dict[str, str]]:
    details = []
    for name, value in pairs:
        if value is None or value == "" or value == []:  # noqa: PLR1714 - [] is unhashable
            continue
        if value is True or value is False or type(value) is list:
            text = json.dumps(value)
        else:
            text = str(value)
        details.append({"type": name, "valueString": text})
    return details


def finding_audit_event(finding: FindingRecord, observer: Observer) -> dict[str, Any]:
    """The AuditEvent (Security Alert) of one finding, as a JSON-ready dict."""
    jti = finding.facts.get("jti")
    agents: list[dict[str, Any]] = [
        {
            "type": {"coding": [_coding(DCM, "110150", "Application")]},
            "who": {"display": f"{observer.name} ({finding.detector})"},
            "requestor": False,
        }
    ]
    if finding.client_iss:
        agents.append(
            _client_agent(
                finding.client_iss,
                jti=jti if isinstance(jti, str) else None,
                peer_ip=None,
                requestor=False,
            )
        )
    if finding.service_id:
        agents.append(_service_agent(finding.service_id, None))
    detail = _detail(
        [
            ("detector", finding.detector),
            ("rule", finding.rule),
            ("kind", finding.kind),
            ("severity", finding.severity.value),
            ("safeguard", finding.safeguard),
            ("reference", finding.reference),
            ("location", finding.location),
            ("origin", finding.origin),
            ("count", finding.count),
            ("revision", finding.revision),
            ("review_status", finding.status.value),
            *sorted((f"fact.{k}", v) for k, v in finding.facts.items()),
        ]
    )
    entities: list[dict[str, Any]] = [
        {
            "what": {"identifier": _identifier(SYSTEM_FINDING, finding.finding_id)},
            "type": _coding(ENTITY_TYPES, "2", "System Object"),
            "role": _coding(OBJECT_ROLES, "13", "Security Resource"),
            "description": finding.title,
            "detail": detail,
        }
    ]
    if finding.fingerprint:
        entities.append(
            {
                "what": {"identifier": _identifier(SYSTEM_FINGERPRINT, finding.fingerprint)},
                "type": _coding(ENTITY_TYPES, "4", "Other"),
                "description": f"keyed fingerprint of the exposed {finding.kind}",
            }
        )
    entities.extend(
        {
            "what": {"identifier": _identifier(SYSTEM_EVENT, event_id)},
            "type": _coding(ENTITY_TYPES, "2", "System Object"),
        }
        for event_id in finding.event_ids[:MAX_EVENT_ENTITIES]
    )
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"finding-{finding.finding_id}",
        "type": _coding(DCM, "110113", "Security Alert"),
        "subtype": [_coding(SYSTEM_DETECTOR, finding.detector)],
        "recorded": _instant(finding.observed_at),
        "outcome": severity_outcome(finding.severity),
        "outcomeDesc": f"{finding.severity.value}: {finding.title}",
        "agent": agents,
        "source": _source(observer, "6", "Security Server"),
        "entity": entities,
    }
    if finding.window_start and finding.window_end:
        event["period"] = {
            "start": _instant(finding.window_start),
            "end": _instant(finding.window_end),
        }
    return event


def _source(observer: Observer, code: str, display: str) -> dict[str, Any]:
    source: dict[str, Any] = {
        "observer": {"display": observer.name},
        "type": [_coding(SOURCE_TYPES, code, display)],
    }
    if observer.site:
        source["site"] = observer.site
    return source


def authz_audit_event(event: AuthzRecord) -> dict[str, Any]:
    """The AuditEvent of one authz decision (Login failure or Node Authentication)."""
    failed = event.outcome is Outcome.FAILURE
    subtype = [_coding(DCM, "110122", "Login")] if failed else []
    subtype.append(_coding(SYSTEM_ACTION, event.action))
    agents: list[dict[str, Any]] = []
    if event.client_iss:
        agents.append(
            _client_agent(
                event.client_iss, jti=event.token_jti, peer_ip=event.peer_ip, requestor=True
            )
        )
    if event.service_id or event.service_url:
        agents.append(_service_agent(event.service_id, event.service_url))
    if not agents:
        agents.append({"who": {"display": event.source_name}, "requestor": False})
    recorder = f"{event.source_role} {event.source_name}"
    if event.source_instance:
        recorder += f" ({event.source_instance})"
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"authz-{event.event_id}",
        "type": (
            _coding(DCM, "110114", "User Authentication")
            if failed
            else _coding(DCM, "110126", "Node Authentication")
        ),
        "subtype": subtype,
        "action": "E",
        "recorded": _instant(event.time),
        "outcome": failure_outcome(event.reason) if failed else "0",
        "agent": agents,
        "source": {
            "observer": {"display": recorder},
            "type": [_coding(SOURCE_TYPES, "4", "Application Server")],
        },
    }
    if failed:
        resource["outcomeDesc"] = event.reason or "failure"
    detail = _detail(
        [
            ("alg", event.token_alg),
            ("kid", event.token_kid),
            ("typ", event.token_typ),
            ("hook", event.hook),
            ("http_status", event.http_status),
            ("trace_id", event.trace_id),
            ("tenant", event.client_tenant),
        ]
    )
    entity: dict[str, Any] = {
        "what": {"identifier": _identifier(SYSTEM_EVENT, event.event_id)},
        "type": _coding(ENTITY_TYPES, "2", "System Object"),
    }
    if detail:
        entity["detail"] = detail
    entities = [entity]
    if event.token_fingerprint:
        entities.append(
            {
                "what": {"identifier": _identifier(SYSTEM_FINGERPRINT, event.token_fingerprint)},
                "type": _coding(ENTITY_TYPES, "2", "System Object"),
                "role": _coding(OBJECT_ROLES, "13", "Security Resource"),
                "description": "keyed fingerprint of the presented JWT",
            }
        )
    resource["entity"] = entities
    return resource


def _full_url(resource_id: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, resource_id)}"


def write_bundle(
    out: IO[str],
    resources: Iterable[dict[str, Any]],
    *,
    generated_at: datetime,
    bundle_id: str | None = None,
) -> int:
    """Stream one R4 ``Bundle`` (type ``collection``) of ``resources`` to ``out``.

    Entries are written as they come, so a bundle of a million events needs the memory
    of one. Returns the number of entries written.
    """
    header = {
        "resourceType": "Bundle",
        "id": bundle_id or str(uuid.uuid4()),
        "meta": {"lastUpdated": _instant(generated_at)},
        "type": "collection",
        "timestamp": _instant(generated_at),
    }
    # FHIR JSON forbids empty arrays, so "entry" opens only with the first resource.
    opening = _dumps(header)
    written = 0
    for resource in resources:
        entry = {"fullUrl": _full_url(str(resource["id"])), "resource": resource}
        prefix = opening[:-1] + ',"entry":[\n' if written == 0 else ",\n"
        out.write(prefix + _dumps(entry))
        written += 1
    out.write("\n]}\n" if written else opening + "\n")
    return written
