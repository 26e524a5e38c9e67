"""The CDS Hooks request body, validated strictly, and the ``fhirServer`` policy.

The body carries PHI (``context``, ``prefetch``) and may carry a FHIR access token
(``fhirAuthorization.access_token``). Validation errors therefore never repeat input:
the model hides it (``hide_input_in_errors``) and :func:`describe_errors` reports field
paths and error types only. The access token is a ``SecretStr``: its ``repr`` is masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)

from auditor.cdshooks.urls import canonical_url, host_is_internal, require_canonical_url

UUID_PATTERN: Final = (
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)

REQUIRED_CONTEXT: Final[Mapping[str, tuple[str, ...]]] = {
    "patient-view": ("userId", "patientId"),
    "order-select": ("userId", "patientId", "selections", "draftOrders"),
    "order-sign": ("userId", "patientId", "draftOrders"),
    "encounter-start": ("userId", "patientId", "encounterId"),
    "encounter-discharge": ("userId", "patientId", "encounterId"),
}
"""Context fields each standard hook requires (CDS Hooks hook library)."""

_Text = Annotated[str, StringConstraints(min_length=1, max_length=2048)]
_LOC_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

_STRICT = ConfigDict(
    extra="forbid", frozen=True, strict=True, hide_input_in_errors=True, populate_by_name=False
)


class FhirAuthorization(BaseModel):
    """``fhirAuthorization``: the OAuth 2.0 access token the service may use on ``fhirServer``."""

    model_config = _STRICT

    access_token: SecretStr = Field(min_length=1, max_length=8192)
    token_type: Literal["Bearer"]
    expires_in: Annotated[int, Field(ge=0)]
    scope: _Text
    subject: _Text
    patient: _Text | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        """The granted scopes, split on spaces."""
        return tuple(self.scope.split())


class HookRequest(BaseModel):
    """A CDS Hooks service call body (CDS Hooks 2.0 §HTTP Request)."""

    model_config = _STRICT

    hook: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
    hook_instance: Annotated[str, StringConstraints(pattern=UUID_PATTERN)] = Field(
        alias="hookInstance"
    )
    fhir_server: _Text | None = Field(default=None, alias="fhirServer")
    fhir_authorization: FhirAuthorization | None = Field(default=None, alias="fhirAuthorization")
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _server_goes_with_authorization(self) -> HookRequest:
        # cds-r-1: if fhirAuthorization details are provided, a fhirServer SHALL be specified.
        if self.fhir_authorization is not None and self.fhir_server is None:
            raise ValueError("fhirServer is required when fhirAuthorization is sent")
        required = REQUIRED_CONTEXT.get(self.hook, ())
        missing = [name for name in required if self.context.get(name) is None]
        if missing:
            raise ValueError(f"context lacks {', '.join(missing)} required by {self.hook}")
        return self

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes of ``fhirAuthorization``, or none."""
        return self.fhir_authorization.scopes if self.fhir_authorization else ()


def describe_errors(exc: ValidationError, limit: int = 3) -> str:
    """Field paths and error types of a validation failure, never the input."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False)[:limit]:
        loc = ".".join(
            str(p) if isinstance(p, int) or _LOC_PART.match(str(p)) else "?" for p in error["loc"]
        )
        kind = error["type"]
        if kind == "value_error":
            # Our own validators' messages are fixed text naming fields, never values.
            kind = str(error.get("ctx", {}).get("error", "value_error"))
        parts.append(f"{loc or 'body'}: {kind}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


class FhirServerPolicy:
    """Which ``fhirServer`` values a service will call with the token it was given.

    A request naming another server is refused before the service could fetch from it
    (a CDS client, or whoever holds its key, could otherwise aim the service and a FHIR
    access token at an internal address: SSRF).

    Args:
        allowed: FHIR base URLs accepted exactly (after normalisation). When empty, any
            https URL is accepted except IP literals outside the public internet and
            ``localhost`` — set an allowlist in production.
        require_https: Refuse plain http (CDS Hooks: https for production data).
        allow_internal: Accept loopback and private addresses (development only).
    """

    __slots__ = ("_allow_http", "_allow_internal", "_allowed")

    def __init__(
        self,
        allowed: Iterable[str] = (),
        *,
        require_https: bool = True,
        allow_internal: bool = False,
    ) -> None:
        self._allow_http = not require_https
        self._allow_internal = allow_internal
        self._allowed = frozenset(
            require_canonical_url(url, what="allowed fhirServer", allow_http=self._allow_http)
            for url in allowed
        )

    def refusal(self, fhir_server: str) -> str | None:
        """Why ``fhir_server`` is refused, or ``None`` when it is allowed."""
        canonical = canonical_url(fhir_server, allow_http=self._allow_http)
        if canonical is None:
            return "fhirServer is not an https URL without credentials, query or fragment"
        if self._allowed:
            return None if canonical in self._allowed else "fhirServer is not on the allowlist"
        if not self._allow_internal and host_is_internal(canonical):
            return "fhirServer points at an internal address"
        return None
