"""Counters of the stream runtime, per partition: what the pipeline exports as metrics."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PartitionStats"]


@dataclass(slots=True)
class PartitionStats:
    """What happened on one partition since it was created or restored.

    Counters survive a snapshot and restore, so a partition that moves between processes
    keeps its history; gauges (``buffered``, ``keys``, ``state_items``) describe now.

    Attributes:
        events_in: Events handed to the runtime.
        released: Events stepped through the detectors in event-time order.
        late_events: Events older than the watermark on arrival: stepped at once, out of
            order, and counted here (never dropped).
        future_events: Events further ahead of the processing time than the configured
            tolerance: stepped at once without moving the watermark.
        duplicates: Events with the same id and time as the one released before them
            (at-least-once redelivery inside the reorder window): skipped.
        forced_releases: Events released before the watermark passed them because the
            reorder buffer was full.
        findings_out: Findings (all revisions) returned.
        evictions: Keys whose state the detectors let go.
        buffered: Events waiting in the reorder buffer.
        keys: Live keys, over all detectors.
        state_items: Items the detectors track (jtis, series, incidents), when computed.
        watermark: The partition's watermark in event-time seconds (``None`` before the
            first event).
        next_offset: The input position to resume from after a restore, when the caller
            reports offsets.
    """

    events_in: int = 0
    released: int = 0
    late_events: int = 0
    future_events: int = 0
    duplicates: int = 0
    forced_releases: int = 0
    findings_out: int = 0
    evictions: int = 0
    buffered: int = 0
    keys: int = 0
    state_items: int = 0
    watermark: float | None = None
    next_offset: int | None = None
