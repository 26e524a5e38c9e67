"""Findings against ground truth: which incidents were detected, missed, and what else fired.

A finding *detects* an incident when it comes from the expected detector with the expected
kind (and rule, when the label names one), concerns the same client (a finding that names
no client, such as an attack keyed by the attacker's address, is compatible with any), and
its time span — ``window_start``..``window_end``, or ``observed_at`` — overlaps the
incident's, within ``slack`` (windowed detectors report on window boundaries).

Any other finding that overlaps an incident's client and time is *related*: another view
of the same incident (a forwarded token is also a replay; a storm of unknown keys is also a
rate spike). A finding that overlaps no incident at all is a *false alarm*: the clean
traffic should raise none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from auditor.models import Finding
from auditor.vocabulary import DetectorName
from pipelines.simulate.labels import Label

DEFAULT_SLACK: Final = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Detection:
    """An incident and the findings that detected it (empty when missed)."""

    label: Label
    findings: tuple[Finding, ...]

    @property
    def detected(self) -> bool:
        """Whether any finding detected it."""
        return bool(self.findings)


@dataclass(frozen=True, slots=True)
class DetectorScore:
    """One detector's tally."""

    detector: DetectorName
    incidents: int
    detected: int
    false_alarms: int

    @property
    def missed(self) -> int:
        """Incidents expected of this detector that it did not report."""
        return self.incidents - self.detected


@dataclass(frozen=True, slots=True)
class Scorecard:
    """The result of matching findings against labels (see the module docstring)."""

    detections: tuple[Detection, ...]
    related: tuple[Finding, ...]
    false_alarms: tuple[Finding, ...]

    @property
    def missed(self) -> tuple[Label, ...]:
        """The incidents no finding detected."""
        return tuple(d.label for d in self.detections if not d.detected)

    @property
    def perfect(self) -> bool:
        """Every incident detected and no false alarm."""
        return not self.missed and not self.false_alarms

    def by_detector(self) -> list[DetectorScore]:
        """One tally per detector, in the vocabulary's order."""
        scores = []
        for detector in DetectorName:
            mine = [d for d in self.detections if d.label.expected.detector is detector]
            scores.append(
                DetectorScore(
                    detector=detector,
                    incidents=len(mine),
                    detected=sum(d.detected for d in mine),
                    false_alarms=sum(f.detector is detector for f in self.false_alarms),
                )
            )
        return scores


def span(finding: Finding) -> tuple[datetime, datetime]:
    """The time a finding covers: its window, or the instant it was observed."""
    return (finding.window_start or finding.observed_at, finding.window_end or finding.observed_at)


def _about(label: Label, finding: Finding, slack: timedelta) -> bool:
    if label.client is not None and finding.client_iss not in (None, label.client):
        return False
    first, last = span(finding)
    return first <= label.end + slack and last >= label.start - slack


def _detects(label: Label, finding: Finding, slack: timedelta) -> bool:
    expected = label.expected
    return (
        finding.detector is expected.detector
        and finding.kind == expected.kind
        and (expected.rule is None or finding.rule == expected.rule)
        and _about(label, finding, slack)
    )


def score(
    labels: Sequence[Label], findings: Iterable[Finding], *, slack: timedelta = DEFAULT_SLACK
) -> Scorecard:
    """Match ``findings`` (one per finding id: the latest revision) against ``labels``."""
    findings = list(findings)
    detections = tuple(
        Detection(label, tuple(f for f in findings if _detects(label, f, slack)))
        for label in labels
    )
    detecting = {id(f) for d in detections for f in d.findings}
    related = []
    false_alarms = []
    for finding in findings:
        if id(finding) in detecting:
            continue
        if any(_about(label, finding, slack) for label in labels):
            related.append(finding)
        else:
            false_alarms.append(finding)
    return Scorecard(detections, tuple(related), tuple(false_alarms))
