"""OCSF events for SIEM ingestion: Detection Finding (2004) and Authentication (3002).

Written against OCSF 1.4.0 (the first version with ``is_alert``). Every event carries
the base attributes OCSF requires (``activity_id``, ``category_uid``, ``class_uid``,
``type_uid`` = class_uid * 100 + activity_id, ``time`` in epoch milliseconds,
``severity_id``, ``metadata`` with ``product.name`` and the schema ``version``) and
those its class requires: ``finding_info.uid`` for a Detection Finding, ``user`` (and a
``service``) for an Authentication.

Findings:
- ``activity_id``: 1 Create for a first revision nobody has decided on, 2 Update when
  the incident grew (revision > 0) or a reviewer acted, 3 Close once resolved or marked
  false positive.
- ``status_id`` follows the review: 1 New (open), 2 In Progress (acknowledged, assigned),
  3 Suppressed (false positive), 4 Resolved.
- ``is_alert`` is true for findings of medium severity or above that are not closed.
- ``evidences[0].data`` holds the keyed fingerprint, the location, the origin and the
  exportable facts; never a value.

Authz events: ``activity_id`` 1 Logon, ``auth_protocol_id`` 6 (OAuth 2.0; CDS Hooks
JWTs are OAuth 2.0 client assertions), ``status_id`` 1 Success / 2 Failure with the
reason in ``status_detail``; the CDS client is the ``user`` (a system account named by
its ``iss``), the CDS service is the ``service``. Severity: 1 Informational for a
success, 2 Low for a minor failure, 3 Medium for an untrusted credential (the same split
as the FHIR outcome 4 / 8).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import IO, Any, Final

from auditor.vocabulary import Outcome, ReviewStatus, Severity
from dashboards.fhir import failure_outcome
from dashboards.records import AuthzRecord, FindingRecord

__all__ = [
    "OCSF_VERSION",
    "Product",
    "authentication",
    "detection_finding",
    "write_jsonl",
]

OCSF_VERSION: Final = "1.4.0"

try:
    import orjson

    def _dumps_sorted(value: object) -> str:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

except ModuleNotFoundError:  # pragma: no cover - orjson comes with the pipeline extra

    def _dumps_sorted(value: object) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


FINDINGS_CATEGORY: Final = 2
DETECTION_FINDING: Final = 2004
IAM_CATEGORY: Final = 3
AUTHENTICATION: Final = 3002
LOGON: Final = 1
OAUTH2: Final = 6
USER_TYPE_SYSTEM: Final = 3
ANALYTIC_RULE: Final = 1

SEVERITY_ID: Final = {
    Severity.INFO: (1, "Informational"),
    Severity.LOW: (2, "Low"),
    Severity.MEDIUM: (3, "Medium"),
    Severity.HIGH: (4, "High"),
    Severity.CRITICAL: (5, "Critical"),
}
FINDING_STATUS: Final = {
    ReviewStatus.OPEN: (1, "New"),
    ReviewStatus.ACKNOWLEDGED: (2, "In Progress"),
    ReviewStatus.ASSIGNED: (2, "In Progress"),
    ReviewStatus.FALSE_POSITIVE: (3, "Suppressed"),
    ReviewStatus.RESOLVED: (4, "Resolved"),
}
_ACTIVITY: Final = {1: "Create", 2: "Update", 3: "Close"}
_CLOSED: Final = frozenset({ReviewStatus.RESOLVED, ReviewStatus.FALSE_POSITIVE})


@dataclass(frozen=True, slots=True)
class Product:
    """The product that reports the events (``metadata.product``)."""

    name: str = "CDS Hooks Auditor"
    vendor_name: str = "cds-hooks-auditor"
    version: str = ""

    @classmethod
    def installed(cls) -> Product:
        """This package, with its installed version."""
        try:
            version = metadata.version("cds-hooks-auditor")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
        return cls(version=version)

    def as_object(self) -> dict[str, str]:
        """The OCSF ``product`` object."""
        product = {"name": self.name, "vendor_name": self.vendor_name}
        if self.version:
            product["version"] = self.version
        return product


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _metadata(product: Product, uid: str, log_name: str, labels: list[str]) -> dict[str, Any]:
    return {
        "version": OCSF_VERSION,
        "product": product.as_object(),
        "uid": uid,
        "log_name": log_name,
        "labels": labels,
    }


def _drop_empty(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None and v not in ({}, [], "")}


def detection_finding(finding: FindingRecord, product: Product) -> dict[str, Any]:
    """The OCSF Detection Finding (class 2004) of one finding."""
    if finding.status in _CLOSED:
        activity = 3
    elif finding.revision > 0 or finding.status is not ReviewStatus.OPEN:
        activity = 2
    else:
        activity = 1
    severity_id, severity = SEVERITY_ID[finding.severity]
    status_id, status = FINDING_STATUS[finding.status]
    first_seen = finding.window_start or finding.observed_at
    last_seen = finding.window_end or finding.observed_at
    evidence_data = _drop_empty(
        {
            "fingerprint": finding.fingerprint,
            "location": finding.location,
            "origin": finding.origin,
            "kind": finding.kind,
            "facts": dict(finding.facts),
        }
    )
    evidence: dict[str, Any] = {"data": evidence_data}
    if finding.client_iss:
        evidence["actor"] = {"app_name": finding.client_iss}
    info = _drop_empty(
        {
            "uid": finding.finding_id,
            "title": finding.title,
            "desc": finding.reference,
            "types": [finding.detector, finding.kind],
            "analytic": {
                "uid": f"{finding.detector}/{finding.rule}",
                "name": finding.rule,
                "type_id": ANALYTIC_RULE,
                "type": "Rule",
            },
            "created_time": _ms(finding.first_stored_at),
            "modified_time": _ms(finding.last_stored_at),
            "first_seen_time": _ms(first_seen),
            "last_seen_time": _ms(last_seen),
            "related_events": [{"uid": e} for e in finding.event_ids],
        }
    )
    event: dict[str, Any] = {
        "class_uid": DETECTION_FINDING,
        "class_name": "Detection Finding",
        "category_uid": FINDINGS_CATEGORY,
        "category_name": "Findings",
        "activity_id": activity,
        "activity_name": _ACTIVITY[activity],
        "type_uid": DETECTION_FINDING * 100 + activity,
        "type_name": f"Detection Finding: {_ACTIVITY[activity]}",
        "time": _ms(finding.observed_at),
        "start_time": _ms(first_seen),
        "end_time": _ms(last_seen),
        "count": finding.count,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "is_alert": finding.severity >= Severity.MEDIUM and finding.status not in _CLOSED,
        "message": finding.title,
        "metadata": _metadata(product, finding.finding_id, "findings", [finding.detector]),
        "finding_info": info,
        "evidences": [evidence],
        "unmapped": _drop_empty(
            {
                "safeguard": finding.safeguard,
                "revision": finding.revision,
                "review_status": finding.status.value,
            }
        ),
    }
    if finding.service_id:
        event["resources"] = [{"uid": finding.service_id, "type": "CDS Service"}]
    return event


def authentication(event: AuthzRecord, product: Product) -> dict[str, Any]:
    """The OCSF Authentication (class 3002) of one authz decision."""
    failed = event.outcome is Outcome.FAILURE
    if not failed:
        severity_id, severity = 1, "Informational"
    elif failure_outcome(event.reason) == "4":
        severity_id, severity = 2, "Low"
    else:
        severity_id, severity = 3, "Medium"
    user = _drop_empty(
        {
            "uid": event.client_iss,
            "name": event.client_iss or "unknown",
            "type_id": USER_TYPE_SYSTEM,
            "type": "System",
            "org": {"uid": event.client_tenant} if event.client_tenant else None,
        }
    )
    result: dict[str, Any] = {
        "class_uid": AUTHENTICATION,
        "class_name": "Authentication",
        "category_uid": IAM_CATEGORY,
        "category_name": "Identity & Access Management",
        "activity_id": LOGON,
        "activity_name": "Logon",
        "type_uid": AUTHENTICATION * 100 + LOGON,
        "type_name": "Authentication: Logon",
        "time": _ms(event.time),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": 2 if failed else 1,
        "status": "Failure" if failed else "Success",
        "auth_protocol_id": OAUTH2,
        "auth_protocol": "OAUTH 2.0",
        "is_remote": True,
        "user": user,
        "service": _drop_empty(
            {"name": event.service_id or event.source_name, "uid": event.service_url}
        ),
        "metadata": _drop_empty(
            {
                **_metadata(product, event.event_id, "authz", [event.action]),
                "correlation_uid": event.trace_id,
            }
        ),
        "unmapped": _drop_empty(
            {
                "action": event.action,
                "source": _drop_empty(
                    {
                        "role": event.source_role,
                        "name": event.source_name,
                        "instance": event.source_instance,
                    }
                ),
                "token": _drop_empty(
                    {
                        "jti": event.token_jti,
                        "kid": event.token_kid,
                        "alg": event.token_alg,
                        "typ": event.token_typ,
                        "fingerprint": event.token_fingerprint,
                    }
                ),
                "hook": event.hook,
                "http_status": event.http_status,
            }
        ),
    }
    if failed:
        result["status_code"] = event.reason or "failure"
        result["status_detail"] = event.reason or "failure"
    if event.peer_ip:
        result["src_endpoint"] = {"ip": event.peer_ip}
    return result


def write_jsonl(out: IO[str], events: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line; returns how many."""
    written = 0
    for event in events:
        out.write(_dumps_sorted(event) + "\n")
        written += 1
    return written
