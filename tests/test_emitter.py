"""The emitter for services, against the real broker: keyed, traced, and lossless in an outage."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from datetime import UTC, datetime
from uuid import uuid4

import pytest
import structlog
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from auditor import AuthzEvent
from auditor.protocols import EventSink
from pipelines.emit import EmitterState, KafkaEmitter, LogShipper, instrument
from pipelines.settings import AuditorSettings
from tests.fixtures.kafka import read_topic, unique_topics


def _event(iss: str, n: int = 0) -> AuthzEvent:
    return AuthzEvent.model_validate(
        {
            "event_id": str(uuid4()),
            "time": datetime(2026, 11, 28, 10, 0, n % 60, tzinfo=UTC),
            "source": {"role": "service", "name": "cds-greeter", "instance": "pod-1"},
            "action": "token.validated",
            "outcome": "success",
            "client": {"iss": iss},
            "attributes": {"n": n},
        }
    )


def _wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _ids(records) -> list[str]:
    return [json.loads(value)["event_id"] for _key, value, _headers, _partition in records]


@pytest.fixture
def unreachable(tmp_path, request) -> AuditorSettings:
    """Settings whose broker address refuses connections."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return AuditorSettings(
        kafka={"bootstrap_servers": f"127.0.0.1:{port}", "bootstrap_timeout_ms": 500},
        topics=unique_topics(request.node.name),
        emitter={"spool_dir": tmp_path / "spool", "reconnect_max_s": 1.0},
    )


# -- against the real broker --------------------------------------------------------------


@pytest.mark.kafka
def test_events_are_keyed_by_client_iss_and_stay_in_order_per_client(kafka_settings):
    clients = [f"https://ehr-{c}.example.org" for c in range(3)]
    events = [_event(clients[n % 3], n) for n in range(60)]
    with KafkaEmitter(kafka_settings) as emitter:
        for event in events:
            emitter(event)
        assert emitter.flush(30)
    records = read_topic(kafka_settings, kafka_settings.topics.authz.name, 60)
    assert sorted(_ids(records)) == sorted(str(e.event_id) for e in events)
    for iss in clients:
        mine = [r for r in records if r[0] == iss.encode()]
        assert len({partition for *_, partition in mine}) == 1  # one partition per client
        sent = [str(e.event_id) for e in events if e.client_iss == iss]
        assert _ids(mine) == sent  # and in the order they were emitted


@pytest.mark.kafka
def test_the_current_trace_context_travels_as_a_traceparent_header(kafka_settings):
    tracer = TracerProvider().get_tracer("test")
    with KafkaEmitter(kafka_settings) as emitter:
        with tracer.start_as_current_span("cds-request") as span:
            emitter(_event("https://ehr.example.org"))
            context = span.get_span_context()
        emitter(_event("https://ehr.example.org"))  # outside any span
        assert emitter.flush(30)
    first, second = read_topic(kafka_settings, kafka_settings.topics.authz.name, 2)
    headers = dict(first[2])
    assert headers["traceparent"] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}".encode()
    )
    assert "traceparent" not in dict(second[2])


@pytest.mark.kafka
def test_no_event_is_lost_across_a_broker_outage(kafka_settings, kafka_outage):
    before = [_event(f"https://ehr-{n % 4}.example.org", n) for n in range(100)]
    during = [_event(f"https://ehr-{n % 4}.example.org", n) for n in range(400)]
    with KafkaEmitter(kafka_settings) as emitter:
        for event in before:
            emitter(event)
        assert emitter.flush(30)

        kafka_outage.stop()
        for event in during:
            emitter(event)
        # The outage is noticed and every unacknowledged event goes to disk.
        assert _wait_until(lambda: emitter.stats().spool_records == len(during))
        assert emitter.state is EmitterState.SPOOLING

        kafka_outage.start()
        assert emitter.flush(90)
        stats = emitter.stats()
    assert stats.drained >= len(during)
    assert stats.dropped == 0
    records = read_topic(kafka_settings, kafka_settings.topics.authz.name, 500)
    assert set(_ids(records)) == {str(e.event_id) for e in before + during}


@pytest.mark.kafka
def test_spooled_events_are_sent_by_the_next_emitter_after_a_restart(kafka_settings, kafka_outage):
    events = [_event("https://ehr.example.org", n) for n in range(200)]
    kafka_outage.stop()
    with KafkaEmitter(kafka_settings) as first:
        for event in events:
            first(event)
    assert first.stats().spool_records == 200  # closed with everything on disk

    kafka_outage.start()
    with KafkaEmitter(kafka_settings) as second:
        assert second.flush(60)
        assert second.stats().drained == 200
    records = read_topic(kafka_settings, kafka_settings.topics.authz.name, 200)
    assert _ids(records) == [str(e.event_id) for e in events]  # one key: exact order


@pytest.mark.kafka
def test_the_log_shipper_ships_the_event_dict_and_returns_it_unchanged(kafka_settings):
    out = io.StringIO()

    def drop_token(_logger, _name, event_dict):
        # Stands for auditor.Redactor, which runs before the shipper.
        event_dict.pop("token", None)
        return event_dict

    with KafkaEmitter(kafka_settings) as emitter:
        log = structlog.wrap_logger(
            structlog.PrintLogger(out),
            processors=[drop_token, LogShipper(emitter), structlog.processors.JSONRenderer()],
        )
        log.info("token verified", client_iss="https://ehr.example.org", token="eyJ.secret.x")
        assert emitter.flush(30)
    local = json.loads(out.getvalue())
    assert local == {"event": "token verified", "client_iss": "https://ehr.example.org"}
    ((key, value, _headers, _partition),) = read_topic(
        kafka_settings, kafka_settings.topics.logs.name, 1
    )
    assert key == b"https://ehr.example.org"
    assert json.loads(value) == {**local, "kind": "log", "level": "info"}


# -- without a broker ---------------------------------------------------------------------


def test_an_unreachable_broker_spools_every_event_and_never_raises(unreachable):
    events = [_event("https://ehr.example.org", n) for n in range(50)]
    emitter = KafkaEmitter(unreachable)
    try:
        for event in events:
            emitter(event)
        assert _wait_until(lambda: emitter.stats().spooled == 50)
        assert emitter.state is EmitterState.SPOOLING
        assert not emitter.flush(0.2)
    finally:
        emitter.close()
    assert emitter.stats().dropped == 0


def test_events_after_close_are_counted_not_raised(unreachable):
    emitter = KafkaEmitter(unreachable)
    emitter.close()
    emitter(_event("https://ehr.example.org"))
    assert emitter.stats().dropped_closed == 1


def test_an_unserializable_log_record_is_counted_not_raised(unreachable):
    record: dict[str, object] = {"event": "loop"}
    record["self"] = record  # circular: no JSON for it
    with KafkaEmitter(unreachable) as emitter:
        emitter.emit_log(record)
        assert emitter.stats().dropped_unserializable == 1


def test_a_log_record_with_an_integer_past_64_bits_is_shipped_exactly(unreachable):
    # orjson refuses such integers; the record must not be lost for it.
    with KafkaEmitter(unreachable) as emitter:
        emitter.emit_log({"event": "counted", "n": 2**70})
        assert emitter.stats().dropped_unserializable == 0
        assert emitter.stats().accepted == 1


def test_log_events_of_the_emitters_own_threads_are_not_shipped(unreachable):
    with KafkaEmitter(unreachable) as emitter:
        shipper = LogShipper(emitter)
        worker = threading.Thread(
            target=shipper,
            args=(None, "warning", {"event": "Kafka unavailable"}),
            name="auditor-emitter-svc",
        )
        worker.start()
        worker.join()
        shipper(None, "info", {"event": "from the request path"})
        assert emitter.stats().accepted == 1


def test_the_counters_are_reported_as_opentelemetry_metrics(unreachable):
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    with KafkaEmitter(unreachable) as emitter:
        instrument(emitter, meter)
        for n in range(7):
            emitter(_event("https://ehr.example.org", n))
        assert _wait_until(lambda: emitter.stats().spooled == 7)
        data = reader.get_metrics_data()
    points = {
        metric.name: [(dict(p.attributes or {}), p.value) for p in metric.data.data_points]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert points["auditor.emitter.spooled"] == [({}, 7)]
    assert points["auditor.emitter.sent"] == [({}, 0)]
    assert ({"reason": "buffer_full"}, 0) in points["auditor.emitter.dropped"]


def test_the_emitter_is_an_event_sink(unreachable):
    with KafkaEmitter(unreachable) as emitter:
        assert isinstance(emitter, EventSink)
