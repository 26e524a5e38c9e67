"""Client factories against the real broker: at-least-once consumption resumes correctly."""

from __future__ import annotations

import socket

import pytest
from kafka import TopicPartition

from auditor.errors import ConfigurationError, UnavailableError
from pipelines.kafka import CONSUMER_DEFAULTS, open_consumer, open_producer
from pipelines.settings import KafkaSettings

pytestmark = pytest.mark.kafka

FAST_GROUP = {"session_timeout_ms": 6_000, "heartbeat_interval_ms": 1_000}


def _produce(settings, topic, count):
    producer = open_producer(settings)
    try:
        for i in range(count):
            producer.send(topic, key=b"iss", value=f"{i}".encode())
        producer.flush(30)
    finally:
        producer.close()


def _poll(consumer, wanted, rounds=100):
    values = []
    for _ in range(rounds):
        for batch in consumer.poll(timeout_ms=200, max_records=wanted - len(values)).values():
            values += [int(r.value) for r in batch]
        if len(values) >= wanted:
            break
    return values


def test_offsets_are_not_committed_automatically():
    # The at-least-once contract of the pipeline depends on it.
    assert CONSUMER_DEFAULTS["enable_auto_commit"] is False


def test_a_restarted_consumer_resumes_after_the_committed_offset(kafka_settings):
    topic = kafka_settings.topics.authz.name
    group = f"{topic}.group"
    _produce(kafka_settings, topic, 100)

    first = open_consumer(kafka_settings, [topic], group, **FAST_GROUP)
    try:
        seen = _poll(first, 60)
        assert seen == list(range(60))  # keyed: one partition, in order
        first.commit()
    finally:
        first.close()

    second = open_consumer(kafka_settings, [topic], group, **FAST_GROUP)
    try:
        assert _poll(second, 40) == list(range(60, 100))
    finally:
        second.close()


def test_records_polled_but_not_committed_are_delivered_again(kafka_settings):
    topic = kafka_settings.topics.authz.name
    group = f"{topic}.group"
    _produce(kafka_settings, topic, 10)
    first = open_consumer(kafka_settings, [topic], group, **FAST_GROUP)
    try:
        assert _poll(first, 10) == list(range(10))
    finally:
        first.close()  # crashed before committing
    second = open_consumer(kafka_settings, [topic], group, **FAST_GROUP)
    try:
        assert _poll(second, 10) == list(range(10))
    finally:
        second.close()


def test_a_consumer_without_a_group_can_assign_partitions_itself(kafka_settings):
    topic = kafka_settings.topics.findings.name
    _produce(kafka_settings, topic, 5)
    consumer = open_consumer(kafka_settings, [], None)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        assert sorted(_poll(consumer, 5)) == list(range(5))
    finally:
        consumer.close()


def test_an_unknown_option_is_named_without_its_value(kafka_settings):
    with pytest.raises(ConfigurationError, match="sasl_plain_pasword") as caught:
        open_producer(kafka_settings, sasl_plain_pasword="hunter2-secret")
    assert "hunter2-secret" not in str(caught.value)


def test_an_unreachable_cluster_is_an_unavailable_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", bootstrap_timeout_ms=500)
    with pytest.raises(UnavailableError, match=f"127.0.0.1:{port}"):
        open_producer(settings)


def test_subscribing_to_a_topic_that_does_not_exist_says_how_to_create_it(kafka_settings):
    with pytest.raises(ConfigurationError, match="auditor topics create"):
        open_consumer(kafka_settings, ["t.no-such-topic"], "g", **FAST_GROUP)
