"""Which findings become alerts: a threshold, one alert per incident revision, no floods.

Two kinds of finding reach the policy:

- **incidents** (the stream detectors: a replay burst, an anomaly, a policy violation) keep
  their ``finding_id`` and raise ``revision`` when they grow, escalate or close — the
  detectors already emit revisions sparingly (open, count doubled, escalation, close). An
  incident alerts once per revision at or above ``min_severity``; a revision alerted
  before (a replay of the input after a restart) is not alerted again.
- **occurrences** (``leaked_token``, ``phi_in_logs``: one finding per leaked copy) are
  grouped by detector, rule and keyed fingerprint (or kind and service when there is no
  fingerprint). A group alerts at its 1st, 2nd, 4th, 8th ... occurrence, each alert
  carrying the count, so a logger spraying the same token a thousand times raises ten
  alerts, not a thousand. A group quiet for ``group_window_s`` starts over.

The policy is pure (no I/O, time passed in) and bounded (``remember`` entries each);
``pipelines.topology.dispatch`` sends what it decides.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from auditor.models import Finding
from pipelines.settings import AlertSettings
from pipelines.store import AlertRecord

ALERT_FORMAT: Final = 1


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a finding at one revision, and how many occurrences its group has seen.

    Attributes:
        finding: The finding (its latest revision when it was alerted).
        occurrences: For grouped detectors, the group's count when it alerted; else 1.
        group: The group's key for grouped detectors, else ``None``.
    """

    finding: Finding
    occurrences: int = 1
    group: str | None = None

    @property
    def alert_id(self) -> str:
        """``finding_id:revision``: the dedupe key receivers should use."""
        return f"{self.finding.finding_id}:{self.finding.revision}"

    def to_json(self, channels: tuple[str, ...] = ()) -> bytes:
        """The alert as sent: the finding's identifying facts, never its evidence text.

        Evidence is a redacted excerpt, yet the least exposure is none: a receiver that
        needs it opens the finding in the dashboard.
        """
        f = self.finding
        body: dict[str, Any] = {
            "format": ALERT_FORMAT,
            "alert_id": self.alert_id,
            "finding_id": f.finding_id,
            "revision": f.revision,
            "detector": f.detector.value,
            "rule": f.rule,
            "kind": f.kind,
            "severity": f.severity.value,
            "title": f.title,
            "observed_at": f.observed_at,
            "client_iss": f.client_iss,
            "service_id": f.service_id,
            "fingerprint": f.fingerprint,
            "location": f.location,
            "origin": f.origin,
            "count": f.count,
            "occurrences": self.occurrences,
            "window_start": f.window_start,
            "window_end": f.window_end,
            "safeguard": str(f.safeguard) if f.safeguard is not None else None,
            "facts": f.facts,
            "channels": list(channels),
        }
        return orjson.dumps({k: v for k, v in body.items() if v is not None})

    def record(self, sent_at: datetime, channels: tuple[str, ...]) -> AlertRecord:
        """The ``alerts`` row of this alert."""
        return AlertRecord(
            finding_id=self.finding.finding_id,
            revision=self.finding.revision,
            severity=self.finding.severity,
            sent_at=sent_at,
            channels=channels,
        )


class AlertPolicy:
    """Decides which findings alert. Not thread-safe: one per detect stage.

    Args:
        settings: Threshold, grouped detectors, group window, memory bound.
    """

    __slots__ = ("_alerted", "_grouped", "_groups", "_min", "_remember", "_window")

    def __init__(self, settings: AlertSettings | None = None) -> None:
        settings = settings or AlertSettings()
        self._min = settings.min_severity
        self._grouped = settings.grouped_detectors
        self._window = settings.group_window_s
        self._remember = settings.remember
        self._alerted: OrderedDict[str, int] = OrderedDict()
        """Incident id -> the highest revision alerted."""
        self._groups: OrderedDict[str, tuple[int, float]] = OrderedDict()
        """Group key -> (occurrences, event time of the last one)."""

    def decide(self, findings: list[Finding]) -> list[Alert]:
        """The alerts ``findings`` raise, in order. Updates the policy's memory."""
        alerts: list[Alert] = []
        for finding in findings:
            if finding.severity < self._min:
                continue
            alert = (
                self._occurrence(finding)
                if finding.detector in self._grouped
                else self._incident(finding)
            )
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _incident(self, finding: Finding) -> Alert | None:
        seen = self._alerted.get(finding.finding_id)
        if seen is not None and finding.revision <= seen:
            return None
        self._remember_entry(self._alerted, finding.finding_id, finding.revision)
        return Alert(finding)

    def _occurrence(self, finding: Finding) -> Alert | None:
        anchor = finding.fingerprint or f"{finding.kind}@{finding.service_id or '-'}"
        key = f"{finding.detector.value}|{finding.rule}|{anchor}"
        now = finding.observed_at.timestamp()
        count, last = self._groups.get(key, (0, now))
        if now - last > self._window:
            count = 0
        count += 1
        self._remember_entry(self._groups, key, (count, max(now, last)))
        if count & (count - 1):  # not a power of two
            return None
        return Alert(finding, occurrences=count, group=key)

    def _remember_entry(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > self._remember:
            table.popitem(last=False)


__all__ = ["ALERT_FORMAT", "Alert", "AlertPolicy"]
