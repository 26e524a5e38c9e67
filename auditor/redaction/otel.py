"""The Redactor for the OpenTelemetry SDK (extra ``otel``): logs and spans, before export.

Logs: `RedactingLogRecordProcessor` rewrites a record's body and attributes in place.
Register it *before* the processor that exports, since processors run in order::

    provider = LoggerProvider()
    provider.add_log_record_processor(RedactingLogRecordProcessor(redactor))
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter))

Spans: the SDK makes a span read-only before any processor's ``on_end`` sees it (its
attributes are frozen first; an SDK hook to edit spans before that is an open request,
open-telemetry/opentelemetry-python#4424). So redaction wraps what receives ended spans
and hands it a redacted copy: `RedactingSpanProcessor` around a processor, or
`RedactingSpanExporter` around an exporter::

    provider.add_span_processor(RedactingSpanProcessor(BatchSpanProcessor(exporter), redactor))

Span name, attributes, event names and attributes (exception messages and stack traces
included), link attributes and the status description are redacted; a span with nothing
sensitive passes through as the same object. Dropped-attribute counts of a rewritten
span are not carried over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from auditor.errors import MissingExtraError
from auditor.redaction.redactor import Redactor

try:
    from opentelemetry.context import Context
    from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord
    from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import Link, Status
except ImportError:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("OpenTelemetry redaction", "otel") from None

__all__ = [
    "RedactingLogRecordProcessor",
    "RedactingSpanExporter",
    "RedactingSpanProcessor",
    "redact_span",
]

_FAILED: Final = "redaction failed"


class RedactingLogRecordProcessor(LogRecordProcessor):
    """Redacts each log record's body and attributes in place; never raises.

    Args:
        redactor: The Redactor whose rules to apply.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self.failures = 0
        """How many records redaction failed on (body replaced, attributes removed)."""

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        """Redact ``log_record`` before later processors export it."""
        record = log_record.log_record
        try:
            body, _ = self._redactor.redact(record.body)
            if body is not record.body:
                record.body = body  # type: ignore[assignment]
            attributes = record.attributes
            if attributes:
                current = dict(attributes)
                new, _ = self._redactor.redact(current)
                if new is not current:
                    for key, value in new.items():  # type: ignore[attr-defined]
                        attributes[key] = value  # type: ignore[index]
        except Exception:  # noqa: BLE001 - processors must not raise (OTel error handling)
            self.failures += 1
            record.body = _FAILED
            if record.attributes:
                for key in list(record.attributes):
                    del record.attributes[key]  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: ARG002 - SDK signature
        """Nothing buffered."""
        return True


def _attributes(
    redactor: Redactor, attributes: Mapping[str, Any] | None
) -> tuple[Mapping[str, Any] | None, bool]:
    if not attributes:
        return attributes, False
    current = dict(attributes)
    new, _ = redactor.redact(current)
    return (new, True) if new is not current else (attributes, False)  # type: ignore[return-value]


def redact_span(span: ReadableSpan, redactor: Redactor) -> ReadableSpan:
    """A redacted copy of ``span``, or ``span`` itself when nothing in it is sensitive.

    Raises:
        Exception: Whatever redaction raised; the wrappers below fail closed instead.
    """
    changed = False
    name = redactor.redact_text(span.name)
    changed |= name is not span.name
    attributes, did = _attributes(redactor, span.attributes)
    changed |= did
    events: list[Event] = []
    for event in span.events:
        event_name = redactor.redact_text(event.name)
        event_attributes, did = _attributes(redactor, event.attributes)
        if did or event_name is not event.name:
            changed = True
            events.append(Event(event_name, event_attributes, event.timestamp))
        else:
            events.append(event)
    links: list[Link] = []
    for link in span.links:
        link_attributes, did = _attributes(redactor, link.attributes)
        changed |= did
        links.append(Link(link.context, link_attributes) if did else link)
    status = span.status
    if status.description:
        description = redactor.redact_text(status.description)
        if description is not status.description:
            changed = True
            status = Status(status.status_code, description)
    if not changed:
        return span
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _failed_span(span: ReadableSpan) -> ReadableSpan:
    """Fail closed: keep identity and timing, drop everything that could hold a value."""
    return ReadableSpan(
        name=_FAILED,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        kind=span.kind,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _SpanRedaction:
    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self.failures = 0

    def _redacted(self, span: ReadableSpan) -> ReadableSpan:
        try:
            return redact_span(span, self._redactor)
        except Exception:  # noqa: BLE001 - must not raise into the SDK
            self.failures += 1
            return _failed_span(span)


class RedactingSpanProcessor(_SpanRedaction, SpanProcessor):
    """Wraps a span processor (e.g. ``BatchSpanProcessor``) so it receives redacted spans.

    Args:
        inner: The processor that exports.
        redactor: The Redactor whose rules to apply.
    """

    def __init__(self, inner: SpanProcessor, redactor: Redactor) -> None:
        super().__init__(redactor)
        self._inner = inner

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Pass through: nothing is exported at start."""
        self._inner.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        """Hand the inner processor a redacted copy."""
        self._inner.on_end(self._redacted(span))

    def shutdown(self) -> None:
        """Shut the inner processor down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner processor."""
        return self._inner.force_flush(timeout_millis)


class RedactingSpanExporter(_SpanRedaction, SpanExporter):
    """Wraps a span exporter so it exports redacted spans.

    Args:
        inner: The exporter.
        redactor: The Redactor whose rules to apply.
    """

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        super().__init__(redactor)
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export redacted copies."""
        return self._inner.export([self._redacted(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the inner exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner exporter."""
        return self._inner.force_flush(timeout_millis)
