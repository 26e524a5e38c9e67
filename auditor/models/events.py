"""``AuthzEvent``: what CDS clients and services record about each token decision.

The contract is strict: unknown top-level fields are rejected, times carry a zone, and the
``token`` part holds claims and a keyed fingerprint only. There is deliberately no field
that could carry a token string; free-form data goes in ``attributes``, which the
content detectors scan like a log line.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from auditor.models.base import Contract, UtcDatetime
from auditor.vocabulary import AuthzAction, FailureReason, Outcome

FINGERPRINT_PATTERN = r"^[A-Za-z0-9_-]{1,32}:[0-9a-f]{32}$"
Fingerprint = Annotated[str, StringConstraints(pattern=FINGERPRINT_PATTERN)]
"""``<key id>:<32 hex digits>``: a keyed HMAC-SHA256, truncated to 128 bits."""

ShortText = Annotated[str, StringConstraints(max_length=512)]
NumericDate = Annotated[int, Field(ge=0, le=253_402_300_799)]
"""Seconds since the epoch, as JWT claims carry them (RFC 7519 §2)."""


class Source(Contract):
    """The process that emitted the event."""

    role: Literal["client", "service"]
    name: ShortText
    instance: ShortText | None = None


class ClientRef(Contract):
    """The CDS client (EHR) involved: its ``iss`` and optional ``tenant``."""

    iss: ShortText
    tenant: ShortText | None = None


class ServiceRef(Contract):
    """The CDS service involved: its id and endpoint URL."""

    id: ShortText | None = None
    url: ShortText | None = None


def _one_or_many(value: Any) -> Any:
    """JWT ``aud`` is a string or an array (RFC 7519 §4.1.3); keep one shape downstream.

    A field validator, not a model one: a ``mode="before"`` model validator makes pydantic
    build the whole ``token`` object in Python before validating it, about a fifth of the
    cost of validating an event from JSON (measured for ``bench/pipeline.py``).
    """
    return (value,) if isinstance(value, str) else value


class TokenClaims(Contract):
    """What is safe to record about a JWT: header fields, claims and a keyed fingerprint.

    ``iss``, ``tenant`` and ``jti`` are safe to log per the CDS Hooks best practices;
    the token itself never is, so this model has no place for it.
    """

    jti: ShortText | None = None
    kid: ShortText | None = None
    alg: Annotated[str, StringConstraints(max_length=32)] | None = None
    typ: Annotated[str, StringConstraints(max_length=64)] | None = None
    iat: NumericDate | None = None
    nbf: NumericDate | None = None
    exp: NumericDate | None = None
    aud: Annotated[tuple[ShortText, ...], BeforeValidator(_one_or_many)] = ()
    jku: ShortText | None = None
    fingerprint: Fingerprint | None = None

    @property
    def lifetime_seconds(self) -> int | None:
        """``exp - iat`` when both are present."""
        if self.exp is None or self.iat is None:
            return None
        return self.exp - self.iat


class TlsInfo(Contract):
    """The TLS session the call used, or why the handshake failed."""

    version: Annotated[str, StringConstraints(max_length=32)] | None = None
    cipher: Annotated[str, StringConstraints(max_length=128)] | None = None
    error: ShortText | None = None


class Peer(Contract):
    """The network peer of the call."""

    ip: Annotated[str, StringConstraints(max_length=64)] | None = None


class AuthzEvent(Contract):
    """One authorization decision or token operation in a CDS Hooks exchange."""

    kind: Literal["authz"] = "authz"
    event_id: UUID
    time: UtcDatetime
    source: Source
    action: AuthzAction
    outcome: Outcome
    reason: FailureReason | None = None
    detail: ShortText | None = Field(
        default=None,
        description="Which claim or check failed, e.g. 'missing claim: jti'. Never a value.",
    )
    http_status: Annotated[int, Field(ge=100, le=599)] | None = None
    client: ClientRef | None = None
    service: ServiceRef | None = None
    token: TokenClaims | None = None
    hook: ShortText | None = None
    hook_instance: ShortText | None = None
    fhir_server: ShortText | None = None
    fhir_authorization: bool | None = Field(
        default=None, description="Whether the request carried fhirAuthorization."
    )
    scopes: tuple[ShortText, ...] = ()
    payload_bytes: Annotated[int, Field(ge=0)] | None = None
    tls: TlsInfo | None = None
    peer: Peer | None = None
    trace_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] | None = None
    span_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] | None = None
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form context. Scanned for leaked tokens and PHI like a log line.",
    )

    @model_validator(mode="after")
    def _reason_goes_with_failure(self) -> AuthzEvent:
        if self.outcome is Outcome.SUCCESS and self.reason is not None:
            raise ValueError("a successful event carries no failure reason")
        return self

    @property
    def client_iss(self) -> str | None:
        """The client's ``iss``, the partition key of the pipeline."""
        return self.client.iss if self.client is not None else None

    @property
    def service_id(self) -> str | None:
        """The service's id, when the event names one."""
        return self.service.id if self.service is not None else None
