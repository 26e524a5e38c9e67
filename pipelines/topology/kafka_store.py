"""The store stage through Kafka: the one process that writes the DuckDB file.

It reads every partition of four topics itself (no consumer group: it is the only reader of
its kind for its file, and its positions live in DuckDB, not in Kafka):

- **authz** — the events themselves, validated and redacted again here (the detect stage
  does not forward them: re-reading the topic costs the broker less than producing every
  event a second time), through the detect stage's msgspec fast path: an event whose free
  text needs no redaction is written from its mirror, no pydantic model built (2.7x less
  CPU per event than validating each with pydantic, ``bench/pipeline.py``). Records that
  are not valid events are skipped here: the detect stage, deciding the same way, sent
  their dead letters.
- **findings**, **dead letters**, **alerts** — what the detect stage produced.

Two consumers, one thread, one writer. The detect stage's outputs are few and urgent (a
finding is what an analyst waits for); the events are many, and each costs a decode and a
scrub. In one consumer a finding waited behind every event fetched before it — seconds,
with a backlog. Now each round polls the outputs first (without waiting), then events, up
to a slice sized to take about ``store_wait_ms`` to store (measured as it goes), and what
was polled is committed as one transaction once the slice is full or its oldest row has
waited ``store_wait_ms``. A finding therefore waits for at most about two such waits,
however long the backlog behind it; and the store commits a few large transactions a
second rather than one per poll (a DuckDB transaction costs ~10 ms of CPU however small).

Each transaction holds its rows and the next offset of exactly the partitions whose records
it holds (``ingest_offsets``). On start each consumer seeks its partitions to the offsets
stored with the rows, so a store killed at any point resumes exactly where each partition's
last commit ended (the two consumers' partitions at different points, as committed), and duplicates
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
from pipelines.topology.authz_mirror import Mirrored
from pipelines.topology.decoding import RecordDecoder
from pipelines.topology.handoff import EventHandoff
from pipelines.topology.kafka_state import Outage
from pipelines.topology.progress import Progress, RunSummary
from pipelines.topology.scrubbing import EventScrubber
from pipelines.topology.storing import event_json
from pipelines.topology.telemetry import PipelineTelemetry

_log = structlog.get_logger("auditor.pipeline.store")
_REFRESH_S: Final = 30.0
_FIRST_ROUND: Final = 1_000
"""Events of the first round, before the store has measured what one costs."""
_FEWEST_PER_ROUND: Final = 100
"""Events per round at least: below it a transaction's fixed cost would dominate."""
T = TypeVar("T")
Polled = dict[TopicPartition, list[ConsumerRecord]]


class _Reader:
    """One consumer of the store, over every partition of some topics, seeking from DuckDB.

    Args:
        consumer: Not in a group; the reader assigns its partitions itself.
        topics: The topics whose partitions it reads.
    """

    def __init__(self, consumer: KafkaConsumer, topics: Sequence[str]) -> None:
        self.consumer = consumer
        self._topics = tuple(topics)
        self.assigned: set[TopicPartition] = set()

    def assign(self, stored: Callable[[], dict[tuple[str, int], int]]) -> int:
        """Take new partitions of the topics, each at its stored offset; how many were new."""
        wanted: set[TopicPartition] = set()
        for topic in self._topics:
            wanted |= {
                TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic) or ()
            }
        new = wanted - self.assigned
        if not new:
            return 0
        self.consumer.assign(sorted(wanted))
        offsets = stored()
        for tp in new:
            offset = offsets.get((tp.topic, tp.partition))
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
        self.assigned = wanted
        return len(new)

    def lag(self, into: dict[str, int]) -> None:
        """Add each topic's records not yet read (as of the last fetch) to ``into``."""
        for tp in self.assigned:
            high = self.consumer.highwater(tp)
            if high is not None:
                into[tp.topic] = into.get(tp.topic, 0) + max(high - self.consumer.position(tp), 0)

    def caught_up(self) -> bool:
        """Whether every partition is read to its end, asking the broker."""
        ends = self.consumer.end_offsets(list(self.assigned))
        return all(self.consumer.position(tp) >= end for tp, end in ends.items())


class _Pending:
    """What was polled and not yet committed: records by partition, and since when."""

    def __init__(self) -> None:
        self.polled: Polled = {}
        self.events = 0
        self.rows = 0
        self.since: float | None = None

    def _clear(self) -> None:
        self.polled = {}
        self.events = self.rows = 0
        self.since = None

    def add(self, polled: Polled, now: float, *, events: bool) -> bool:
        """Keep ``polled``; whether it held any record."""
        added = 0
        for tp, records in polled.items():
            if records:
                self.polled.setdefault(tp, []).extend(records)
                added += len(records)
        if not added:
            return False
        self.rows += added
        if events:
            self.events += added
        if self.since is None:
            self.since = now
        return True

    def take(self) -> Polled:
        """The records, in offset order per partition; empties the batch."""
        polled = self.polled
        self._clear()
        return polled


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
        self._per_round = min(self._max_records, _FIRST_ROUND)
        self._pending = _Pending()
        topics = settings.topics
        self._authz = topics.authz.name
        self._findings = topics.findings.name
        self._dead = topics.deadletters.name
        self._decoder = RecordDecoder(pipeline.limits)
        self._scrubber = EventScrubber(Redactor(RedactorConfig(fingerprinter=fingerprinter)))
        self._lag: dict[str, int] = {}
        self._events = _Reader(self._consumer(), [self._authz])
        try:
            self._outputs = _Reader(
                self._consumer(), [self._findings, self._dead, topics.alerts.name]
            )
        except BaseException:
            self._events.consumer.close(autocommit=False)
            raise
        try:
            self._assign()
        except BaseException:
            self._close()
            raise
        telemetry.watch_lag("store", lambda: dict(self._lag))

    def _consumer(self) -> KafkaConsumer:
        consumer: KafkaConsumer = open_consumer(
            self._settings,
            [],
            None,
            max_poll_records=self._max_records,
            fetch_max_wait_ms=min(self._wait_ms, 500),
        )
        return consumer

    def run(self) -> None:
        """Store until stopped (or idle); what was polled is committed before returning."""
        next_refresh = time.monotonic() + _REFRESH_S
        quiet_since = time.monotonic()
        outage = Outage(self._stop, "store")
        try:
            while not self._stop.is_set():
                try:
                    if self._round():
                        quiet_since = time.monotonic()
                    now = time.monotonic()
                    self._measure_lag()
                    if now >= next_refresh:
                        self._assign()
                        next_refresh = now + _REFRESH_S
                    self._progress.update(self._summary, lag=sum(self._lag.values()) or None)
                    if self._idle(now, quiet_since):
                        break
                except KafkaError as exc:
                    # Rows are committed with their offsets, so nothing is half done (what
                    # was polled waits in memory): wait for the broker and go on.
                    outage.wait(exc)
                    continue
                outage.over()
            self._commit()
        finally:
            self._telemetry.unwatch_lag("store")
            self._close()

    def _round(self) -> bool:
        """Poll the outputs, then events; commit when due. Whether anything came."""
        pending = self._pending
        room = self._max_records - pending.rows
        came = room > 0 and pending.add(
            self._outputs.consumer.poll(timeout_ms=0, max_records=room),
            time.monotonic(),
            events=False,
        )
        room = min(self._per_round - pending.events, self._max_records - pending.rows)
        if room > 0:
            # Wait here, not for the outputs: they follow the events. Not past the pending
            # batch's due time, and not long, so outputs that arrive meanwhile are read.
            wait_ms = self._wait_ms // 2
            if pending.since is not None:
                due_ms = (pending.since + self._wait_ms / 1000 - time.monotonic()) * 1000
                wait_ms = min(wait_ms, int(due_ms))
            polled = self._events.consumer.poll(timeout_ms=max(wait_ms, 0), max_records=room)
            came = pending.add(polled, time.monotonic(), events=True) or came
        if self._due():
            self._commit()
        return came

    def _due(self) -> bool:
        pending = self._pending
        if pending.since is None:
            return False
        if pending.events >= self._per_round or pending.rows >= self._max_records:
            return True
        return time.monotonic() - pending.since >= self._wait_ms / 1000

    def _commit(self) -> None:
        if not self._pending.rows:
            return
        polled = self._pending.take()
        started = time.perf_counter()
        events = self._store(polled)
        self._size_rounds(events, time.perf_counter() - started)

    def _size_rounds(self, events: int, seconds: float) -> None:
        """Size the next slice of events to take about ``store_wait_ms`` to store.

        What an event costs depends on the machine, its load and the handoff, so the store
        measures it (a moving average, so one slow transaction does not halve the next).
        """
        if events < _FEWEST_PER_ROUND or seconds <= 0:
            return  # a small transaction is mostly its fixed cost: it tells little
        fits = events * (self._wait_ms / 1000) / seconds
        sized = int((self._per_round + fits) / 2)
        self._per_round = min(self._max_records, max(_FEWEST_PER_ROUND, sized))

    def _close(self) -> None:
        for reader in (self._events, self._outputs):
            reader.consumer.close(autocommit=False)

    def _idle(self, now: float, quiet_since: float) -> bool:
        if self._idle_exit is None:
            return False
        if self._upstream_done is not None and not self._upstream_done.is_set():
            return False
        if now - quiet_since < self._idle_exit:
            return False
        # Ask the broker: the end offsets known from the last fetch may predate what the
        # detect stage flushed just before it finished.
        return self._outputs.caught_up() and self._events.caught_up()

    def _assign(self) -> None:
        new = self._events.assign(self._writer.resume_offsets)
        new += self._outputs.assign(self._writer.resume_offsets)
        if new:
            _log.info(
                "store.assigned",
                partitions=len(self._events.assigned) + len(self._outputs.assigned),
            )

    def _store(self, polled: Polled) -> int:
        """Commit one poll's rows with its partitions' offsets; returns the events stored."""
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
                events += self._decode_events(tp, records)
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
        return len(events)

    def _decode_events(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord]
    ) -> list[EventJson]:
        out = []
        scrubber = self._scrubber
        handoff = self._handoff
        part = (tp.topic, tp.partition)
        for record in records:
            clean = handoff.take(part, record.offset) if handoff is not None else None
            if clean is None:
                # The detect stage's decoding: the msgspec fast path, pydantic otherwise.
                event = self._decoder.authz_view(record.value or b"")
                if not isinstance(event, AuthzEvent | Mirrored):
                    continue  # the detect stage dead-lettered it
                clean = scrubber.stored(event)
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
        self._events.lag(lag)
        self._outputs.lag(lag)
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
