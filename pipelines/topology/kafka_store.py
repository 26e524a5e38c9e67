"""The store stage through Kafka: the one process that writes the DuckDB file.

It reads every partition of four topics itself (no consumer group: it is the only reader of
its kind for its file, and its positions live in DuckDB, not in Kafka):

- **authz** — the events themselves, validated and redacted again here (the detect stage
  does not forward them: re-reading the topic costs the broker less than producing every
  event a second time). Records that are not valid events are skipped here: the detect
  stage, deciding the same way, sent their dead letters.
- **findings**, **dead letters**, **alerts** — what the detect stage produced.

Each poll becomes one transaction: its rows and the next offset of every partition it read
(``ingest_offsets``). On start it seeks each partition to the offset stored with the rows,
so a store killed at any point resumes exactly where its last commit ended, and duplicates
upstream (at-least-once) are absorbed by the keys: event ids, finding ids and revisions,
dead-letter positions, alert ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, TypeVar

import orjson
import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from pydantic import ValidationError

from auditor.fingerprints import Fingerprinter
from auditor.models import AuthzEvent, Finding
from auditor.redaction import Redactor, RedactorConfig
from pipelines.kafka import open_consumer
from pipelines.settings import AuditorSettings
from pipelines.store import (
    AlertRecord,
    Batch,
    DeadLetter,
    EventJson,
    RunCounters,
    StoreWriter,
)
from pipelines.topology.decoding import RecordDecoder
from pipelines.topology.handoff import EventHandoff
from pipelines.topology.kafka_state import Outage
from pipelines.topology.progress import Progress, RunSummary
from pipelines.topology.scrubbing import EventScrubber
from pipelines.topology.storing import event_json
from pipelines.topology.telemetry import PipelineTelemetry

_log = structlog.get_logger("auditor.pipeline.store")
_REFRESH_S: Final = 30.0
T = TypeVar("T")


class StoreWorker:
    """Consumes the authz, findings, dead-letter and alerts topics into one store.

    Args:
        settings: Connection, topic names, pipeline settings.
        writer: The store's single writer.
        run_id: The run rows belong to.
        telemetry: Counts, spans, lag.
        stop: Set to commit what was polled and return.
        summary: Where counts accumulate.
        progress: Progress lines.
        idle_exit_s: Return after this long with nothing to read once ``upstream_done`` is
            set (or at once, with no upstream in this process); ``None`` runs until stopped.
        upstream_done: Set by a detect stage in the same process when it has finished.
        fingerprinter: Keys the markers of redacted event fields (the process's key by
            default; the detect stage's must be the same).
        handoff: Events a detect stage in this process already decoded and redacted.
    """

    def __init__(
        self,
        settings: AuditorSettings,
        writer: StoreWriter,
        run_id: str,
        telemetry: PipelineTelemetry,
        *,
        stop: threading.Event,
        summary: RunSummary,
        progress: Progress,
        idle_exit_s: float | None = None,
        upstream_done: threading.Event | None = None,
        fingerprinter: Fingerprinter | None = None,
        handoff: EventHandoff | None = None,
    ) -> None:
        pipeline = settings.pipeline
        self._handoff = handoff
        self._settings = settings
        self._writer = writer
        self._run_id = run_id
        self._telemetry = telemetry
        self._stop = stop
        self._summary = summary
        self._progress = progress
        self._idle_exit = idle_exit_s
        self._upstream_done = upstream_done
        self._max_records = pipeline.store_batch_records
        self._wait_ms = pipeline.store_wait_ms
        topics = settings.topics
        self._authz = topics.authz.name
        self._findings = topics.findings.name
        self._dead = topics.deadletters.name
        self._alerts = topics.alerts.name
        self._decoder = RecordDecoder(pipeline.limits)
        self._scrubber = EventScrubber(Redactor(RedactorConfig(fingerprinter=fingerprinter)))
        self._lag: dict[str, int] = {}
        self._consumer: KafkaConsumer = open_consumer(
            settings,
            [],
            None,
            max_poll_records=self._max_records,
            fetch_max_wait_ms=min(self._wait_ms, 500),
        )
        self._assigned: set[TopicPartition] = set()
        self._assign()
        telemetry.watch_lag("store", lambda: dict(self._lag))

    def run(self) -> None:
        """Store until stopped (or idle), committing each poll in one transaction."""
        next_refresh = time.monotonic() + _REFRESH_S
        quiet_since = time.monotonic()
        outage = Outage(self._stop, "store")
        try:
            while not self._stop.is_set():
                try:
                    polled = self._consumer.poll(
                        timeout_ms=self._wait_ms, max_records=self._max_records
                    )
                    now = time.monotonic()
                    if any(polled.values()):
                        quiet_since = now
                        self._store(polled)
                    self._measure_lag()
                    if now >= next_refresh:
                        self._assign()
                        next_refresh = now + _REFRESH_S
                    self._progress.update(self._summary, lag=sum(self._lag.values()) or None)
                    if self._idle(now, quiet_since):
                        break
                except KafkaError as exc:
                    # Rows are committed with their offsets, so nothing is half done: wait
                    # for the broker and go on from where the store stands.
                    outage.wait(exc)
                    continue
                outage.over()
        finally:
            self._telemetry.unwatch_lag("store")
            self._consumer.close(autocommit=False)

    def _idle(self, now: float, quiet_since: float) -> bool:
        if self._idle_exit is None:
            return False
        if self._upstream_done is not None and not self._upstream_done.is_set():
            return False
        if now - quiet_since < self._idle_exit:
            return False
        # Ask the broker: the end offsets known from the last fetch may predate what the
        # detect stage flushed just before it finished.
        ends = self._consumer.end_offsets(list(self._assigned))
        return all(self._consumer.position(tp) >= end for tp, end in ends.items())

    def _assign(self) -> None:
        wanted: set[TopicPartition] = set()
        for topic in (self._authz, self._findings, self._dead, self._alerts):
            wanted |= {
                TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic) or ()
            }
        new = wanted - self._assigned
        if not new:
            return
        self._consumer.assign(sorted(wanted))
        stored = self._writer.resume_offsets()
        for tp in new:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
        self._assigned = wanted
        _log.info("store.assigned", partitions=len(wanted))

    def _store(self, polled: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        started = time.perf_counter()
        events: list[EventJson] = []
        findings: list[Finding] = []
        dead: list[DeadLetter] = []
        alerts: list[AlertRecord] = []
        offsets: dict[tuple[str, int], int] = {}
        for tp, records in polled.items():
            if not records:
                continue
            offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
            if tp.topic == self._authz:
                events += self._events(tp, records)
            elif tp.topic == self._findings:
                findings += self._parse(records, _finding, "finding")
            elif tp.topic == self._dead:
                dead += self._parse(records, _dead_letter, "dead letter")
            else:
                alerts += self._parse(records, _alert, "alert")
        counters = RunCounters(
            events_in=len(events), findings_out=len(findings), dead_letters=len(dead)
        )
        with self._telemetry.span(
            "store batch",
            {"auditor.events": len(events), "auditor.findings": len(findings)},
        ):
            report = self._writer.write_batch(
                Batch(
                    event_json=events,
                    findings=findings,
                    dead_letters=dead,
                    alerts=alerts,
                    offsets=offsets,
                    run_id=self._run_id,
                    counters=counters,
                )
            )
        self._telemetry.batch_duration("store", time.perf_counter() - started)
        self._telemetry.records("store", "authz", len(events))
        self._telemetry.stored(
            {
                "events": report.events_inserted,
                "findings": report.findings_written,
                "dead_letters": report.dead_letters_inserted,
                "alerts": report.alerts_inserted,
            }
        )
        self._summary.counters = self._summary.counters + counters
        self._summary.alerts += len(alerts)

    def _events(self, tp: TopicPartition, records: Sequence[ConsumerRecord]) -> list[EventJson]:
        out = []
        scrubber = self._scrubber
        handoff = self._handoff
        part = (tp.topic, tp.partition)
        for record in records:
            clean = handoff.take(part, record.offset) if handoff is not None else None
            if clean is None:
                event = self._decoder.authz(record.value or b"")
                if not isinstance(event, AuthzEvent):
                    continue  # the detect stage dead-lettered it
                clean = scrubber.scrub(event, scrubber.free_text(event)) or event
            out.append(event_json(clean, f"{tp.topic}/{tp.partition}@{record.offset}"))
        if handoff is not None and records:
            handoff.passed(part, records[-1].offset + 1)
        return out

    @staticmethod
    def _parse(
        records: Sequence[ConsumerRecord], parse: Callable[[ConsumerRecord], T], what: str
    ) -> list[T]:
        out: list[T] = []
        for record in records:
            try:
                out.append(parse(record))
            except (ValidationError, ValueError, KeyError, TypeError):
                # Not written by a detect stage (or by a newer one): say where, not what.
                _log.warning(
                    "store.unreadable_record",
                    what=what,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
        return out

    def _measure_lag(self) -> None:
        lag: dict[str, int] = {}
        for tp in self._assigned:
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            lag[tp.topic] = lag.get(tp.topic, 0) + max(high - self._consumer.position(tp), 0)
        self._lag = lag


def _finding(record: ConsumerRecord) -> Finding:
    return Finding.model_validate_json(record.value or b"")


def _dead_letter(record: ConsumerRecord) -> DeadLetter:
    body = orjson.loads(record.value or b"")
    return DeadLetter(
        source=str(body["source"]),
        reason=body["reason"],
        size_bytes=int(body["size_bytes"]),
        received_at=datetime.fromisoformat(body["received_at"]),
        detail=body.get("detail"),
        kafka_partition=body.get("kafka_partition"),
        kafka_offset=body.get("kafka_offset"),
        line=body.get("line"),
    )


def _alert(record: ConsumerRecord) -> AlertRecord:
    body = orjson.loads(record.value or b"")
    return AlertRecord(
        finding_id=str(body["finding_id"]),
        revision=int(body["revision"]),
        severity=body["severity"],
        sent_at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        channels=tuple(str(c) for c in body.get("channels", ())),
    )


__all__ = ["StoreWorker"]
