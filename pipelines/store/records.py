"""What the store writer accepts: one ``Batch`` per transaction, and its parts.

A batch carries everything one step of the pipeline produced — events, findings, dead
letters, alerts sent — together with the input positions it consumed. The writer commits
all of it in one DuckDB transaction, so the stored offsets always say exactly which input
the stored rows came from (exactly-once into DuckDB).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from auditor.models import AuthzEvent, Finding
from auditor.vocabulary import DeadLetterReason, Severity

MAX_DETAIL = 512
"""Dead-letter details name a field or a rule; anything longer is a bug upstream."""

OffsetKey = tuple[str, int]
"""``(source, part)``: a Kafka topic and partition, or ``('file:' + path, 0)``."""


@dataclass(frozen=True, slots=True)
class IngestedEvent:
    """An authz event with the input position it was read from.

    Attributes:
        event: The event; its ``attributes`` already redacted upstream (the writer stores
            them as given).
        origin: ``topic/partition@offset`` or ``path:line``.
    """

    event: AuthzEvent
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class EventJson:
    """A validated, redacted authz event as the JSON of its contract: the pipeline's fast path.

    The writer extracts the columns inside DuckDB (``from_json``), so no Python object is
    built per column and row; the result is the same row as for the ``AuthzEvent`` (the
    tests compare the two paths column by column).

    Attributes:
        event_key: The 16 bytes of the event's id (the dedupe key), as validated
            (``event_id.bytes``).
        json: ``AuthzEvent.model_dump_json(exclude_none=True)`` of the validated event, its
            free text already redacted. Anything else is a bug of the caller: DuckDB reads
            the contract's field names and JSON types, nothing more.
        origin: ``topic/partition@offset`` or ``path:line``.
    """

    event_key: bytes
    json: bytes
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state of the stream detectors at a set of input positions (embedded runs).

    Attributes:
        positions: The next position of every input source the state has consumed,
            ``{"file:/abs/path": next line}``; a resumed run re-reads from there.
        state: The runtime's snapshot bytes (``StreamRuntime.snapshot``).
    """

    positions: Mapping[str, int]
    state: bytes


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """The metadata of one input record that was set aside. Never its payload.

    A position is required — a Kafka partition and offset, or a line — because the id is
    derived from it: the same bad record read twice is stored once.

    Attributes:
        source: Topic name or file path.
        reason: Why it was set aside.
        size_bytes: Size of the record as received.
        received_at: When the pipeline read it (wall time).
        detail: Which field or rule failed; never a value.
        kafka_partition: Partition, for Kafka input.
        kafka_offset: Offset, for Kafka input.
        line: Line number, for file input.
    """

    source: str
    reason: DeadLetterReason
    size_bytes: int
    received_at: datetime
    detail: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        # Accept the reason's string value too, and refuse any name not in the vocabulary.
        object.__setattr__(self, "reason", DeadLetterReason(self.reason))
        if self.size_bytes < 0:
            raise ValueError("size_bytes is negative")
        if self.received_at.tzinfo is None:
            raise ValueError("received_at must carry a time zone")
        if self.detail is not None and len(self.detail) > MAX_DETAIL:
            raise ValueError(f"a dead-letter detail is at most {MAX_DETAIL} characters")
        kafka = self.kafka_partition is not None and self.kafka_offset is not None
        if not kafka and self.line is None:
            raise ValueError("a dead letter needs a position: kafka partition and offset, or line")

    @property
    def dead_letter_id(self) -> str:
        """32 hex digits derived from the source and the position."""
        h = hashlib.sha256()
        for part in (self.source, self.kafka_partition, self.kafka_offset, self.line):
            h.update(str(part).encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        return h.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert that was sent for one revision of a finding.

    Attributes:
        finding_id: The finding alerted on.
        revision: Its revision; an incident that grows is alerted once per revision sent.
        severity: The finding's severity at that revision.
        sent_at: When it was sent (wall time).
        channels: Where it went: ``kafka``, ``webhook``.
    """

    finding_id: str
    revision: int
    severity: Severity
    sent_at: datetime
    channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "channels", tuple(self.channels))
        if self.sent_at.tzinfo is None:
            raise ValueError("sent_at must carry a time zone")

    @property
    def alert_id(self) -> str:
        """``finding_id:revision``: one alert per incident revision, stored once."""
        return f"{self.finding_id}:{self.revision}"


@dataclass(frozen=True, slots=True)
class RunCounters:
    """Counters of a pipeline run, as stored in the ``runs`` table."""

    events_in: int = 0
    logs_in: int = 0
    findings_out: int = 0
    dead_letters: int = 0
    late_events: int = 0

    def __add__(self, other: RunCounters) -> RunCounters:
        return RunCounters(
            events_in=self.events_in + other.events_in,
            logs_in=self.logs_in + other.logs_in,
            findings_out=self.findings_out + other.findings_out,
            dead_letters=self.dead_letters + other.dead_letters,
            late_events=self.late_events + other.late_events,
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """Everything one pipeline step stores, committed in one transaction.

    Attributes:
        events: Authz events (deduplicated by ``event_id``: the first stored wins).
        event_json: Authz events on the fast path (``EventJson``), deduplicated the same way.
        findings: Findings (upserted: the highest ``revision`` of each id wins).
        dead_letters: Metadata of bad input (deduplicated by source and position).
        alerts: Alerts sent (deduplicated by finding id and revision).
        offsets: The next position to consume per ``(source, part)``. A stored offset
            never moves backwards, so a redelivered batch cannot rewind the store.
        run_id: The run the rows belong to (from ``begin_run``).
        counters: Increments added to the run's counters in the same transaction —
            unless the batch carries offsets and none of them moved forward: then it is a
            redelivery of a batch already counted.
        checkpoints: Detector state by stream name, replacing what the store held
            (``StoreWriter.load_checkpoint`` reads it back).
    """

    events: Sequence[AuthzEvent | IngestedEvent] = ()
    event_json: Sequence[EventJson] = ()
    findings: Sequence[Finding] = ()
    dead_letters: Sequence[DeadLetter] = ()
    alerts: Sequence[AlertRecord] = ()
    offsets: Mapping[OffsetKey, int] = field(default_factory=dict)
    run_id: str | None = None
    counters: RunCounters | None = None
    checkpoints: Mapping[str, Checkpoint] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a committed batch changed.

    Attributes:
        events_inserted: New events (duplicates of stored ones are not counted).
        findings_written: Findings inserted or raised to a higher revision.
        dead_letters_inserted: New dead letters.
        alerts_inserted: New alert rows.
        offsets_advanced: Offsets that moved forward.
    """

    events_inserted: int
    findings_written: int
    dead_letters_inserted: int
    alerts_inserted: int
    offsets_advanced: int

    @property
    def changed_anything(self) -> bool:
        """Whether the batch stored anything new."""
        return any(
            (
                self.events_inserted,
                self.findings_written,
                self.dead_letters_inserted,
                self.alerts_inserted,
                self.offsets_advanced,
            )
        )


__all__ = [
    "AlertRecord",
    "Batch",
    "BatchReport",
    "Checkpoint",
    "DeadLetter",
    "EventJson",
    "IngestedEvent",
    "OffsetKey",
    "RunCounters",
]
