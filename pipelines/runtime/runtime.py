"""The stream runtime: per-partition event-time ordering, keyed state, timers, snapshots.

Feed it authz events per partition; it returns findings. Inside, per partition:

- **Reorder buffer and watermark.** Events wait in a heap ordered by (event time, event
  id). The watermark is the largest event time seen minus ``allowed_lateness``; events
  older than the watermark are released to the detectors in that order. So detectors see
  the same sequence whatever order the events arrived in, as long as no event arrives
  after one more than ``allowed_lateness`` newer than it — at the price of holding
  findings back by ``allowed_lateness`` of event time. A larger lateness tolerates more
  disorder (several producers, batching, clock noise between hosts); a smaller one reports
  sooner.
- **Late events are processed, never dropped.** An event older than the watermark on
  arrival is counted (``late_events``) and stepped at once, out of order. A replay is
  still matched as long as the jti is remembered; an anomaly window that already closed is
  not reopened — the event counts toward the window open now.
- **Duplicates** (same id and time, e.g. at-least-once redelivery) that meet in the
  buffer are released once.
- **Bounded and cheap.** Events that no detector keys on skip the buffer (they only move
  event time); the buffer holds at most ``max_buffered`` events, beyond which the oldest
  are released early; with ``processing_time`` given, events far in the future are
  stepped without moving the watermark.
- **Keyed state and timers.** Each detector keys each event (by ``iss``); the runtime
  keeps one state per key and detector, and a heap of the deadlines the detectors ask for.
  A deadline is served (``advance``) before any event at or after it, so the interleaving
  of events and deadlines is itself independent of arrival order. A detector that returns
  ``None`` from ``advance`` has its key evicted.
- **Snapshots** of a partition (buffer, watermark, states, counters and the next input
  offset) restore on another process or after a restart; see ``snapshots``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from auditor.errors import ConfigurationError
from auditor.models import AuthzEvent, AuthzView, Finding
from auditor.protocols import StreamDetector
from pipelines.runtime.snapshots import SnapshotError, decode_snapshot, encode_snapshot
from pipelines.runtime.stats import PartitionStats

__all__ = ["RuntimeConfig", "StreamRuntime", "latest_revisions", "run_stream"]

_SNAPSHOT_VERSION = 2  # 2: the reorder buffer holds AuthzViews, not AuthzEvents
_MAX_LATENESS = 86_400.0
_MIN_KEY_BYTES = 16


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """Configuration of the stream runtime.

    Attributes:
        allowed_lateness: Seconds of event time an event may trail the newest event of its
            partition and still be processed in order. Also the reporting delay.
        max_buffered: Cap of the reorder buffer per partition. When exceeded the oldest
            events are released early (``forced_releases``) and the watermark moves up.
        future_tolerance: With ``processing_time`` given to ``process``, events more than
            this many seconds ahead of it are stepped without moving the watermark (a
            producer with a broken clock must not close every window). ``None`` disables.
        snapshot_key: HMAC key authenticating snapshots (at least 16 bytes); ``None``
            writes checksummed but unauthenticated snapshots.
    """

    allowed_lateness: float = 5.0
    max_buffered: int = 100_000
    future_tolerance: float | None = 3600.0
    snapshot_key: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.allowed_lateness <= _MAX_LATENESS:  # NaN fails every comparison
            raise ConfigurationError("allowed_lateness must be between 0 and 86400 seconds")
        if self.max_buffered < 1:
            raise ConfigurationError("max_buffered must be at least 1")
        if self.future_tolerance is not None and not self.future_tolerance > 0:
            raise ConfigurationError("future_tolerance must be positive or None")
        if self.snapshot_key is not None and len(self.snapshot_key) < _MIN_KEY_BYTES:
            raise ConfigurationError("snapshot_key must be at least 16 bytes")

    def __repr__(self) -> str:
        key = "set" if self.snapshot_key is not None else None
        return (
            f"RuntimeConfig(allowed_lateness={self.allowed_lateness}, "
            f"max_buffered={self.max_buffered}, future_tolerance={self.future_tolerance}, "
            f"snapshot_key={key})"
        )


_Keys = list[str | None]
_Entry = tuple[float, UUID, int, AuthzView, _Keys]


def _keys_function(detectors: Sequence[StreamDetector[Any]]) -> Callable[[AuthzView], _Keys]:
    """One call that returns every detector's key for an event (the per-event hot path).

    Python 3.11 runs a list comprehension as a function call of its own; for the usual
    one to three detectors a direct list display saves that frame on every event.
    """
    keyers = tuple(d.key for d in detectors)
    if len(keyers) == 1:
        (k0,) = keyers
        return lambda event: [k0(event)]
    if len(keyers) == 2:  # noqa: PLR2004 - unrolled sizes
        k0, k1 = keyers
        return lambda event: [k0(event), k1(event)]
    if len(keyers) == 3:  # noqa: PLR2004 - unrolled sizes
        k0, k1, k2 = keyers
        return lambda event: [k0(event), k1(event), k2(event)]
    return lambda event: [key(event) for key in keyers]


class _Partition:
    """The mutable state of one partition. Owned by the runtime, never shared."""

    __slots__ = (
        "buffer",
        "last_id",
        "last_time",
        "max_time",
        "scheduled",
        "seq",
        "states",
        "stats",
        "timers",
        "watermark",
    )

    def __init__(self, detectors: int) -> None:
        self.buffer: list[_Entry] = []
        self.seq = 0
        self.max_time = -math.inf
        self.watermark = -math.inf
        self.last_time = -math.inf
        self.last_id: UUID | None = None
        self.states: list[dict[str, Any]] = [{} for _ in range(detectors)]
        self.scheduled: list[dict[str, float]] = [{} for _ in range(detectors)]
        self.timers: list[tuple[float, int, str]] = []
        self.stats = PartitionStats()


class StreamRuntime:
    """Runs stream detectors over authz events, one independent state per partition.

    Not thread-safe: one runtime per consumer thread. Partitions are created on first use.

    Args:
        detectors: The detectors, each with a distinct ``name``.
        config: Lateness, buffer cap, future tolerance and snapshot key.

    Raises:
        ConfigurationError: No detectors, or two with the same name.
    """

    def __init__(
        self, detectors: Sequence[StreamDetector[Any]], config: RuntimeConfig | None = None
    ) -> None:
        if not detectors:
            raise ConfigurationError("the stream runtime needs at least one detector")
        names = [d.name for d in detectors]
        if len(set(names)) != len(names):
            raise ConfigurationError("stream detectors must have distinct names")
        self._detectors: tuple[StreamDetector[Any], ...] = tuple(detectors)
        self._keys_of = _keys_function(self._detectors)
        self._steppers = tuple(
            (index, d.initial_state, d.step, d.deadline) for index, d in enumerate(detectors)
        )
        self._config = config or RuntimeConfig()
        self._partitions: dict[int, _Partition] = {}

    @property
    def config(self) -> RuntimeConfig:
        """The runtime's configuration."""
        return self._config

    @property
    def detectors(self) -> tuple[StreamDetector[Any], ...]:
        """The detectors, in the order they see each event."""
        return self._detectors

    def partitions(self) -> tuple[int, ...]:
        """The partitions that currently hold state."""
        return tuple(sorted(self._partitions))

    def _partition(self, partition: int) -> _Partition:
        found = self._partitions.get(partition)
        if found is None:
            found = self._partitions[partition] = _Partition(len(self._detectors))
        return found

    # -- feeding --------------------------------------------------------------------------

    def process(
        self,
        partition: int,
        events: Iterable[AuthzEvent | AuthzView],
        *,
        next_offset: int | None = None,
        processing_time: float | None = None,
    ) -> list[Finding]:
        """Take a batch of events of one partition; return the findings it released.

        Args:
            partition: The input partition the events came from (any int for files).
            events: The events, in arrival order; or their views, when the caller built
                them (the detect stage's fast path fills views without the event).
            next_offset: The input offset after this batch, kept for ``position``.
            processing_time: The consumer's wall clock in epoch seconds, used only to
                recognise events from the future (see ``RuntimeConfig.future_tolerance``).
        """
        p = self._partition(partition)
        stats = p.stats
        out: list[Finding] = []
        buffer = p.buffer
        push = heapq.heappush
        watermark = p.watermark
        max_time = p.max_time
        seq = p.seq
        tolerance = self._config.future_tolerance
        future = (
            processing_time + tolerance
            if processing_time is not None and tolerance is not None
            else math.inf
        )
        keys_of = self._keys_of
        ignored = [None] * len(self._detectors)
        count = 0
        for event in events:
            count += 1
            view = event if isinstance(event, AuthzView) else AuthzView(event)
            t = view.time
            keys = keys_of(view)
            if t > future:
                stats.future_events += 1
                if keys != ignored:
                    self._step(p, view, t, keys, out)
            elif keys == ignored:
                # No detector wants it: nothing to order, but event time moved on.
                if t > max_time:  # noqa: PLR1730 - cheaper than calling max() per event
                    max_time = t
            elif t < watermark:
                stats.late_events += 1
                self._step(p, view, t, keys, out)
            else:
                seq += 1
                push(buffer, (t, view.event_id, seq, view, keys))
                if t > max_time:  # noqa: PLR1730 - cheaper than calling max() per event
                    max_time = t
        stats.events_in += count
        p.seq = seq
        p.max_time = max_time
        self._advance_after_batch(p, out)
        if next_offset is not None:
            stats.next_offset = next_offset
        stats.findings_out += len(out)
        return out

    def _advance_after_batch(self, p: _Partition, out: list[Finding]) -> None:
        """Move the watermark up to the newest event time minus the lateness.

        Also keeps the buffer within its cap by releasing its oldest events early.
        """
        stats = p.stats
        target = p.max_time - self._config.allowed_lateness
        if target > p.watermark:
            self._release(p, target, out)
        buffer = p.buffer
        cap = self._config.max_buffered
        while len(buffer) > cap:
            before = stats.released + stats.duplicates
            self._release(p, math.nextafter(buffer[0][0], math.inf), out)
            stats.forced_releases += stats.released + stats.duplicates - before

    def advance_watermark(self, partition: int, watermark: float) -> list[Finding]:
        """Move a partition's watermark forward without events (an idle partition).

        The pipeline may call this from its processing clock (e.g. now minus the lateness
        and the producers' usual delay) so that windows close and incidents end while a
        partition is quiet. Events older than the new watermark will then count as late.
        """
        p = self._partition(partition)
        out: list[Finding] = []
        if watermark > p.watermark:
            self._release(p, watermark, out)
        p.stats.findings_out += len(out)
        return out

    def flush(self, partition: int | None = None) -> list[Finding]:
        """End of input: release every buffered event and close every incident.

        For offline runs over files and for tests. All state of the partition (or of all
        partitions) is closed and evicted; the final revision of each open incident is
        returned. The partition's watermark stays at infinity: events fed after a flush
        count as late.
        """
        out: list[Finding] = []
        targets = self.partitions() if partition is None else (partition,)
        for number in targets:
            p = self._partitions.get(number)
            if p is None:
                continue
            found: list[Finding] = []
            self._release(p, math.inf, found, fire=False)
            for index, detector in enumerate(self._detectors):
                states = p.states[index]
                for key in sorted(states):
                    _, closing = detector.advance(states[key], math.inf)
                    found.extend(closing)
                    p.stats.evictions += 1
                states.clear()
                p.scheduled[index].clear()
            p.timers.clear()
            p.stats.findings_out += len(found)
            out.extend(found)
        return out

    # -- the hot path ---------------------------------------------------------------------

    def _release(
        self, p: _Partition, watermark: float, out: list[Finding], fire: bool = True
    ) -> None:
        buffer = p.buffer
        timers = p.timers
        pop = heapq.heappop
        stats = p.stats
        step = self._step
        last_time, last_id = p.last_time, p.last_id
        released = duplicates = 0
        while buffer and buffer[0][0] < watermark:
            t, event_id, _, view, keys = pop(buffer)
            if t == last_time and event_id == last_id:
                duplicates += 1
                continue
            last_time, last_id = t, event_id
            if timers and timers[0][0] <= t:
                self._fire(p, t, out)
            step(p, view, t, keys, out)
            released += 1
        p.last_time, p.last_id = last_time, last_id
        stats.released += released
        stats.duplicates += duplicates
        p.watermark = watermark
        stats.watermark = watermark if watermark != math.inf else stats.watermark
        if fire and timers and timers[0][0] <= watermark:
            self._fire(p, watermark, out)

    def _step(
        self, p: _Partition, view: AuthzView, t: float, keys: _Keys, out: list[Finding]
    ) -> None:
        states = p.states
        scheduled = p.scheduled
        steppers = self._steppers
        for index, key in enumerate(keys):
            if key is None:
                continue
            _, initial, step, deadline = steppers[index]
            keyed = states[index]
            state = keyed.get(key)
            if state is None:
                state = initial()
            state, found = step(state, view, t)
            keyed[key] = state
            if found:
                out.extend(found)
            due = deadline(state)
            sched = scheduled[index]
            if due is None:
                sched.pop(key, None)
                continue
            current = sched.get(key)
            if current != due:
                sched[key] = due
                # A deadline that moves later (an idle key's eviction time, on every event)
                # needs no new timer: the one already queued re-queues itself when it comes
                # due (``_fire``). Only a new or earlier deadline is pushed.
                if current is None or due < current:
                    heapq.heappush(p.timers, (due, index, key))

    def _fire(self, p: _Partition, limit: float, out: list[Finding]) -> None:
        timers = p.timers
        while timers and timers[0][0] <= limit:
            due, index, key = heapq.heappop(timers)
            sched = p.scheduled[index]
            current = sched.get(key)
            if current != due:
                # Superseded: by an earlier deadline (queued on its own), or by a later one
                # that ``_step`` left to this timer to queue.
                if current is not None and current > due:
                    heapq.heappush(timers, (current, index, key))
                continue
            del sched[key]
            detector = self._detectors[index]
            keyed = p.states[index]
            state, found = detector.advance(keyed[key], due)
            if found:
                out.extend(found)
            if state is None:
                del keyed[key]
                p.stats.evictions += 1
                continue
            keyed[key] = state
            following = detector.deadline(state)
            if following is not None:
                # advance(due) handled everything up to due; insist on progress.
                following = max(following, math.nextafter(due, math.inf))
                sched[key] = following
                heapq.heappush(timers, (following, index, key))

    # -- observing ------------------------------------------------------------------------

    def stats(self, partition: int, *, state_items: bool = False) -> PartitionStats:
        """A copy of the partition's counters; ``state_items`` walks every state (slower)."""
        p = self._partitions.get(partition)
        if p is None:
            return PartitionStats()
        items = 0
        if state_items:
            for detector, keyed in zip(self._detectors, p.states, strict=True):
                items += sum(detector.size(state) for state in keyed.values())
        return replace(
            p.stats,
            buffered=len(p.buffer),
            keys=sum(len(keyed) for keyed in p.states),
            state_items=items,
        )

    def position(self, partition: int) -> int | None:
        """The input offset to resume this partition from (as last reported to ``process``)."""
        p = self._partitions.get(partition)
        return None if p is None else p.stats.next_offset

    # -- snapshots ------------------------------------------------------------------------

    def _signature(self) -> list[tuple[str, int]]:
        return [(d.name.value, d.state_version) for d in self._detectors]

    def snapshot(self, partition: int) -> bytes:
        """The partition's complete state as bytes, for ``restore`` here or elsewhere."""
        p = self._partition(partition)
        content = {
            "version": _SNAPSHOT_VERSION,
            "detectors": self._signature(),
            "buffer": p.buffer,
            "seq": p.seq,
            "max_time": p.max_time,
            "watermark": p.watermark,
            "last": (p.last_time, p.last_id),
            "states": p.states,
            "scheduled": p.scheduled,
            "stats": p.stats,
        }
        return encode_snapshot(content, self._config.snapshot_key)

    def restore(self, partition: int, data: bytes) -> None:
        """Replace the partition's state with a snapshot's.

        Raises:
            SnapshotError: The bytes are not an intact snapshot of these detectors.
        """
        content = decode_snapshot(data, self._config.snapshot_key)
        if content.get("version") != _SNAPSHOT_VERSION:
            raise SnapshotError("the snapshot was written by another runtime version")
        if content.get("detectors") != self._signature():
            raise SnapshotError(
                "the snapshot holds state of other detectors or state versions "
                "(rebuild by rewinding the input instead)"
            )
        p = _Partition(len(self._detectors))
        p.buffer = content["buffer"]
        p.seq = content["seq"]
        p.max_time = content["max_time"]
        p.watermark = content["watermark"]
        p.last_time, p.last_id = content["last"]
        p.states = content["states"]
        p.scheduled = content["scheduled"]
        p.stats = content["stats"]
        p.timers = [
            (due, index, key)
            for index, sched in enumerate(p.scheduled)
            for key, due in sched.items()
        ]
        heapq.heapify(p.timers)
        self._partitions[partition] = p

    def revoke(self, partition: int) -> None:
        """Forget a partition (after a rebalance took it away; snapshot it first)."""
        self._partitions.pop(partition, None)


def run_stream(
    detectors: Sequence[StreamDetector[Any]],
    events: Iterable[AuthzEvent],
    *,
    config: RuntimeConfig | None = None,
    batch_size: int = 1000,
) -> list[Finding]:
    """Run ``detectors`` over a finite stream (a file, a test) and close every incident.

    Returns every revision in the order emitted; ``latest_revisions`` keeps what the
    store would keep.
    """
    runtime = StreamRuntime(detectors, config)
    out: list[Finding] = []
    batch: list[AuthzEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) >= batch_size:
            out.extend(runtime.process(0, batch))
            batch = []
    if batch:
        out.extend(runtime.process(0, batch))
    out.extend(runtime.flush())
    return out


def latest_revisions(findings: Iterable[Finding]) -> list[Finding]:
    """The highest revision of each finding id, ordered by id: what the store keeps."""
    latest: dict[str, Finding] = {}
    for finding in findings:
        kept = latest.get(finding.finding_id)
        if kept is None or finding.revision > kept.revision:
            latest[finding.finding_id] = finding
    return [latest[key] for key in sorted(latest)]
