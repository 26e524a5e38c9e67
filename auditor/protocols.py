"""Extension points, each a small Protocol (STYLE.md, rule 3).

Each docstring says who calls it, how often, and whether it may block or raise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

from auditor.models import AuthzEvent, AuthzView, Finding
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

    Detectors read each event through an ``AuthzView``, which the runtime builds once per
    event: three detectors read the same dozen fields in ``key`` and again in ``step``, and
    a field of the pydantic event costs several times a slot of the view (the reason the
    contract takes a view, not the event). The event stays reachable as ``view.event``.

    The runtime (``pipelines.runtime``) owns the state, one value per key and partition.
    It releases events in event-time order once the partition's watermark has passed them,
    so for events within the allowed lateness the detector sees the same sequence whatever
    order they arrived in. Per key it calls ``advance`` at the deadlines the detector asks
    for, interleaved with ``step`` in event-time order: a deadline ``D`` is always served
    before any event at ``D`` or later. Late events (older than the watermark) are stepped
    immediately, out of order; detectors must tolerate them.

    Times are event-time seconds since the epoch (floats): the runtime computes them once
    per event. Implementations are immutable (configured once, validated at construction)
    and pure: no I/O, no wall clock, no randomness, and they never raise on a valid event.
    ``step`` and ``advance`` may update the state they are given in place and return it —
    the runtime hands over the only reference — but must not touch the view or the event.
    When nothing is found they may return an empty tuple rather than a new list. State must be
    picklable: the runtime snapshots it for restarts and partition moves, and refuses a
    snapshot whose ``state_version`` differs from the detector's.
    """

    name: DetectorName
    state_version: int

    def key(self, event: AuthzView) -> str | None:
        """The state key of ``event``, or ``None`` when this detector ignores it.

        Called once per event on the hot path; cheap, never raises.
        """
        ...

    def initial_state(self) -> StateT:
        """A fresh state for a key never seen before (or evicted)."""
        ...

    def step(self, state: StateT, event: AuthzView, now: float) -> tuple[StateT, Sequence[Finding]]:
        """Fold one event into the state of its key.

        Args:
            state: The key's state; the detector may update it in place.
            event: The view of the event (never modified).
            now: The event's time in seconds since the epoch (``event.time``).
        """
        ...

    def deadline(self, state: StateT) -> float | None:
        """When ``advance`` must next be called for this key, or ``None`` if never.

        Called after each ``step`` and ``advance``; O(1), never raises.
        """
        ...

    def advance(self, state: StateT, now: float) -> tuple[StateT | None, Sequence[Finding]]:
        """Event time has reached ``now``: close windows, expire entries, end incidents.

        ``now`` is the deadline the detector asked for, or ``math.inf`` when the input ends
        (close everything). Returns ``None`` as the state to let the runtime evict the key.
        """
        ...

    def size(self, state: StateT) -> int:
        """How many items the state tracks (jtis, series, incidents): the state-size gauge."""
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
