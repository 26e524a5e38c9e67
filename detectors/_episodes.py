"""Episodes: a run of related events that becomes an incident once it crosses a threshold.

An episode starts with its first event and ends after ``gap`` seconds without one (a
session window). It becomes an incident when at least ``count`` of its events fall within
``within`` seconds and it has lasted ``min_duration`` — a burst (``within`` small) or a
sustained pattern (``within`` infinite, ``min_duration`` long). Until then it only keeps
the last ``count`` times and a few event ids, so a quiet trickle costs little.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from detectors._incidents import MAX_EVENT_IDS, Incident, add_to


@dataclass(frozen=True, slots=True)
class Trigger:
    """When an episode becomes an incident, and when it ends."""

    count: int
    within: float
    gap: float
    min_duration: float = 0.0


@dataclass(slots=True)
class Episode:
    """The mutable record of one episode, kept in a detector's state."""

    first: float
    last: float
    recent: deque[float]
    count: int = 0
    incident: Incident | None = None
    event_ids: list[str] = field(default_factory=list)
    dims: dict[str, set[str]] = field(default_factory=dict)
    tallies: dict[str, int] = field(default_factory=dict)
    low: float = math.inf
    high: float = -math.inf
    total: float = 0.0
    measured: int = 0

    @classmethod
    def start(cls, now: float, trigger: Trigger) -> Episode:
        """A new episode whose first event is at ``now``."""
        return cls(first=now, last=now, recent=deque(maxlen=trigger.count))

    def ended(self, now: float, trigger: Trigger) -> bool:
        """Whether ``now`` is at least ``gap`` after the episode's last event."""
        return now - self.last >= trigger.gap

    def add(self, now: float, event_id: object, trigger: Trigger) -> bool:
        """Count one event; ``True`` when the episode has just crossed its threshold."""
        self.count += 1
        self.last = max(self.last, now)
        if self.incident is not None:
            self.incident.record(now, event_id)
            return False
        self.recent.append(now)
        if len(self.event_ids) < MAX_EVENT_IDS:
            self.event_ids.append(str(event_id))
        return (
            len(self.recent) >= trigger.count
            and now - self.recent[0] <= trigger.within
            and self.last - self.first >= trigger.min_duration
        )

    def open(self, finding_id: str, trigger: Trigger) -> Incident:
        """Turn the episode into an incident.

        A burst starts with the first of the ``count`` events that crossed the threshold;
        a sustained pattern (``within`` infinite) with the episode itself.
        """
        burst = trigger.within != math.inf and bool(self.recent)
        self.incident = Incident(
            finding_id,
            first=self.recent[0] if burst else self.first,
            last=self.last,
            count=len(self.recent) if burst else self.count,
            event_ids=list(self.event_ids),
        )
        self.recent.clear()
        return self.incident

    def note(self, dimension: str, value: str | None) -> bool:
        """Remember a distinct value (peer, service, alg); ``True`` when it is new."""
        values = self.dims.get(dimension)
        if values is None:
            values = self.dims[dimension] = set()
        return add_to(values, value)

    def tally(self, name: str) -> None:
        """Count one occurrence of ``name`` (a failure reason, say)."""
        self.tallies[name] = self.tallies.get(name, 0) + 1

    def measure(self, value: float) -> None:
        """Track min, max and mean of a measurement (a skew in seconds, say)."""
        self.low = min(self.low, value)
        self.high = max(self.high, value)
        self.total += value
        self.measured += 1

    @property
    def mean(self) -> float | None:
        """The mean of the measurements, when there are any."""
        return self.total / self.measured if self.measured else None
