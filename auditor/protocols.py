"""Extension points, each a small Protocol (STYLE.md, rule 3).

Each docstring says who calls it, how often, and whether it may block or raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

from auditor.models import AuthzEvent, Finding
from auditor.vocabulary import DetectorName

StateT = TypeVar("StateT")


@dataclass(frozen=True, slots=True)
class ScanContext:
    """Where a record came from and when it happened, passed beside its content.

    Attributes:
        origin: ``path:line`` for files, ``topic/partition@offset`` for Kafka.
        observed_at: Event time of the record (its own timestamp when it has one, else the
            time it was read). Detectors use it instead of the wall clock.
        client_iss: The CDS client the record concerns, when known.
        service_id: The CDS service that logged it, when known.
        event_id: The authz event the content belongs to, when it is one.
    """

    origin: str | None
    observed_at: datetime
    client_iss: str | None = None
    service_id: str | None = None
    event_id: str | None = None


@runtime_checkable
class ContentDetector(Protocol):
    """A stateless detector over one record's content (a log line, an event's attributes).

    Called by the detect stage once per record, on the hot path: it must not block, do
    I/O or read the wall clock, and must not raise on any content — hostile input
    included. It returns findings that hold no raw value.
    """

    name: DetectorName

    def scan(self, content: object, context: ScanContext) -> Sequence[Finding]:
        """Examine ``content`` (a parsed JSON value or a text line) and report findings."""
        ...


@runtime_checkable
class StreamDetector(Protocol[StateT]):
    """A stateful detector over authz events: ``(state, event) -> (state, findings)``.

    The runtime owns the state, one value per key, and calls ``step`` once per event in
    key order and ``advance`` whenever the event-time watermark of the partition moves.
    Implementations are immutable and pure: no I/O, no wall clock, no exceptions on
    valid events. State must be picklable so the runtime can snapshot and restore it.
    """

    name: DetectorName

    def key(self, event: AuthzEvent) -> str | None:
        """The state key of ``event``, or ``None`` when this detector ignores it."""
        ...

    def initial_state(self) -> StateT:
        """A fresh state for a key never seen before."""
        ...

    def step(self, state: StateT, event: AuthzEvent) -> tuple[StateT, Sequence[Finding]]:
        """Fold one event into the state of its key."""
        ...

    def advance(
        self, state: StateT, watermark: datetime
    ) -> tuple[StateT | None, Sequence[Finding]]:
        """Close what the watermark has passed; return ``None`` to let the runtime evict."""
        ...


@runtime_checkable
class EventSink(Protocol):
    """Receives the authz events that ``auditor.cdshooks`` emits for each decision.

    Called on the request path of a CDS client or service, once per decision: it must not
    block (buffer and return) and must not raise. The Kafka emitter, an in-memory list
    for tests and the simulator's file writer implement it.
    """

    def __call__(self, event: AuthzEvent) -> None:
        """Accept one event."""
        ...
