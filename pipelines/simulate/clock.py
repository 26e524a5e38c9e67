"""Simulated time: every timestamp a simulation writes comes from here, never the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SimClock:
    """The current simulated instant. The simulation sets it; components read it.

    Args:
        start: The first instant (timezone-aware).
    """

    __slots__ = ("_now",)

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise TypeError("the simulation starts at a timezone-aware time")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """The current simulated time (UTC)."""
        return self._now

    def set(self, at: datetime) -> None:
        """Move to ``at`` (backwards too: concurrent requests overlap in time)."""
        self._now = at

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (a service's processing time, a client's backoff)."""
        self._now += timedelta(seconds=seconds)

    def iso(self) -> str:
        """The current time as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it."""
        return self._now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
