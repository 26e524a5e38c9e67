"""Self-telemetry: a trace per batch and the operator's metrics, on the real OpenTelemetry SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from authz_events import event
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipeline_support import POISON, authz_line, log_line, write_lines

from pipelines.settings import PipelineSettings, TelemetrySettings
from pipelines.topology import PipelineTelemetry, run_embedded
from pipelines.topology.telemetry import header_carrier


@pytest.fixture
def sdk() -> tuple[PipelineTelemetry, InMemorySpanExporter, InMemoryMetricReader]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    telemetry = PipelineTelemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    return telemetry, spans, reader


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _total(points: list[Any], **attributes: str) -> float:
    return sum(
        p.value for p in points if all(p.attributes.get(k) == v for k, v in attributes.items())
    )


def _run(tmp_path: Path, telemetry: PipelineTelemetry) -> None:
    leak = log_line("login", authorization="Bearer abcdefghijklmnopqrstuvwxyz012345")
    lines = [
        authz_line(event(0, alg="none")),
        authz_line(event(1)),
        leak,
        POISON["malformed_json"],
        POISON["invalid_utf8"],
    ]
    run_embedded(
        [write_lines(tmp_path / "in.jsonl", lines)],
        tmp_path / "audit.duckdb",
        PipelineSettings(alerts={"log": False}),
        telemetry=telemetry,
    )


@pytest.mark.usefixtures("store_mode")
def test_records_findings_and_dead_letters_are_counted(sdk, tmp_path):
    telemetry, _spans, reader = sdk
    _run(tmp_path, telemetry)
    points = _points(reader)
    assert _total(points["auditor.pipeline.records"], stage="detect", kind="authz") == 2
    assert _total(points["auditor.pipeline.records"], stage="detect", kind="log") == 1
    assert _total(points["auditor.pipeline.dead_letters"], reason="malformed_json") == 1
    assert _total(points["auditor.pipeline.dead_letters"], reason="invalid_utf8") == 1
    assert _total(points["auditor.pipeline.findings"], detector="leaked_token") >= 1
    assert _total(points["auditor.pipeline.findings"], detector="policy") >= 1
    assert _total(points["auditor.pipeline.store.rows"], table="events") == 2


@pytest.mark.usefixtures("store_mode")
def test_batch_and_detection_latencies_are_histograms(sdk, tmp_path):
    telemetry, _spans, reader = sdk
    _run(tmp_path, telemetry)
    points = _points(reader)
    stages = {p.attributes["stage"] for p in points["auditor.pipeline.batch.duration"]}
    assert stages == {"detect", "store"}
    (latency,) = points["auditor.pipeline.detection.latency"]
    assert latency.count >= 1
    assert 0 <= latency.sum < 60


@pytest.mark.usefixtures("store_mode")
def test_each_batch_is_a_span_with_its_counts(sdk, tmp_path):
    telemetry, spans, _reader = sdk
    _run(tmp_path, telemetry)
    by_name: dict[str, list[Any]] = {}
    for span in spans.get_finished_spans():
        by_name.setdefault(span.name, []).append(span)
    (detect,) = by_name["detect batch"][:1]
    assert detect.attributes["auditor.records"] == 5
    assert detect.attributes["auditor.dead_letters"] == 2
    assert sum(s.attributes["auditor.events"] for s in by_name["store batch"]) == 2


def test_a_batch_span_links_to_the_producers_trace_context(sdk):
    telemetry, spans, _reader = sdk
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    carrier = header_carrier([("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())])
    with telemetry.span("detect batch", {"auditor.records": 1}, [carrier]):
        pass
    (span,) = spans.get_finished_spans()
    assert [format(link.context.trace_id, "032x") for link in span.links] == [trace_id]


def test_consumer_lag_is_observed_from_the_stage_probe(sdk):
    telemetry, _spans, reader = sdk
    telemetry.watch_lag("detect", lambda: {"cds.authz": 42, "cds.logs": 0})
    points = _points(reader)["auditor.pipeline.consumer.lag"]
    assert _total(points, stage="detect", topic="cds.authz") == 42


def test_a_failing_lag_probe_is_skipped_not_raised(sdk):
    telemetry, _spans, reader = sdk

    def broken() -> dict[str, int]:
        raise RuntimeError("consumer closed")

    telemetry.watch_lag("store", broken)
    telemetry.watch_lag("detect", lambda: {"cds.authz": 1})
    points = _points(reader)["auditor.pipeline.consumer.lag"]
    assert {p.attributes["stage"] for p in points} == {"detect"}


def test_the_console_exporter_writes_to_stderr_not_stdout(capsys):
    telemetry = PipelineTelemetry.from_settings(
        TelemetrySettings(exporter="console", export_interval_s=3600)
    )
    telemetry.records("detect", "authz", 3)
    with telemetry.span("detect batch", {"auditor.records": 3}):
        pass
    telemetry.close()
    out = capsys.readouterr()
    assert out.out == ""
    assert '"name": "detect batch"' in out.err
    assert "auditor.pipeline.records" in out.err


def test_no_exporter_costs_no_sdk():
    telemetry = PipelineTelemetry.from_settings(TelemetrySettings(exporter="none"))
    telemetry.records("detect", "authz", 1)
    telemetry.close()
