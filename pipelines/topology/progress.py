"""What a run did, as it goes (progress lines) and at the end (``RunSummary``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from auditor.models import Finding
from pipelines.store import RunCounters


@dataclass(slots=True)
class RunSummary:
    """The outcome of one ``auditor run``.

    Attributes:
        run_id: The ``runs`` row of this run (``None`` for a detect-only process).
        mode: ``embedded`` or ``kafka``.
        status: ``completed``, ``interrupted`` (stopped before its input ended) or ``failed``.
        counters: Records in, findings out (every revision), dead letters, late events.
        replayed: Records re-read only to rebuild detector state after a restart.
        dead_letter_reasons: Dead letters by reason.
        findings_by_severity: Findings out by severity (every revision).
        alerts: Alerts raised.
        seconds: Wall time of the run.
        findings: The latest revision of every finding, when the caller asked for them.
    """

    run_id: str | None
    mode: str
    status: str = "completed"
    counters: RunCounters = field(default_factory=RunCounters)
    replayed: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    findings_by_severity: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    seconds: float = 0.0
    findings: list[Finding] | None = None

    @property
    def records(self) -> int:
        """Records read: authz events, log records and dead letters."""
        c = self.counters
        return c.events_in + c.logs_in + c.dead_letters

    @property
    def records_per_second(self) -> float:
        """Records read per second of wall time."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        """The summary as lines for a terminal."""
        c = self.counters
        severities = ", ".join(
            f"{name} {self.findings_by_severity[name]}"
            for name in ("critical", "high", "medium", "low", "info")
            if self.findings_by_severity[name]
        )
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.dead_letter_reasons.items()))
        return [
            f"run {self.run_id or '-'} ({self.mode}): {self.status} in {self.seconds:.1f}s",
            (
                f"  records      {self.records:,} ({self.records_per_second:,.0f}/s)"
                + (f", {self.replayed:,} re-read to rebuild state" if self.replayed else "")
            ),
            (
                f"  authz events {c.events_in:,}   log records {c.logs_in:,}   late events "
                f"{c.late_events:,}"
            ),
            f"  findings     {c.findings_out:,}" + (f" ({severities})" if severities else ""),
            f"  alerts       {self.alerts:,}",
            f"  dead letters {c.dead_letters:,}" + (f" ({reasons})" if reasons else ""),
        ]


class Progress:
    """Writes a progress line every ``interval`` seconds while a run goes.

    Args:
        stream: Where lines go (the terminal's stderr); ``None`` writes nothing.
        interval: Seconds between lines.
    """

    def __init__(self, stream: TextIO | None, interval: float = 5.0) -> None:
        self._stream = stream
        self._interval = interval
        self._started = time.monotonic()
        self._next = self._started + interval
        self._last_records = 0
        self._last_time = self._started

    def update(self, summary: RunSummary, *, lag: int | None = None) -> None:
        """Write a line if one is due."""
        now = time.monotonic()
        if self._stream is None or now < self._next:
            return
        self._next = now + self._interval
        records = summary.records
        rate = (records - self._last_records) / max(now - self._last_time, 1e-9)
        self._last_records, self._last_time = records, now
        c = summary.counters
        behind = f"  lag {lag:,}" if lag is not None else ""
        self._stream.write(
            f"auditor run: {now - self._started:6.0f}s  records {records:,} ({rate:,.0f}/s)  "
            f"findings {c.findings_out:,}  alerts {summary.alerts:,}  "
            f"dead letters {c.dead_letters:,}{behind}\n"
        )
        self._stream.flush()


__all__ = ["Progress", "RunSummary"]
