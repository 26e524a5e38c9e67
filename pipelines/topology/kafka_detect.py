"""The detect stage through Kafka: one member of the detect consumer group.

Each process runs one ``DetectWorker``; start more (on more machines) and the group
spreads the partitions of the authz and logs topics over them. Per poll, each partition's
records go through the detect stage as one chunk; findings, dead letters and alerts are
produced to their topics (findings keyed by the client's ``iss``, alerts by their
``alert_id``), and about once a second the producer is flushed and only then are the
consumed offsets committed: at-least-once, never at-most-once.

State: the stream detectors' state of each authz partition is checkpointed to the state
topic every ``checkpoint_interval_s`` and restored from it when a partition is assigned
(``kafka_state``); records between the checkpoint and the committed offset are re-read to
rebuild the state and publish nothing. Rebalances are handled on the polling thread, right
after the poll that carried them (kafka-python runs listener callbacks on its network
thread, where no blocking call is allowed): a partition taken away is forgotten — its
next owner replays from the last checkpoint, and re-publishes what came after the last
commit (at most about a second of output, deduplicated downstream by id); a partition
handed back to this process in the same rebalance keeps its state. Idle partitions: when
an authz partition brings nothing for ``idle_advance_s``, its watermark follows the wall
clock (minus that time), so quiet incidents close.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Final

import orjson
import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError
from kafka.structs import MemberState, OffsetAndMetadata

from auditor.errors import UnavailableError
from auditor.models import Finding
from pipelines.kafka import MemberWatch, open_consumer, open_producer
from pipelines.runtime import SnapshotError
from pipelines.settings import AuditorSettings
from pipelines.store import DeadLetter
from pipelines.topology.detection import Chunk, DetectOutput, DetectStage, InputKind
from pipelines.topology.dispatch import AlertDispatcher
from pipelines.topology.handoff import EventHandoff
from pipelines.topology.kafka_state import CheckpointUnavailable, Outage, Pointer, StateTopic
from pipelines.topology.progress import Progress, RunSummary
from pipelines.topology.telemetry import PipelineTelemetry, header_carrier

_log = structlog.get_logger("auditor.pipeline.detect")
COMMIT_INTERVAL_S: Final = 1.0
_FLUSH_S: Final = 10.0
_OUTAGE_MS: Final = 3_600_000
"""How long a send may wait for the broker before it counts as failed."""
_CARRIERS_PER_CHUNK: Final = 4
_IDLE_CHECK_S: Final = 0.25


def dead_letter_json(dead: DeadLetter) -> bytes:
    """A dead letter as the dead-letter topic carries it: metadata, never the payload."""
    return orjson.dumps(
        {
            "dead_letter_id": dead.dead_letter_id,
            "source": dead.source,
            "reason": dead.reason.value,
            "detail": dead.detail,
            "size_bytes": dead.size_bytes,
            "received_at": dead.received_at,
            "kafka_partition": dead.kafka_partition,
            "kafka_offset": dead.kafka_offset,
            "line": dead.line,
        }
    )


def finding_json(finding: Finding) -> bytes:
    """A finding as the findings topic carries it (the ``Finding`` contract)."""
    return finding.__pydantic_serializer__.to_json(finding, exclude_none=True)


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Notes what the group changed; the polling thread acts on it after the poll."""

    def __init__(self) -> None:
        self.revoked: set[TopicPartition] = set()
        self.assigned: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Any) -> None:
        """Called on kafka-python's network thread: note it, never block."""
        self.revoked |= set(revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        """Called on kafka-python's network thread: note it, never block."""
        self.assigned |= set(assigned)

    def take(self) -> tuple[set[TopicPartition], set[TopicPartition]]:
        """What was revoked and assigned since the last call."""
        revoked, assigned = self.revoked, self.assigned
        self.revoked, self.assigned = set(), set()
        return revoked, assigned


class DetectWorker:
    """One detect process: consume, detect, produce, checkpoint, commit.

    Args:
        settings: Connection, topics, group, pipeline settings.
        stage: The detect stage (its runtime holds the state of the owned partitions).
        telemetry: Counts, spans, lag.
        stop: Set to finish the current batch, checkpoint, commit and leave the group.
        summary: Where counts accumulate (shared with the caller).
        progress: Progress lines.
        idle_exit_s: Return after this long without records once caught up (batch runs
            and tests); ``None`` runs until stopped.
        handoff: Where the redacted events go for a store stage in this process.
    """

    def __init__(
        self,
        settings: AuditorSettings,
        stage: DetectStage,
        telemetry: PipelineTelemetry,
        *,
        stop: threading.Event,
        summary: RunSummary,
        progress: Progress,
        idle_exit_s: float | None = None,
        handoff: EventHandoff | None = None,
    ) -> None:
        self._settings = settings
        self._handoff = handoff
        self._pipeline = settings.pipeline
        self._stage = stage
        self._telemetry = telemetry
        self._stop = stop
        self._summary = summary
        self._progress = progress
        self._idle_exit = idle_exit_s
        self._authz = settings.topics.authz.name
        self._logs = settings.topics.logs.name
        self._findings_topic = settings.topics.findings.name
        self._dead_topic = settings.topics.deadletters.name
        self._alerts_topic = settings.topics.alerts.name
        self._pointers: dict[int, Pointer] = {}
        self._origins: dict[int, int] = {}
        """Where the state of a partition without a checkpoint began (empty)."""
        self._positions: dict[TopicPartition, int] = {}
        self._replay_until: dict[int, int] = {}
        self._clock: dict[int, tuple[float, float]] = {}
        """Per authz partition: the newest event time seen, and when (monotonic) it came."""
        self._lag: dict[str, int] = {}
        # Sends wait out an outage rather than fail: a finding that was never delivered
        # must not have its input committed. One that fails all the same stops the worker.
        self._producer: KafkaProducer = open_producer(
            settings, max_block_ms=_OUTAGE_MS, delivery_timeout_ms=_OUTAGE_MS
        )
        self._undelivered = 0
        self._state = StateTopic(settings, self._producer)
        self._dispatcher = AlertDispatcher(
            self._pipeline.alerts, telemetry, kafka_send=self._send_alert
        )
        self._rebalances = _Rebalances()
        self._consumer: KafkaConsumer = open_consumer(
            settings,
            [self._authz, self._logs],
            settings.groups.detect,
            listener=self._rebalances,
            max_poll_records=self._pipeline.batch_records,
            session_timeout_ms=self._pipeline.session_timeout_ms,
            heartbeat_interval_ms=max(self._pipeline.session_timeout_ms // 4, 250),
            group_instance_id=self._pipeline.instance_id,
        )
        self._member = MemberWatch(self._consumer, self._pipeline.poll_ms)
        telemetry.watch_lag("detect", lambda: dict(self._lag))

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        """Consume until stopped (or idle, with ``idle_exit_s``), then leave cleanly."""
        next_commit = time.monotonic() + COMMIT_INTERVAL_S
        next_checkpoint = time.monotonic() + self._pipeline.checkpoint_interval_s
        next_idle_check = time.monotonic() + _IDLE_CHECK_S
        quiet_since = time.monotonic()
        outage = Outage(self._stop, "detect")
        try:
            while not self._stop.is_set():
                try:
                    polled = self._consumer.poll(
                        timeout_ms=self._member.poll_timeout(),
                        max_records=self._pipeline.batch_records,
                    )
                    self._member.check()
                    now = time.monotonic()
                    skip = self._apply_rebalance()
                    if polled:
                        quiet_since = now
                    for tp, records in polled.items():
                        if tp not in skip:
                            self._consume(tp, records)
                    if now >= next_idle_check:
                        self._advance_idle(now)
                        next_idle_check = now + _IDLE_CHECK_S
                    if now >= next_checkpoint:
                        self._checkpoint(self._owned_authz())
                        next_checkpoint = time.monotonic() + self._pipeline.checkpoint_interval_s
                        next_commit = 0.0
                    if now >= next_commit:
                        self._commit()
                        self._measure_lag()
                        next_commit = time.monotonic() + COMMIT_INTERVAL_S
                    self._progress.update(self._summary, lag=sum(self._lag.values()) or None)
                    if self._idle(now, quiet_since):
                        break
                except KafkaError as exc:
                    # The broker is away: what was consumed stays uncommitted and what was
                    # produced stays in the producer, which retries; try again shortly.
                    outage.wait(exc)
                    continue
                outage.over()
        finally:
            self._leave()

    def _idle(self, now: float, quiet_since: float) -> bool:
        if self._idle_exit is None or now - quiet_since < self._idle_exit or self._replay_until:
            return False
        if self._consumer.group_metadata().state != MemberState.STABLE:
            return False  # still joining: partitions may be on their way
        # Ask the broker: the end offsets known from the last fetch may be stale.
        assigned = list(self._consumer.assignment())
        if not assigned:
            return True  # more members than partitions: nothing to do here
        ends = self._consumer.end_offsets(assigned)
        return all(
            self._positions.get(tp, self._consumer.position(tp)) >= end for tp, end in ends.items()
        )

    def _consume(self, tp: TopicPartition, records: Sequence[ConsumerRecord]) -> None:
        if not records:
            return
        kind: InputKind = "authz" if tp.topic == self._authz else "logs"
        if kind == "authz":
            self._origins.setdefault(tp.partition, records[0].offset)
        until = self._replay_until.get(tp.partition, 0) if kind == "authz" else 0
        split = sum(1 for r in records if r.offset < until)
        if split:
            self._run_chunk(tp, kind, records[:split], replay=True)
        if split < len(records):
            self._run_chunk(tp, kind, records[split:], replay=False)
        if kind == "authz" and self._positions[tp] >= until:
            self._replay_until.pop(tp.partition, None)

    def _run_chunk(
        self,
        tp: TopicPartition,
        kind: InputKind,
        records: Sequence[ConsumerRecord],
        *,
        replay: bool,
    ) -> None:
        chunk = Chunk(
            source=tp.topic,
            part=tp.partition,
            kind=kind,
            positions=[r.offset for r in records],
            records=[r.value or b"" for r in records],
            next_position=records[-1].offset + 1,
            arrived=[r.timestamp / 1000 for r in records],
            kafka=True,
            carriers=[
                carrier
                for r in records[:_CARRIERS_PER_CHUNK]
                if (carrier := header_carrier(r.headers))
            ],
        )
        out = self._stage.process(chunk, tp.partition, replay=replay)
        self._positions[tp] = chunk.next_position
        if kind == "authz":
            newest, _ = self._clock.get(tp.partition, (out.newest or 0.0, 0.0))
            self._clock[tp.partition] = (max(newest, out.newest or newest), time.monotonic())
        if replay:
            self._summary.replayed += len(records)
            return
        if self._handoff is not None and out.events:
            self._handoff.offer(
                (tp.topic, tp.partition),
                zip(out.event_positions, (event for event, _ in out.events), strict=True),
            )
        self._publish(out)

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        self._producer.send(topic, key=key, value=value).add_errback(self._not_delivered)

    def _not_delivered(self, _exc: BaseException) -> None:
        self._undelivered += 1

    def _publish(self, out: DetectOutput) -> None:
        for finding in out.findings:
            key = finding.client_iss or finding.finding_id
            self._send(self._findings_topic, key.encode(), finding_json(finding))
        for dead in out.dead_letters:
            self._send(self._dead_topic, dead.source.encode(), dead_letter_json(dead))
        self._dispatcher.dispatch(out.alerts)
        summary = self._summary
        summary.counters = summary.counters + out.counters
        summary.alerts += len(out.alerts)
        for finding in out.findings:
            summary.findings_by_severity[finding.severity.value] += 1
        for dead in out.dead_letters:
            summary.dead_letter_reasons[dead.reason.value] += 1

    def _send_alert(self, alert_id: str, body: bytes) -> None:
        self._send(self._alerts_topic, alert_id.encode(), body)

    def _advance_idle(self, now: float) -> None:
        """Let event time flow with the clock on partitions quiet for ``idle_advance_s``.

        The watermark moves to the newest event time seen plus the time since it came,
        minus ``idle_advance_s``: relative to the partition's own event time, not to the
        wall clock, so a stream that runs hours behind (an archive replayed) is not all
        made late at once.
        """
        idle = self._pipeline.idle_advance_s
        if idle is None:
            return
        for partition in self._owned_authz():
            if partition in self._replay_until or partition not in self._clock:
                continue
            newest, since = self._clock[partition]
            quiet = now - since
            if quiet >= idle:
                self._publish(self._stage.advance(partition, newest + quiet - idle))

    # -- commits and checkpoints ---------------------------------------------------------

    def _owned_authz(self) -> list[int]:
        return sorted(tp.partition for tp in self._consumer.assignment() if tp.topic == self._authz)

    def _checkpoint(self, partitions: Sequence[int]) -> None:
        for partition in partitions:
            position = self._positions.get(TopicPartition(self._authz, partition))
            if position is None:
                continue  # nothing consumed since it was assigned: its pointer stands
            state = self._stage.runtime.snapshot(partition)
            self._pointers[partition] = self._state.write(
                self._authz, partition, state, at=position
            )

    def _commit(self, only: Sequence[TopicPartition] | None = None) -> None:
        # What the consumed records produced must be durable before their offsets move.
        # Bounded, so that a stop during an outage is not held up by it.
        self._producer.flush(timeout=_FLUSH_S)
        if self._undelivered:
            raise UnavailableError(
                f"{self._undelivered} findings, dead letters or alerts could not be delivered; "
                "stopping without committing, so a restart produces them again"
            )
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, position in self._positions.items():
            if only is not None and tp not in only:
                continue
            metadata = ""
            if tp.topic == self._authz:
                pointer = self._pointers.get(tp.partition)
                if pointer is None and tp.partition in self._origins:
                    pointer = Pointer(at=self._origins[tp.partition])
                    self._pointers[tp.partition] = pointer
                metadata = pointer.encode() if pointer is not None else ""
            offsets[tp] = OffsetAndMetadata(position, metadata, -1)
        if offsets:
            self._consumer.commit(offsets)

    def _measure_lag(self) -> None:
        lag: dict[str, int] = {}
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            position = self._positions.get(tp)
            if position is None:
                try:
                    position = self._consumer.position(tp, timeout_ms=1000)
                except KafkaError:
                    continue
            lag[tp.topic] = lag.get(tp.topic, 0) + max(high - (position or 0), 0)
        self._lag = lag

    # -- the group -----------------------------------------------------------------------

    def _apply_rebalance(self) -> set[TopicPartition]:
        """Act on what the group changed; returns partitions whose polled records to drop."""
        revoked, assigned = self._rebalances.take()
        if not revoked and not assigned:
            return set()
        skip: set[TopicPartition] = set()
        for tp in revoked - assigned:
            self._forget(tp)
        now = time.monotonic()
        for tp in assigned:
            if self._keep(tp):
                skip.add(tp)  # fetched again from where this process stood
            elif tp.topic == self._authz:
                self._forget(tp)
                if self._restore(tp):
                    skip.add(tp)  # fetched again from the checkpoint's offset
            if tp.topic == self._authz and tp.partition not in self._clock:
                # A restored partition that stays quiet still has its watermark move on:
                # from where its state stands.
                watermark = self._stage.runtime.stats(tp.partition).watermark
                if watermark is not None:
                    lateness = self._stage.runtime.config.allowed_lateness
                    self._clock[tp.partition] = (watermark + lateness, now)
        _log.info(
            "detect.assigned",
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in self._consumer.assignment()),
        )
        return skip

    def _keep(self, tp: TopicPartition) -> bool:
        """Handed back in the same rebalance: keep the state and seek to where it stands."""
        position = self._positions.get(tp)
        if position is None:
            return False
        committed = self._consumer.committed(tp)
        if committed is not None and committed > position:
            return False  # another member moved it on meanwhile: restore instead
        self._consumer.seek(tp, position)
        return True

    def _forget(self, tp: TopicPartition) -> None:
        self._positions.pop(tp, None)
        if tp.topic != self._authz:
            return
        self._stage.runtime.revoke(tp.partition)
        for table in (self._pointers, self._origins, self._replay_until, self._clock):
            table.pop(tp.partition, None)

    def _restore(self, tp: TopicPartition) -> bool:
        """Restore a partition's state from its checkpoint; whether the consumer was moved."""
        partition = tp.partition
        runtime = self._stage.runtime
        committed = self._consumer.committed(tp, metadata=True)
        if committed is None:
            return False  # a new group: state starts empty where consumption starts
        pointer = Pointer.decode(committed.metadata)
        if pointer is None:
            _log.warning("detect.no_checkpoint", topic=tp.topic, partition=partition)
            self._origins[partition] = committed.offset
            return False
        if pointer.partition is not None:
            try:
                runtime.restore(partition, self._state.read(pointer))
            except (CheckpointUnavailable, SnapshotError) as exc:
                _log.warning(
                    "detect.checkpoint_unusable",
                    topic=tp.topic,
                    partition=partition,
                    reason=str(exc),
                )
                runtime.revoke(partition)
                self._origins[partition] = committed.offset
                return False
        self._pointers[partition] = pointer
        replay = max(committed.offset - pointer.at, 0)
        _log.info("detect.restored", topic=tp.topic, partition=partition, replay=replay)
        if not replay:
            return False
        self._consumer.seek(tp, pointer.at)
        self._replay_until[partition] = committed.offset
        return True

    def _leave(self) -> None:
        try:
            self._checkpoint(self._owned_authz())
            self._commit()
        except KafkaError as exc:
            _log.warning("detect.final_commit_failed", error=type(exc).__name__)
        finally:
            self._telemetry.unwatch_lag("detect")
            self._dispatcher.close()
            self._consumer.close(autocommit=False)
            self._producer.close(timeout=10)


__all__ = ["DetectWorker", "dead_letter_json", "finding_json"]
