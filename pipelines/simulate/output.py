"""Where a simulation's records go: a JSON-lines stream, Kafka, or memory.

The JSON-lines stream is what ``auditor run --input`` reads: a line with ``"kind":
"authz"`` is an ``AuthzEvent``, any other line is a service log record (as structlog's
``JSONRenderer`` writes it). Kafka gets the same records through the ``KafkaEmitter``
services use: authz events on the authz topic, log records on the logs topic, both keyed
by the client's ``iss``.

:class:`Recorder` sits in front of the output: it gives every event an id drawn from the
seed (``auditor.cdshooks`` draws random ones; a simulation must reproduce its bytes) and
counts what passes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from typing import Any, BinaryIO, Protocol
from uuid import UUID

import orjson

from auditor.models import AuthzEvent
from pipelines.emit import KafkaEmitter
from pipelines.simulate.clock import SimClock


class Output(Protocol):
    """Receives the records of a simulation, in the order they happen.

    Called from the simulation's one thread; ``close`` once at the end.
    """

    def event(self, event: AuthzEvent) -> None:
        """One authz event."""
        ...

    def log(self, record: Mapping[str, Any]) -> None:
        """One service log record."""
        ...

    def close(self) -> None:
        """Flush and release what the output holds."""
        ...


class JsonLinesOutput:
    """Writes records as JSON lines to a binary stream (the stream stays open on close).

    Args:
        stream: Where to write.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def event(self, event: AuthzEvent) -> None:
        """Write an event as ``AuthzEvent`` JSON (``null`` members left out)."""
        self._stream.write(event.model_dump_json(exclude_none=True).encode() + b"\n")

    def log(self, record: Mapping[str, Any]) -> None:
        """Write a log record as ``JSONRenderer`` would."""
        self._stream.write(orjson.dumps(record) + b"\n")

    def close(self) -> None:
        """Flush the stream."""
        self._stream.flush()


class KafkaOutput:
    """Publishes records with a :class:`~pipelines.emit.KafkaEmitter`, as services do.

    Args:
        emitter: The emitter (closed by :meth:`close`).
        flush_timeout: Seconds :meth:`close` waits for the broker to acknowledge.
    """

    def __init__(self, emitter: KafkaEmitter, *, flush_timeout: float = 60.0) -> None:
        self.emitter = emitter
        self._timeout = flush_timeout

    def event(self, event: AuthzEvent) -> None:
        """Publish to the authz topic."""
        self.emitter(event)

    def log(self, record: Mapping[str, Any]) -> None:
        """Publish to the logs topic, as ``LogShipper`` does (``kind: log``, keyed by iss)."""
        shipped = {**record, "kind": "log"}
        key = record.get("client_iss")
        self.emitter.emit_log(shipped, key=key if isinstance(key, str) else None)

    def close(self) -> None:
        """Wait for acknowledgements, then close the emitter."""
        self.emitter.flush(self._timeout)
        self.emitter.close(self._timeout)


class MemoryOutput:
    """Keeps records in a list, in order: ``AuthzEvent`` objects and log dicts."""

    def __init__(self) -> None:
        self.records: list[AuthzEvent | dict[str, Any]] = []

    def event(self, event: AuthzEvent) -> None:
        """Keep the event."""
        self.records.append(event)

    def log(self, record: Mapping[str, Any]) -> None:
        """Keep a copy of the record."""
        self.records.append(dict(record))

    def close(self) -> None:
        """Nothing to release."""


class Recorder:
    """Stamps reproducible event ids, counts records, and passes them to an output.

    It is the ``EventSink`` of every simulated client and service.

    Args:
        output: Where records go.
        rng: Draws the event ids.
        clock: The time log records are written at.
    """

    def __init__(self, output: Output, rng: random.Random, clock: SimClock) -> None:
        self.output = output
        self._rng = rng
        self._clock = clock
        self.events = 0
        self.logs = 0
        self.span: list[datetime] = []
        """While an incident step runs: the earliest and latest time of what it wrote."""

    def watch(self) -> None:
        """Start noting the time span of what is recorded (into :attr:`span`)."""
        self.span = []

    def _note(self, at: datetime) -> None:
        span = self.span
        if not span:
            span += [at, at]
        elif at < span[0]:
            span[0] = at
        elif at > span[1]:
            span[1] = at

    def __call__(self, event: AuthzEvent) -> None:
        """Accept one event from ``auditor.cdshooks`` (an ``EventSink``)."""
        self.events += 1
        self._note(event.time)
        stamped = event.model_copy(
            update={"event_id": UUID(int=self._rng.getrandbits(128), version=4)}
        )
        self.output.event(stamped)

    def log(self, record: Mapping[str, Any]) -> None:
        """Accept one log record."""
        self.logs += 1
        self._note(self._clock.now())
        self.output.log(record)
