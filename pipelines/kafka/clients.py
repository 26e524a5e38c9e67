"""Factories for well-configured kafka-python clients.

The defaults encode what the pipeline needs and what kafka-python does not do by default:
at-least-once consumption (no auto-commit: the stage commits after its work is durable),
no topic auto-creation, idempotent ``acks=all`` producers with compression and batching.
Every default can be overridden by keyword, e.g. ``session_timeout_ms=6000`` in tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConfigurationError, KafkaError, KafkaTimeoutError

from auditor.errors import ConfigurationError, UnavailableError
from pipelines.settings import AuditorSettings, KafkaSettings

CONSUMER_DEFAULTS: Final[dict[str, Any]] = {
    "enable_auto_commit": False,  # at-least-once: commit only after the batch is durable
    "auto_offset_reset": "earliest",  # a new group reads what was produced before it joined
    "isolation_level": "read_committed",  # never see aborted transactional output
    "allow_auto_create_topics": False,  # topics are created by `auditor topics create`
    "max_poll_records": 2_000,
    "fetch_max_wait_ms": 100,  # latency target: p99 <= 2 s end to end
    "fetch_min_bytes": 1,
    "max_partition_fetch_bytes": 2 << 20,
    "session_timeout_ms": 30_000,
    "heartbeat_interval_ms": 3_000,
    "max_poll_interval_ms": 300_000,
    "check_crcs": True,  # cheap with the crc32c package installed
    "reconnect_backoff_max_ms": 2_000,  # back within 2 s of a broker's return (default 30 s)
}
"""What ``open_consumer`` sets unless overridden."""

PRODUCER_DEFAULTS: Final[dict[str, Any]] = {
    "acks": "all",
    "enable_idempotence": True,
    "compression_type": "zstd",  # best ratio and speed of the codecs (bench/emitter.py)
    "linger_ms": 5,
    "batch_size": 64 << 10,
    "max_in_flight_requests_per_connection": 5,  # the most idempotence keeps in order
    "allow_auto_create_topics": False,
    "reconnect_backoff_max_ms": 2_000,  # back within 2 s of a broker's return (default 30 s)
}
"""What ``open_producer`` sets unless overridden."""


def kafka_settings(settings: AuditorSettings | KafkaSettings) -> KafkaSettings:
    """The connection part of either settings object."""
    return settings.kafka if isinstance(settings, AuditorSettings) else settings


def open_consumer(
    settings: AuditorSettings | KafkaSettings,
    topics: Iterable[str],
    group_id: str | None,
    *,
    listener: ConsumerRebalanceListener | None = None,
    **overrides: Any,
) -> KafkaConsumer:
    """Connect a consumer subscribed to ``topics`` in group ``group_id``.

    ``listener`` is told when the group assigns and revokes partitions (a stage with
    state per partition checkpoints and restores it there).

    Offsets are never committed automatically: call ``consumer.commit()`` (or
    ``commit({tp: OffsetAndMetadata(...)})``) once what was polled is durable.
    With ``group_id=None`` the consumer is not in a group and ``topics`` may be empty, for
    callers that ``assign()`` partitions and track offsets themselves (the store stage).

    Raises:
        UnavailableError: No broker answered within the bootstrap timeout.
        ConfigurationError: An override is not a kafka-python consumer option, or a topic
            does not exist.
    """
    conn = kafka_settings(settings)
    options = {**conn.client_options(), **CONSUMER_DEFAULTS, "group_id": group_id, **overrides}
    consumer = _connect(KafkaConsumer, "consumer", conn, options)
    names = list(topics)
    if names:
        # Load the topics' metadata before the first poll joins the group: a join that
        # races the metadata gets an empty assignment until the next refresh (minutes).
        missing = [name for name in names if not consumer.partitions_for_topic(name)]
        if missing:
            consumer.close()
            raise ConfigurationError(
                f"Kafka topics do not exist: {', '.join(missing)}; "
                "create them with 'auditor topics create'"
            )
        consumer.subscribe(names, listener=listener)
        # And once more after subscribing: kafka-python builds the group's metadata snapshot
        # of the subscribed topics only from a metadata response that arrives after the
        # subscription. Without it the first join assigns against an empty snapshot, and
        # the response that follows forces a second rebalance at once (commits in between
        # fail with RebalanceInProgress; see also pipelines/kafka/membership.py).
        consumer.topics()
    return consumer


def open_producer(settings: AuditorSettings | KafkaSettings, **overrides: Any) -> KafkaProducer:
    """Connect an idempotent ``acks=all`` producer for the pipeline's outputs.

    ``send()`` blocks when the producer's buffer is full (back-pressure), which is what a
    pipeline stage wants; request paths of services use ``pipelines.emit`` instead.

    Raises:
        UnavailableError: No broker answered within the bootstrap timeout.
        ConfigurationError: An override is not a kafka-python producer option.
    """
    conn = kafka_settings(settings)
    options = {**conn.client_options(), **PRODUCER_DEFAULTS, **overrides}
    producer: KafkaProducer = _connect(KafkaProducer, "producer", conn, options)
    return producer


def open_admin(settings: AuditorSettings | KafkaSettings, **overrides: Any) -> KafkaAdminClient:
    """Connect an admin client (topics, groups, offsets).

    Raises:
        UnavailableError: No broker answered within the bootstrap timeout.
    """
    conn = kafka_settings(settings)
    options = {**conn.client_options(), **overrides}
    admin: KafkaAdminClient = _connect(KafkaAdminClient, "admin client", conn, options)
    return admin


def _connect(factory: Any, what: str, conn: KafkaSettings, options: dict[str, Any]) -> Any:
    # Checked here because kafka-python's own error echoes the values, which may be secrets.
    unknown = sorted(set(options) - set(factory.DEFAULT_CONFIG))
    if unknown:
        raise ConfigurationError(f"not Kafka {what} options: {', '.join(unknown)}")
    try:
        return factory(**options)
    except KafkaTimeoutError:  # kafka-python 3 reports a failed bootstrap this way
        raise UnavailableError(
            f"no Kafka broker answered at {','.join(conn.bootstrap_servers)} "
            f"({conn.security_protocol}); is it running and reachable?"
        ) from None
    except (ValueError, TypeError, RuntimeError, KafkaConfigurationError) as exc:
        # kafka-python names the option, never a credential's value.
        raise ConfigurationError(f"invalid Kafka {what} option: {exc}") from None
    except KafkaError as exc:
        raise UnavailableError(
            f"cannot open a Kafka {what} at {','.join(conn.bootstrap_servers)}: "
            f"{type(exc).__name__}"
        ) from None
