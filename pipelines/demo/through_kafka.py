"""The demo's traffic through a real Kafka broker and the real ``auditor run --kafka`` stages.

The simulated services publish with the ``KafkaEmitter`` they would use in production
(authz events and log records on their topics, keyed by the client's ``iss``). The
pipeline that reads them back is ``run_kafka`` with ``--stage all``: a detect consumer
group member and the store stage in one process, exactly as ``auditor run --kafka --db``
runs, stopping once it has caught up and gone idle.

The topics may hold earlier traffic (other demos, other work on a development broker), and
the demo stores only its own: before it runs, the demo's detect group (a new one per run)
is committed at the offsets where this run's records begin, with an empty-state checkpoint
pointer, and the fresh demo database is given the same offsets for every topic the store
stage reads — the positions any restarted pipeline resumes from.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from kafka import TopicPartition
from kafka.structs import OffsetAndMetadata

from auditor.errors import UnavailableError
from auditor.fingerprints import Fingerprinter
from pipelines.emit import KafkaEmitter
from pipelines.kafka import ensure_topics, open_consumer
from pipelines.settings import AuditorSettings, PipelineSettings, load_settings
from pipelines.simulate import KafkaOutput, Simulation, SimulationConfig, SimulationResult
from pipelines.store import Batch, StoreWriter
from pipelines.topology import RunSummary, run_kafka
from pipelines.topology.kafka_state import Pointer

IDLE_EXIT_S: Final = 2.0
"""Seconds the pipeline waits, caught up, for more records before it stops."""

Offsets = dict[TopicPartition, int]


def demo_settings(
    kafka: str | None, config_file: str | None, spool: Path, pipeline: PipelineSettings
) -> AuditorSettings:
    """Settings from ``--config``/the environment and ``--kafka``, for one demo run.

    The emitter spools into ``spool``; the detect group is new (``auditor-demo-…``) so no
    earlier run's positions or detector state apply; ``pipeline`` is the demo site's.
    """
    overrides: dict[str, Any] = {
        "emitter": {"spool_dir": spool},
        "pipeline": pipeline.model_dump(mode="json"),
    }
    if kafka:
        overrides["kafka"] = {"bootstrap_servers": kafka}
    settings = load_settings(config_file, overrides=overrides)
    group = f"auditor-demo-{uuid.uuid4().hex[:12]}"
    groups = settings.groups.model_copy(update={"detect": group})
    return settings.model_copy(update={"groups": groups})


def publish(
    config: SimulationConfig, settings: AuditorSettings
) -> tuple[SimulationResult, Offsets]:
    """Simulate into the topics (created if missing).

    Returns:
        The simulation, and the end offsets of every pipeline topic before it published:
        where this run's records, and what the pipeline makes of them, begin.

    Raises:
        UnavailableError: The broker cannot be reached, or did not take every record.
    """
    ensure_topics(settings)
    starts = _end_offsets(settings, _read_topics(settings))
    result = Simulation(config, KafkaOutput(KafkaEmitter(settings))).run()
    inputs = {settings.topics.authz.name, settings.topics.logs.name}
    ends = _end_offsets(settings, sorted(inputs))
    published = sum(end - starts[tp] for tp, end in ends.items())
    if published < result.events + result.logs:
        raise UnavailableError(
            f"the broker took {published:,} of {result.events + result.logs:,} records; "
            "the rest wait in the emitter's spool"
        )
    return result, starts


def detect_and_store(
    settings: AuditorSettings,
    starts: Offsets,
    db: Path,
    *,
    fingerprinter: Fingerprinter,
    record_config: Mapping[str, Any],
) -> RunSummary:
    """Run the detect and store stages over what :func:`publish` wrote, into ``db``.

    Raises:
        UnavailableError: The broker cannot be reached.
        StoreError: The store cannot be written.
    """
    _start_at(settings, starts, db)
    return run_kafka(
        settings,
        db,
        stage="all",
        idle_exit_s=IDLE_EXIT_S,
        fingerprinter=fingerprinter,
        record_config=record_config,
    )


def _read_topics(settings: AuditorSettings) -> list[str]:
    """The topics the detect and store stages read."""
    topics = settings.topics
    names = (topics.authz, topics.logs, topics.findings, topics.deadletters, topics.alerts)
    return [spec.name for spec in names]


def _start_at(settings: AuditorSettings, starts: Offsets, db: Path) -> None:
    """Commit the detect group and the store's positions at ``starts``."""
    inputs = {settings.topics.authz.name, settings.topics.logs.name}
    consumer = open_consumer(settings, [], settings.groups.detect)
    try:
        ours = [tp for tp in starts if tp.topic in inputs]
        consumer.assign(ours)
        consumer.commit(
            {tp: OffsetAndMetadata(starts[tp], Pointer(at=starts[tp]).encode(), -1) for tp in ours}
        )
    finally:
        consumer.close(autocommit=False)
    with StoreWriter.open(db, serve=False) as writer:
        writer.write_batch(Batch(offsets={(tp.topic, tp.partition): n for tp, n in starts.items()}))


def _end_offsets(settings: AuditorSettings, topics: list[str]) -> Offsets:
    consumer = open_consumer(settings, [], None)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends: Offsets = consumer.end_offsets(partitions)
        return ends
    finally:
        consumer.close()


__all__ = ["IDLE_EXIT_S", "demo_settings", "detect_and_store", "publish"]
