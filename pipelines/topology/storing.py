"""The store stage's batching: many detect outputs, one transaction, written on a thread.

The detect thread hands over what each chunk produced (``put``); the store thread merges
outputs until ``max_rows`` rows or ``max_wait_s`` seconds, then commits them — events,
findings, dead letters, alerts, the input positions they came from and, when one is
attached, the detectors' checkpoint — in one ``StoreWriter.write_batch``. DuckDB does most
of that work without the GIL, so detection and storage overlap on two cores.

The queue between the threads is short: a store that falls behind slows the reader down
(back-pressure) instead of letting memory grow. A failure in the store thread is raised
in the detect thread at its next ``put`` or at ``close``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from auditor.models import AuthzEvent, Finding
from pipelines.store import (
    AlertRecord,
    Batch,
    BatchReport,
    Checkpoint,
    DeadLetter,
    EventJson,
    OffsetKey,
    RunCounters,
    StoreWriter,
)
from pipelines.topology.authz_mirror import Mirrored
from pipelines.topology.telemetry import PipelineTelemetry

_QUEUE_DEPTH: Final = 4
_CLOSE: Final = object()


def event_row(event: AuthzEvent | Mirrored) -> tuple[bytes, bytes]:
    """The id's 16 bytes and the stored JSON of a validated, redacted event (or mirror)."""
    if isinstance(event, Mirrored):
        return event.mirror.event_id.bytes, event.stored_json()
    return event.event_id.bytes, event.__pydantic_serializer__.to_json(event, exclude_none=True)


def event_json(event: AuthzEvent | Mirrored, origin: str | None) -> EventJson:
    """The store's fast-path form of a validated, redacted event (or its mirror's)."""
    key, json = event_row(event)
    return EventJson(key, json, origin)


def committed(telemetry: PipelineTelemetry, report: BatchReport, seconds: float) -> RunCounters:
    """Record a committed batch's duration and rows; the run's counters it adds."""
    telemetry.batch_duration("store", seconds)
    telemetry.stored(
        {
            "events": report.events_inserted,
            "findings": report.findings_written,
            "dead_letters": report.dead_letters_inserted,
            "alerts": report.alerts_inserted,
        }
    )
    return RunCounters(
        events_in=report.events_inserted,
        findings_out=report.findings_written,
        dead_letters=report.dead_letters_inserted,
    )


@dataclass(slots=True)
class Pending:
    """Rows waiting for their transaction."""

    events: list[EventJson] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: list[AlertRecord] = field(default_factory=list)
    offsets: dict[OffsetKey, int] = field(default_factory=dict)
    counters: RunCounters = field(default_factory=RunCounters)
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Rows waiting (events, findings, dead letters, alerts)."""
        return len(self.events) + len(self.findings) + len(self.dead_letters) + len(self.alerts)

    @property
    def empty(self) -> bool:
        """Whether nothing waits, positions and checkpoints included."""
        return not (self.rows or self.offsets or self.checkpoints or self.counters.logs_in)


@dataclass(frozen=True, slots=True)
class StoreItem:
    """One detect output as the store stage takes it.

    Its events come as the detect stage left them (``events``, turned into the store's
    JSON on the store thread) or already as that JSON (``event_json``: from another
    process).
    """

    events: list[tuple[AuthzEvent | Mirrored, str]]
    findings: list[Finding]
    dead_letters: list[DeadLetter]
    alerts: list[AlertRecord]
    counters: RunCounters
    offset: tuple[OffsetKey, int] | None = None
    checkpoint: tuple[str, Checkpoint] | None = None
    event_json: list[EventJson] = field(default_factory=list)


class StoreThread:
    """Commits detect outputs in batches from its own thread.

    Args:
        writer: The store's single writer.
        run_id: The run the rows belong to.
        telemetry: Rows stored, batch durations, spans.
        max_rows: Rows per transaction at most.
        max_wait_s: Longest a row waits for its transaction.
        on_commit: Called on the store thread after each commit with its report, the rows
            and the commit's start and end (``time.time_ns()``).
    """

    def __init__(
        self,
        writer: StoreWriter,
        run_id: str,
        telemetry: PipelineTelemetry,
        *,
        max_rows: int,
        max_wait_s: float,
        on_commit: Callable[[BatchReport, Pending, tuple[int, int]], None] | None = None,
    ) -> None:
        self._writer = writer
        self._run_id = run_id
        self._telemetry = telemetry
        self._max_rows = max_rows
        self._max_wait = max_wait_s
        self._on_commit = on_commit
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_DEPTH)
        self._error: BaseException | None = None
        self.stored = RunCounters()
        self._thread = threading.Thread(target=self._run, name="auditor-store", daemon=True)
        self._thread.start()

    def put(self, item: StoreItem) -> None:
        """Hand one detect output to the store thread (blocks while it is behind).

        Raises:
            StoreWriteError: (or whatever stopped the store thread) a commit failed.
        """
        while True:
            self._raise_failure()
            try:
                self._queue.put(item, timeout=0.5)
            except queue.Full:
                continue
            return

    def close(self) -> None:
        """Commit what waits and stop the thread; raises what stopped it, if anything."""
        while self._thread.is_alive():
            try:
                self._queue.put(_CLOSE, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        pending = Pending()
        oldest: float | None = None
        try:
            while True:
                timeout = (
                    None if oldest is None else max(oldest + self._max_wait - time.monotonic(), 0)
                )
                try:
                    item = self._queue.get(timeout=timeout)
                except queue.Empty:
                    item = None
                if item is _CLOSE:
                    self._commit(pending)
                    return
                if isinstance(item, StoreItem):
                    _merge(pending, item)
                    oldest = oldest if oldest is not None else time.monotonic()
                due = oldest is not None and time.monotonic() - oldest >= self._max_wait
                if pending.rows >= self._max_rows or due or pending.checkpoints:
                    self._commit(pending)
                    pending = Pending()
                    oldest = None
        except BaseException as exc:  # noqa: BLE001 - handed to the detect thread, which raises it
            self._error = exc
            # Unblock a producer waiting on a full queue.
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break

    def _commit(self, pending: Pending) -> None:
        if pending.empty:
            return
        started, wall = time.perf_counter(), time.time_ns()
        with self._telemetry.span(
            "store batch",
            {
                "auditor.events": len(pending.events),
                "auditor.findings": len(pending.findings),
                "auditor.dead_letters": len(pending.dead_letters),
            },
        ):
            report = self._writer.write_batch(
                Batch(
                    event_json=pending.events,
                    findings=pending.findings,
                    dead_letters=pending.dead_letters,
                    alerts=pending.alerts,
                    offsets=pending.offsets,
                    run_id=self._run_id,
                    counters=pending.counters,
                    checkpoints=pending.checkpoints,
                )
            )
        self.stored += committed(self._telemetry, report, time.perf_counter() - started)
        if self._on_commit is not None:
            self._on_commit(report, pending, (wall, time.time_ns()))


def _merge(pending: Pending, item: StoreItem) -> None:
    pending.events += [event_json(event, origin) for event, origin in item.events]
    pending.events += item.event_json
    pending.findings += item.findings
    pending.dead_letters += item.dead_letters
    pending.alerts += item.alerts
    pending.counters = pending.counters + item.counters
    if item.offset is not None:
        key, position = item.offset
        pending.offsets[key] = max(position, pending.offsets.get(key, 0))
    if item.checkpoint is not None:
        name, checkpoint = item.checkpoint
        pending.checkpoints[name] = checkpoint


__all__ = ["Pending", "StoreItem", "StoreThread", "committed", "event_json", "event_row"]
