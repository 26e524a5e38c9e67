"""Incidents: one finding whose revisions follow a continuing problem.

A stream detector keeps an ``Incident`` in its state for each problem it is watching (a
replay burst, an anomaly that persists, a policy violation that repeats). The finding id
is fixed when the incident opens — from the detector, the rule, the incident's key and its
first event time — and each update raises ``revision``. Updates are throttled so that a
flood produces a handful of revisions, not one per event: a revision is emitted when the
incident opens, when its count doubles, when something escalates (a new service or peer,
a higher severity), and once more when it closes (``facts["status"] == "closed"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from auditor.models import FactValue, Finding, finding_id
from auditor.vocabulary import Severity
from detectors.building import checked_finding
from detectors.rules import RuleSpec

MAX_EVENT_IDS = 10
"""Event ids kept per incident: enough to pull up the evidence, bounded for a flood."""

MAX_DIMENSION = 16
"""Distinct services, peers or values listed per incident; the rest are counted."""


def to_datetime(seconds: float) -> datetime:
    """Event time in seconds since the epoch as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def anchor_time(seconds: float) -> str:
    """A stable text form of an event time for finding-id anchors (microseconds)."""
    return f"{round(seconds * 1_000_000)}"


def incident_id(spec: RuleSpec, *anchor: object) -> str:
    """The deterministic finding id of an incident of ``spec``."""
    return finding_id(spec.detector.value, spec.rule, *anchor)


@dataclass(slots=True)
class Incident:
    """The mutable record of one open incident, kept in a detector's state.

    Attributes:
        finding_id: Fixed when the incident opens.
        first: Event time of the first occurrence (the anchor of the id).
        last: Event time of the latest occurrence.
        count: Occurrences so far.
        revision: The last revision emitted, -1 before the first.
        emitted_count: ``count`` when the last revision was emitted.
        escalated: Something besides the count changed that deserves a revision.
        event_ids: The first few event ids, as evidence.
    """

    finding_id: str
    first: float
    last: float
    count: int = 0
    revision: int = -1
    emitted_count: int = 0
    escalated: bool = False
    event_ids: list[str] = field(default_factory=list)

    def record(self, now: float, event_id: object) -> None:
        """Count one more occurrence at event time ``now``."""
        self.count += 1
        self.last = max(self.last, now)
        if len(self.event_ids) < MAX_EVENT_IDS:
            self.event_ids.append(str(event_id))

    @property
    def update_due(self) -> bool:
        """Whether the next revision should be emitted now (open, doubled or escalated)."""
        return self.revision < 0 or self.escalated or self.count >= 2 * self.emitted_count


def add_to(values: set[str], value: str | None) -> bool:
    """Add ``value`` to a bounded dimension set; ``True`` when it is new and was added."""
    if value is None or value in values or len(values) >= MAX_DIMENSION:
        return False
    values.add(value)
    return True


def emit(
    spec: RuleSpec,
    incident: Incident,
    *,
    title: str,
    severity: Severity | None = None,
    client_iss: str | None = None,
    service_id: str | None = None,
    fingerprint: str | None = None,
    location: str | None = None,
    facts: dict[str, FactValue] | None = None,
    closed: bool = False,
) -> Finding:
    """Build the next revision of ``incident`` and mark it emitted.

    Args:
        spec: The rule.
        incident: The incident; its revision is raised.
        title: One line naming the rule and the facts, never a value.
        severity: Overrides the rule's default severity.
        client_iss: The client the incident concerns.
        service_id: The service the incident concerns.
        fingerprint: A keyed fingerprint (the token's, as the producer recorded it).
        location: Where in the event the evidence is (``$.token.jti``).
        facts: Counts, scores, claim names; never a secret or PHI value.
        closed: Whether this is the final revision.
    """
    incident.revision += 1
    incident.emitted_count = incident.count
    incident.escalated = False
    all_facts: dict[str, FactValue] = {
        "status": "closed" if closed else "open",
        "basis": spec.basis.value,
    }
    if facts:
        all_facts.update(facts)
    last = to_datetime(incident.last)
    return checked_finding(
        {
            "finding_id": incident.finding_id,
            "detector": spec.detector,
            "rule": spec.rule,
            "kind": spec.kind.value,
            "severity": severity or spec.severity,
            "observed_at": last,
            "title": title[:300],
            "client_iss": client_iss,
            "service_id": service_id,
            "fingerprint": fingerprint,
            "location": location,
            "origin": None,
            "event_ids": tuple(incident.event_ids),
            "evidence": "",
            "safeguard": spec.safeguard,
            "reference": spec.reference,
            "window_start": to_datetime(incident.first),
            "window_end": last,
            "count": max(incident.count, 1),
            "revision": incident.revision,
            "facts": all_facts,
        }
    )


def sorted_tuple(values: set[str]) -> tuple[str, ...]:
    """A set as a sorted tuple, for deterministic facts."""
    return tuple(sorted(values))
