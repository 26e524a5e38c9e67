"""The demo's traffic through a real Kafka broker.

The simulated services publish with the ``KafkaEmitter`` they would use in production
(authz events and log records on their topics, keyed by the client's ``iss``); the
pipeline then reads exactly what this run published — from the topics' end offsets before
it to their end offsets after it, partition by partition — so each authz partition keeps
its own event-time order through the stream runtime, as a detect stage would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from kafka import TopicPartition

from auditor.errors import UnavailableError
from pipelines.demo.embedded import Chunk
from pipelines.emit import KafkaEmitter
from pipelines.kafka import ensure_topics, open_consumer
from pipelines.settings import AuditorSettings, load_settings
from pipelines.simulate import KafkaOutput, Simulation, SimulationConfig, SimulationResult

READ_TIMEOUT_S: Final = 120.0


@dataclass(frozen=True, slots=True)
class Published:
    """What one run put on the topics: the offsets before and after it, per partition."""

    settings: AuditorSettings
    starts: dict[TopicPartition, int]
    ends: dict[TopicPartition, int]

    @property
    def records(self) -> int:
        """How many records the run published."""
        return sum(self.ends[tp] - self.starts[tp] for tp in self.ends)

    @property
    def topics(self) -> list[str]:
        """The topics, authz first."""
        return [self.settings.topics.authz.name, self.settings.topics.logs.name]


def demo_settings(kafka: str | None, config_file: str | None, spool: Path) -> AuditorSettings:
    """Settings from ``--config``/the environment and ``--kafka``; the spool in ``spool``."""
    overrides: dict[str, Any] = {"emitter": {"spool_dir": spool}}
    if kafka:
        overrides["kafka"] = {"bootstrap_servers": kafka}
    return load_settings(config_file, overrides=overrides)


def publish(
    config: SimulationConfig, settings: AuditorSettings
) -> tuple[SimulationResult, Published]:
    """Simulate into the topics (created if missing); returns the run and its offsets.

    Raises:
        UnavailableError: The broker cannot be reached, or did not take every record.
    """
    ensure_topics(settings)
    topics = [settings.topics.authz.name, settings.topics.logs.name]
    starts = _end_offsets(settings, topics)
    result = Simulation(config, KafkaOutput(KafkaEmitter(settings))).run()
    ends = _end_offsets(settings, topics)
    published = Published(settings, starts, ends)
    if published.records < result.events + result.logs:
        raise UnavailableError(
            f"the broker took {published.records:,} of {result.events + result.logs:,} records; "
            "the rest wait in the emitter's spool"
        )
    return result, published


def published_chunks(published: Published) -> Iterator[Chunk]:
    """Read back exactly what ``publish`` wrote, as chunks per partition.

    Raises:
        UnavailableError: The records could not all be read within two minutes.
    """
    consumer = open_consumer(published.settings, [], None)
    try:
        consumer.assign(list(published.ends))
        remaining = {}
        for tp, end in published.ends.items():
            consumer.seek(tp, published.starts[tp])
            remaining[tp] = end - published.starts[tp]
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any(remaining.values()):
            if time.monotonic() > deadline:
                raise UnavailableError("the demo's records could not be read back from Kafka")
            for tp, batch in consumer.poll(timeout_ms=500, max_records=5_000).items():
                wanted = [r for r in batch if r.offset < published.ends[tp]]
                remaining[tp] -= len(wanted)
                yield from _contiguous(tp, wanted)
    finally:
        consumer.close()


def _contiguous(tp: TopicPartition, records: list[Any]) -> Iterator[Chunk]:
    """Chunks of records with consecutive offsets (a gap starts a new chunk)."""
    start = 0
    for index in range(1, len(records) + 1):
        if index == len(records) or records[index].offset != records[index - 1].offset + 1:
            part = records[start:index]
            yield Chunk(tp.topic, tp.partition, part[0].offset, [r.value for r in part], kafka=True)
            start = index


def _end_offsets(settings: AuditorSettings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = open_consumer(settings, [], None)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        return ends
    finally:
        consumer.close()
