"""Checkpoints of the detect stage in Kafka: state in a compacted topic, found by the commit.

A detect process owns the stream detectors' state of the authz partitions the group gives
it. Every ``checkpoint_interval_s``, and when a partition is taken away, it writes each
partition's snapshot (``StreamRuntime.snapshot``: HMAC-authenticated when a snapshot key is
configured) to the state topic in chunks of at most ``CHUNK_BYTES``, keyed
``<authz topic>/<partition>/<chunk>``, and commits the partition's consumer offset with a
small pointer in the commit's metadata: where the chunks are, their digest, and the input
offset the state corresponds to. Offset and pointer commit together, in one request.

Whoever gets the partition next — this process after a restart, or another after a
rebalance — reads the pointer from the committed offset, reads and checks the chunks,
restores the state, and re-reads the partition from the state's offset up to the committed
one *without publishing anything* (that output was published before the commit), so the
state is exactly what it would have been without the restart.

The topic is compacted: only the newest chunk of each key is kept, at least an hour after
it was written (``min.compaction.lag.ms``). A pointer whose chunks are gone (the group sat
idle longer than that, or the topic was deleted) is reported and the partition starts with
empty state at its committed offset.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from auditor.errors import AuditorError
from pipelines.kafka import open_consumer
from pipelines.settings import AuditorSettings

CHUNK_BYTES: Final = 512 * 1024
"""Under Kafka's default 1 MiB message limit, with room for headers and batching."""
POINTER_VERSION: Final = 1
_READ_TIMEOUT_S: Final = 30.0
_FLUSH_S: Final = 10.0
_WARN_EVERY_S: Final = 10.0
_MAX_BACKOFF_S: Final = 5.0
_log = structlog.get_logger("auditor.pipeline")


class CheckpointUnavailable(AuditorError):
    """A checkpoint pointer names state that cannot be read back intact."""


@dataclass(frozen=True, slots=True)
class Pointer:
    """What a committed offset's metadata says about the partition's state.

    Attributes:
        at: The input offset the state corresponds to (replay from here).
        partition: The state topic's partition holding the chunks (``None``: empty state).
        first: The offset of the first chunk.
        chunks: How many chunks.
        generation: Which write the chunks belong to.
        digest: SHA-256 of the snapshot (hex, 32 digits).
    """

    at: int
    partition: int | None = None
    first: int = 0
    chunks: int = 0
    generation: str = ""
    digest: str = ""

    def encode(self) -> str:
        """The commit metadata (well under Kafka's 4 KiB limit)."""
        body: dict[str, Any] = {"v": POINTER_VERSION, "at": self.at}
        if self.partition is not None:
            body |= {
                "p": self.partition,
                "o": self.first,
                "n": self.chunks,
                "g": self.generation,
                "h": self.digest,
            }
        return orjson.dumps(body).decode()

    @classmethod
    def decode(cls, metadata: str | None) -> Pointer | None:
        """The pointer in ``metadata``, or ``None`` when it holds none of ours."""
        if not metadata:
            return None
        try:
            body = orjson.loads(metadata)
            if body.get("v") != POINTER_VERSION:
                return None
            if "p" not in body:
                return cls(at=int(body["at"]))
            return cls(
                at=int(body["at"]),
                partition=int(body["p"]),
                first=int(body["o"]),
                chunks=int(body["n"]),
                generation=str(body["g"]),
                digest=str(body["h"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


class Outage:
    """Waits out a broker that does not answer: back-off, a warning now and then, stop-aware.

    Args:
        stop: The worker's stop event (a wait ends when it is set).
        stage: Named in the warning.
    """

    def __init__(self, stop: threading.Event, stage: str) -> None:
        self._stop = stop
        self._stage = stage
        self._delay = 0.5
        self._since: float | None = None
        self._warned = 0.0

    def wait(self, exc: BaseException) -> None:
        """Note the failure and sleep before the next try."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            _log.warning(
                "pipeline.kafka_unavailable",
                stage=self._stage,
                error=type(exc).__name__,
                seconds=round(now - self._since, 1),
            )
        self._stop.wait(self._delay)
        self._delay = min(self._delay * 2, _MAX_BACKOFF_S)

    def over(self) -> None:
        """A round went through: say so once and reset the back-off."""
        if self._since is not None:
            _log.info(
                "pipeline.kafka_available",
                stage=self._stage,
                seconds=round(time.monotonic() - self._since, 1),
            )
        self._since = None
        self._delay = 0.5


class StateTopic:
    """Writes and reads detect-stage checkpoints in the state topic.

    Args:
        settings: Connection and topic names.
        producer: The detect stage's producer (idempotent, ``acks=all``).
    """

    def __init__(self, settings: AuditorSettings, producer: KafkaProducer) -> None:
        self._settings = settings
        self._topic = settings.topics.state.name
        self._partitions = settings.topics.state.partitions
        self._producer = producer

    def write(self, source: str, partition: int, state: bytes, at: int) -> Pointer:
        """Write one partition's snapshot; returns the pointer to commit with its offset.

        Blocks until Kafka acknowledged every chunk.

        Raises:
            KafkaError: The chunks could not be written.
        """
        generation = uuid.uuid4().hex[:16]
        target = partition % self._partitions
        pieces = [state[i : i + CHUNK_BYTES] for i in range(0, len(state), CHUNK_BYTES)] or [b""]
        futures = [
            self._producer.send(
                self._topic,
                key=f"{source}/{partition}/{index}".encode(),
                value=piece,
                partition=target,
                headers=[("generation", generation.encode()), ("chunk", str(index).encode())],
            )
            for index, piece in enumerate(pieces)
        ]
        self._producer.flush(timeout=_FLUSH_S)
        offsets = [future.get(timeout=_FLUSH_S).offset for future in futures]
        return Pointer(
            at=at,
            partition=target,
            first=min(offsets),
            chunks=len(pieces),
            generation=generation,
            digest=hashlib.sha256(state).hexdigest()[:32],
        )

    def read(self, pointer: Pointer) -> bytes:
        """The snapshot a pointer names, checked against its digest.

        Raises:
            CheckpointUnavailable: Chunks are missing or the digest does not match.
        """
        if pointer.partition is None:
            raise CheckpointUnavailable("the pointer names no state")
        tp = TopicPartition(self._topic, pointer.partition)
        consumer: KafkaConsumer = open_consumer(
            self._settings,
            [],
            None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 << 20,
            fetch_max_bytes=64 << 20,
        )
        try:
            consumer.assign([tp])
            end = consumer.end_offsets([tp])[tp]
            consumer.seek(tp, pointer.first)
            pieces = self._collect(consumer, tp, pointer, end)
        except KafkaError as exc:
            raise CheckpointUnavailable(
                f"reading the state topic failed: {type(exc).__name__}"
            ) from None
        finally:
            consumer.close()
        state = b"".join(pieces[index] for index in range(pointer.chunks))
        if hashlib.sha256(state).hexdigest()[:32] != pointer.digest:
            raise CheckpointUnavailable("the checkpoint's chunks do not match its digest")
        return state

    @staticmethod
    def _collect(
        consumer: KafkaConsumer, tp: TopicPartition, pointer: Pointer, end: int
    ) -> Mapping[int, bytes]:
        wanted = pointer.generation.encode()
        pieces: dict[int, bytes] = {}
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while len(pieces) < pointer.chunks:
            if consumer.position(tp) >= end or time.monotonic() > deadline:
                raise CheckpointUnavailable(
                    f"{pointer.chunks - len(pieces)} of {pointer.chunks} checkpoint chunks "
                    "are gone (compacted or deleted)"
                )
            for record in consumer.poll(timeout_ms=500, max_records=500).get(tp, []):
                headers = dict(record.headers or ())
                if headers.get("generation") == wanted:
                    pieces[int(headers.get("chunk", b"-1"))] = record.value or b""
        return pieces


__all__ = ["CHUNK_BYTES", "CheckpointUnavailable", "Outage", "Pointer", "StateTopic"]
