"""The Redactor inside real logging stacks: structlog, stdlib logging, OpenTelemetry SDK."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from auditor.fingerprints import Fingerprinter
from auditor.patterns.rules import EXAMPLE_JWS
from auditor.redaction import Redactor, RedactorConfig
from auditor.redaction.otel import (
    RedactingLogRecordProcessor,
    RedactingSpanExporter,
    RedactingSpanProcessor,
)
from auditor.redaction.stdlib import RedactingFilter, processor_formatter

OPAQUE = "8f3kQ9zLr2VxA7mN1pTq"


@pytest.fixture
def redactor(fingerprinter: Fingerprinter) -> Redactor:
    return Redactor(RedactorConfig(fingerprinter=fingerprinter))


# --- structlog ----------------------------------------------------------------------------


def _structlog_logger(
    processors: list[structlog.typing.Processor], out: io.BytesIO
) -> structlog.BoundLogger:
    return structlog.wrap_logger(
        structlog.BytesLogger(out),
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        cache_logger_on_first_use=False,
    )


def test_structlog_pipeline_renders_redacted_json(redactor) -> None:
    out = io.BytesIO()
    log = _structlog_logger(
        [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        out,
    )
    log.info("cds.request.received", authorization=f"Bearer {EXAMPLE_JWS}", hook="patient-view")
    line = json.loads(out.getvalue())
    assert EXAMPLE_JWS not in out.getvalue().decode()
    assert line["authorization"].startswith("[REDACTED:jwt fp=")
    assert line["hook"] == "patient-view"
    assert line["level"] == "info"
    assert line["redacted"] == [{"path": "$.authorization", "rule": "key.authorization"}]


def test_tracebacks_are_redacted_after_format_exc_info(redactor) -> None:
    out = io.BytesIO()
    log = _structlog_logger(
        [
            structlog.processors.format_exc_info,
            redactor,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        out,
    )
    try:
        raise PermissionError(f"fhir 401 for Bearer {OPAQUE}")  # noqa: TRY301 - the point
    except PermissionError:
        log.exception("fhir call failed")
    line = json.loads(out.getvalue())
    assert "PermissionError: fhir 401 for Bearer [REDACTED:bearer_token" in line["exception"]
    assert OPAQUE not in out.getvalue().decode()


def test_dict_tracebacks_with_locals_are_walked(redactor) -> None:
    out = io.BytesIO()
    log = _structlog_logger(
        [
            structlog.processors.dict_tracebacks,
            redactor,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        out,
    )

    def call_fhir(token: str) -> None:
        # `token` is a local the traceback shows; the rendered frame must not.
        raise RuntimeError("upstream refused" if token else "no token")

    try:
        call_fhir(f"Bearer {OPAQUE}")
    except RuntimeError:
        log.exception("failed")
    line = json.loads(out.getvalue())
    assert OPAQUE not in out.getvalue().decode()
    assert {"path": "$.exception[0].frames[1].locals.token", "rule": "key.token"} in line[
        "redacted"
    ]


# --- stdlib logging -----------------------------------------------------------------------


@pytest.fixture
def stdlib_logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger = logging.getLogger(f"test.redaction.{id(object())}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    buffer = io.StringIO()
    yield logger, buffer
    for handler in list(logger.handlers):
        logger.removeHandler(handler)


def test_logging_filter_redacts_message_args_extra_and_exception(redactor, stdlib_logger) -> None:
    logger, buffer = stdlib_logger
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(message)s auth=%(authorization)s"))
    handler.addFilter(RedactingFilter(redactor))
    logger.addHandler(handler)
    try:
        raise ValueError(f"token {EXAMPLE_JWS}")  # noqa: TRY301 - the point
    except ValueError:
        logger.exception(
            "member %s called from %s",
            "536-22-8714",
            "(617) 555-2368",
            extra={"authorization": f"Bearer {OPAQUE}"},
        )
    text = buffer.getvalue()
    for secret in ("536-22-8714", "(617) 555-2368", OPAQUE, EXAMPLE_JWS):
        assert secret not in text
    assert "member [REDACTED:ssn fp=" in text
    assert "ValueError: token [REDACTED:jwt" in text


def test_logging_filter_leaves_a_clean_record_as_it_was(redactor, stdlib_logger) -> None:
    logger, _ = stdlib_logger
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = Keep()
    keep.addFilter(RedactingFilter(redactor))
    logger.addHandler(keep)
    logger.info("cards returned for %s", "patient-view")
    assert seen[0].msg == "cards returned for %s"
    assert seen[0].args == ("patient-view",)


def test_processor_formatter_redacts_foreign_and_structlog_records(redactor, stdlib_logger) -> None:
    logger, buffer = stdlib_logger
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(processor_formatter(redactor, pre_chain=[structlog.stdlib.add_log_level]))
    logger.addHandler(handler)
    # A plain logging record, with extra attributes and an exception.
    try:
        raise KeyError(f"ssn 536-22-8714 for Bearer {OPAQUE}")  # noqa: TRY301 - the point
    except KeyError:
        logger.exception(
            "lookup failed for %s",
            "jane@mercy-health.org",
            extra={"mrn": "A00482913"},
        )
    # A structlog record routed through the same handler.
    slog = structlog.wrap_logger(
        logger,
        processors=[structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    slog.info("chart opened", patient_name="Maria Lopez")
    text = buffer.getvalue()
    for secret in ("536-22-8714", OPAQUE, "jane@mercy-health.org", "A00482913", "Maria Lopez"):
        assert secret not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["level"] == "error"
    assert first["mrn"].startswith("[REDACTED:mrn fp=")
    assert second["patient_name"].startswith("[REDACTED:person_name fp=")


# --- OpenTelemetry SDK --------------------------------------------------------------------


def test_otel_log_records_are_redacted_before_export(redactor) -> None:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(RedactingLogRecordProcessor(redactor))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("cds")
    try:
        raise ValueError(f"token {EXAMPLE_JWS}")  # noqa: TRY301 - the point
    except ValueError as exc:
        logger.emit(
            body=f"member ssn 536-22-8714 via Bearer {OPAQUE}",
            attributes={
                "http.request.header.authorization": (f"Bearer {OPAQUE}",),
                "hook": "patient-view",
            },
            exception=exc,
        )
    (record,) = exporter.get_finished_logs()
    dumped = record.to_json()
    for secret in ("536-22-8714", OPAQUE, EXAMPLE_JWS):
        assert secret not in dumped
    assert record.log_record.attributes["hook"] == "patient-view"
    provider.shutdown()


def test_otel_spans_are_redacted_by_the_wrapping_processor(redactor) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RedactingSpanProcessor(SimpleSpanProcessor(exporter), redactor))
    tracer = provider.get_tracer("cds")
    with tracer.start_as_current_span("GET /r4/Patient/smart-1288992") as span:
        span.set_attribute(
            "url.full", f"https://fhir.example.org/r4/Observation?access_token={OPAQUE}"
        )
        span.set_attribute("http.response.status_code", 200)
        span.add_event("retry", {"reason": f"401 for Bearer {OPAQUE}"})
        span.set_status(Status(StatusCode.ERROR, "ssn 536-22-8714 not found"))
    (finished,) = exporter.get_finished_spans()
    dumped = finished.to_json()
    for secret in ("smart-1288992", OPAQUE, "536-22-8714"):
        assert secret not in dumped
    assert finished.attributes["http.response.status_code"] == 200
    assert finished.context == span.get_span_context()
    provider.shutdown()


def test_otel_span_exporter_wrapper_passes_clean_spans_untouched(redactor) -> None:
    inner = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingSpanExporter(inner, redactor)))
    tracer = provider.get_tracer("cds")
    with tracer.start_as_current_span("cards.returned") as span:
        span.set_attribute("hook", "patient-view")
    (finished,) = inner.get_finished_spans()
    assert finished.name == "cards.returned"
    assert finished.attributes == {"hook": "patient-view"}
    assert span.get_span_context() == finished.context
    provider.shutdown()
