"""The detect stage: records in; events, findings, dead letters and alerts out.

Transport-free: the embedded runner feeds it chunks of file lines, the Kafka detect worker
chunks of one partition's records. Per chunk:

1. decode each record (``decoding``): an authz event, a log record, or a dead letter;
2. redact each event's free text (``scrubbing``); what the store keeps is the redacted event;
3. run the content detectors (``auditor.protocols.ContentDetector``) over every log record
   and over the original free text of events that have any worth looking at;
4. run the stream runtime over the chunk's events (without attributes or detail);
5. decide alerts (``alerting``) on the findings.

A content detector that examined a record only in part (past its size or depth caps)
raises ``RejectedRecord``: the record gets a dead letter with that reason and the
findings of the examined parts are kept. Any other exception is a bug, not a reason to
stop: the record gets a ``processing_error`` dead letter (metadata only) and the chunk
goes on. An authz event with a dead letter of either kind is still stored and detected
on. The stage is not thread-safe: one per detect thread.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from auditor.errors import RejectedRecord
from auditor.models import AuthzEvent, AuthzView, Finding
from auditor.protocols import ScanContext
from auditor.vocabulary import DeadLetterReason
from pipelines.runtime import StreamRuntime
from pipelines.store import DeadLetter, OffsetKey, RunCounters
from pipelines.topology.alerting import Alert, AlertPolicy
from pipelines.topology.authz_mirror import Mirrored
from pipelines.topology.decoding import LogRecord, RecordDecoder, Rejected
from pipelines.topology.scans import ContentScan, GatheringScan
from pipelines.topology.scrubbing import EventScrubber, updated
from pipelines.topology.telemetry import PipelineTelemetry

InputKind = Literal["authz", "logs", "lines"]
"""What a chunk holds: the authz topic, the logs topic, or file lines (either kind)."""


_KNOWN_CLEAN_LIMIT: Final = 4096
_KNOWN_CLEAN_CHARS: Final = 2048
_TIME_KEYS = ("timestamp", "time", "@timestamp")
_SERVICE_KEYS = ("service_id", "service")


@dataclass(slots=True)
class Chunk:
    """Consecutive records of one input part, with their positions.

    Attributes:
        source: The topic, or the file's path (``-`` for stdin).
        part: The Kafka partition; 0 for files.
        kind: What the records are (see ``InputKind``).
        positions: Offset (Kafka) or line number (files, from 1) of each record.
        records: The raw records.
        next_position: Where reading resumes after this chunk.
        arrived: Epoch seconds each record arrived (Kafka timestamps), or one value for
            the whole chunk (when it was read).
        kafka: Whether positions are Kafka offsets.
        carriers: Trace-context headers of a few records, for span links.
        sizes: The size of records that were cut short when read (index -> bytes).
    """

    source: str
    part: int
    kind: InputKind
    positions: list[int]
    records: list[bytes]
    next_position: int
    arrived: list[float] | float
    kafka: bool = False
    carriers: list[dict[str, str]] = field(default_factory=list)
    sizes: dict[int, int] = field(default_factory=dict)

    def origin(self, position: int) -> str:
        """``topic/partition@offset`` or ``path:line``."""
        if self.kafka:
            return f"{self.source}/{self.part}@{position}"
        return f"{self.source}:{position}"

    @property
    def offset_key(self) -> OffsetKey:
        """The ``ingest_offsets`` key of this chunk's part."""
        return (self.source if self.kafka else f"file:{self.source}", self.part)

    def arrival(self, index: int) -> float:
        """When record ``index`` arrived."""
        return self.arrived[index] if isinstance(self.arrived, list) else self.arrived


@dataclass(slots=True)
class DetectOutput:
    """What the detect stage produced from a chunk (or from a flush or an idle advance).

    Attributes:
        events: Redacted authz events with their origins, for the store: an
            ``AuthzEvent``, or as the fast path decoded it (``Mirrored``, whose
            ``stored_json`` is the event's JSON); none from the fast path of a stage that
            keeps no events (see ``DetectStage``).
        event_positions: The input position of each of ``events``.
        findings: Every finding revision released.
        dead_letters: Metadata of the records set aside.
        alerts: The alerts the findings raise.
        counters: The run counters of the chunk.
        offset: The input position after the chunk, when it came from an input.
        newest: The newest event time of the chunk's authz events (epoch seconds).
    """

    events: list[tuple[AuthzEvent | Mirrored, str]] = field(default_factory=list)
    event_positions: list[int] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    counters: RunCounters = field(default_factory=RunCounters)
    offset: tuple[OffsetKey, int] | None = None
    newest: float | None = None


class DetectStage:
    """Decodes, redacts and detects; one per detect thread.

    Args:
        runtime: The stream runtime with the stream detectors.
        content: The content detectors (``leaked_token``, ``phi_in_logs``: one
            ``detectors.ContentScanner`` runs both in one pass).
        scrubber: Redacts events' free text.
        decoder: Decodes records.
        alerts: Decides which findings alert.
        telemetry: Where counts and spans go.
        wall_clock: Epoch seconds now (tests pass their own).
        keep_events: Whether ``DetectOutput.events`` carries the events, for a store in
            the same process; a detect process without one passes ``False``. Authz
            events go through the decoder's fast path (``authz_view``, ``line_view``):
            those it takes never become pydantic models (``authz_mirror``) unless a
            detector or a redaction needs one; the store writes them from the mirror.
    """

    def __init__(
        self,
        *,
        runtime: StreamRuntime,
        content: Sequence[ContentScan],
        scrubber: EventScrubber,
        decoder: RecordDecoder,
        alerts: AlertPolicy,
        telemetry: PipelineTelemetry,
        wall_clock: Any = time.time,
        keep_events: bool = True,
    ) -> None:
        self.runtime = runtime
        self._keep_events = keep_events
        self._content = tuple(content)
        self._gathering = tuple(c for c in self._content if isinstance(c, GatheringScan))
        self._prefilter = bool(self._content) and len(self._gathering) == len(self._content)
        self._clean: set[tuple[tuple[str, Any], ...]] = set()
        """Events' free text found clean (no attributes): service and FHIR server URLs and
        the like repeat from event to event, and the same content gathers the same way."""
        self._scrubber = scrubber
        self._decoder = decoder
        self._alerts = alerts
        self._telemetry = telemetry
        self._now = wall_clock

    def process(self, chunk: Chunk, partition: int, *, replay: bool = False) -> DetectOutput:
        """Run one chunk; ``partition`` is the runtime partition of its authz events.

        With ``replay`` the chunk only rebuilds state (its records were processed and
        their output published before a restart): nothing is returned but counters.
        """
        started = time.perf_counter()
        with self._telemetry.span(
            "detect batch",
            {
                "auditor.source": chunk.source,
                "auditor.partition": chunk.part,
                "auditor.records": len(chunk.records),
                "auditor.replay": replay,
            },
            chunk.carriers,
        ) as span:
            out = self._process(chunk, partition, replay=replay)
            span.set_attribute("auditor.findings", len(out.findings))
            span.set_attribute("auditor.dead_letters", len(out.dead_letters))
        self._telemetry.batch_duration("detect", time.perf_counter() - started)
        return out

    def _records(
        self, chunk: Chunk, out: DetectOutput, latencies: list[float], *, scan: bool
    ) -> tuple[list[AuthzEvent | AuthzView], int, int]:
        """Decode, redact and content-scan each record; what to detect, events and logs seen."""
        to_detect: list[AuthzEvent | AuthzView] = []
        events = logs = 0
        scan = scan and bool(self._content)
        for index, item in enumerate(self._decode(chunk)):
            if item is None:
                continue
            if isinstance(item, Rejected):
                out.dead_letters.append(self._dead_letter(chunk, index, item))
                continue
            position = chunk.positions[index]
            origin = chunk.origin(position)
            found: list[Finding] = []
            if isinstance(item, Mirrored | AuthzEvent):
                events += 1
                text = self._redacted(item, origin, position, out, to_detect)
                if text and scan:
                    found = self._scan_event(item, text, origin, chunk, index, out)
            else:
                logs += 1
                if scan and not self._clean_content(item):
                    context = _log_context(item, origin, chunk.arrival(index))
                    found = self._scan(item, context, chunk, index, out)
            if found:
                out.findings += found
                latencies.append(chunk.arrival(index))
        return to_detect, events, logs

    def _redacted(
        self,
        item: AuthzEvent | Mirrored,
        origin: str,
        position: int,
        out: DetectOutput,
        to_detect: list[AuthzEvent | AuthzView],
    ) -> dict[str, Any]:
        """Redact one event into ``out`` and ``to_detect``; returns its original free text."""
        scrubber = self._scrubber
        if isinstance(item, Mirrored):
            text = item.free_text()
            changed = scrubber.changes(text)
            if changed is None:
                # The fast path: the view straight from the mirror, no event built.
                to_detect.append(item.view())
                if self._keep_events:  # the store writes it from the mirror too
                    out.events.append((item, origin))
                    out.event_positions.append(position)
                return text
            stored = updated(item.event(), changed)
        else:
            text = scrubber.free_text(item)
            stored = scrubber.scrub(item, text) or item
        out.events.append((stored, origin))
        out.event_positions.append(position)
        to_detect.append(scrubber.for_detection(stored))
        return text

    def _process(self, chunk: Chunk, partition: int, *, replay: bool) -> DetectOutput:
        out = DetectOutput(offset=(chunk.offset_key, chunk.next_position))
        latencies: list[float] = []
        to_detect, events, logs = self._records(chunk, out, latencies, scan=not replay)
        late_before = self.runtime.stats(partition).late_events if to_detect else 0
        released: list[Finding] = []
        if to_detect:
            released = self.runtime.process(
                partition,
                to_detect,
                next_offset=chunk.next_position,
                processing_time=self._now() if chunk.kafka else None,
            )
            late = self.runtime.stats(partition).late_events - late_before
        else:
            late = 0
        if released:
            out.findings += released
            newest = max(chunk.arrived) if isinstance(chunk.arrived, list) else chunk.arrived
            latencies.append(newest)
        out.counters = RunCounters(
            events_in=events,
            logs_in=logs,
            findings_out=0 if replay else len(out.findings),
            dead_letters=len(out.dead_letters),
            late_events=late,
        )
        self._count(out, late)
        if to_detect:
            out.newest = max(_epoch(event) for event in to_detect)
        if replay:
            return DetectOutput(counters=out.counters, offset=out.offset, newest=out.newest)
        now = self._now()
        self._telemetry.detection_latency(now - arrived for arrived in latencies)
        self._finish(out)
        return out

    def advance(self, partition: int, watermark: float) -> DetectOutput:
        """Move an idle partition's watermark; returns what that released."""
        out = DetectOutput(findings=self.runtime.advance_watermark(partition, watermark))
        out.counters = RunCounters(findings_out=len(out.findings))
        self._finish(out)
        return out

    def flush(self) -> DetectOutput:
        """End of a finite input: release every buffered event and close every incident."""
        out = DetectOutput(findings=self.runtime.flush())
        out.counters = RunCounters(findings_out=len(out.findings))
        self._finish(out)
        return out

    # -- helpers -------------------------------------------------------------------------

    def _decode(self, chunk: Chunk) -> list[AuthzEvent | Mirrored | LogRecord | Rejected | None]:
        decoder = self._decoder
        if chunk.kind == "authz":
            return [decoder.authz_view(raw) for raw in chunk.records]
        if chunk.kind == "logs":
            return [decoder.log(raw) for raw in chunk.records]
        return [decoder.line_view(raw) for raw in chunk.records]

    def _finish(self, out: DetectOutput) -> None:
        if out.findings:
            self._telemetry.findings(
                Counter((f.detector.value, f.severity.value) for f in out.findings)
            )
            out.alerts = self._alerts.decide(out.findings)

    def _count(self, out: DetectOutput, late: int) -> None:
        telemetry = self._telemetry
        telemetry.records("detect", "authz", out.counters.events_in)
        telemetry.records("detect", "log", out.counters.logs_in)
        if out.dead_letters:
            telemetry.dead_letters(Counter(d.reason.value for d in out.dead_letters))
        telemetry.late_events(late)

    def _clean_content(self, content: object) -> bool:
        """Whether every content detector examined ``content`` whole and found nothing.

        Only when all of them can say so before a context is built (``GatheringScan``);
        a detector that fails here is left to ``_scan``, which reports it.
        """
        if not self._prefilter:
            return False
        try:
            return all(scan.gather(content) is None for scan in self._gathering)
        except Exception:  # noqa: BLE001 - _scan runs the detector again and dead-letters it
            return False

    def _scan_event(  # noqa: PLR0917 - private; the hot loop's locals, passed on
        self,
        event: AuthzEvent | Mirrored,
        text: dict[str, Any],
        origin: str,
        chunk: Chunk,
        index: int,
        out: DetectOutput,
    ) -> list[Finding]:
        key = None if "attributes" in text else tuple(text.items())
        if key is not None and key in self._clean:
            return []
        if self._clean_content(text):
            if key is not None and sum(len(value) for _, value in key) <= _KNOWN_CLEAN_CHARS:
                if len(self._clean) >= _KNOWN_CLEAN_LIMIT:
                    self._clean.clear()
                self._clean.add(key)
            return []
        return self._scan(text, _event_context(event, origin), chunk, index, out)

    def _scan(
        self, content: object, context: ScanContext, chunk: Chunk, index: int, out: DetectOutput
    ) -> list[Finding]:
        found: list[Finding] = []
        refused: Rejected | None = None
        for detector in self._content:
            try:
                found += detector.scan(content, context)
            except RejectedRecord as exc:
                # Examined only in part (past a size or depth cap): set the record aside,
                # and keep what the examined parts held.
                found += getattr(exc, "findings", ())
                refused = refused or Rejected(exc.reason, exc.detail)
            except Exception as exc:  # noqa: BLE001 - a detector bug must not stop the pipeline
                name = getattr(detector, "name", type(detector).__name__)
                refused = refused or Rejected(
                    DeadLetterReason.PROCESSING_ERROR, f"{name} failed ({type(exc).__name__})"
                )
        if refused is not None:
            out.dead_letters.append(self._dead_letter(chunk, index, refused))
        return found

    def _dead_letter(self, chunk: Chunk, index: int, rejected: Rejected) -> DeadLetter:
        position = chunk.positions[index]
        where: dict[str, int] = (
            {"kafka_partition": chunk.part, "kafka_offset": position}
            if chunk.kafka
            else {"line": position}
        )
        return DeadLetter(
            source=chunk.source,
            reason=rejected.reason,
            size_bytes=chunk.sizes.get(index, len(chunk.records[index])),
            received_at=datetime.fromtimestamp(self._now(), UTC),
            detail=rejected.detail,
            **where,
        )


def _epoch(event: AuthzEvent | AuthzView) -> float:
    return event.time if isinstance(event, AuthzView) else event.time.timestamp()


def _event_context(event: AuthzEvent | Mirrored, origin: str) -> ScanContext:
    return ScanContext(
        origin=origin,
        observed_at=event.time,
        client_iss=event.client_iss,
        service_id=event.service_id,
        event_id=str(event.event_id),
    )


def _log_context(record: LogRecord, origin: str, arrived: float) -> ScanContext:
    return ScanContext(
        origin=origin,
        observed_at=_log_time(record) or datetime.fromtimestamp(arrived, UTC),
        client_iss=_text_field(record, ("client_iss",)),
        service_id=_text_field(record, _SERVICE_KEYS),
    )


def _text_field(record: LogRecord, keys: tuple[str, ...]) -> str | None:
    if isinstance(record, str):
        return None
    for key in keys:
        value = record.get(key)
        if isinstance(value, str) and value:
            return value[:512]
    return None


def _log_time(record: LogRecord) -> datetime | None:
    """The record's own time (structlog's ISO ``timestamp`` and the usual others)."""
    stamp = _text_field(record, _TIME_KEYS)
    if stamp is None:
        return None
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


__all__ = ["Chunk", "ContentScan", "DetectOutput", "DetectStage", "GatheringScan", "InputKind"]
