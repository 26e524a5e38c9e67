"""The msgspec mirror of ``AuthzEvent``: its fields, types and constraints as ``Struct`` types.

Plain Python, never compiled (mypyc does not build ``msgspec.Struct`` subclasses); the
builder that turns a decoded mirror into the contract's models is ``authz_mirror``.
Every field is optional here exactly where the contract gives it a default, and defaults
to ``UNSET``, so the builder knows which fields the JSON held (pydantic's
``model_fields_set``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from msgspec import UNSET, Meta, Struct, UnsetType

from auditor.models.events import FINGERPRINT_PATTERN
from auditor.vocabulary import AuthzAction, FailureReason, Outcome

__all__ = [
    "ClientMirror",
    "EventMirror",
    "PeerMirror",
    "ServiceMirror",
    "SourceMirror",
    "TlsMirror",
    "TokenMirror",
]

# The contract's limits (auditor/models/events.py; str_max_length 8192 in models/base.py).
_Short = Annotated[str, Meta(max_length=512)]
_Key = Annotated[str, Meta(max_length=8192)]
_Date = Annotated[int, Meta(ge=0, le=253_402_300_799)]
# pydantic's patterns are Rust regexes anchored at the very end; Python's ``$`` also
# matches before a final newline, hence ``\Z``.
_Fingerprint = Annotated[str, Meta(pattern=FINGERPRINT_PATTERN.removesuffix("$") + r"\Z")]
_TraceId = Annotated[str, Meta(pattern=r"^[0-9a-f]{32}\Z")]
_SpanId = Annotated[str, Meta(pattern=r"^[0-9a-f]{16}\Z")]


class _Part(Struct, forbid_unknown_fields=True):
    """A nested part of the event: unknown fields refused, as the contract does."""


class SourceMirror(_Part):
    """The mirror of ``Source``."""

    role: Literal["client", "service"]
    name: _Short
    instance: _Short | UnsetType | None = UNSET


class ClientMirror(_Part):
    """The mirror of ``ClientRef``."""

    iss: _Short
    tenant: _Short | UnsetType | None = UNSET


class ServiceMirror(_Part):
    """The mirror of ``ServiceRef``."""

    id: _Short | UnsetType | None = UNSET
    url: _Short | UnsetType | None = UNSET


class TokenMirror(_Part):
    """The mirror of ``TokenClaims``; ``aud`` as JSON has it (one string or many)."""

    jti: _Short | UnsetType | None = UNSET
    kid: _Short | UnsetType | None = UNSET
    alg: Annotated[str, Meta(max_length=32)] | UnsetType | None = UNSET
    typ: Annotated[str, Meta(max_length=64)] | UnsetType | None = UNSET
    iat: _Date | UnsetType | None = UNSET
    nbf: _Date | UnsetType | None = UNSET
    exp: _Date | UnsetType | None = UNSET
    aud: tuple[_Short, ...] | _Short | UnsetType = UNSET
    jku: _Short | UnsetType | None = UNSET
    fingerprint: _Fingerprint | UnsetType | None = UNSET


class TlsMirror(_Part):
    """The mirror of ``TlsInfo``."""

    version: Annotated[str, Meta(max_length=32)] | UnsetType | None = UNSET
    cipher: Annotated[str, Meta(max_length=128)] | UnsetType | None = UNSET
    error: _Short | UnsetType | None = UNSET


class PeerMirror(_Part):
    """The mirror of ``Peer``."""

    ip: Annotated[str, Meta(max_length=64)] | UnsetType | None = UNSET


class EventMirror(_Part, kw_only=True):
    """The mirror of ``AuthzEvent``; ``time`` as the JSON text, which the builder reads.

    Its fields, and every part's, are in the contract's order: msgspec then writes a
    canonical event as pydantic does (``Mirrored.stored_json``).
    """

    kind: Literal["authz"] | UnsetType = UNSET
    event_id: UUID
    time: str
    source: SourceMirror
    action: AuthzAction
    outcome: Outcome
    reason: FailureReason | UnsetType | None = UNSET
    detail: _Short | UnsetType | None = UNSET
    http_status: Annotated[int, Meta(ge=100, le=599)] | UnsetType | None = UNSET
    client: ClientMirror | UnsetType | None = UNSET
    service: ServiceMirror | UnsetType | None = UNSET
    token: TokenMirror | UnsetType | None = UNSET
    hook: _Short | UnsetType | None = UNSET
    hook_instance: _Short | UnsetType | None = UNSET
    fhir_server: _Short | UnsetType | None = UNSET
    fhir_authorization: bool | UnsetType | None = UNSET
    scopes: tuple[_Short, ...] | UnsetType = UNSET
    payload_bytes: Annotated[int, Meta(ge=0)] | UnsetType | None = UNSET
    tls: TlsMirror | UnsetType | None = UNSET
    peer: PeerMirror | UnsetType | None = UNSET
    trace_id: _TraceId | UnsetType | None = UNSET
    span_id: _SpanId | UnsetType | None = UNSET
    attributes: dict[_Key, Any] | UnsetType = UNSET
