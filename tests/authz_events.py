"""Builders of authz events for the stream tests: realistic defaults, one knob per fact.

Times are seconds after ``BASE`` (2026-11-28T10:00:00Z) so a test reads like a timeline.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.models import AuthzEvent

BASE = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
BASE_TS = int(BASE.timestamp())
ISS = "https://ehr.example.org"
OTHER_ISS = "https://ehr.other.example.net"
CDS_BASE = "https://cds.example.com/cds-services"

_CLIENT_ACTIONS = {"token.issued", "request.sent"}
_UNSET: Any = object()


def url_of(service: str) -> str:
    """The endpoint URL of a service id (what `aud` must be)."""
    return f"{CDS_BASE}/{service}"


def at(seconds: float) -> datetime:
    """The datetime ``seconds`` after BASE."""
    return BASE + timedelta(seconds=seconds)


def event(
    t: float,
    *,
    action: str = "token.validated",
    reason: str | None = None,
    outcome: str | None = None,
    iss: str | None = ISS,
    service: str | None = "patient-greeter",
    service_url: str | None = _UNSET,
    jti: str | None = _UNSET,
    hook_instance: str | None = _UNSET,
    peer: str | None = "10.0.0.5",
    role: str | None = None,
    alg: str | None = "ES384",
    kid: str | None = "k1",
    typ: str | None = "JWT",
    iat: int | None = _UNSET,
    exp: int | None = _UNSET,
    nbf: int | None = None,
    aud: tuple[str, ...] | None = _UNSET,
    jku: str | None = None,
    fingerprint: str | None = None,
    token: bool = True,
    fhir_server: str | None = None,
    fhir_authorization: bool | None = None,
    scopes: tuple[str, ...] = (),
    payload_bytes: int | None = None,
    tls_version: str | None = None,
    tls_error: str | None = None,
    event_id: str | uuid.UUID | None = None,
    detail: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> AuthzEvent:
    """One authz event at ``t`` seconds after BASE, with CDS Hooks-conformant defaults."""
    issued = BASE_TS + int(t)
    data: dict[str, Any] = {
        "event_id": str(event_id or uuid.uuid4()),
        "time": at(t).isoformat(),
        "source": {
            "role": role or ("client" if action in _CLIENT_ACTIONS else "service"),
            "name": "ehr" if action in _CLIENT_ACTIONS else (service or "svc"),
        },
        "action": action,
        "outcome": outcome or ("failure" if reason else "success"),
        "reason": reason,
        "detail": detail,
        "hook": "patient-view",
        "hook_instance": str(uuid.uuid4()) if hook_instance is _UNSET else hook_instance,
        "scopes": scopes,
        "attributes": attributes or {},
    }
    if iss is not None:
        data["client"] = {"iss": iss}
    if service is not None or (service_url is not _UNSET and service_url is not None):
        data["service"] = {
            "id": service,
            "url": (url_of(service) if service else None) if service_url is _UNSET else service_url,
        }
    if token:
        data["token"] = {
            "jti": str(uuid.uuid4()) if jti is _UNSET else jti,
            "kid": kid,
            "alg": alg,
            "typ": typ,
            "iat": issued if iat is _UNSET else iat,
            "exp": issued + 300 if exp is _UNSET else exp,
            "nbf": nbf,
            "aud": (url_of(service) if service else ()) if aud is _UNSET else (aud or ()),
            "jku": jku,
            "fingerprint": fingerprint,
        }
    if peer is not None:
        data["peer"] = {"ip": peer}
    if fhir_server is not None:
        data["fhir_server"] = fhir_server
    if fhir_authorization is not None:
        data["fhir_authorization"] = fhir_authorization
    if payload_bytes is not None:
        data["payload_bytes"] = payload_bytes
    if tls_version is not None or tls_error is not None:
        data["tls"] = {"version": tls_version, "error": tls_error}
    return AuthzEvent.model_validate(data)
