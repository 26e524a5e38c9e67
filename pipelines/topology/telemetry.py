"""The pipeline's own telemetry: a trace per batch and the metrics an operator watches.

Instruments (OpenTelemetry; attributes are a small fixed set, never a value from a record):

============================================  =========  ===================================
``auditor.pipeline.records``                  counter    records in, by ``stage`` and
                                                         ``kind`` (authz, log)
``auditor.pipeline.findings``                 counter    findings out (every revision), by
                                                         ``detector`` and ``severity``
``auditor.pipeline.dead_letters``             counter    by ``reason``
``auditor.pipeline.late_events``              counter    events older than the watermark
``auditor.pipeline.alerts``                   counter    by ``channel`` and ``outcome``
                                                         (sent, failed, dropped)
``auditor.pipeline.store.rows``               counter    rows committed, by ``table``
``auditor.pipeline.batch.duration``           histogram  seconds per batch, by ``stage``
``auditor.pipeline.detection.latency``        histogram  seconds from a record's arrival
                                                         (its Kafka timestamp, or when it
                                                         was read) to its findings leaving
                                                         the detect stage
``auditor.pipeline.consumer.lag``             gauge      records behind the end of each
                                                         input topic, by ``stage``, ``topic``
============================================  =========  ===================================

Spans: ``detect batch`` and ``store batch``, one per batch, with counts as attributes and
links to the trace contexts producers sent (``traceparent`` headers, a few per batch).

Exporters are chosen by configuration (``pipeline.telemetry.exporter``): ``none`` (the
API's no-op providers: instruments cost a method call), ``console`` (JSON on stderr), or
``otlp`` (OTLP/HTTP to ``otlp_endpoint`` or the standard ``OTEL_EXPORTER_OTLP_*``
variables). Tests pass SDK providers with in-memory readers and exporters.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
from opentelemetry.trace import Link, Span, Tracer, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from auditor.errors import ConfigurationError
from pipelines.settings import TelemetrySettings

SCOPE: Final = "cds_hooks_auditor.pipeline"
_MAX_LINKS: Final = 8
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

LagProbe = Callable[[], Mapping[str, int]]
"""Returns records behind per topic; called by the metric reader on its own thread."""


class PipelineTelemetry:
    """The instruments and tracer of one pipeline process.

    Args:
        tracer_provider: Where spans go; the API's no-op provider when ``None``.
        meter_provider: Where metrics go; the API's no-op provider when ``None``.
        shutdown: Called by ``close`` (flushes and stops exporters this object built).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        shutdown: Callable[[], None] | None = None,
    ) -> None:
        self._tracer: Tracer = (tracer_provider or trace.NoOpTracerProvider()).get_tracer(SCOPE)
        meter: Meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter(SCOPE)
        self._shutdown = shutdown
        self._records = meter.create_counter(
            "auditor.pipeline.records", unit="{record}", description="Records read."
        )
        self._findings = meter.create_counter(
            "auditor.pipeline.findings", unit="{finding}", description="Findings out."
        )
        self._dead = meter.create_counter(
            "auditor.pipeline.dead_letters", unit="{record}", description="Records set aside."
        )
        self._late = meter.create_counter(
            "auditor.pipeline.late_events", unit="{event}", description="Late authz events."
        )
        self._alerts = meter.create_counter(
            "auditor.pipeline.alerts", unit="{alert}", description="Alerts by channel."
        )
        self._rows = meter.create_counter(
            "auditor.pipeline.store.rows", unit="{row}", description="Rows committed."
        )
        self._batch = meter.create_histogram(
            "auditor.pipeline.batch.duration",
            unit="s",
            description="Time to process one batch.",
            explicit_bucket_boundaries_advisory=list(_LATENCY_BUCKETS),
        )
        self._latency = meter.create_histogram(
            "auditor.pipeline.detection.latency",
            unit="s",
            description="From a record's arrival to its findings leaving the detect stage.",
            explicit_bucket_boundaries_advisory=list(_LATENCY_BUCKETS),
        )
        self._lag_probes: dict[str, LagProbe] = {}
        self._lag_lock = threading.Lock()
        meter.create_observable_gauge(
            "auditor.pipeline.consumer.lag",
            callbacks=[self._observe_lag],
            unit="{record}",
            description="Records behind the end of each input topic.",
        )

    @classmethod
    def from_settings(cls, settings: TelemetrySettings) -> PipelineTelemetry:
        """Build the exporters the configuration names.

        Raises:
            ConfigurationError: The OTLP exporter is chosen and cannot be built.
        """
        if settings.exporter == "none":
            return cls()
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import (
            ConsoleMetricExporter,
            MetricExporter,
            PeriodicExportingMetricReader,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )

        span_exporter: SpanExporter
        metric_exporter: MetricExporter
        if settings.exporter == "console":
            span_exporter = ConsoleSpanExporter(out=sys.stderr)
            metric_exporter = ConsoleMetricExporter(out=sys.stderr)
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                    OTLPMetricExporter,
                )
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:  # pragma: no cover - the pipeline extra ships it
                raise ConfigurationError(
                    "the otlp exporter needs opentelemetry-exporter-otlp-proto-http"
                ) from None
            base = settings.otlp_endpoint.rstrip("/") if settings.otlp_endpoint else None
            span_exporter = OTLPSpanExporter(endpoint=f"{base}/v1/traces" if base else None)
            metric_exporter = OTLPMetricExporter(endpoint=f"{base}/v1/metrics" if base else None)
        resource = Resource.create({"service.name": settings.service_name})
        tracer_provider = SdkTracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        reader = PeriodicExportingMetricReader(
            metric_exporter, export_interval_millis=settings.export_interval_s * 1000
        )
        meter_provider = SdkMeterProvider(resource=resource, metric_readers=[reader])

        def shutdown() -> None:
            tracer_provider.shutdown()
            meter_provider.shutdown()

        return cls(tracer_provider, meter_provider, shutdown=shutdown)

    # -- recording -----------------------------------------------------------------------

    def records(self, stage: str, kind: str, count: int) -> None:
        """Count records read by ``stage`` (``detect``, ``store``)."""
        if count:
            self._records.add(count, {"stage": stage, "kind": kind})

    def findings(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Count findings by ``(detector, severity)``."""
        for (detector, severity), count in counts.items():
            self._findings.add(count, {"detector": detector, "severity": severity})

    def dead_letters(self, counts: Mapping[str, int]) -> None:
        """Count dead letters by reason."""
        for reason, count in counts.items():
            self._dead.add(count, {"reason": reason})

    def late_events(self, count: int) -> None:
        """Count late events."""
        if count:
            self._late.add(count)

    def alert(self, channel: str, outcome: str, count: int = 1) -> None:
        """Count alerts by channel (kafka, webhook, log) and outcome (sent, failed, dropped)."""
        self._alerts.add(count, {"channel": channel, "outcome": outcome})

    def stored(self, rows: Mapping[str, int]) -> None:
        """Count rows committed by table."""
        for table, count in rows.items():
            if count:
                self._rows.add(count, {"table": table})

    def batch_duration(self, stage: str, seconds: float) -> None:
        """Record how long a batch took."""
        self._batch.record(seconds, {"stage": stage})

    def detection_latency(self, seconds: Iterable[float]) -> None:
        """Record latencies from records' arrival to their findings."""
        for value in seconds:
            self._latency.record(max(value, 0.0))

    def watch_lag(self, stage: str, probe: LagProbe) -> None:
        """Report ``probe()`` as the consumer lag of ``stage`` at every metric collection."""
        with self._lag_lock:
            self._lag_probes[stage] = probe

    def unwatch_lag(self, stage: str) -> None:
        """Stop reporting the lag of ``stage``."""
        with self._lag_lock:
            self._lag_probes.pop(stage, None)

    def _observe_lag(self, _options: CallbackOptions) -> list[Observation]:
        with self._lag_lock:
            probes = list(self._lag_probes.items())
        observations = []
        for stage, probe in probes:
            try:
                lags = probe()
            except Exception:  # noqa: BLE001, S112 - a metric callback must not raise into the SDK
                continue
            observations += [
                Observation(lag, {"stage": stage, "topic": topic}) for topic, lag in lags.items()
            ]
        return observations

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        carriers: Iterable[Mapping[str, str]] = (),
    ) -> Iterator[Span]:
        """A span around one batch, linked to up to a few producers' trace contexts."""
        links: list[Link] = []
        seen: set[str] = set()
        for carrier in carriers:
            parent = carrier.get("traceparent")
            if not parent or parent in seen:
                continue
            seen.add(parent)
            context = trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context()
            if context.is_valid:
                links.append(Link(context))
            if len(links) >= _MAX_LINKS:
                break
        with self._tracer.start_as_current_span(
            name, attributes=dict(attributes), links=links
        ) as s:
            yield s

    def past_span(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        start_ns: int,
        end_ns: int,
    ) -> None:
        """A span that another process timed (``time.time_ns()`` at its start and end)."""
        span = self._tracer.start_span(name, attributes=dict(attributes), start_time=start_ns)
        span.end(end_time=end_ns)

    def close(self) -> None:
        """Flush and stop the exporters this object built."""
        if self._shutdown is not None:
            self._shutdown()
            self._shutdown = None


def header_carrier(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """The W3C trace-context headers of a Kafka record as a propagator carrier."""
    carrier: dict[str, str] = {}
    for name, value in headers or ():
        if name in {"traceparent", "tracestate"}:
            try:
                carrier[name] = value.decode("ascii")
            except (UnicodeDecodeError, AttributeError):
                continue
    return carrier


__all__ = ["LagProbe", "PipelineTelemetry", "header_carrier"]
