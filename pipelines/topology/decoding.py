"""Decoding input records: bytes become an authz event, a log record, or a reason to refuse.

Three kinds of input, one set of rules:

- the **authz** topic carries ``AuthzEvent`` JSON only: anything else is a dead letter;
- the **logs** topic carries whatever services logged: a JSON object is a structured log
  record, any other valid UTF-8 is a text line;
- a **file** line (embedded runs) is an authz event when it is a JSON object with
  ``"kind": "authz"``, a structured log record when it is any other JSON object, and a
  text line otherwise.

A record is refused, never raised on, when it is larger than ``max_bytes``, nested deeper
than ``max_depth``, not UTF-8, a JSON object that does not parse, or an authz event that
breaks the contract. The reason's detail names fields and limits, never a value: a
refused record may hold the very token the auditor hunts, and so may a JSON key.

For the detect stage, authz events go first through the msgspec mirror of the contract
(``authz_view``, ``line_view``; see ``authz_mirror``), which takes what it can decode
exactly as pydantic would and declines the rest; the rest, and every event the store
stage decodes itself, are validated by pydantic straight from the bytes
(``validate_json``), one record per call. Validating a batch as one JSON array
(``[r1,r2,...]``) is about a fifth cheaper per event, but the array's element boundaries
are then the parser's, not the records': two crafted malformed records can join into
valid events attributed to the wrong positions, so that shortcut is not taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson
from pydantic import BaseModel, ValidationError

from auditor.models import AuthzEvent
from auditor.vocabulary import DeadLetterReason
from pipelines.settings import RecordLimits
from pipelines.topology.authz_mirror import AuthzMirror, Mirrored

LogRecord = dict[str, Any] | str
"""A structured log record (a JSON object) or a text line."""

_AUTHZ_MARK: Final = b'"kind":"authz"'
_AUTHZ_MARK_SPACED: Final = b'"kind": "authz"'
"""How a JSON line says it is an authz event, spelled as JSON encoders write it."""
_MAX_LISTED: Final = 8


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a record was refused: a dead-letter reason and a detail without any value."""

    reason: DeadLetterReason
    detail: str


def _field_names(model: type[BaseModel], into: set[str]) -> set[str]:
    for name, info in model.model_fields.items():
        into.add(name)
        for candidate in _model_types(info.annotation):
            _field_names(candidate, into)
    return into


def _model_types(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()):
        found += _model_types(arg)
    return found


_KNOWN_FIELDS: Final = frozenset(_field_names(AuthzEvent, set()))
"""Every field name of the contract: the only names a dead letter's detail may repeat."""


def _schema_detail(exc: ValidationError) -> str:
    """The fields that failed and how, naming only the contract's own field names."""
    parts: list[str] = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        if error["type"] == "extra_forbidden":
            # The unknown key is the producer's text (a token pasted as a key, even).
            where = ".".join(str(p) for p in error["loc"][:-1] if p in _KNOWN_FIELDS)
            described = f"{where + '.' if where else ''}<unknown field>"
        else:
            path = [
                str(p) if p in _KNOWN_FIELDS or isinstance(p, int) else "?" for p in error["loc"]
            ]
            described = f"{'.'.join(path) or '(event)'}: {error['type']}"
        if described not in parts:
            parts.append(described)
    listed = ", ".join(parts[:_MAX_LISTED])
    more = f" and {len(parts) - _MAX_LISTED} more" if len(parts) > _MAX_LISTED else ""
    return f"invalid authz event: {listed}{more}"


def _text_line(text: bytes) -> str | Rejected:
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected(DeadLetterReason.INVALID_UTF8, "line is not valid UTF-8")


def nesting(value: object) -> int:
    """How deeply JSON objects and arrays nest in ``value`` (0 for a scalar)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in children)
    return deepest


class RecordDecoder:
    """Turns raw input records into events, log records or refusals.

    Configured once (``RecordLimits``); each method is called per record or per batch on the
    detect stage's hot path and never raises on any input.

    Args:
        limits: Largest record in bytes and deepest nesting.
        fast_path: Whether ``authz_view`` and ``line_view`` try the msgspec mirror first
            (``False``: pydantic decodes every event, as ``authz`` and ``line`` do).
    """

    __slots__ = ("_fast_path", "_max_bytes", "_max_depth", "_mirror")

    def __init__(self, limits: RecordLimits | None = None, *, fast_path: bool = True) -> None:
        limits = limits or RecordLimits()
        self._fast_path = fast_path
        self._max_bytes = limits.max_bytes
        self._max_depth = limits.max_depth
        self._mirror = AuthzMirror()

    # -- one record --------------------------------------------------------------------

    def authz(self, raw: bytes) -> AuthzEvent | Rejected:
        """A record of the authz topic: an event, or why it is refused."""
        refused = self._oversized(raw)
        if refused is not None:
            return refused
        try:
            event = AuthzEvent.model_validate_json(raw)
        except ValidationError as exc:
            return self._refusal(raw, exc)
        return self._checked_depth(raw, event)

    def authz_view(self, raw: bytes) -> Mirrored | AuthzEvent | Rejected:
        """``authz``, through the msgspec fast path first: for the detect stage.

        The event comes as ``Mirrored`` when the fast path took it (the common case: see
        ``authz_mirror``), else as ``authz`` decides.
        """
        if len(raw) <= self._max_bytes:
            fast = self._fast(raw)
            if fast is not None:
                return fast
        return self.authz(raw)

    def line_view(self, raw: bytes) -> Mirrored | AuthzEvent | LogRecord | Rejected | None:
        """``line``, through the msgspec fast path first for authz events: for the detect stage."""
        if len(raw) <= self._max_bytes and (_AUTHZ_MARK in raw or _AUTHZ_MARK_SPACED in raw):
            fast = self._fast(raw)
            if fast is not None:
                return fast
        return self.line(raw)

    def _fast(self, raw: bytes) -> Mirrored | Rejected | None:
        fast = self._mirror.decode(raw) if self._fast_path else None
        if fast is None:
            return None
        attributes = fast.mirror.attributes
        if (
            isinstance(attributes, dict)
            and attributes
            and self._may_be_deep(raw)
            and 1 + nesting(attributes) > self._max_depth
        ):
            return self._too_deep()
        return fast

    def log(self, raw: bytes) -> LogRecord | Rejected:
        """A record of the logs topic: a structured record, a text line, or a refusal."""
        refused = self._oversized(raw)
        if refused is not None:
            return refused
        text = raw.strip()
        if text.startswith(b"{"):
            return self._json_log(text)
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError:
            return Rejected(DeadLetterReason.INVALID_UTF8, "record is not valid UTF-8")

    def line(self, raw: bytes) -> AuthzEvent | LogRecord | Rejected | None:
        """A line of a file: an event, a log record, a refusal, or ``None`` when blank."""
        if len(raw) > self._max_bytes:
            return self._oversized(raw)
        text = raw.strip()
        if not text:
            return None
        if not text.startswith(b"{"):
            return _text_line(text)
        return self._json_line(text)

    def _json_line(self, text: bytes) -> AuthzEvent | LogRecord | Rejected:
        if _AUTHZ_MARK in text or _AUTHZ_MARK_SPACED in text:
            try:
                return self._checked_depth(text, AuthzEvent.model_validate_json(text))
            except ValidationError as exc:
                return self._authz_or_log(text, exc)
        found = self._json_log(text)
        if isinstance(found, dict) and found.get("kind") == "authz":
            # An authz event spelled without the usual spacing: validate what was parsed.
            try:
                return AuthzEvent.model_validate(found)
            except ValidationError as exc:
                return Rejected(DeadLetterReason.SCHEMA_VIOLATION, _schema_detail(exc))
        return found

    # -- helpers -----------------------------------------------------------------------

    def _oversized(self, raw: bytes) -> Rejected | None:
        if len(raw) > self._max_bytes:
            return Rejected(DeadLetterReason.OVERSIZED, f"record over {self._max_bytes} bytes")
        return None

    def _may_be_deep(self, raw: bytes) -> bool:
        # Cheap and exact enough: nesting cannot exceed the number of opening brackets.
        return raw.count(b"{") + raw.count(b"[") > self._max_depth

    def _too_deep(self) -> Rejected:
        return Rejected(
            DeadLetterReason.TOO_DEEP, f"JSON nested deeper than {self._max_depth} levels"
        )

    def _checked_depth(self, raw: bytes, event: AuthzEvent) -> AuthzEvent | Rejected:
        # The contract's own structure is two levels deep; only attributes go further.
        if (
            event.attributes
            and self._may_be_deep(raw)
            and 1 + nesting(event.attributes) > self._max_depth
        ):
            return self._too_deep()
        return event

    def _json_log(self, text: bytes) -> dict[str, Any] | Rejected:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return self._unparsable(text, str(exc))
        if not isinstance(value, dict):
            return Rejected(DeadLetterReason.MALFORMED_JSON, "a line starting with { is no object")
        if self._may_be_deep(text) and nesting(value) > self._max_depth:
            return self._too_deep()
        return value

    def _unparsable(self, raw: bytes, message: str) -> Rejected:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return Rejected(DeadLetterReason.INVALID_UTF8, "record is not valid UTF-8")
        if self._may_be_deep(raw) and ("recursion" in message or "depth" in message):
            return self._too_deep()
        return Rejected(DeadLetterReason.MALFORMED_JSON, "record is not valid JSON")

    def _refusal(self, raw: bytes, exc: ValidationError) -> Rejected:
        errors = exc.errors(include_input=False, include_url=False, include_context=False)
        if errors and errors[0]["type"] == "json_invalid":
            return self._unparsable(raw, errors[0]["msg"])
        return Rejected(DeadLetterReason.SCHEMA_VIOLATION, _schema_detail(exc))

    def _authz_or_log(self, text: bytes, exc: ValidationError) -> LogRecord | Rejected:
        refusal = self._refusal(text, exc)
        if refusal.reason is not DeadLetterReason.SCHEMA_VIOLATION:
            return refusal
        # "kind": "authz" may sit inside a log record's fields; only a top-level one
        # makes the line an authz event that breaks the contract.
        found = self._json_log(text)
        if isinstance(found, dict) and found.get("kind") == "authz":
            return refusal
        return found


__all__ = ["LogRecord", "RecordDecoder", "Rejected", "nesting"]
