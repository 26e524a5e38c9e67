"""What the demo prints: the traffic, the scorecard per detector, each incident, what next."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TextIO

from pipelines.simulate import Label, SimulationResult
from pipelines.simulate.cast import EHRS, SERVICES
from pipelines.simulate.scoring import Detection, Scorecard

_RULE = "-" * 72


def _short(iss: str | None) -> str:
    if iss is None:
        return "-"
    return iss.removeprefix("https://").removeprefix("ehr.").removesuffix(".example")


def _when(label: Label) -> str:
    return f"{label.start:%H:%M:%S}-{label.end:%H:%M:%S}"


def _verdict(detection: Detection) -> str:
    return "detected" if detection.detected else "MISSED"


def write_summary(
    out: TextIO,
    *,
    simulation: SimulationResult,
    start: datetime,
    stored_events: int,
    findings: int,
    card: Scorecard,
    db: Path,
    report: Path | None,
    timings: dict[str, float],
) -> None:
    """Write the demo's summary for a newcomer."""
    w = out.write
    w(f"\n{_RULE}\nWhat happened\n{_RULE}\n")
    w(
        f"{len(EHRS)} EHRs called {len(SERVICES)} CDS services {simulation.calls:,} times in "
        f"{simulation.simulated} of "
        f"simulated time from {start:%Y-%m-%d %H:%M} UTC,\nwith real signed tokens checked by the "
        f"real verifier: {simulation.events:,} authz events and {simulation.logs:,} service log "
        f"lines.\n{len(simulation.labels)} incidents were injected into that traffic. The pipeline "
        f"stored {stored_events:,} events and {findings:,} findings in {db}.\n"
    )
    w(f"\n{_RULE}\nDid the auditor find them?\n{_RULE}\n")
    w(f"{'detector':<20}{'incidents':>10}{'detected':>10}{'missed':>8}{'false alarms':>14}\n")
    totals = [0, 0, 0, 0]
    for tally in card.by_detector():
        row = (tally.incidents, tally.detected, tally.missed, tally.false_alarms)
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        w(f"{tally.detector.value:<20}{row[0]:>10}{row[1]:>10}{row[2]:>8}{row[3]:>14}\n")
    w(f"{'all':<20}{totals[0]:>10}{totals[1]:>10}{totals[2]:>8}{totals[3]:>14}\n")
    if card.related:
        w(
            f"\n{len(card.related)} more findings describe the same incidents from another angle "
            "(a forwarded token is also a replay,\na storm of unknown keys is also a rate spike); "
            "they are not false alarms.\n"
        )
    w(f"\n{_RULE}\nThe incidents\n{_RULE}\n")
    for detection in card.detections:
        label = detection.label
        expected = label.expected
        found = f"{len(detection.findings)} finding(s)" if detection.findings else ""
        w(
            f"{_verdict(detection):<9} {label.name:<26} {_short(label.client):<18} "
            f"{_when(label)}  {expected.detector.value}/{expected.rule or expected.kind}  {found}\n"
        )
    for finding in card.false_alarms:
        w(
            f"FALSE ALARM {finding.detector.value}/{finding.rule} {_short(finding.client_iss)} "
            f"{finding.observed_at:%H:%M:%S}: {finding.title}\n"
        )
    w(f"\n{_RULE}\nTry next\n{_RULE}\n")
    steps: list[tuple[str, str]] = []
    if report is not None:
        steps.append((f"open {report}", "the compliance report for the period"))
    steps += [
        ("auditor query --list", "the compliance questions"),
        (f"auditor query leaked_tokens --db {db}", ""),
        (f"auditor query replay_incidents --db {db}", ""),
        (f"auditor query unreviewed_findings --db {db}", ""),
        (f"auditor dashboard --db {db}", "browse and review findings"),
        (f"auditor export --format ocsf --db {db} --events all --since 2026-01-01", ""),
        ("auditor simulate --help", "make your own traffic"),
    ]
    width = max(len(command) for command, note in steps if note) + 2
    for command, note in steps:
        w(f"{command:<{width}}# {note}\n" if note else f"{command}\n")
    spent = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    w(f"\n({spent})\n")
