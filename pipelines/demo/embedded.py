"""The embedded pipeline the demo runs: JSON lines in, detectors, exactly-once into DuckDB.

A small stand-in for ``auditor run --input`` (issue 5), built from the parts it will use:
the same file format (a line with ``"kind": "authz"`` is an ``AuthzEvent``, any other JSON
object or text line is a log record), the stream runtime with the stream detectors, the
content detectors over log records and event attributes, and the store's single writer,
one transaction per batch with the file offset it consumed. When the real topology lands,
:func:`run_embedded` is the one function the demo swaps for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import ValidationError

from auditor.errors import RejectedRecord
from auditor.fingerprints import Fingerprinter
from auditor.models import AuthzEvent, Finding
from auditor.protocols import ContentDetector, ScanContext
from auditor.vocabulary import DeadLetterReason, RunMode, RunStatus
from detectors import StreamDetectorsConfig, stream_detectors
from pipelines.runtime import RuntimeConfig, StreamRuntime, latest_revisions
from pipelines.store import Batch, DeadLetter, IngestedEvent, RunCounters, StoreWriter

BATCH_LINES: Final = 5_000
MAX_LINE_BYTES: Final = 1 << 20


@dataclass(slots=True)
class EmbeddedRun:
    """What one run read, found and stored."""

    run_id: str
    events: int = 0
    logs: int = 0
    dead_letters: int = 0
    late_events: int = 0
    findings: list[Finding] = field(default_factory=list)
    """Every finding, latest revision of each."""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive input records of one part of one source.

    Attributes:
        source: ``file:<path>`` or a Kafka topic.
        part: 0 for a file; the partition for a topic.
        first: The position of the first record: its line (files, from 1) or its offset.
        records: The raw records.
        kafka: Whether positions are Kafka offsets (else line numbers).
    """

    source: str
    part: int
    first: int
    records: list[bytes]
    kafka: bool = False


def file_chunks(path: Path, size: int = BATCH_LINES) -> Iterator[Chunk]:
    """A JSON-lines file as chunks of ``size`` lines."""
    source = f"file:{path}"
    with path.open("rb") as stream:
        first = 1
        batch: list[bytes] = []
        for raw in stream:
            batch.append(raw)
            if len(batch) >= size:
                yield Chunk(source, 0, first, batch)
                first += len(batch)
                batch = []
        if batch:
            yield Chunk(source, 0, first, batch)


def run_embedded(
    path: Path,
    *,
    db: Path,
    detectors: StreamDetectorsConfig,
    content: Sequence[ContentDetector] = (),
    fingerprinter: Fingerprinter,
    inputs: Sequence[str] | None = None,
    config: dict[str, Any] | None = None,
) -> EmbeddedRun:
    """Read the JSON-lines file ``path`` through the detectors into the store at ``db``.

    Args:
        path: JSON lines (authz events and log records).
        db: The DuckDB store (created when missing).
        detectors: The stream detectors' configuration.
        content: Content detectors run over each log record and each event's attributes.
        fingerprinter: The key of the run's fingerprints (recorded as its id only).
        inputs: What the ``runs`` table records as the input (default: the path).
        config: The effective configuration recorded with the run (secrets removed).
    """
    return run_chunks(
        file_chunks(path),
        mode=RunMode.EMBEDDED,
        db=db,
        detectors=detectors,
        content=content,
        fingerprinter=fingerprinter,
        inputs=inputs or [str(path)],
        config=config,
    )


def run_chunks(
    chunks: Iterable[Chunk],
    *,
    mode: RunMode,
    db: Path,
    detectors: StreamDetectorsConfig,
    content: Sequence[ContentDetector],
    fingerprinter: Fingerprinter,
    inputs: Sequence[str],
    config: dict[str, Any] | None,
) -> EmbeddedRun:
    """Run chunks of input through the detectors into the store, one transaction each.

    Authz events of each (source, part) go through the stream runtime as one partition
    (so a Kafka partition keeps its own event-time order); every log record and every
    event's attributes go through the content detectors. Each chunk's rows are committed
    with the position after it, so a rerun over the same input adds nothing.
    """
    began = time.perf_counter()
    runtime = StreamRuntime(stream_detectors(detectors), RuntimeConfig())
    partitions: dict[tuple[str, int], int] = {}
    with StoreWriter.open(db, serve=False) as writer:
        run_id = writer.begin_run(
            mode=mode, inputs=list(inputs), config=config, fingerprint_key_id=fingerprinter.key_id
        )
        result = EmbeddedRun(run_id)
        revisions: list[Finding] = []
        stage = _Stage(runtime, content, writer, result)
        try:
            for chunk in chunks:
                partition = partitions.setdefault((chunk.source, chunk.part), len(partitions))
                revisions += stage.run(chunk, partition)
            closing = runtime.flush()
            revisions += closing
            writer.write_batch(
                Batch(
                    findings=closing, run_id=run_id, counters=RunCounters(findings_out=len(closing))
                )
            )
            result.late_events = sum(runtime.stats(p).late_events for p in runtime.partitions())
        except BaseException:
            writer.end_run(run_id, status=RunStatus.FAILED)
            raise
        totals = RunCounters(
            events_in=result.events,
            logs_in=result.logs,
            findings_out=len(revisions),
            dead_letters=result.dead_letters,
            late_events=result.late_events,
        )
        writer.end_run(run_id, status=RunStatus.COMPLETED, counters=totals)
    result.findings = latest_revisions(revisions)
    result.seconds = time.perf_counter() - began
    return result


class _Stage:
    """Runs one chunk: parse, detect, and commit its rows with the position after it."""

    def __init__(
        self,
        runtime: StreamRuntime,
        content: Sequence[ContentDetector],
        writer: StoreWriter,
        result: EmbeddedRun,
    ) -> None:
        self.runtime = runtime
        self.content = content
        self.writer = writer
        self.result = result

    def run(self, chunk: Chunk, partition: int) -> list[Finding]:
        events: list[IngestedEvent] = []
        found: list[Finding] = []
        dead: list[DeadLetter] = []
        logs = 0
        where = chunk.source.removeprefix("file:")
        for position, raw in enumerate(chunk.records, chunk.first):
            origin = f"{where}/{chunk.part}@{position}" if chunk.kafka else f"{where}:{position}"
            item = _parse(raw)
            if isinstance(item, _Rejected):
                dead.append(_dead_letter(chunk, position, raw, item))
                continue
            try:
                if isinstance(item, AuthzEvent):
                    events.append(IngestedEvent(item, origin=origin))
                    found += _scan_attributes(self.content, item, origin)
                else:
                    logs += 1
                    found += _scan_log(self.content, item, origin)
            except RejectedRecord as exc:
                # Examined only in part (past a size or depth cap): set aside, and keep
                # what the examined parts held.
                found += getattr(exc, "findings", ())
                rejected = _Rejected(exc.reason, exc.detail)
                dead.append(_dead_letter(chunk, position, raw, rejected))
        following = chunk.first + len(chunk.records)
        if events:
            batch = [e.event for e in events]
            found += self.runtime.process(partition, batch, next_offset=following)
        counters = RunCounters(
            events_in=len(events), logs_in=logs, findings_out=len(found), dead_letters=len(dead)
        )
        self.writer.write_batch(
            Batch(
                events=events,
                findings=found,
                dead_letters=dead,
                offsets={(chunk.source, chunk.part): following},
                run_id=self.result.run_id,
                counters=counters,
            )
        )
        self.result.events += len(events)
        self.result.logs += logs
        self.result.dead_letters += len(dead)
        return found


@dataclass(frozen=True, slots=True)
class _Rejected:
    reason: DeadLetterReason
    detail: str


def _dead_letter(chunk: Chunk, position: int, raw: bytes, rejected: _Rejected) -> DeadLetter:
    where = (
        {"kafka_partition": chunk.part, "kafka_offset": position}
        if chunk.kafka
        else {"line": position}
    )
    return DeadLetter(
        source=chunk.source.removeprefix("file:"),
        reason=rejected.reason,
        size_bytes=len(raw),
        received_at=datetime.now(UTC),
        detail=rejected.detail,
        **where,
    )


def _parse(raw: bytes) -> AuthzEvent | dict[str, Any] | str | _Rejected:
    """A record as an event, a structured log record, a text line, or why it is refused."""
    if len(raw) > MAX_LINE_BYTES:
        return _Rejected(DeadLetterReason.OVERSIZED, f"record over {MAX_LINE_BYTES} bytes")
    stripped = raw.strip()
    if stripped.startswith(b"{"):
        return _parse_json(stripped)
    try:
        return stripped.decode("utf-8")
    except UnicodeDecodeError:
        return _Rejected(DeadLetterReason.INVALID_UTF8, "record is not UTF-8")


def _parse_json(data: bytes) -> AuthzEvent | dict[str, Any] | _Rejected:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _Rejected(DeadLetterReason.MALFORMED_JSON, "record starts like JSON but is not")
    if not isinstance(value, dict):
        return _Rejected(DeadLetterReason.MALFORMED_JSON, "not a JSON object")
    if value.get("kind") != "authz":
        return value
    try:
        return AuthzEvent.model_validate(value)
    except ValidationError as exc:
        fields = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
        return _Rejected(DeadLetterReason.SCHEMA_VIOLATION, f"invalid fields: {', '.join(fields)}")


def _scan_log(
    content: Sequence[ContentDetector], record: dict[str, Any] | str, origin: str
) -> list[Finding]:
    if not content:
        return []
    context = ScanContext(
        origin=origin,
        observed_at=_log_time(record),
        client_iss=_text(record, "client_iss"),
        service_id=_text(record, "service"),
    )
    return [finding for detector in content for finding in detector.scan(record, context)]


def _scan_attributes(
    content: Sequence[ContentDetector], event: AuthzEvent, origin: str
) -> list[Finding]:
    if not content or not event.attributes:
        return []
    context = ScanContext(
        origin=origin,
        observed_at=event.time,
        client_iss=event.client_iss,
        service_id=event.service_id,
        event_id=str(event.event_id),
    )
    return [f for detector in content for f in detector.scan(event.attributes, context)]


def _text(record: dict[str, Any] | str, key: str) -> str | None:
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def _log_time(record: dict[str, Any] | str) -> datetime:
    stamp = _text(record, "timestamp")
    if stamp is not None:
        try:
            return datetime.fromisoformat(stamp).astimezone(UTC)
        except ValueError:
            pass
    return datetime.now(UTC)
