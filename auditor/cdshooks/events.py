"""Building and emitting the ``AuthzEvent`` of each decision, safely.

Everything that reaches an event from a token is copied claim by claim through type and
length checks: an unverified token is attacker-controlled, and an event that fails
validation on the request path would either raise (never allowed) or be lost. The
compact token itself is only ever fingerprinted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final
from uuid import uuid4

import structlog
from pydantic import ValidationError

from auditor.fingerprints import Fingerprinter
from auditor.models import AuthzEvent, ClientRef, Source, TokenClaims
from auditor.protocols import EventSink
from auditor.vocabulary import AuthzAction, FailureReason, Outcome

_log = structlog.get_logger("auditor.cdshooks")

_MAX_TEXT: Final = 512
_MAX_NUMERIC_DATE: Final = 253_402_300_799
_MAX_AUDIENCES: Final = 16


class ListSink(list[AuthzEvent]):
    """An :class:`~auditor.protocols.EventSink` that keeps events in a list (tests, simulation)."""

    def __call__(self, event: AuthzEvent) -> None:
        """Append ``event``."""
        self.append(event)

    def actions(self) -> list[str]:
        """The ``action`` of each event, in order."""
        return [event.action.value for event in self]


try:  # OpenTelemetry is optional: trace ids are filled in when its API is importable.
    from opentelemetry import trace as _otel_trace

    def current_trace_ids() -> tuple[str | None, str | None]:
        """The OpenTelemetry trace and span id of the current span, as hex, when there is one."""
        context = _otel_trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None, None
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"

except ImportError:  # pragma: no cover - only without the otel or pipeline extras

    def current_trace_ids() -> tuple[str | None, str | None]:
        """Without OpenTelemetry there is no current span."""
        return None, None


def aware(now: datetime | None) -> datetime:
    """``now``, or the wall clock when ``None``; a naive time is a programming error.

    Raises:
        TypeError: ``now`` has no time zone (its epoch seconds would depend on the host's
            zone, so tokens and events would silently disagree).
    """
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise TypeError("now must be a timezone-aware datetime")
    return now


def text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    """``value`` when it is a non-empty string within ``limit``; otherwise ``None``."""
    if isinstance(value, str) and 0 < len(value) <= limit:
        return value
    return None


def numeric_date(value: Any) -> int | None:
    """A JWT NumericDate (RFC 7519 §2) as whole seconds, or ``None`` when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= _MAX_NUMERIC_DATE:
        return None
    return int(value)


def audiences(value: Any) -> tuple[str, ...]:
    """``aud`` as a tuple of strings (RFC 7519 §4.1.3: a string or an array of strings)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return ()
    return tuple(a for a in value[:_MAX_AUDIENCES] if text(a) is not None)


def token_claims(
    header: Mapping[str, Any], claims: Mapping[str, Any], fingerprint: str | None
) -> TokenClaims:
    """What may be recorded about a token: checked header fields and claims, and its fingerprint.

    Built without re-validation: every field has just been checked against the model's
    constraints here (types, lengths, ranges), and this runs twice per token.
    """
    return TokenClaims.model_construct(
        jti=text(claims.get("jti")),
        kid=text(header.get("kid")),
        alg=text(header.get("alg"), 32),
        typ=text(header.get("typ"), 64),
        iat=numeric_date(claims.get("iat")),
        nbf=numeric_date(claims.get("nbf")),
        exp=numeric_date(claims.get("exp")),
        aud=audiences(claims.get("aud")),
        jku=text(header.get("jku")),
        fingerprint=fingerprint,
    )


def client_ref(claims: Mapping[str, Any]) -> ClientRef | None:
    """The client named by ``iss`` and ``tenant``, when ``iss`` is a usable string."""
    iss = text(claims.get("iss"))
    if iss is None:
        return None
    return ClientRef.model_construct(iss=iss, tenant=text(claims.get("tenant")))


class EventFactory:
    """Builds events for one emitting process and hands them to a sink without ever raising.

    Args:
        source: Who emits (role, name, instance).
        sink: Where events go.
        fingerprinter: Keyed fingerprints of tokens.
    """

    __slots__ = ("fingerprinter", "sink", "source")

    def __init__(self, source: Source, sink: EventSink, fingerprinter: Fingerprinter) -> None:
        self.source = source
        self.sink = sink
        self.fingerprinter = fingerprinter

    def emit(
        self,
        action: AuthzAction,
        *,
        time: datetime,
        reason: FailureReason | None = None,
        outcome: Outcome | None = None,
        **fields: Any,
    ) -> AuthzEvent | None:
        """Build and emit one event; returns it, or ``None`` if even the fallback failed.

        ``outcome`` defaults to failure when a ``reason`` is given, success otherwise.
        """
        trace_id, span_id = current_trace_ids()
        base: dict[str, Any] = {
            "event_id": uuid4(),
            "time": time,
            "source": self.source,
            "action": action,
            "outcome": outcome or (Outcome.FAILURE if reason is not None else Outcome.SUCCESS),
            "reason": reason,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        try:
            event = AuthzEvent(**base, **fields)
        except ValidationError as exc:
            # Never log the error itself: pydantic repeats the offending input.
            bad = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
            _log.warning("authz event fields dropped", action=action.value, fields=bad)
            kept = {k: v for k, v in fields.items() if k not in bad}
            try:
                event = AuthzEvent(**base, **kept)
            except ValidationError:
                _log.error("authz event could not be built", action=action.value)
                return None
        try:
            self.sink(event)
        except Exception as exc:  # noqa: BLE001 - a sink must not break the request path
            _log.error("event sink raised", action=action.value, error=type(exc).__name__)
        return event
